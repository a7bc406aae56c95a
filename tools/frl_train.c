/* frl-train: central supermask training on Fashion-MNIST (or any MNIST-
 * layout IDX data), with progress, ending with test accuracy.
 *
 * It reports two accuracies, like for like with the reference:
 *   local  - the trained scores masked by the rule (what edge-popup trains);
 *   global - the model FRL would publish after a one-client vote: the
 *            scores rebuilt from this client's ranking (sorted initial
 *            values in ranking order), then masked. */
#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_log.h"
#include "common/frl_rng.h"
#include "data/frl_idx.h"
#include "supermask/frl_model.h"
#include "supermask/frl_ranking.h"
#include "supermask/frl_train.h"
#include "supermask/frl_ops.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: frl-train [options]\n"
               "  --model NAME      lenet|conv2|mlp (default lenet)\n"
               "  --data DIR        MNIST-layout IDX directory (default %s)\n"
               "  --epochs N        local epochs (default 1)\n"
               "  --batch N         batch size (default 8)\n"
               "  --lr X            learning rate (default 0.4)\n"
               "  --momentum X      (default 0.9)\n"
               "  --wd X            weight decay on scores (default 1e-4)\n"
               "  --keep X          fraction of edges kept per layer (default 0.5)\n"
               "  --rule abs|signed mask rule (default abs, the reference's)\n"
               "  --seed S          decimal or 64 hex digits (default 0)\n"
               "  --train-n N       use the first N training images (default all)\n"
               "  --test-n N        evaluate on the first N test images (default all)\n"
               "  --json FILE       write a JSON summary\n"
               "  --quiet           no progress line\n",
               FRL_FMNIST_DIR);
}

struct progress_ctx {
    int tty;
    double t0;
    uint64_t images_per_step;
};

static void on_progress(void *user, int epoch, uint64_t step, uint64_t total, double loss)
{
    struct progress_ctx *p = user;
    double el = frl_now_s() - p->t0;
    double eta = step ? el * (double)(total - step) / (double)step : 0.0;
    if (p->tty)
        fprintf(stderr, "\repoch %d  step %llu/%llu  loss %.4f  %.0f img/s  eta %.0fs   ", epoch + 1, (unsigned long long)step,
                (unsigned long long)total, loss, (double)(step * p->images_per_step) / el, eta);
    else if (step % (total / 10 ? total / 10 : 1) == 0)
        fprintf(stderr, "epoch %d step %llu/%llu loss %.4f\n", epoch + 1, (unsigned long long)step, (unsigned long long)total,
                loss);
}

