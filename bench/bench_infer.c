/* frl-bench infer: integer-only inference of a final FRL model.
 *
 * Gets a model (loads --load FILE; else reuses the model cached in --cache
 * DIR, default /tmp/frl_bench_cache, by a previous run with the same model,
 * seed, epochs and --train-n; else trains one: central, one client,
 * frl_train_local on the Fashion-MNIST training set, then the model FRL
 * publishes from that client's ranking -- scores rebuilt from the sorted
 * initial values, masked by the rule -- calibrated on training images),
 * then measures on the t10k test set:
 *   accuracy of the integer model and of the float masked model, their
 *   argmax agreement, and single-thread throughput at batch 1 and 64
 *   (anchor protocol: 3 warm-up calls, median of --reps runs of >= --min-s
 *   seconds each; the images cycle through the test set), GOP/s at 2 ops per
 *   MAC of the dense (unmasked) model, and the share of the int8 peak given
 *   by --peak-gops (measure it with anchors/peak_probe.c).
 * Pin it to one core for the figures: taskset -c 1 frl-bench infer ... */
#include "bench/frl_bench.h"

#include <getopt.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_rng.h"
#include "data/frl_idx.h"
#include "quant/frl_quant.h"
#include "supermask/frl_model.h"
#include "supermask/frl_ranking.h"
#include "supermask/frl_train.h"

typedef struct {
    const char *model, *load, *save, *data;
    uint32_t train_n;
    int epochs, reps, json, calib;
    double min_s, peak_gops;
    const char *seed, *path, *cache;
} opts_t;

static void usage(void)
{
    fprintf(stderr,
            "usage: frl-bench infer [--model lenet] [--load FILE | --train-n N --epochs E --seed S] [--save FILE] [--cache DIR]\n"
            "                       [--clock wall|cpu]\n"
            "                       [--data DIR] [--calib N] [--path auto|scalar|avx2|avx512]\n"
            "                       [--reps 5] [--min-s 0.5] [--peak-gops G] [--json]\n");
}

/* --clock cpu: this thread's CPU time instead of wall time. On a shared,
 * overloaded machine wall-clock rates measure the scheduler; CPU time is
 * the fairer figure there (compare it with an anchor timed the same way). */
