/* frl-bench vote: cost of the server's vote (aggregation/).
 *
 *   frl-bench vote --model lenet|conv8 --clients N [--reps R] [--pool P]
 *                  [--threads 1|2] [--ref-python] [--json]
 *
 * Random valid rankings (common/frl_rng.h, stream FRL_STREAM_TEST) of the
 * model's layer sizes are voted R times as a whole round of N clients:
 *   add_ms       validate + add of one submission (frl_vote_tally_add), median
 *   add_warm_ms  the same right after the submission was written (as after
 *                unpacking it from the wire: the ranking is in cache)
 *   validate_ms  validation alone, median
 *   add_valid_ms the add alone, median
 *   agreement_ms the Spearman agreement with the reference, median
 *   submit_ms    the server's whole path per submission
 *                (frl_vote_round_submit: checks, validation, agreement, add)
 *   finalize_ms  argsort of the sums into the next global ranking, median
 *   round_ms     N x (validate + add) + finalize, median over R rounds
 *   *_cpu_ms     the same as the calling thread's CPU time (a shared
 *                machine's other processes do not count; with --threads 2
 *                the helper's is not in it), *_min_ms the fastest sample
 *   peak_rss_kb  process peak RSS (includes the pool of test rankings)
 *   copy_ranking_ms  one memcpy of a model ranking: the machine's memory
 *                speed during the run (a shared VM varies a lot)
 *   vote_state_kb bytes the round keeper owns (tally, scratch, reference)
 * and, beside them, the reference's figure: 270 ms for the vote of one
 * 10-client lenet round (anchor, ../shared/anchors/FRL-REFERENCE.md §7.2,
 * PyTorch, 1 thread). With --ref-python and /usr/bin/python3 + torch, the
 * reference's vote_layer (frl_torch_ref.py) is also timed in this run on the
 * same shapes and N.
 *
 * --threads 2 lets the tallies add large layers with a helper thread
 * (frl_vote_tally_set_threads); the reference then runs with
 * torch.set_num_threads(2).
 *
 * To bound memory, P distinct rankings (default min(N, 8)) are generated and
 * submitted cyclically; each is 4 bytes per edge, so they do not stay in
 * cache between uses. Run pinned: taskset -c 1 frl-bench vote ... */
#include "bench/frl_bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregation/frl_vote.h"
#include "aggregation/frl_vote_robust.h"
#include "aggregation/frl_vote_round.h"
#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_rng.h"
#include "supermask/frl_model.h"

#define ANCHOR_LENET_10_ROUND_MS 270.0

/* Thread CPU time in seconds: on a shared machine, wall time includes the
 * time slices other processes take from this core; CPU time does not. */
static double cpu_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* FALLBACK TABLE: the layer sizes of FRL-REFERENCE.md §3, used only if the
 * model zoo (frl_model_spec_by_name) does not know the model. */
static const uint32_t k_lenet_edges[] = {288, 18432, 1605632, 1280};
static const uint32_t k_conv8_edges[] = {1728, 36864, 73728, 147456, 294912, 589824, 1179648, 2359296, 524288, 65536, 2560};

static int layout_for(const char *model, frl_vote_layout_t *L, const char **source)
{
    frl_model_spec_t spec;
    if (frl_model_spec_by_name(model, &spec) == 0 && spec.n_layers > 0) {
        uint32_t e[FRL_MAX_LAYERS];
        for (int l = 0; l < spec.n_layers; l++)
            e[l] = spec.layers[l].n_edges;
        *source = "frl_model_spec_by_name";
        return frl_vote_layout_init(L, spec.n_layers, e);
    }
    *source = "fallback table";
    if (strcmp(model, "lenet") == 0)
        return frl_vote_layout_init(L, 4, k_lenet_edges);
    if (strcmp(model, "conv8") == 0)
        return frl_vote_layout_init(L, 11, k_conv8_edges);
    return FRL_EINVAL;
}

static void usage(void)
{
    fprintf(stderr, "usage: frl-bench vote --model lenet|conv8 --clients N [--reps R] [--pool P] [--threads 1|2] [--ref-python] "
                    "[--json]\n");
}

/* The reference's vote (frl_torch_ref.py vote_layer, `threads` threads) on
 * the same layer sizes and N, median seconds of `reps` rounds; < 0 if
 * unavailable. */
