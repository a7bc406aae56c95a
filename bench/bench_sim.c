/* frl-bench sim: cost of a simulated FRL round (sim/, frl_sim_core).
 *
 *   frl-bench sim [--model lenet] [--clients 100] [--per-round 10]
 *                 [--rounds 3] [--threads 1] [--malicious F --attack A
 *                 --attack-trainers K] [--data DIR] [--json]
 *
 * Runs the anchor's configuration (Fashion-MNIST, Dirichlet 1.0, 1 local
 * epoch, batch 8, seed 0) for a few rounds without per-round evaluation
 * and reports, per round (mean over rounds):
 *   seconds        wall time of the round (sampling, training, attack, vote)
 *   cpu_seconds    process CPU time of the round, all threads (less noisy
 *                  on a shared machine than wall time)
 *   train_seconds, vote_seconds
 *   images         local-training images per round
 *   img_per_s      images / train_seconds
 * beside the reference's 20.1 s per round on one thread
 * (../shared/anchors/FRL-REFERENCE.md §7.2, no attack). */
#include "bench/frl_bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_file.h"
#include "data/frl_idx.h"
#include "sim/frl_sim.h"

#define ANCHOR_ROUND_S 20.1

int frl_bench_sim(int argc, char **argv)
{
    frl_sim_config_t cfg;
    frl_sim_config_default(&cfg);
    cfg.rounds = 3;
    cfg.eval_every = 1000000; /* only after the last round */
    cfg.eval_n = 100;
    const char *data_dir = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fprintf(stderr, "usage: frl-bench sim [--model M] [--clients N] [--per-round N] [--rounds N] [--threads N]\n"
                            "                     [--malicious F] [--attack A] [--attack-trainers K] [--data DIR] [--json]\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "frl-bench sim: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--model") == 0)
            snprintf(cfg.model, sizeof cfg.model, "%s", v);
        else if (strcmp(a, "--clients") == 0)
            cfg.clients = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--per-round") == 0)
            cfg.per_round = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--rounds") == 0)
            cfg.rounds = atoi(v);
        else if (strcmp(a, "--threads") == 0)
            cfg.threads = atoi(v);
        else if (strcmp(a, "--malicious") == 0)
            cfg.malicious = strtod(v, NULL);
        else if (strcmp(a, "--attack") == 0)
            bad = frl_attack_parse(v, &cfg.attack);
        else if (strcmp(a, "--attack-trainers") == 0)
            cfg.attack_trainers = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--data") == 0)
            data_dir = v;
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "frl-bench sim: bad option %s %s\n", a, v);
            return 2;
        }
    }
    if (cfg.rounds < 1)
        cfg.rounds = 1;
    frl_dataset_t train = {0}, test = {0};
    int rc = frl_mnist_load(data_dir, "train", NULL, 0, &train);
    if (!rc)
        rc = frl_mnist_load(data_dir, "t10k", NULL, 0, &test);
    if (rc) {
        fprintf(stderr, "frl-bench sim: cannot load data: %s\n", frl_strerror(rc));
        frl_dataset_free(&train);
        frl_dataset_free(&test);
        return 1;
    }
    frl_sim_t *sim = NULL;
    if ((rc = frl_sim_create(&cfg, &train, &test, &sim)) != 0) {
        fprintf(stderr, "frl-bench sim: %s\n", frl_strerror(rc));
        frl_dataset_free(&train);
        frl_dataset_free(&test);
        return 1;
    }
    double s = 0, cpu = 0, tr = 0, vo = 0;
    uint64_t images = 0;
    for (int r = 0; r < cfg.rounds && !rc; r++) {
        frl_sim_round_t rec;
        if ((rc = frl_sim_round(sim, &rec)) != 0)
            break;
        s += rec.seconds;
        cpu += rec.cpu_seconds; /* includes the last round's 100-image evaluation */
        tr += rec.train_seconds;
        vo += rec.vote_seconds;
        images += rec.train_images;
    }
    frl_sim_destroy(sim);
    frl_dataset_free(&train);
    frl_dataset_free(&test);
    if (rc) {
        fprintf(stderr, "frl-bench sim: round failed: %s\n", frl_strerror(rc));
        return 1;
    }
    const double R = cfg.rounds;
    if (json)
        printf("{\"bench\":\"sim\",\"model\":\"%s\",\"clients\":%u,\"per_round\":%u,\"rounds\":%d,\"threads\":%d,"
               "\"attack\":\"%s\",\"malicious\":%g,\"seconds_per_round\":%.3f,\"cpu_seconds_per_round\":%.3f,"
               "\"train_seconds_per_round\":%.3f,\"vote_seconds_per_round\":%.3f,\"images_per_round\":%.0f,"
               "\"img_per_s\":%.1f,\"anchor_seconds_per_round_1thread\":%.1f,\"peak_rss_kb\":%ld}\n",
               cfg.model, cfg.clients, cfg.per_round, cfg.rounds, cfg.threads, frl_attack_name(cfg.attack), cfg.malicious, s / R,
               cpu / R, tr / R, vo / R, (double)images / R, tr > 0 ? (double)images / tr : 0.0, ANCHOR_ROUND_S, frl_peak_rss_kb());
    else
        printf("sim %s, %u clients, %u per round, %d threads, attack %s %.0f%%: %.2f s/round (%.2f CPU s), train %.2f s, "
               "vote %.3f s, %.0f images/round, %.0f img/s; anchor (PyTorch, 1 thread): %.1f s/round\n",
               cfg.model, cfg.clients, cfg.per_round, cfg.threads, frl_attack_name(cfg.attack), cfg.malicious * 100, s / R, cpu / R,
               tr / R, vo / R, (double)images / R, tr > 0 ? (double)images / tr : 0.0, ANCHOR_ROUND_S);
    return 0;
}