static int use_cpu_clock;
static double now_s(void)
{
    if (!use_cpu_clock)
        return frl_now_s();
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double measure(const frl_qmodel_t *m, const frl_dataset_t *ds, int B, int reps, double min_s)
{
    size_t ss = frl_qmodel_scratch_size(m, B);
    void *scr = aligned_alloc(64, (ss + 63) & ~(size_t)63);
    uint8_t *pred = malloc((size_t)B);
    const size_t img = (size_t)ds->rows * ds->cols;
    const uint32_t nb = ds->n / (uint32_t)B;
    double rates[64];
    if (reps > 64)
        reps = 64;
    for (int w = 0; w < 3; w++)
        frl_qmodel_infer(m, ds->images, B, NULL, pred, scr, ss);
    for (int r = 0; r < reps; r++) {
        uint64_t n = 0;
        uint32_t i = 0;
        double t0 = now_s(), dt;
        for (;;) {
            frl_qmodel_infer(m, ds->images + (size_t)i * B * img, B, NULL, pred, scr, ss);
            n += (uint64_t)B;
            if (++i == nb)
                i = 0;
            if ((n & 7) == 0 || B > 1) {
                dt = now_s() - t0;
                if (dt >= min_s)
                    break;
            }
        }
        rates[r] = (double)n / dt;
    }
    free(scr);
    free(pred);
    return frl_bench_median(rates, reps);
}

/* Trains one client centrally and exports the published model. */
static int train_model(const opts_t *o, const frl_model_spec_t *spec, const frl_dataset_t *train, frl_qmodel_t **out)
{
    uint8_t seed[FRL_SEED_BYTES];
    int rc = frl_seed_parse(o->seed, seed);
    if (rc)
        return rc;
    frl_network_t net;
    rc = frl_network_init(&net, spec, seed, 1);
    if (rc)
        return rc;
    frl_train_cfg_t cfg;
    frl_train_cfg_default(&cfg);
    cfg.epochs = o->epochs;
    frl_trainer_t *tr = NULL;
    uint32_t *ranking = malloc(spec->total_edges * sizeof(uint32_t));
    rc = ranking ? frl_trainer_create(&net, cfg.batch, cfg.keep, cfg.rule, &tr) : FRL_ENOMEM;
    if (!rc) {
        frl_rng_t rng;
        frl_rng_init(&rng, seed, FRL_STREAM_SHUFFLE, 0, 0);
        frl_train_stats_t st;
        uint32_t n = o->train_n && o->train_n < train->n ? o->train_n : train->n;
        uint32_t *idx = malloc((size_t)n * sizeof(uint32_t)); /* the first n images (NULL would mean all) */
        for (uint32_t i = 0; idx && i < n; i++)
            idx[i] = i;
        fprintf(stderr, "infer: training %s on %u images, %d epoch(s) ...\n", spec->name, n, cfg.epochs);
        rc = idx ? frl_train_local(tr, train, idx, n, &cfg, &rng, &st, NULL, NULL) : FRL_ENOMEM;
        free(idx);
        if (!rc)
            fprintf(stderr, "infer: trained in %.1f s (%.0f img/s), loss %.3f, train acc %.3f\n", st.seconds,
                    st.images / st.seconds, st.loss, st.accuracy);
    }
    if (!rc)
        rc = frl_trainer_get_ranking(tr, ranking);
    if (!rc) {
        frl_dataset_t cal = *train;
        frl_qcalib_opts_t co = {(uint32_t)o->calib, 0};
        rc = frl_qmodel_from_ranking(spec, seed, cfg.keep, cfg.rule, ranking, &cal, &co, out);
    }
    frl_trainer_destroy(tr);
    free(ranking);
    frl_network_free(&net);
    return rc;
}

int frl_bench_infer(int argc, char **argv)
{
    opts_t o = {"lenet", NULL, NULL, NULL, 0, 1, 5, 0, 512, 0.5, 0.0, "0", "auto", "/tmp/frl_bench_cache"};
    static const struct option lo[] = {{"model", required_argument, 0, 'm'},
                                       {"load", required_argument, 0, 'l'},
                                       {"save", required_argument, 0, 's'},
                                       {"data", required_argument, 0, 'd'},
                                       {"train-n", required_argument, 0, 'n'},
                                       {"epochs", required_argument, 0, 'e'},
                                       {"reps", required_argument, 0, 'r'},
                                       {"min-s", required_argument, 0, 't'},
                                       {"peak-gops", required_argument, 0, 'p'},
                                       {"seed", required_argument, 0, 'S'},
                                       {"path", required_argument, 0, 'P'},
                                       {"calib", required_argument, 0, 'c'},
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {"cache", required_argument, 0, 'C'},
                                       {"clock", required_argument, 0, 'K'},
                                       {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'm':
            o.model = optarg;
            break;
        case 'l':
            o.load = optarg;
            break;
        case 's':
            o.save = optarg;
            break;
        case 'd':
            o.data = optarg;
            break;
        case 'n':
            o.train_n = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'e':
            o.epochs = atoi(optarg);
            break;
        case 'r':
            o.reps = atoi(optarg);
            break;
        case 't':
            o.min_s = atof(optarg);
            break;
        case 'p':
            o.peak_gops = atof(optarg);
            break;
        case 'S':
            o.seed = optarg;
            break;
        case 'P':
            o.path = optarg;
            break;
        case 'c':
            o.calib = atoi(optarg);
            break;
        case 'j':
            o.json = 1;
            break;
        case 'C':
            o.cache = optarg;
            break;
        case 'K':
            if (strcmp(optarg, "cpu") && strcmp(optarg, "wall")) {
                usage();
                return 2;
            }
            use_cpu_clock = !strcmp(optarg, "cpu");
            break;
        default:
            usage();
            return c == 'h' ? 0 : 2;
        }
    }
    if (o.reps < 1 || o.epochs < 1 || o.min_s <= 0) {
        usage();
        return 2;
    }
    frl_qpath path = FRL_QPATH_AUTO;
    if (!strcmp(o.path, "scalar"))
        path = FRL_QPATH_SCALAR;
    else if (!strcmp(o.path, "avx2"))
        path = FRL_QPATH_AVX2;
    else if (!strcmp(o.path, "avx512"))
        path = FRL_QPATH_AVX512;
    frl_model_spec_t spec;
    int rc = frl_model_spec_by_name(o.model, &spec);
    if (rc) {
        fprintf(stderr, "infer: unknown model '%s'\n", o.model);
        return 2;
    }
    frl_dataset_t test = {0}, train = {0};
    rc = frl_mnist_load(o.data, "t10k", NULL, 0, &test);
    if (rc) {
        fprintf(stderr, "infer: cannot load the data set: %s\n", frl_strerror(rc));
        return 1;
    }
    frl_qmodel_t *m = NULL;
    const char *source;
    char cached[1024];
    snprintf(cached, sizeof cached, "%s/%s_seed%s_e%d_n%u.frlq", o.cache, o.model, o.seed, o.epochs, o.train_n);
    if (o.load) {
        rc = frl_qmodel_load(o.load, &spec, &m);
        source = "loaded";
    } else if (frl_qmodel_load(cached, &spec, &m) == 0) {
        source = "cached";
        fprintf(stderr, "infer: using the model trained by an earlier run: %s\n", cached);
    } else {
        rc = frl_mnist_load(o.data, "train", NULL, 0, &train);
        if (!rc)
            rc = train_model(&o, &spec, &train, &m);
        source = "trained";
        if (!rc && frl_file_mkdirs(o.cache) == 0 && frl_qmodel_save(m, cached) == 0)
            fprintf(stderr, "infer: model cached in %s\n", cached);
    }
    if (rc) {
        fprintf(stderr, "infer: model: %s (%s)\n", frl_strerror(rc), frl_err_name(rc));
        frl_dataset_free(&test);
        frl_dataset_free(&train);
        return 1;
    }
    if (o.save && (rc = frl_qmodel_save(m, o.save)) != 0)
        fprintf(stderr, "infer: cannot save %s: %s\n", o.save, frl_strerror(rc));
    if ((rc = frl_qmodel_set_path(m, path)) != 0) {
        fprintf(stderr, "infer: path %s unavailable on this CPU\n", o.path);
        return 1;
    }
    uint8_t *ip = malloc(test.n), *fp = malloc(test.n);
    frl_qeval_t ev;
    rc = frl_qmodel_evaluate(m, &test, 64, 1, &ev, ip);
    if (!rc)
        rc = frl_qmodel_float_predict(m, &test, 0.2860f, 0.3530f, fp);
    if (rc) {
        fprintf(stderr, "infer: evaluation failed: %s\n", frl_strerror(rc));
        return 1;
    }
    uint32_t agree = 0, fcorrect = 0;
    for (uint32_t i = 0; i < test.n; i++) {
        agree += ip[i] == fp[i];
        fcorrect += fp[i] == test.labels[i];
    }
    double agreement = (double)agree / test.n, acc_f = (double)fcorrect / test.n;
    double b1 = measure(m, &test, 1, o.reps, o.min_s);
    double b64 = measure(m, &test, 64, o.reps, o.min_s);
    const double gop = 2.0 * (double)frl_qmodel_macs(m) / 1e9;
    if (o.json) {
        printf("{\"model\":\"%s\",\"source\":\"%s\",\"path\":\"%s\",\"threads\":1,\"clock\":\"%s\",\"macs_per_image\":%llu,"
               "\"img_per_s_b1\":%.1f,\"img_per_s_b64\":%.1f,\"gops_b1\":%.2f,\"gops_b64\":%.2f,",
               spec.name, source, frl_qpath_name(frl_qmodel_path(m)), use_cpu_clock ? "cpu" : "wall",
               (unsigned long long)frl_qmodel_macs(m), b1, b64, b1 * gop, b64 * gop);
        if (o.peak_gops > 0)
            printf("\"peak_gops\":%.1f,\"peak_share_b1\":%.4f,\"peak_share_b64\":%.4f,", o.peak_gops, b1 * gop / o.peak_gops,
                   b64 * gop / o.peak_gops);
        printf("\"agreement\":%.4f,\"accuracy_int\":%.4f,\"accuracy_float\":%.4f,\"test_images\":%u,\"requant\":[", agreement,
               ev.accuracy, acc_f, test.n);
        for (int l = 0; l + 1 < frl_qmodel_n_layers(m); l++) {
            frl_requant_t rq = frl_qmodel_requant(m, l);
            printf("%s{\"m0\":%d,\"shift\":%d}", l ? "," : "", rq.m0, rq.shift);
        }
        printf("]}\n");
    } else {
        printf("model %s (%s), path %s, 1 thread, %.2f M MAC/image\n", spec.name, source, frl_qpath_name(frl_qmodel_path(m)),
               frl_qmodel_macs(m) / 1e6);
        printf("accuracy: int %.2f%%, float %.2f%%, argmax agreement %.2f%% of %u test images\n", 100 * ev.accuracy, 100 * acc_f,
               100 * agreement, test.n);
        printf("throughput: b1 %.0f img/s (%.1f GOP/s), b64 %.0f img/s (%.1f GOP/s)\n", b1, b1 * gop, b64, b64 * gop);
        if (o.peak_gops > 0)
            printf("share of the int8 peak (%.0f GOP/s): b1 %.1f%%, b64 %.1f%%\n", o.peak_gops, 100 * b1 * gop / o.peak_gops,
                   100 * b64 * gop / o.peak_gops);
    }
    free(ip);
    free(fp);
    frl_qmodel_free(m);
    frl_dataset_free(&test);
    frl_dataset_free(&train);
    return 0;
}