int main(int argc, char **argv)
{
    frl_blas_fix_core(argv); /* before anything is opened: it may exec us again */
    const char *model = "lenet", *data_dir = NULL, *json = NULL, *seed_text = "0";
    frl_train_cfg_t cfg;
    frl_train_cfg_default(&cfg);
    long train_n = -1, test_n = -1;
    int quiet = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},     {"epochs", required_argument, 0, 'e'},
        {"batch", required_argument, 0, 'b'}, {"lr", required_argument, 0, 'l'},       {"momentum", required_argument, 0, 'M'},
        {"wd", required_argument, 0, 'w'},    {"keep", required_argument, 0, 'k'},     {"rule", required_argument, 0, 'r'},
        {"seed", required_argument, 0, 's'},  {"train-n", required_argument, 0, 'n'},  {"test-n", required_argument, 0, 't'},
        {"json", required_argument, 0, 'j'},  {"quiet", no_argument, 0, 'q'},          {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c, li = 0;
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, &li)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'e': cfg.epochs = (int)strtol(optarg, &end, 10); if (*end || cfg.epochs < 1) goto bad; break;
        case 'b': cfg.batch = (int)strtol(optarg, &end, 10); if (*end || cfg.batch < 1 || cfg.batch > 4096) goto bad; break;
        case 'l': cfg.lr = strtod(optarg, &end); if (*end || !(cfg.lr > 0)) goto bad; break;
        case 'M': cfg.momentum = strtod(optarg, &end); if (*end || cfg.momentum < 0 || cfg.momentum >= 1) goto bad; break;
        case 'w': cfg.weight_decay = strtod(optarg, &end); if (*end || cfg.weight_decay < 0) goto bad; break;
        case 'k': cfg.keep = strtod(optarg, &end); if (*end || !(cfg.keep > 0 && cfg.keep <= 1)) goto bad; break;
        case 'r': if (frl_mask_rule_parse(optarg, &cfg.rule)) goto bad; break;
        case 's': seed_text = optarg; break;
        case 'n': train_n = strtol(optarg, &end, 10); if (*end || train_n < 1) goto bad; break;
        case 't': test_n = strtol(optarg, &end, 10); if (*end || test_n < 1) goto bad; break;
        case 'j': json = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        continue;
    bad:
        fprintf(stderr, "frl-train: bad value for --%s: '%s'\n", opts[li].name, optarg);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "frl-train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    uint8_t seed[FRL_SEED_BYTES];
    if (frl_seed_parse(seed_text, seed)) {
        fprintf(stderr, "frl-train: bad --seed '%s' (decimal or 64 hex digits)\n", seed_text);
        return 2;
    }
    frl_model_spec_t spec;
    if (frl_model_spec_by_name(model, &spec)) {
        fprintf(stderr, "frl-train: unknown model '%s'\n", model);
        return 2;
    }

    char img[1024], lbl[1024];
    frl_dataset_t train = {0}, test = {0};
    int rc;
    if ((rc = frl_mnist_paths(data_dir, "train", img, sizeof img, lbl, sizeof lbl)) ||
        (rc = frl_dataset_load(img, lbl, NULL, 0, &train))) {
        fprintf(stderr, "frl-train: cannot load training data from %s: %s\n", data_dir ? data_dir : FRL_FMNIST_DIR,
                frl_strerror(rc));
        return 1;
    }
    if ((rc = frl_mnist_paths(data_dir, "t10k", img, sizeof img, lbl, sizeof lbl)) ||
        (rc = frl_dataset_load(img, lbl, NULL, 0, &test))) {
        fprintf(stderr, "frl-train: cannot load test data: %s\n", frl_strerror(rc));
        frl_dataset_free(&train);
        return 1;
    }
    if (train.rows * train.cols != (uint32_t)(spec.in_c * spec.in_h * spec.in_w)) {
        fprintf(stderr, "frl-train: data is %ux%u, model %s wants %dx%dx%d\n", train.rows, train.cols, model, spec.in_c,
                spec.in_h, spec.in_w);
        return 1;
    }
    uint32_t ntr = train_n > 0 && (uint32_t)train_n < train.n ? (uint32_t)train_n : train.n;
    uint32_t nte = test_n > 0 && (uint32_t)test_n < test.n ? (uint32_t)test_n : test.n;

    frl_network_t net;
    frl_trainer_t *tr = NULL, *ev = NULL;
    uint32_t *ranking = NULL;
    int status = 1;
    if ((rc = frl_network_init(&net, &spec, seed, 1)) != 0) {
        fprintf(stderr, "frl-train: %s\n", frl_strerror(rc));
        goto out_data;
    }
    if ((rc = frl_trainer_create(&net, cfg.batch, cfg.keep, cfg.rule, &tr)) ||
        (rc = frl_trainer_create(&net, 100, cfg.keep, cfg.rule, &ev))) {
        fprintf(stderr, "frl-train: %s\n", frl_strerror(rc));
        goto out;
    }
    char hex[65];
    frl_seed_to_hex(seed, hex);
    fprintf(stderr, "frl-train: model=%s edges=%llu seed=%s train=%u test=%u epochs=%d batch=%d lr=%g keep=%g rule=%s\n", model,
            (unsigned long long)spec.total_edges, hex, ntr, nte, cfg.epochs, cfg.batch, cfg.lr, cfg.keep,
            frl_mask_rule_name(cfg.rule));
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_SHUFFLE, 0, 0);
    struct progress_ctx pc = {!quiet && isatty(2), frl_now_s(), (uint64_t)cfg.batch};
    frl_train_stats_t st;
    rc = frl_train_local(tr, &train, NULL, ntr, &cfg, &rng, &st, quiet ? NULL : on_progress, &pc);
    if (pc.tty)
        fputc('\n', stderr);
    if (rc) {
        fprintf(stderr, "frl-train: training failed: %s\n", frl_strerror(rc));
        goto out;
    }
    /* Local model: the evaluation trainer takes the trained scores. */
    for (int l = 0; l < spec.n_layers; l++)
        memcpy(frl_trainer_scores(ev, l), frl_trainer_scores(tr, l), sizeof(float) * spec.layers[l].n_edges);
    frl_trainer_refresh(ev);
    double acc_local, loss_local, acc_global, loss_global;
    frl_trainer_evaluate(ev, &test, NULL, nte, &cfg, &acc_local, &loss_local);
    ranking = malloc(sizeof(uint32_t) * spec.total_edges);
    if (!ranking) {
        fprintf(stderr, "frl-train: out of memory\n");
        goto out;
    }
    frl_trainer_get_ranking(tr, ranking);
    frl_trainer_set_ranking(ev, ranking);
    frl_trainer_evaluate(ev, &test, NULL, nte, &cfg, &acc_global, &loss_global);
    double ips = st.seconds > 0 ? (double)st.images / st.seconds : 0.0;
    printf("train: %llu images in %.1f s (%.0f img/s), last-epoch loss %.4f, train acc %.4f\n",
           (unsigned long long)st.images, st.seconds, ips, st.loss, st.accuracy);
    printf("test accuracy (local scores):           %.4f  loss %.4f\n", acc_local, loss_local);
    printf("test accuracy (global model from rank): %.4f  loss %.4f\n", acc_global, loss_global);
    printf("peak RSS %ld KiB\n", frl_peak_rss_kb());
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "frl-train: cannot write %s\n", json);
            goto out;
        }
        fprintf(f,
                "{\"model\":\"%s\",\"seed\":\"%s\",\"epochs\":%d,\"batch\":%d,\"lr\":%g,\"keep\":%g,\"rule\":\"%s\","
                "\"train_images\":%u,\"test_images\":%u,\"img_per_s\":%.1f,\"train_seconds\":%.3f,\"train_loss\":%.6f,"
                "\"accuracy_local\":%.6f,\"loss_local\":%.6f,\"accuracy_global\":%.6f,\"loss_global\":%.6f,"
                "\"full_selects\":%llu,\"peak_rss_kb\":%ld}\n",
                model, hex, cfg.epochs, cfg.batch, cfg.lr, cfg.keep, frl_mask_rule_name(cfg.rule), ntr, nte, ips, st.seconds,
                st.loss, acc_local, loss_local, acc_global, loss_global, (unsigned long long)st.full_selects,
                frl_peak_rss_kb());
        fclose(f);
    }
    status = 0;
out:
    free(ranking);
    frl_trainer_destroy(tr);
    frl_trainer_destroy(ev);
    frl_network_free(&net);
out_data:
    frl_dataset_free(&train);
    frl_dataset_free(&test);
    return status;
}