static double python_reference_vote_s(const frl_vote_layout_t *L, int n_clients, int pool, int reps, int threads)
{
    char sizes[1024];
    size_t off = 0;
    for (int l = 0; l < L->n_layers && off < sizeof sizes - 16; l++)
        off += (size_t)snprintf(sizes + off, sizeof sizes - off, "%s%u", l ? "," : "", L->n_edges[l]);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 - <<'EOF' 2>/dev/null\n"
             "import time, statistics, torch\n"
             "torch.set_num_threads(%d)\n"
             "torch.manual_seed(0)\n"
             "def positions_of(perm):\n"
             "    pos = torch.empty_like(perm)\n"
             "    pos[perm] = torch.arange(perm.numel(), dtype=perm.dtype)\n"
             "    return pos\n"
             "def vote_layer(perms, sorted_init):\n"
             "    total = torch.zeros_like(perms[0])\n"
             "    for p in perms:\n"
             "        total += positions_of(p)\n"
             "    order = torch.argsort(total, stable=True)\n"
             "    new = torch.empty_like(sorted_init)\n"
             "    new[order] = sorted_init\n"
             "    return new\n"
             "sizes = [%s]\n"
             "N, P, R = %d, %d, %d\n"
             "pools = [[torch.randperm(n) for _ in range(P)] for n in sizes]\n"
             "inits = [torch.sort(torch.rand(n) - 0.5)[0] for n in sizes]\n"
             "ts = []\n"
             "for _ in range(R):\n"
             "    t0 = time.perf_counter()\n"
             "    for pool, si in zip(pools, inits):\n"
             "        vote_layer([pool[i %% P] for i in range(N)], si)\n"
             "    ts.append(time.perf_counter() - t0)\n"
             "print('%%.6f' %% statistics.median(ts))\n"
             "EOF\n",
             threads, sizes, n_clients, pool, reps);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1.0;
    double s = -1.0;
    if (fscanf(p, "%lf", &s) != 1)
        s = -1.0;
    if (pclose(p) != 0)
        return -1.0;
    return s;
}

