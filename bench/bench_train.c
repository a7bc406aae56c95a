/* frl-bench train: local-training throughput (forward + backward + SGD +
 * exact top-k masks) and peak memory, optionally side by side with the
 * PyTorch reference (../shared/anchors/frl_torch_ref.py's modules) in the
 * same run.
 *
 *   frl-bench train --model lenet --batch 8 --threads 1 [--images 600]
 *                   [--steps N] [--reps R] [--reference] [--json]
 *
 * Each thread is one client: its own trainer on its own copy of the data
 * selection, as frl-sim runs them. --images selects the first N training
 * images and loads only those (a client's shard). Throughput is the median
 * over reps of images / wall seconds, summed over threads. */
#include "bench/frl_bench.h"
#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_rng.h"
#include "data/frl_idx.h"
#include "supermask/frl_model.h"
#include "supermask/frl_train.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#ifndef FRL_SOURCE_DIR
#define FRL_SOURCE_DIR "."
#endif

typedef struct {
    const frl_network_t *net;
    const frl_dataset_t *data;
    frl_train_cfg_t cfg;
    uint32_t n;       /* images per rep */
    int reps;
    int id;
    double *seconds;  /* [reps] */
    double cpu_seconds;
    int rc;
} worker;

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *run_worker(void *arg)
{
    worker *w = arg;
    frl_trainer_t *tr;
    w->rc = frl_trainer_create(w->net, w->cfg.batch, w->cfg.keep, w->cfg.rule, &tr);
    if (w->rc)
        return NULL;
    frl_rng_t rng;
    frl_rng_init(&rng, w->net->seed, FRL_STREAM_SHUFFLE, (uint32_t)w->id, 0);
    double c0 = thread_cpu_s();
    for (int r = 0; r < w->reps && !w->rc; r++) {
        frl_train_stats_t st;
        double t0 = frl_now_s();
        w->rc = frl_train_local(tr, w->data, NULL, w->n, &w->cfg, &rng, &st, NULL, NULL);
        w->seconds[r] = frl_now_s() - t0;
    }
    w->cpu_seconds = thread_cpu_s() - c0;
    /* A client ends its round with its ranking: part of the memory peak. */
    uint32_t *rk = malloc(sizeof(uint32_t) * w->net->spec.total_edges);
    if (rk) {
        if (!w->rc)
            w->rc = frl_trainer_get_ranking(tr, rk);
        free(rk);
    }
    frl_trainer_destroy(tr);
    return NULL;
}

/* MACs of one training example: forward, weight gradient, and input
 * gradient of every masked layer but the first. */
static double train_macs(const frl_model_spec_t *s)
{
    double macs = 0;
    for (int l = 0; l < s->n_layers; l++) {
        const frl_op_t *op = &s->ops[s->layers[l].op];
        double spatial = (double)op->out_h * op->out_w;
        double m = (double)s->layers[l].n_edges * spatial;
        macs += (l == 0 ? 2.0 : 3.0) * m;
    }
    return macs;
}

/* Runs the PyTorch reference's LeNet training step (its own modules) on the
 * same number of images, one thread; returns images/s or 0. */
static double reference_img_per_s(const char *anchors, int batch, uint32_t images, int reps)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 /usr/bin/python3 - 2>/dev/null <<'PYEOF'\n"
             "import sys, time, torch, torch.nn.functional as F\n"
             "sys.path.insert(0, '%s')\n"
             "import frl_torch_ref as R\n"
             "torch.set_num_threads(1); torch.manual_seed(0)\n"
             "xtr, ytr, _, _ = R.load_fmnist('/usr/share/datasets/fashion-mnist', 0.2860, 0.3530)\n"
             "x, y = xtr[:%u], ytr[:%u]\n"
             "m = R.LeNetFRL(0.5, 'kth')\n"
             "opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.4, momentum=0.9, weight_decay=1e-4)\n"
             "best = []\n"
             "for r in range(%d):\n"
             "    t = time.perf_counter(); n = 0\n"
             "    for s in range(0, x.size(0), %d):\n"
             "        out = m(x[s:s+%d]); loss = F.cross_entropy(out, y[s:s+%d])\n"
             "        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); n += out.size(0)\n"
             "    best.append(n / (time.perf_counter() - t))\n"
             "best.sort(); print(best[len(best)//2])\n"
             "PYEOF",
             anchors, images, images, reps, batch, batch, batch);
    FILE *p = popen(cmd, "r");
    if (!p)
        return 0.0;
    double v = 0.0;
    if (fscanf(p, "%lf", &v) != 1)
        v = 0.0;
    pclose(p);
    return v;
}

