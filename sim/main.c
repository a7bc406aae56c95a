/* frl-sim: a whole FRL federation in one process, with malicious clients.
 *
 *   frl-sim --model lenet --clients 100 --per-round 10 --rounds 20 \
 *       --local-epochs 1 --partition dirichlet:1.0 --malicious 0.2 \
 *       --attack reverse --seed 0 --threads 2 --json out.json
 *
 * Progress with an ETA goes to stderr when it is a terminal; the per-round
 * records go to --per-round-log (JSON lines) and the summary to --json. The
 * loop itself lives in frl_sim_core (sim/frl_sim.h). */
#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_log.h"
#include "sim/frl_sim.h"
#include "sim/frl_sim_ranking_file.h"
#include "supermask/frl_ops.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: frl-sim [options]\n"
            "federation:\n"
            "  --model NAME            lenet|conv2|mlp (default lenet)\n"
            "  --data DIR              MNIST-layout IDX directory (default %s)\n"
            "  --train-n N             use the first N training images (default all)\n"
            "  --test-n N              use the first N test images (default all)\n"
            "  --clients N             clients in total (100)\n"
            "  --per-round N           clients per round (10)\n"
            "  --rounds N              rounds (20)\n"
            "  --partition SPEC        iid | dirichlet[:A] | shards[:K] (dirichlet:1.0)\n"
            "  --seed S                decimal or 64 hex digits (0)\n"
            "  --batch-seed S          seed of local training's batch orders only (default: --seed): the same\n"
            "                          network, data and clients, trained in other orders\n"
            "  --threads N             worker threads, parallel across clients (1)\n"
            "local training:\n"
            "  --local-epochs N        (1)\n"
            "  --lr X                  learning rate of round 0 (0.4)\n"
            "  --lr-decay X            per-round decay: lr = lr0 * X^round (0.999)\n"
            "  --momentum X            (0.9)\n"
            "  --wd X                  weight decay on scores (1e-4)\n"
            "  --batch N               (8)\n"
            "  --keep X                fraction of edges kept per layer (0.5)\n"
            "  --rule abs|signed       mask rule (abs, the reference's)\n"
            "attack:\n"
            "  --malicious F           fraction of malicious clients, ids < round(F * clients) (0)\n"
            "  --attack NAME           none|reverse|random|boundary|labelflip (none)\n"
            "  --attack-trainers K     colluders that train benignly to build the view (25)\n"
            "  --boundary-band F       boundary attack: band per cut, fraction of a layer (%.2f)\n"
            "  --sampling RULE         plain | reference (redraw while malicious >= per-round/2) (reference)\n"
            "  --schedule FILE         take each round's clients from FILE instead of drawing them: one line\n"
            "                          per round, per-round distinct client ids ('#' comments); e.g. the\n"
            "                          \"selected\" lists of an earlier run's --per-round-log\n"
            "robustness:\n"
            "  --policy MODE           none|flag|drop|downweight (none)\n"
            "  --policy-threshold X    agreement below X is low (%.2f)\n"
            "  --policy-rounds N       consecutive low observations before acting (%d)\n"
            "  --policy-weight-ok N    downweight: weight of a trusted vote (%d)\n"
            "  --policy-weight-low N   downweight: weight of a low vote (%d)\n"
            "  --trim T                trimmed vote: drop T highest and lowest positions per edge (0)\n"
            "start:\n"
            "  --init-ranking FILE     start from this global ranking (an earlier run's --ranking-out, same\n"
            "                          model and seed) instead of the ranking of the initial scores\n"
            "  --first-round R         play rounds R .. rounds-1 (0); with --init-ranking, continues a run\n"
            "                          saved after round R-1 exactly as the whole run would have gone on\n"
            "outputs:\n"
            "  --eval-every N          evaluate every N rounds and after the last (1)\n"
            "  --eval-n N              per-round evaluation on the first N test images (all);\n"
            "                          the final accuracy always uses every test image\n"
            "  --json FILE             final summary\n"
            "  --per-round-log FILE    one JSON object per round\n"
            "  --partition-out FILE    each client's training examples: one line per client (ids in order),\n"
            "                          the example indices separated by spaces\n"
            "  --ranking-out FILE      the global ranking after the last round (a ranking file)\n"
            "  --no-timings            leave timings out of the per-round log (byte-comparable runs)\n"
            "  --quiet                 no progress line and no text summary\n",
            FRL_FMNIST_DIR, FRL_ATTACK_DEFAULT_BAND, FRL_VOTE_POLICY_DEFAULT_THRESHOLD, FRL_VOTE_POLICY_DEFAULT_ROUNDS,
            FRL_VOTE_POLICY_DEFAULT_WEIGHT_OK, FRL_VOTE_POLICY_DEFAULT_WEIGHT_LOW);
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '-' || *end || end == s || v < lo || v > hi)
        return FRL_EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int parse_f(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || !(v >= lo && v <= hi))
        return FRL_EINVAL;
    *out = v;
    return 0;
}