int frl_bench_vote(int argc, char **argv)
{
    const char *model = "lenet";
    int n_clients = 10, reps = 5, pool = 0, json = 0, ref_python = 0, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
            n_clients = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--pool") == 0 && i + 1 < argc)
            pool = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--ref-python") == 0)
            ref_python = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (n_clients < 1 || reps < 1 || pool < 0 || threads < 1 || threads > 2) {
        usage();
        return 2;
    }
    if (pool == 0)
        pool = n_clients < 8 ? n_clients : 8;

    frl_vote_layout_t L;
    const char *layout_source = "";
    if (layout_for(model, &L, &layout_source)) {
        fprintf(stderr, "frl-bench vote: unknown model '%s'\n", model);
        return 2;
    }
    const size_t total = (size_t)L.total_edges;

    /* Test rankings: `pool` random rankings and a random reference. */
    uint32_t **rk = calloc((size_t)pool, sizeof *rk);
    uint32_t *ref = malloc(total * sizeof *ref), *out = malloc(total * sizeof *out);
    size_t n_add = (size_t)reps * (size_t)n_clients;
    double *t_add = malloc(n_add * sizeof *t_add), *t_val = malloc(n_add * sizeof *t_val);
    double *t_addv = malloc(n_add * sizeof *t_addv), *t_agr = malloc(n_add * sizeof *t_agr);
    double *t_sub = malloc(n_add * sizeof *t_sub);
    double *t_fin = malloc((size_t)reps * sizeof *t_fin), *t_round = malloc((size_t)reps * sizeof *t_round);
    double *c_add = malloc(n_add * sizeof *c_add), *c_sub = malloc(n_add * sizeof *c_sub);
    double *c_fin = malloc((size_t)reps * sizeof *c_fin), *c_round = malloc((size_t)reps * sizeof *c_round);
    uint32_t *pos = malloc(total * sizeof *pos);
    if (!c_add || !c_sub || !c_fin || !c_round || !rk || !ref || !out || !t_add || !t_val || !t_addv || !t_agr || !t_sub ||
        !t_fin || !t_round || !pos) {
        fprintf(stderr, "frl-bench vote: out of memory\n");
        return 1;
    }
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_from_u64(0, seed);
    for (int p = 0; p <= pool; p++) {
        uint32_t *a = p < pool ? (rk[p] = malloc(total * sizeof *rk[p])) : ref;
        if (!a) {
            fprintf(stderr, "frl-bench vote: out of memory\n");
            return 1;
        }
        frl_rng_t rng;
        frl_rng_init(&rng, seed, FRL_STREAM_TEST, 0x766f7465u, (uint32_t)p);
        for (int l = 0; l < L.n_layers; l++) {
            uint32_t *x = a + L.offset[l];
            for (uint32_t e = 0; e < L.n_edges[l]; e++)
                x[e] = e;
            frl_rng_shuffle_u32(&rng, x, L.n_edges[l]);
        }
    }
    frl_vote_positions(&L, ref, pos);

    long rss_before = frl_rss_kb();
    frl_vote_tally_t *t = NULL;
    frl_vote_round_t *vr = NULL;
    void *vscratch = malloc(frl_vote_validate_scratch_size(&L));
    if (frl_vote_tally_create(&L, &t) || frl_vote_round_create(&L, (uint32_t)n_clients, &vr) || !vscratch ||
        frl_vote_tally_set_threads(t, threads) || frl_vote_tally_set_threads(frl_vote_round_tally(vr), threads)) {
        fprintf(stderr, "frl-bench vote: cannot create the tally\n");
        return 1;
    }

    /* Whole rounds: N x (validate + add), then finalize. */
    size_t k = 0;
    int rc = 0;
    for (int rep = 0; rep < reps; rep++) {
        frl_vote_tally_reset(t);
        double r0 = frl_now_s(), rc0 = cpu_now_s();
        for (int c = 0; c < n_clients; c++) {
            double t0 = frl_now_s(), tc0 = cpu_now_s();
            rc |= frl_vote_tally_add(t, rk[c % pool], L.n_layers, L.n_edges, 1, NULL);
            c_add[k] = (cpu_now_s() - tc0) * 1e3;
            t_add[k++] = (frl_now_s() - t0) * 1e3;
        }
        double f0 = frl_now_s(), fc0 = cpu_now_s();
        rc |= frl_vote_tally_finalize(t, out);
        double f1 = frl_now_s(), fc1 = cpu_now_s();
        t_fin[rep] = (f1 - f0) * 1e3;
        t_round[rep] = (f1 - r0) * 1e3;
        c_fin[rep] = (fc1 - fc0) * 1e3;
        c_round[rep] = (fc1 - rc0) * 1e3;
    }
    /* Warm: the submission was just written (as the server does when it
     * unpacks it from the wire), so it is in cache; the copy is not timed. */
    uint32_t *warm = malloc(total * sizeof *warm);
    double *t_warm = malloc(n_add * sizeof *t_warm);
    if (!warm || !t_warm) {
        fprintf(stderr, "frl-bench vote: out of memory\n");
        return 1;
    }
    frl_vote_tally_reset(t);
    for (size_t i = 0; i < n_add; i++) {
        if (i % (size_t)n_clients == 0)
            frl_vote_tally_reset(t);
        memcpy(warm, rk[i % (size_t)pool], total * sizeof *warm);
        double t0 = frl_now_s();
        rc |= frl_vote_tally_add(t, warm, L.n_layers, L.n_edges, 1, NULL);
        t_warm[i] = (frl_now_s() - t0) * 1e3;
    }
    /* The parts: validation alone, add alone, agreement alone. */
    frl_vote_tally_reset(t);
    double agr_sink = 0.0;
    for (size_t i = 0; i < n_add; i++) {
        const uint32_t *a = rk[i % (size_t)pool];
        double t0 = frl_now_s();
        rc |= frl_vote_validate(&L, a, L.n_layers, L.n_edges, vscratch, NULL);
        double t1 = frl_now_s();
        rc |= frl_vote_tally_add_valid(t, a, 1);
        double t2 = frl_now_s();
        agr_sink += frl_vote_agreement(&L, a, pos, NULL, NULL);
        double t3 = frl_now_s();
        t_val[i] = (t1 - t0) * 1e3;
        t_addv[i] = (t2 - t1) * 1e3;
        t_agr[i] = (t3 - t2) * 1e3;
    }
    /* The server path: round keeper with a reference (agreement on). */
    k = 0;
    for (int rep = 0; rep < reps; rep++) {
        rc |= frl_vote_round_begin(vr, (uint64_t)rep, ref, NULL, 0);
        for (int c = 0; c < n_clients; c++) {
            double t0 = frl_now_s(), tc0 = cpu_now_s();
            rc |= frl_vote_round_submit(vr, (uint32_t)c, (uint64_t)rep, rk[c % pool], L.n_layers, L.n_edges, NULL);
            c_sub[k] = (cpu_now_s() - tc0) * 1e3;
            t_sub[k++] = (frl_now_s() - t0) * 1e3;
        }
    }
    if (rc) {
        fprintf(stderr, "frl-bench vote: a vote call failed (%s)\n", frl_strerror(rc));
        return 1;
    }
    /* Machine state: one plain copy of a model ranking (4 bytes per edge
     * read and written), the floor of any pass over a submission. On a
     * shared VM it shows how much memory bandwidth was left to this run. */
    double t_copy[5];
    for (int i = 0; i < 5; i++) {
        double t0 = frl_now_s();
        memcpy(warm, rk[i % pool], total * sizeof *warm);
        t_copy[i] = (frl_now_s() - t0) * 1e3;
    }
    double copy_ms = frl_bench_median(t_copy, 5);
    long rss_after = frl_rss_kb();
    size_t state_bytes = frl_vote_round_memory(vr);

    /* frl_bench_median sorts in place: element 0 is then the minimum, the
     * least disturbed sample on a shared machine. */
    double add_ms = frl_bench_median(t_add, (int)n_add), add_min = t_add[0];
    double warm_ms = frl_bench_median(t_warm, (int)n_add), warm_min = t_warm[0];
    double val_ms = frl_bench_median(t_val, (int)n_add);
    double addv_ms = frl_bench_median(t_addv, (int)n_add);
    double agr_ms = frl_bench_median(t_agr, (int)n_add);
    double sub_ms = frl_bench_median(t_sub, (int)n_add), sub_min = t_sub[0];
    double fin_ms = frl_bench_median(t_fin, reps), fin_min = t_fin[0];
    double round_ms = frl_bench_median(t_round, reps), round_min = t_round[0];
    double add_cpu = frl_bench_median(c_add, (int)n_add);
    double sub_cpu = frl_bench_median(c_sub, (int)n_add);
    double fin_cpu = frl_bench_median(c_fin, reps);
    double round_cpu = frl_bench_median(c_round, reps);
    double load1 = -1.0;
    {
        FILE *lf = fopen("/proc/loadavg", "r");
        if (lf) {
            if (fscanf(lf, "%lf", &load1) != 1)
                load1 = -1.0;
            fclose(lf);
        }
    }
    long peak = frl_peak_rss_kb();
    double ref_py_ms = -1.0;
    if (ref_python) {
        double sec = python_reference_vote_s(&L, n_clients, pool, reps < 3 ? reps : 3, threads);
        ref_py_ms = sec >= 0 ? sec * 1e3 : -1.0;
    }
    int is_anchor_cfg = strcmp(model, "lenet") == 0 && n_clients == 10;
    double ratio = ANCHOR_LENET_10_ROUND_MS / round_ms;

    if (json) {
        printf("{\"bench\":\"vote\",\"model\":\"%s\",\"layers\":%d,\"edges\":%llu,\"layout_source\":\"%s\",", model, L.n_layers,
               (unsigned long long)L.total_edges, layout_source);
        printf("\"clients\":%d,\"reps\":%d,\"pool\":%d,\"threads\":%d,", n_clients, reps, pool, threads);
        printf("\"add_ms\":%.3f,\"validate_ms\":%.3f,\"add_valid_ms\":%.3f,\"agreement_ms\":%.3f,\"submit_ms\":%.3f,"
               "\"finalize_ms\":%.3f,\"round_ms\":%.3f,",
               add_ms, val_ms, addv_ms, agr_ms, sub_ms, fin_ms, round_ms);
        printf("\"add_warm_ms\":%.3f,\"add_warm_min_ms\":%.3f,", warm_ms, warm_min);
        printf("\"add_cpu_ms\":%.3f,\"submit_cpu_ms\":%.3f,\"finalize_cpu_ms\":%.3f,\"round_cpu_ms\":%.3f,", add_cpu, sub_cpu,
               fin_cpu, round_cpu);
        printf("\"add_min_ms\":%.3f,\"submit_min_ms\":%.3f,\"finalize_min_ms\":%.3f,\"round_min_ms\":%.3f,", add_min, sub_min,
               fin_min, round_min);
        printf("\"copy_ranking_ms\":%.3f,", copy_ms);
        printf("\"peak_rss_kb\":%ld,\"vote_state_kb\":%zu,\"rss_growth_kb\":%ld,\"loadavg_1m\":%.2f,", peak, state_bytes / 1024,
               rss_after - rss_before, load1);
        printf("\"anchor_ref_round_ms_lenet_10\":%.1f,\"anchor_source\":\"FRL-REFERENCE.md 7.2 (PyTorch, 1 thread)\","
               "\"anchor_comparable\":%s,\"speedup_vs_anchor\":%.2f",
               ANCHOR_LENET_10_ROUND_MS, is_anchor_cfg ? "true" : "false", ratio);
        if (ref_python) {
            if (ref_py_ms >= 0)
                printf(",\"ref_python_round_ms\":%.3f,\"speedup_vs_ref_python\":%.2f", ref_py_ms, ref_py_ms / round_ms);
            else
                printf(",\"ref_python_round_ms\":null");
        }
        printf("}\n");
    } else {
        printf("vote bench: model %s (%d layers, %llu edges, sizes from %s), %d clients, %d reps, pool %d\n", model, L.n_layers,
               (unsigned long long)L.total_edges, layout_source, n_clients, reps, pool);
        printf("                                   median      min   CPU median\n");
        printf("  add (validate + add)          %9.3f %9.3f %9.3f ms\n", add_ms, add_min, add_cpu);
        printf("  add, submission just unpacked %9.3f %9.3f           ms  (ranking hot in cache)\n", warm_ms, warm_min);
        printf("  server submit path            %9.3f %9.3f %9.3f ms  (checks + validate + agreement + add)\n", sub_ms, sub_min,
               sub_cpu);
        printf("  finalize                      %9.3f %9.3f %9.3f ms\n", fin_ms, fin_min, fin_cpu);
        printf("  round (%3d adds + finalize)   %9.3f %9.3f %9.3f ms\n", n_clients, round_ms, round_min, round_cpu);
        printf("  parts, medians: validate %.3f ms, add without checks %.3f ms, agreement alone %.3f ms\n", val_ms, addv_ms,
               agr_ms);
        printf("  machine: one memcpy of a model ranking (%.1f MB) takes %.3f ms\n", (double)total * 4 / 1e6, copy_ms);
        printf("  peak RSS %ld kB, vote state %zu kB, RSS growth %ld kB, load average %.2f\n", peak, state_bytes / 1024,
               rss_after - rss_before, load1);
        printf("  anchor: reference vote, lenet, 10 clients = %.0f ms/round (FRL-REFERENCE.md 7.2)%s; ratio %.1fx\n",
               ANCHOR_LENET_10_ROUND_MS, is_anchor_cfg ? "" : " [not the same configuration]", ratio);
        if (ref_python) {
            if (ref_py_ms >= 0)
                printf("  reference vote_layer measured now (PyTorch, 1 thread): %.1f ms/round; ratio %.1fx\n", ref_py_ms,
                       ref_py_ms / round_ms);
            else
                printf("  reference vote_layer: not measured (python3/torch unavailable)\n");
        }
    }
    (void)agr_sink;
    frl_vote_round_destroy(vr);
    frl_vote_tally_destroy(t);
    free(vscratch);
    for (int p = 0; p < pool; p++)
        free(rk[p]);
    free(rk);
    free(ref);
    free(out);
    free(pos);
    free(t_add);
    free(t_val);
    free(t_addv);
    free(t_agr);
    free(t_sub);
    free(t_fin);
    free(t_round);
    free(c_add);
    free(warm);
    free(t_warm);
    free(c_sub);
    free(c_fin);
    free(c_round);
    return 0;
}