int frl_bench_train(int argc, char **argv)
{
    const char *model = "lenet", *data_dir = NULL;
    char anchors[1024];
    snprintf(anchors, sizeof anchors, "%s/../shared/anchors", FRL_SOURCE_DIR);
    int threads = 1, reps = 3, json = 0, reference = 0;
    long images = 600, peak_gflops = 0;
    frl_train_cfg_t cfg;
    frl_train_cfg_default(&cfg);
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},   {"batch", required_argument, 0, 'b'},
                                         {"threads", required_argument, 0, 't'}, {"images", required_argument, 0, 'n'},
                                         {"reps", required_argument, 0, 'r'},    {"data", required_argument, 0, 'd'},
                                         {"reference", no_argument, 0, 'R'},     {"anchors", required_argument, 0, 'a'},
                                         {"peak-gflops", required_argument, 0, 'p'}, {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'b': cfg.batch = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'n': images = atol(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 'd': data_dir = optarg; break;
        case 'R': reference = 1; break;
        case 'a': snprintf(anchors, sizeof anchors, "%s", optarg); break;
        case 'p': peak_gflops = atol(optarg); break;
        case 'j': json = 1; break;
        case 'h':
            printf("usage: frl-bench train [--model lenet] [--batch 8] [--threads 1] [--images 600] [--reps 3]\n"
                   "                      [--data DIR] [--reference] [--anchors DIR] [--peak-gflops G] [--json]\n");
            return 0;
        default: return 2;
        }
    }
    if (cfg.batch < 1 || threads < 1 || threads > 64 || images < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "frl-bench train: bad option value\n");
        return 2;
    }
    frl_model_spec_t spec;
    if (frl_model_spec_by_name(model, &spec)) {
        fprintf(stderr, "frl-bench train: unknown model '%s'\n", model);
        return 2;
    }
    uint32_t *sel = malloc(sizeof(uint32_t) * (size_t)images);
    if (!sel)
        return 1;
    for (long i = 0; i < images; i++)
        sel[i] = (uint32_t)i;
    frl_dataset_t data;
    int rc = frl_mnist_load(data_dir, "train", sel, (uint32_t)images, &data);
    free(sel);
    if (rc) {
        fprintf(stderr, "frl-bench train: cannot load data: %s\n", frl_strerror(rc));
        return 1;
    }
    uint8_t seed[32];
    frl_seed_from_u64(0, seed);
    frl_network_t net;
    if ((rc = frl_network_init(&net, &spec, seed, 1)) != 0) {
        fprintf(stderr, "frl-bench train: %s\n", frl_strerror(rc));
        frl_dataset_free(&data);
        return 1;
    }
    worker w[64];
    pthread_t th[64];
    double *secs = calloc((size_t)threads * (size_t)reps, sizeof(double));
    if (!secs)
        return 1;
    for (int i = 0; i < threads; i++) {
        w[i] = (worker){&net, &data, cfg, (uint32_t)images, reps, i, secs + (size_t)i * reps, 0.0, 0};
        if (pthread_create(&th[i], NULL, run_worker, &w[i]) != 0)
            return 1;
    }
    double cpu = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        if (w[i].rc) {
            fprintf(stderr, "frl-bench train: %s\n", frl_strerror(w[i].rc));
            return 1;
        }
        cpu += w[i].cpu_seconds;
    }
    /* Per rep, throughput = all threads' images / the slowest thread. */
    double ips[100];
    for (int r = 0; r < reps; r++) {
        double slow = 0;
        for (int i = 0; i < threads; i++)
            slow = secs[(size_t)i * reps + r] > slow ? secs[(size_t)i * reps + r] : slow;
        ips[r] = (double)images * threads / slow;
    }
    double img_per_s = frl_bench_median(ips, reps);
    double img_per_cpu_s = (double)images * threads * reps / cpu;
    double gflops = img_per_s / threads * train_macs(&spec) * 2e-9;
    long rss = frl_peak_rss_kb();
    double ref = reference ? reference_img_per_s(anchors, cfg.batch, (uint32_t)images, 3) : 0.0;
    if (json) {
        printf("{\"bench\":\"train\",\"model\":\"%s\",\"batch\":%d,\"threads\":%d,\"images\":%ld,\"reps\":%d,"
               "\"img_per_s\":%.1f,\"img_per_s_per_thread\":%.1f,\"img_per_cpu_s\":%.1f,\"gflop_per_s_per_thread\":%.2f,"
               "\"train_mflop_per_img\":%.2f,",
               model, cfg.batch, threads, images, reps, img_per_s, img_per_s / threads, img_per_cpu_s, gflops,
               train_macs(&spec) * 2e-6);
        if (peak_gflops > 0)
            printf("\"fraction_of_fp32_peak\":%.3f,\"peak_gflops\":%ld,", gflops / (double)peak_gflops, peak_gflops);
        if (reference)
            printf("\"reference_img_per_s\":%.1f,\"speedup_vs_reference\":%.2f,", ref, ref > 0 ? img_per_s / threads / ref : 0.0);
        printf("\"peak_rss_kb\":%ld}\n", rss);
    } else {
        printf("train %s batch %d threads %d: %.0f img/s (%.0f per thread, %.0f per CPU-second), %.1f GFLOP/s per thread",
               model, cfg.batch, threads, img_per_s, img_per_s / threads, img_per_cpu_s, gflops);
        if (peak_gflops > 0)
            printf(" (%.0f%% of %ld GFLOP/s peak)", 100.0 * gflops / (double)peak_gflops, peak_gflops);
        printf(", peak RSS %ld KiB\n", rss);
        if (reference)
            printf("reference (PyTorch, 1 thread): %.0f img/s -> frl is %.2fx per thread\n", ref,
                   ref > 0 ? img_per_s / threads / ref : 0.0);
    }
    free(secs);
    frl_network_free(&net);
    frl_dataset_free(&data);
    return 0;
}