static void fmt_dur(double s, char *buf, size_t cap)
{
    if (s < 90)
        snprintf(buf, cap, "%.0fs", s);
    else if (s < 5400)
        snprintf(buf, cap, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else
        snprintf(buf, cap, "%.0fh%02.0fm", floor(s / 3600), floor(fmod(s, 3600) / 60));
}

struct progress_ctx {
    double t_start;
    int first, rounds; /* the run plays rounds first .. rounds - 1 */
    double round_t0;
};

/* Redraws the progress line while a round trains (stderr is a terminal). */
static void on_progress(void *user, int round, uint32_t done, uint32_t total)
{
    struct progress_ctx *p = user;
    double el = frl_now_s() - p->t_start;
    /* ETA from the finished rounds plus the fraction of this one. */
    double frac = (double)(round - p->first) + (total ? 0.9 * (double)done / (double)total : 0.0);
    char eta[32], elb[32];
    fmt_dur(frac > 0 ? el / frac * ((double)(p->rounds - p->first) - frac) : 0.0, eta, sizeof eta);
    fmt_dur(el, elb, sizeof elb);
    fprintf(stderr, "\rround %d/%d  training %u/%u  elapsed %s  eta %s                                        ", round + 1,
            p->rounds, done, total, elb, eta);
}

static double mean_d(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return n ? s / n : 0.0;
}

/* --partition-out (frl_partition_format), written atomically. */
static int write_partition(const char *path, const frl_partition_t *p)
{
    char *text;
    size_t len;
    int rc = frl_partition_format(p, &text, &len);
    if (rc)
        return rc;
    rc = frl_file_write_atomic(path, text, len);
    free(text);
    return rc;
}

/* --init-ranking: a ranking file for this model and seed; every error is
 * printed with the file's name. */
static int load_ranking(frl_sim_t *sim, const char *path, const uint8_t seed[FRL_SEED_BYTES])
{
    const frl_vote_layout_t *lay = frl_sim_layout(sim);
    uint8_t *buf = NULL;
    size_t len = 0;
    /* One byte more than a good file, so that a longer one is read and
     * refused by the decoder with its length. */
    int rc = frl_file_read_all(path, frl_sim_ranking_file_size(lay) + 1, &buf, &len);
    if (rc == FRL_ETOOBIG)
        fprintf(stderr, "frl-sim: bad --init-ranking %s: larger than a ranking file of this model (%zu bytes)\n", path,
                frl_sim_ranking_file_size(lay));
    else if (rc)
        fprintf(stderr, "frl-sim: cannot read --init-ranking %s: %s\n", path, frl_strerror(rc));
    if (rc)
        return rc;
    uint32_t *ranking = malloc(sizeof(uint32_t) * lay->total_edges);
    char err[200] = "out of memory";
    rc = ranking ? frl_sim_ranking_decode(buf, len, frl_sim_spec(sim)->hash, seed, lay, ranking, err, sizeof err) : FRL_ENOMEM;
    if (!rc)
        rc = frl_sim_set_global_ranking(sim, ranking, NULL);
    if (rc)
        fprintf(stderr, "frl-sim: bad --init-ranking %s: %s\n", path, err);
    free(ranking);
    free(buf);
    return rc;
}

/* --ranking-out, written atomically. */
static int save_ranking(const frl_sim_t *sim, const char *path, const uint8_t seed[FRL_SEED_BYTES])
{
    uint8_t *buf;
    size_t len;
    int rc = frl_sim_ranking_encode(frl_sim_spec(sim)->hash, seed, frl_sim_layout(sim), frl_sim_global_ranking(sim), &buf, &len);
    if (rc)
        return rc;
    rc = frl_file_write_atomic(path, buf, len);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    frl_blas_fix_core(argv); /* before anything is opened: it may exec us again */
    frl_sim_config_t cfg;
    frl_sim_config_default(&cfg);
    const char *data_dir = NULL, *json = NULL, *log_path = NULL, *seed_text = "0", *schedule_path = NULL, *partition_out = NULL,
               *init_ranking = NULL, *ranking_out = NULL;
    uint32_t train_n = 0, test_n = 0, u;
    int quiet = 0, no_timings = 0;
    enum {
        O_MODEL = 256,
        O_DATA,
        O_TRAIN_N,
        O_TEST_N,
        O_CLIENTS,
        O_PER_ROUND,
        O_ROUNDS,
        O_FIRST_ROUND,
        O_PARTITION,
        O_SEED,
        O_BATCH_SEED,
        O_THREADS,
        O_EPOCHS,
        O_LR,
        O_LR_DECAY,
        O_MOMENTUM,
        O_WD,
        O_BATCH,
        O_KEEP,
        O_RULE,
        O_MALICIOUS,
        O_ATTACK,
        O_ATTACK_TRAINERS,
        O_BAND,
        O_SAMPLING,
        O_SCHEDULE,
        O_POLICY,
        O_POL_THR,
        O_POL_ROUNDS,
        O_POL_WOK,
        O_POL_WLOW,
        O_TRIM,
        O_EVAL_EVERY,
        O_EVAL_N,
        O_JSON,
        O_LOG,
        O_PART_OUT,
        O_INIT_RANK,
        O_RANK_OUT,
        O_NO_TIMINGS,
        O_QUIET,
        O_HELP
    };
    static const struct option opts[] = {{"model", required_argument, 0, O_MODEL},
                                         {"data", required_argument, 0, O_DATA},
                                         {"train-n", required_argument, 0, O_TRAIN_N},
                                         {"test-n", required_argument, 0, O_TEST_N},
                                         {"clients", required_argument, 0, O_CLIENTS},
                                         {"per-round", required_argument, 0, O_PER_ROUND},
                                         {"rounds", required_argument, 0, O_ROUNDS},
                                         {"first-round", required_argument, 0, O_FIRST_ROUND},
                                         {"partition", required_argument, 0, O_PARTITION},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"batch-seed", required_argument, 0, O_BATCH_SEED},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"local-epochs", required_argument, 0, O_EPOCHS},
                                         {"lr", required_argument, 0, O_LR},
                                         {"lr-decay", required_argument, 0, O_LR_DECAY},
                                         {"momentum", required_argument, 0, O_MOMENTUM},
                                         {"wd", required_argument, 0, O_WD},
                                         {"batch", required_argument, 0, O_BATCH},
                                         {"keep", required_argument, 0, O_KEEP},
                                         {"rule", required_argument, 0, O_RULE},
                                         {"malicious", required_argument, 0, O_MALICIOUS},
                                         {"attack", required_argument, 0, O_ATTACK},
                                         {"attack-trainers", required_argument, 0, O_ATTACK_TRAINERS},
                                         {"boundary-band", required_argument, 0, O_BAND},
                                         {"sampling", required_argument, 0, O_SAMPLING},
                                         {"schedule", required_argument, 0, O_SCHEDULE},
                                         {"policy", required_argument, 0, O_POLICY},
                                         {"policy-threshold", required_argument, 0, O_POL_THR},
                                         {"policy-rounds", required_argument, 0, O_POL_ROUNDS},
                                         {"policy-weight-ok", required_argument, 0, O_POL_WOK},
                                         {"policy-weight-low", required_argument, 0, O_POL_WLOW},
                                         {"trim", required_argument, 0, O_TRIM},
                                         {"eval-every", required_argument, 0, O_EVAL_EVERY},
                                         {"eval-n", required_argument, 0, O_EVAL_N},
                                         {"json", required_argument, 0, O_JSON},
                                         {"per-round-log", required_argument, 0, O_LOG},
                                         {"partition-out", required_argument, 0, O_PART_OUT},
                                         {"init-ranking", required_argument, 0, O_INIT_RANK},
                                         {"ranking-out", required_argument, 0, O_RANK_OUT},
                                         {"no-timings", no_argument, 0, O_NO_TIMINGS},
                                         {"quiet", no_argument, 0, O_QUIET},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    int c, li = 0;
    while ((c = getopt_long(argc, argv, "", opts, &li)) != -1) {
        int bad = 0;
        switch (c) {
        case O_MODEL:
            if (strlen(optarg) >= sizeof cfg.model)
                bad = 1;
            else
                snprintf(cfg.model, sizeof cfg.model, "%s", optarg);
            break;
        case O_DATA:
            data_dir = optarg;
            break;
        case O_TRAIN_N:
            bad = parse_u32(optarg, 1, UINT32_MAX, &train_n);
            break;
        case O_TEST_N:
            bad = parse_u32(optarg, 1, UINT32_MAX, &test_n);
            break;
        case O_CLIENTS:
            bad = parse_u32(optarg, 1, 10000000, &cfg.clients);
            break;
        case O_PER_ROUND:
            bad = parse_u32(optarg, 1, 1000000, &cfg.per_round);
            break;
        case O_ROUNDS:
            bad = parse_u32(optarg, 0, 10000000, &u);
            cfg.rounds = (int)u;
            break;
        case O_FIRST_ROUND:
            bad = parse_u32(optarg, 0, 10000000, &u);
            cfg.first_round = (int)u;
            break;
        case O_PARTITION:
            bad = frl_part_spec_parse(optarg, &cfg.partition);
            break;
        case O_SEED:
            seed_text = optarg;
            break;
        case O_BATCH_SEED:
            bad = frl_seed_parse(optarg, cfg.batch_seed) != 0;
            cfg.batch_seed_set = 1;
            break;
        case O_THREADS:
            bad = parse_u32(optarg, 1, FRL_SIM_MAX_THREADS, &u);
            cfg.threads = (int)u;
            break;
        case O_EPOCHS:
            bad = parse_u32(optarg, 0, 1000, &u);
            cfg.train.epochs = (int)u;
            break;
        case O_LR:
            bad = parse_f(optarg, 1e-12, 1e6, &cfg.train.lr);
            break;
        case O_LR_DECAY:
            bad = parse_f(optarg, 1e-12, 1e6, &cfg.lr_decay);
            break;
        case O_MOMENTUM:
            bad = parse_f(optarg, 0, 0.999999, &cfg.train.momentum);
            break;
        case O_WD:
            bad = parse_f(optarg, 0, 1e3, &cfg.train.weight_decay);
            break;
        case O_BATCH:
            bad = parse_u32(optarg, 1, 4096, &u);
            cfg.train.batch = (int)u;
            break;
        case O_KEEP:
            bad = parse_f(optarg, 1e-9, 1.0, &cfg.train.keep);
            break;
        case O_RULE:
            bad = frl_mask_rule_parse(optarg, &cfg.train.rule);
            break;
        case O_MALICIOUS:
            bad = parse_f(optarg, 0.0, 0.999999, &cfg.malicious);
            break;
        case O_ATTACK:
            bad = frl_attack_parse(optarg, &cfg.attack);
            break;
        case O_ATTACK_TRAINERS:
            bad = parse_u32(optarg, 0, 1000000, &cfg.attack_trainers);
            break;
        case O_BAND:
            bad = parse_f(optarg, 1e-9, 0.5, &cfg.boundary_band);
            break;
        case O_SAMPLING:
            bad = frl_sim_sampling_parse(optarg, &cfg.sampling);
            break;
        case O_SCHEDULE:
            schedule_path = optarg;
            break;
        case O_POLICY:
            bad = frl_sim_policy_parse(optarg, &cfg.policy.mode);
            break;
        case O_POL_THR:
            bad = parse_f(optarg, -1.0, 1.0, &cfg.policy.threshold);
            break;
        case O_POL_ROUNDS:
            bad = parse_u32(optarg, 1, 1000000, &cfg.policy.rounds);
            break;
        case O_POL_WOK:
            bad = parse_u32(optarg, 1, 1000000, &cfg.policy.weight_ok);
            break;
        case O_POL_WLOW:
            bad = parse_u32(optarg, 1, 1000000, &cfg.policy.weight_low);
            break;
        case O_TRIM:
            bad = parse_u32(optarg, 0, 1000000, &cfg.trim);
            break;
        case O_EVAL_EVERY:
            bad = parse_u32(optarg, 1, 1000000, &u);
            cfg.eval_every = (int)u;
            break;
        case O_EVAL_N:
            bad = parse_u32(optarg, 0, UINT32_MAX, &cfg.eval_n);
            break;
        case O_JSON:
            json = optarg;
            break;
        case O_LOG:
            log_path = optarg;
            break;
        case O_PART_OUT:
            partition_out = optarg;
            break;
        case O_INIT_RANK:
            init_ranking = optarg;
            break;
        case O_RANK_OUT:
            ranking_out = optarg;
            break;
        case O_NO_TIMINGS:
            no_timings = 1;
            break;
        case O_QUIET:
            quiet = 1;
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "frl-sim: bad value for --%s: '%s'\n", opts[li].name, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "frl-sim: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (frl_seed_parse(seed_text, cfg.seed)) {
        fprintf(stderr, "frl-sim: bad --seed '%s' (decimal or 64 hex digits)\n", seed_text);
        return 2;
    }
    if (cfg.first_round > cfg.rounds) {
        fprintf(stderr, "frl-sim: --first-round %d is after the last round (--rounds %d)\n", cfg.first_round, cfg.rounds);
        return 2;
    }
    if (cfg.policy.mode != FRL_VOTE_POLICY_DOWNWEIGHT)
        cfg.policy.weight_ok = cfg.policy.weight_low = 1;
    if (cfg.policy.weight_low > cfg.policy.weight_ok) {
        fprintf(stderr, "frl-sim: --policy-weight-low must not exceed --policy-weight-ok\n");
        return 2;
    }

    uint32_t *schedule = NULL;
    if (schedule_path) {
        uint8_t *text = NULL;
        size_t text_len = 0;
        char err[160];
        int src = frl_file_read_all(schedule_path, (size_t)1 << 30, &text, &text_len);
        if (src) {
            fprintf(stderr, "frl-sim: cannot read --schedule %s: %s\n", schedule_path, frl_strerror(src));
            return 2;
        }
        src = frl_sim_schedule_parse((const char *)text, text_len, cfg.clients, cfg.per_round, &schedule, &cfg.schedule_rounds, err,
                                     sizeof err);
        free(text);
        if (src) {
            fprintf(stderr, "frl-sim: bad --schedule %s: %s\n", schedule_path, src == FRL_ENOMEM ? "out of memory" : err);
            return 2;
        }
        if (cfg.schedule_rounds < (uint32_t)cfg.rounds) {
            fprintf(stderr, "frl-sim: --schedule %s has %u rounds, --rounds is %d\n", schedule_path, cfg.schedule_rounds,
                    cfg.rounds);
            free(schedule);
            return 2;
        }
        cfg.schedule = schedule;
    }

    /* Data: the first train_n / test_n examples. */
    frl_dataset_t train = {0}, test = {0};
    uint32_t *sel = NULL;
    uint32_t nsel = train_n > test_n ? train_n : test_n;
    if (nsel && !(sel = malloc(sizeof(uint32_t) * nsel))) {
        fprintf(stderr, "frl-sim: out of memory\n");
        free(schedule);
        return 1;
    }
    for (uint32_t i = 0; i < nsel; i++)
        sel[i] = i;
    int rc = frl_mnist_load(data_dir, "train", train_n ? sel : NULL, train_n, &train);
    if (rc == FRL_ERANGE)
        rc = frl_mnist_load(data_dir, "train", NULL, 0, &train);
    if (!rc) {
        rc = frl_mnist_load(data_dir, "t10k", test_n ? sel : NULL, test_n, &test);
        if (rc == FRL_ERANGE)
            rc = frl_mnist_load(data_dir, "t10k", NULL, 0, &test);
    }
    free(sel);
    if (rc) {
        fprintf(stderr, "frl-sim: cannot load data from %s: %s\n", data_dir ? data_dir : FRL_FMNIST_DIR, frl_strerror(rc));
        frl_dataset_free(&train);
        frl_dataset_free(&test);
        free(schedule);
        return 1;
    }

    frl_sim_t *sim = NULL;
    FILE *logf = NULL;
    int status = 1;
    double *acc = NULL, *secs = NULL, *cpus = NULL, *trains = NULL, *votes = NULL, *evals = NULL, *losses = NULL;
    uint32_t *mal = NULL;
    char *line = NULL;
    size_t line_cap = FRL_SIM_ROUND_JSON_CAP(cfg.per_round);
    double t_start = frl_now_s();
    if ((rc = frl_sim_create(&cfg, &train, &test, &sim)) != 0) {
        fprintf(stderr, "frl-sim: cannot set up the simulation: %s\n", frl_strerror(rc));
        goto out;
    }
    int R = cfg.rounds - cfg.first_round; /* rounds this run plays; record r is round first_round + r */
    size_t nr = (size_t)(R > 0 ? R : 1);
    acc = malloc(sizeof(double) * nr);
    losses = malloc(sizeof(double) * nr);
    secs = malloc(sizeof(double) * nr);
    cpus = malloc(sizeof(double) * nr);
    trains = malloc(sizeof(double) * nr);
    votes = malloc(sizeof(double) * nr);
    evals = malloc(sizeof(double) * nr);
    mal = malloc(sizeof(uint32_t) * nr);
    line = malloc(line_cap);
    if (!acc || !losses || !secs || !cpus || !trains || !votes || !evals || !mal || !line) {
        fprintf(stderr, "frl-sim: out of memory\n");
        goto out;
    }
    if (init_ranking && (rc = load_ranking(sim, init_ranking, cfg.seed)) != 0) {
        status = 2;
        goto out;
    }
    if (log_path && !(logf = fopen(log_path, "w"))) {
        fprintf(stderr, "frl-sim: cannot write %s\n", log_path);
        goto out;
    }
    const frl_partition_t *part = frl_sim_partition(sim);
    if (partition_out && (rc = write_partition(partition_out, part)) != 0) {
        fprintf(stderr, "frl-sim: cannot write --partition-out %s: %s\n", partition_out, frl_strerror(rc));
        goto out;
    }
    uint32_t pmin = UINT32_MAX, pmax = 0;
    for (uint32_t i = 0; i < part->n_clients; i++) {
        uint32_t s = frl_partition_size(part, i);
        pmin = s < pmin ? s : pmin;
        pmax = s > pmax ? s : pmax;
    }
    const int tty = !quiet && isatty(2);
    if (!quiet)
        fprintf(stderr, "frl-sim: %s, %u clients (%u malicious, attack %s), %u per round, %d rounds, %d thread%s; shards %u..%u\n",
                cfg.model, cfg.clients, frl_sim_n_malicious(sim), frl_attack_name(cfg.attack), cfg.per_round, R, cfg.threads,
                cfg.threads > 1 ? "s" : "", pmin, pmax);
    struct progress_ctx pc = {t_start, cfg.first_round, cfg.rounds, 0.0};
    if (tty)
        frl_sim_set_progress(sim, on_progress, &pc);
    uint64_t images = 0;
    double train_s_total = 0.0;
    int n_eval = 0;
    for (int r = 0; r < R; r++) {
        frl_sim_round_t rec;
        if ((rc = frl_sim_round(sim, &rec)) != 0) {
            if (tty)
                fputc('\n', stderr);
            fprintf(stderr, "frl-sim: round %d failed: %s\n", cfg.first_round + r, frl_strerror(rc));
            goto out;
        }
        acc[r] = rec.evaluated ? rec.accuracy : NAN;
        losses[r] = rec.evaluated ? rec.loss : NAN;
        n_eval += rec.evaluated;
        secs[r] = rec.seconds;
        cpus[r] = rec.cpu_seconds;
        trains[r] = rec.train_seconds;
        votes[r] = rec.vote_seconds;
        evals[r] = rec.eval_seconds;
        mal[r] = rec.n_malicious;
        images += rec.train_images;
        train_s_total += rec.train_seconds;
        if (logf) {
            int k = frl_sim_round_json(&rec, !no_timings, line, line_cap);
            if (k < 0 || fwrite(line, 1, (size_t)k, logf) != (size_t)k || fputc('\n', logf) == EOF || fflush(logf)) {
                if (tty)
                    fputc('\n', stderr);
                fprintf(stderr, "frl-sim: cannot write round %d to %s: %s\n", rec.round, log_path,
                        k < 0 ? frl_strerror(k) : strerror(errno));
                goto out;
            }
        }
        if (tty) {
            double el = frl_now_s() - t_start;
            char eta[32], elb[32];
            fmt_dur(el / (r + 1) * (R - r - 1), eta, sizeof eta);
            fmt_dur(el, elb, sizeof elb);
            fprintf(stderr, "\rround %d/%d  acc %.4f  mal %u  rejected %u  dropped %u  %.1f s/round  elapsed %s  eta %s   ",
                    rec.round + 1, cfg.rounds, rec.evaluated ? rec.accuracy : NAN, rec.n_malicious, rec.rejected, rec.dropped,
                    rec.seconds + rec.eval_seconds, elb, eta);
        }
    }
    if (tty)
        fputc('\n', stderr);

    /* Final accuracy on every test image. */
    double final_acc = 0.0, final_loss = 0.0;
    double te = frl_now_s();
    if ((rc = frl_sim_evaluate(sim, 0, &final_acc, &final_loss)) != 0) {
        fprintf(stderr, "frl-sim: final evaluation failed: %s\n", frl_strerror(rc));
        goto out;
    }
    te = frl_now_s() - te;
    if (ranking_out && (rc = save_ranking(sim, ranking_out, cfg.seed)) != 0) {
        fprintf(stderr, "frl-sim: cannot write --ranking-out %s: %s\n", ranking_out, frl_strerror(rc));
        goto out;
    }
    double wall = frl_now_s() - t_start;
    /* Mean of the last 5 evaluated rounds, and the best. */
    double last5 = 0.0, best = 0.0;
    int k5 = 0;
    for (int r = R - 1; r >= 0 && k5 < 5; r--)
        if (!isnan(acc[r])) {
            last5 += acc[r];
            k5++;
        }
    last5 = k5 ? last5 / k5 : NAN;
    for (int r = 0; r < R; r++)
        if (!isnan(acc[r]) && acc[r] > best)
            best = acc[r];

    if (json) {
        char *buf = NULL;
        size_t blen = 0;
        FILE *m = open_memstream(&buf, &blen);
        if (!m) {
            fprintf(stderr, "frl-sim: out of memory\n");
            goto out;
        }
        char cj[2048];
        frl_sim_config_json(&cfg, cj, sizeof cj);
        fprintf(m, "{\"config\":%s", cj);
        if (init_ranking) {
            size_t cap = 6 * strlen(init_ranking) + 8, n = 0;
            char *esc = malloc(cap);
            if (!esc) {
                fclose(m);
                free(buf);
                fprintf(stderr, "frl-sim: out of memory\n");
                goto out;
            }
            frl_json_append(esc, cap, &n, init_ranking, strlen(init_ranking));
            fprintf(m, ",\"init_ranking\":\"%.*s\"", (int)n, esc);
            free(esc);
        }
        fprintf(m, ",\"n_malicious_clients\":%u,\"shard_min\":%u,\"shard_max\":%u", frl_sim_n_malicious(sim), pmin, pmax);
        fprintf(m, ",\"train_examples\":%u,\"test_examples\":%u", train.n, test.n);
        fprintf(m, ",\"final_accuracy\":%.6f,\"final_loss\":%.9g,\"final_eval_n\":%u", final_acc, final_loss, test.n);
        fprintf(m, ",\"mean_last5\":");
        if (isnan(last5))
            fprintf(m, "null");
        else
            fprintf(m, "%.6f", last5);
        fprintf(m, ",\"best_accuracy\":%.6f", best);
        fprintf(m, ",\"accuracy_per_round\":[");
        for (int r = 0; r < R; r++) {
            if (isnan(acc[r]))
                fprintf(m, "%snull", r ? "," : "");
            else
                fprintf(m, "%s%.6f", r ? "," : "", acc[r]);
        }
        fprintf(m, "],\"loss_per_round\":[");
        for (int r = 0; r < R; r++) {
            if (isnan(losses[r]))
                fprintf(m, "%snull", r ? "," : "");
            else
                fprintf(m, "%s%.6f", r ? "," : "", losses[r]);
        }
        fprintf(m, "],\"malicious_per_round\":[");
        for (int r = 0; r < R; r++)
            fprintf(m, "%s%u", r ? "," : "", mal[r]);
        fprintf(m, "],\"seconds_per_round_list\":[");
        for (int r = 0; r < R; r++)
            fprintf(m, "%s%.3f", r ? "," : "", secs[r]);
        fprintf(m, "],\"cpu_seconds_per_round_list\":[");
        for (int r = 0; r < R; r++)
            fprintf(m, "%s%.3f", r ? "," : "", cpus[r]);
        fprintf(m, "]");
        fprintf(m, ",\"seconds_per_round\":%.4f,\"cpu_seconds_per_round\":%.4f", mean_d(secs, R), mean_d(cpus, R));
        fprintf(m, ",\"train_seconds_per_round\":%.4f,\"vote_seconds_per_round\":%.4f,\"eval_seconds_per_round\":%.4f",
                mean_d(trains, R), mean_d(votes, R), mean_d(evals, R));
        fprintf(m, ",\"total_train_images\":%llu,\"train_img_per_s\":%.1f", (unsigned long long)images,
                train_s_total > 0 ? (double)images / train_s_total : 0.0);
        fprintf(m, ",\"final_eval_seconds\":%.3f,\"wall_seconds\":%.3f,\"peak_rss_kb\":%ld}\n", te, wall, frl_peak_rss_kb());
        fclose(m);
        rc = frl_file_write_atomic(json, buf, blen);
        free(buf);
        if (rc) {
            fprintf(stderr, "frl-sim: cannot write %s: %s\n", json, frl_strerror(rc));
            goto out;
        }
    }
    if (!quiet)
        printf("final accuracy %.4f (loss %.4f, %u test images); mean of last 5 rounds %.4f; best %.4f; %.2f s/round "
               "(%.2f CPU s/round) over %d rounds\n",
               final_acc, final_loss, test.n, last5, best, mean_d(secs, R), mean_d(cpus, R), R);
    status = 0;
out:
    if (logf && fclose(logf) && status == 0) {
        fprintf(stderr, "frl-sim: cannot write %s: %s\n", log_path, strerror(errno));
        status = 1;
    }
    free(acc);
    free(losses);
    free(secs);
    free(cpus);
    free(trains);
    free(votes);
    free(evals);
    free(mal);
    free(line);
    frl_sim_destroy(sim);
    free(schedule);
    frl_dataset_free(&train);
    frl_dataset_free(&test);
    return status;
}
