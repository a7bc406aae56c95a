/* The federation loop of frl-sim (see frl_sim.h for the round's steps). */
#include "sim/frl_sim.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "aggregation/frl_vote.h"
#include "aggregation/frl_vote_round.h"
#include "common/frl_error.h"
#include "common/frl_file.h"
#include "supermask/frl_ranking.h"

/* ------------------------------------------------------------------ config */

void frl_sim_config_default(frl_sim_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->model, sizeof cfg->model, "lenet");
    cfg->clients = 100;
    cfg->per_round = 10;
    cfg->rounds = 20;
    frl_part_spec_parse("dirichlet:1.0", &cfg->partition);
    frl_train_cfg_default(&cfg->train);
    cfg->lr_decay = 0.999;
    frl_seed_from_u64(0, cfg->seed);
    cfg->batch_seed_set = 0;
    memset(cfg->batch_seed, 0, sizeof cfg->batch_seed);
    cfg->threads = 1;
    cfg->eval_every = 1;
    cfg->eval_n = 0;
    cfg->malicious = 0.0;
    cfg->attack = FRL_ATTACK_NONE;
    cfg->attack_trainers = 25;
    cfg->boundary_band = FRL_ATTACK_DEFAULT_BAND;
    cfg->sampling = FRL_SIM_SAMPLING_REFERENCE;
    frl_vote_policy_config_default(&cfg->policy);
    cfg->trim = 0;
}

int frl_sim_sampling_parse(const char *s, frl_sim_sampling *out)
{
    if (s && strcmp(s, "plain") == 0)
        *out = FRL_SIM_SAMPLING_PLAIN;
    else if (s && strcmp(s, "reference") == 0)
        *out = FRL_SIM_SAMPLING_REFERENCE;
    else
        return FRL_EINVAL;
    return 0;
}

const char *frl_sim_sampling_name(frl_sim_sampling s)
{
    return s == FRL_SIM_SAMPLING_PLAIN ? "plain" : s == FRL_SIM_SAMPLING_REFERENCE ? "reference" : "unknown";
}

static const char *const k_policy_names[] = {"none", "flag", "drop", "downweight"};

int frl_sim_policy_parse(const char *s, frl_vote_policy_mode *out)
{
    for (int i = 0; s && i < 4; i++) {
        if (strcmp(s, k_policy_names[i]) == 0) {
            *out = (frl_vote_policy_mode)i;
            return 0;
        }
    }
    return FRL_EINVAL;
}

const char *frl_sim_policy_name(frl_vote_policy_mode m)
{
    return ((int)m >= 0 && (int)m < 4) ? k_policy_names[m] : "unknown";
}

/* ------------------------------------------------------------------ object */

typedef enum { TASK_TRAIN = 0, TASK_EVAL = 1 } task_kind;

typedef struct task_s {
    task_kind kind;
    uint32_t client;           /* TRAIN: whose shard and shuffle stream */
    int slot;                  /* TRAIN: index in `selected`, or -1 for a colluder */
    const frl_dataset_t *data; /* TRAIN: the training set, or its label-flipped view */
    uint32_t *out;             /* TRAIN: the ranking it produces */
    uint32_t start, n;         /* EVAL: test examples [start, start + n) */
    double accuracy, loss;     /* EVAL results */
    frl_train_stats_t stats;   /* TRAIN results */
    int rc;
} task_t;

struct frl_sim_s {
    frl_sim_config_t cfg;
    const frl_dataset_t *train, *test;
    frl_dataset_t flipped; /* images borrowed from train, labels owned (flipped_labels) */
    uint8_t *flipped_labels;
    frl_network_t net;
    int net_ok;
    frl_partition_t part;
    frl_vote_layout_t layout;
    frl_vote_round_t *vr;
    frl_vote_policy_t *policy;
    frl_vote_tally_t *aux; /* the colluders' tally before the vote, the honest clients' plain vote after it */
    int threads;
    frl_trainer_t *tr[FRL_SIM_MAX_THREADS];
    uint64_t tr_version[FRL_SIM_MAX_THREADS]; /* global_version the trainer's scores hold, 0 = none */
    uint64_t global_version;
    uint32_t n_mal;
    uint32_t max_colluders;
    uint32_t *global, *next;
    uint32_t **slots; /* per_round + max_colluders rankings */
    uint32_t n_slots;
    uint32_t *attack_rank; /* the shared malicious ranking (reverse, boundary) */
    uint32_t *consensus;   /* colluders' consensus order; margin scratch; the honest clients' vote */
    uint8_t *mask;         /* total_edges */
    uint8_t *mask_global;  /* total_edges: the mask of `global`, kept from round to round */
    uint8_t *mask_next;    /* total_edges: the mask of `next` */
    void *attack_scratch;
    void *topk_scratch;
    uint32_t *perm;     /* clients */
    uint32_t *selected; /* per_round */
    /* per_round: the round's per-client records */
    frl_sim_client_t *clients;
    uint32_t *colluder_ids;
    task_t *tasks;
    size_t max_tasks;
    /* the running phase */
    task_t *run_tasks;
    size_t run_n;
    atomic_size_t run_next;
    int round;
    frl_sim_progress_fn progress;
    void *progress_user;
    pthread_mutex_t progress_lock;
    int progress_lock_ok;
    uint32_t progress_done, progress_total;
};

void frl_sim_set_progress(frl_sim_t *sim, frl_sim_progress_fn fn, void *user)
{
    sim->progress = fn;
    sim->progress_user = user;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

void frl_sim_destroy(frl_sim_t *sim)
{
    if (!sim)
        return;
    for (int w = 0; w < FRL_SIM_MAX_THREADS; w++)
        frl_trainer_destroy(sim->tr[w]);
    frl_vote_round_destroy(sim->vr);
    frl_vote_policy_destroy(sim->policy);
    frl_vote_tally_destroy(sim->aux);
    if (sim->slots)
        for (uint32_t i = 0; i < sim->n_slots; i++)
            free(sim->slots[i]);
    free(sim->slots);
    free(sim->global);
    free(sim->next);
    free(sim->attack_rank);
    free(sim->consensus);
    free(sim->mask);
    free(sim->mask_global);
    free(sim->mask_next);
    free(sim->attack_scratch);
    free(sim->topk_scratch);
    free(sim->perm);
    free(sim->selected);
    free(sim->clients);
    free(sim->colluder_ids);
    free(sim->tasks);
    free(sim->flipped_labels);
    frl_partition_free(&sim->part);
    if (sim->progress_lock_ok)
        pthread_mutex_destroy(&sim->progress_lock);
    if (sim->net_ok)
        frl_network_free(&sim->net);
    free(sim);
}

static int check_config(const frl_sim_config_t *c)
{
    if (c->clients < 1 || c->per_round < 1 || c->per_round > c->clients || c->rounds < 0 || c->first_round < 0 ||
        c->first_round > c->rounds || c->threads < 1 || c->threads > FRL_SIM_MAX_THREADS || c->eval_every < 1 ||
        !(c->malicious >= 0.0 && c->malicious < 1.0) || (int)c->attack < 0 || (int)c->attack >= FRL_ATTACK_COUNT ||
        !(c->lr_decay > 0.0) || !(c->boundary_band > 0.0 && c->boundary_band <= 0.5) || c->train.batch < 1 || c->train.epochs < 0 ||
        (c->sampling != FRL_SIM_SAMPLING_PLAIN && c->sampling != FRL_SIM_SAMPLING_REFERENCE))
        return FRL_EINVAL;
    if (c->trim && 2 * (uint64_t)c->trim >= c->per_round)
        return FRL_EINVAL;
    if (c->schedule && c->schedule_rounds < (uint32_t)c->rounds)
        return FRL_EINVAL;
    return 0;
}

/* Every row of the schedule the run uses: distinct ids < clients. */
static int check_schedule(const frl_sim_config_t *c)
{
    if (!c->schedule)
        return 0;
    uint32_t *tmp = malloc(sizeof(uint32_t) * c->per_round);
    if (!tmp)
        return FRL_ENOMEM;
    int rc = 0;
    for (int r = c->first_round; r < c->rounds && !rc; r++)
        if (frl_sim_schedule_check_row(c->schedule + (size_t)r * c->per_round, c->per_round, c->clients, tmp))
            rc = FRL_EINVAL;
    free(tmp);
    return rc;
}

static int mask_into(frl_sim_t *sim, const uint32_t *order, uint8_t *out);

int frl_sim_create(const frl_sim_config_t *cfg, const frl_dataset_t *train, const frl_dataset_t *test, frl_sim_t **out)
{
    *out = NULL;
    if (!cfg || !train || !test || check_config(cfg))
        return FRL_EINVAL;
    frl_model_spec_t spec;
    int rc = frl_model_spec_by_name(cfg->model, &spec);
    if (rc || (rc = check_schedule(cfg)) != 0)
        return rc;
    if ((int)(train->rows * train->cols) != spec.in_c * spec.in_h * spec.in_w ||
        (int)(test->rows * test->cols) != spec.in_c * spec.in_h * spec.in_w || train->n_classes > (uint32_t)spec.n_classes)
        return FRL_EMISMATCH;
    frl_sim_t *sim = calloc(1, sizeof *sim);
    if (!sim)
        return FRL_ENOMEM;
    sim->cfg = *cfg;
    sim->progress_lock_ok = pthread_mutex_init(&sim->progress_lock, NULL) == 0;
    sim->train = train;
    sim->test = test;
    sim->n_mal = frl_attack_n_malicious(cfg->malicious, cfg->clients);
    /* The reference rule needs enough benign clients to ever accept a draw:
     * at most (per_round - 1) / 2 malicious in a round. */
    if (!cfg->schedule && cfg->sampling == FRL_SIM_SAMPLING_REFERENCE &&
        cfg->clients - sim->n_mal < cfg->per_round - (cfg->per_round - 1) / 2) {
        free(sim);
        return FRL_EINVAL;
    }
    const unsigned needs = sim->n_mal ? frl_attack_needs(cfg->attack) : 0;
    sim->max_colluders =
        (needs & FRL_ATTACK_NEEDS_CONSENSUS) ? (cfg->attack_trainers < sim->n_mal ? cfg->attack_trainers : sim->n_mal) : 0;
    sim->threads = cfg->threads;
    if ((rc = frl_network_init(&sim->net, &spec, cfg->seed, 1)) != 0)
        goto fail;
    sim->net_ok = 1;
    if ((rc = frl_partition_make(&cfg->partition, train->labels, train->n, train->n_classes ? train->n_classes : 1, cfg->clients,
                                 cfg->seed, &sim->part)) != 0)
        goto fail;
    uint32_t n_edges[FRL_MAX_LAYERS];
    for (int l = 0; l < spec.n_layers; l++)
        n_edges[l] = spec.layers[l].n_edges;
    if ((rc = frl_vote_layout_init(&sim->layout, spec.n_layers, n_edges)) != 0)
        goto fail;
    const size_t E = (size_t)spec.total_edges;
    rc = FRL_ENOMEM;
    if (frl_vote_round_create(&sim->layout, cfg->clients, &sim->vr))
        goto fail;
    /* The vote runs between the training phases: a second thread for its
     * large layers when the run has one (same sums bit for bit). */
    if (cfg->threads >= 2 && frl_vote_tally_set_threads(frl_vote_round_tally(sim->vr), 2))
        goto fail;
    if (cfg->policy.mode != FRL_VOTE_POLICY_OFF) {
        if ((rc = frl_vote_policy_create(&cfg->policy, cfg->clients, &sim->policy)) != 0 ||
            (rc = frl_vote_round_set_policy(sim->vr, sim->policy)) != 0)
            goto fail;
    }
    if (cfg->trim && (rc = frl_vote_round_enable_trim(sim->vr, cfg->per_round, 0)) != 0)
        goto fail;
    rc = FRL_ENOMEM;
    if (sim->n_mal && cfg->attack != FRL_ATTACK_NONE) {
        if (frl_vote_tally_create(&sim->layout, &sim->aux))
            goto fail;
        if (cfg->threads >= 2 && frl_vote_tally_set_threads(sim->aux, 2))
            goto fail;
    }
    sim->n_slots = cfg->per_round + sim->max_colluders;
    sim->slots = calloc(sim->n_slots, sizeof *sim->slots);
    sim->global = malloc(E * sizeof(uint32_t));
    sim->next = malloc(E * sizeof(uint32_t));
    sim->consensus = malloc(E * sizeof(uint32_t));
    sim->mask = malloc(E);
    sim->mask_global = malloc(E);
    sim->mask_next = malloc(E);
    sim->topk_scratch = malloc(frl_topk_scratch_size(sim->layout.max_layer_edges));
    sim->perm = malloc(sizeof(uint32_t) * cfg->clients);
    sim->selected = malloc(sizeof(uint32_t) * cfg->per_round);
    sim->clients = malloc(sizeof(frl_sim_client_t) * cfg->per_round);
    sim->colluder_ids = malloc(sizeof(uint32_t) * (sim->n_mal ? sim->n_mal : 1));
    sim->max_tasks = (size_t)cfg->per_round + sim->max_colluders;
    size_t eval_tasks = ((size_t)test->n + FRL_SIM_EVAL_CHUNK - 1) / FRL_SIM_EVAL_CHUNK;
    if (eval_tasks > sim->max_tasks)
        sim->max_tasks = eval_tasks;
    sim->tasks = calloc(sim->max_tasks ? sim->max_tasks : 1, sizeof(task_t));
    if (!sim->slots || !sim->global || !sim->next || !sim->consensus || !sim->mask || !sim->mask_global || !sim->mask_next ||
        !sim->topk_scratch || !sim->perm || !sim->selected || !sim->clients || !sim->colluder_ids || !sim->tasks)
        goto fail;
    for (uint32_t i = 0; i < sim->n_slots; i++)
        if (!(sim->slots[i] = malloc(E * sizeof(uint32_t))))
            goto fail;
    if (needs & (FRL_ATTACK_NEEDS_CONSENSUS)) {
        sim->attack_rank = malloc(E * sizeof(uint32_t));
        sim->attack_scratch = malloc(frl_attack_scratch_size(&sim->layout));
        if (!sim->attack_rank || !sim->attack_scratch)
            goto fail;
    }
    if (needs & FRL_ATTACK_NEEDS_OWN_TRAINING) {
        sim->flipped_labels = malloc(train->n ? train->n : 1);
        if (!sim->flipped_labels)
            goto fail;
        frl_attack_flip_labels(train->labels, train->n, train->n_classes, sim->flipped_labels);
        sim->flipped = *train;
        sim->flipped.labels = sim->flipped_labels;
    }
    int maxb = cfg->train.batch > FRL_SIM_EVAL_BATCH ? cfg->train.batch : FRL_SIM_EVAL_BATCH;
    for (int w = 0; w < sim->threads; w++)
        if ((rc = frl_trainer_create(&sim->net, maxb, cfg->train.keep, cfg->train.rule, &sim->tr[w])) != 0)
            goto fail;
    /* Round 0's global ranking: the ranking of the initial scores. */
    if ((rc = frl_trainer_reset_scores(sim->tr[0])) != 0 || (rc = frl_trainer_get_ranking(sim->tr[0], sim->global)) != 0 ||
        (rc = mask_into(sim, sim->global, sim->mask_global)) != 0)
        goto fail;
    sim->global_version = 1;
    sim->round = cfg->first_round;
    *out = sim;
    return 0;
fail:
    frl_sim_destroy(sim);
    return rc ? rc : FRL_ENOMEM;
}

const uint32_t *frl_sim_global_ranking(const frl_sim_t *sim)
{
    return sim->global;
}

int frl_sim_set_global_ranking(frl_sim_t *sim, const uint32_t *ranking, frl_vote_reject_t *reject)
{
    if (!sim || !ranking)
        return FRL_EINVAL;
    void *scratch = malloc(frl_vote_validate_scratch_size(&sim->layout));
    if (!scratch)
        return FRL_ENOMEM;
    int rc = frl_vote_validate(&sim->layout, ranking, sim->layout.n_layers, NULL, scratch, reject);
    free(scratch);
    if (rc)
        return rc;
    /* Mask first: on failure the simulation keeps its old global ranking. */
    if ((rc = mask_into(sim, ranking, sim->mask_next)) != 0)
        return rc;
    memcpy(sim->global, ranking, sizeof(uint32_t) * sim->layout.total_edges);
    uint8_t *mtmp = sim->mask_global;
    sim->mask_global = sim->mask_next;
    sim->mask_next = mtmp;
    sim->global_version++; /* trainers reload it */
    return 0;
}

const frl_vote_layout_t *frl_sim_layout(const frl_sim_t *sim)
{
    return &sim->layout;
}

const frl_model_spec_t *frl_sim_spec(const frl_sim_t *sim)
{
    return &sim->net.spec;
}

const frl_partition_t *frl_sim_partition(const frl_sim_t *sim)
{
    return &sim->part;
}

uint32_t frl_sim_n_malicious(const frl_sim_t *sim)
{
    return sim->n_mal;
}

/* ----------------------------------------------------------------- workers */

static void run_task(frl_sim_t *sim, int w, task_t *t)
{
    frl_trainer_t *tr = sim->tr[w];
    if (t->kind == TASK_TRAIN) {
        frl_train_cfg_t c = sim->cfg.train;
        c.lr = frl_train_round_lr(sim->cfg.train.lr, sim->cfg.lr_decay, sim->round);
        frl_rng_t rng;
        frl_rng_init(&rng, sim->cfg.batch_seed_set ? sim->cfg.batch_seed : sim->cfg.seed, FRL_STREAM_SHUFFLE, t->client,
                     (uint32_t)sim->round);
        sim->tr_version[w] = 0;
        t->rc = frl_trainer_set_ranking(tr, sim->global);
        if (!t->rc)
            t->rc = frl_train_local(tr, t->data, frl_partition_client(&sim->part, t->client),
                                    frl_partition_size(&sim->part, t->client), &c, &rng, &t->stats, NULL, NULL);
        if (!t->rc)
            t->rc = frl_trainer_get_ranking(tr, t->out);
        if (sim->progress && sim->progress_lock_ok) {
            pthread_mutex_lock(&sim->progress_lock);
            sim->progress_done++;
            sim->progress(sim->progress_user, sim->round, sim->progress_done, sim->progress_total);
            pthread_mutex_unlock(&sim->progress_lock);
        }
    } else {
        if (sim->tr_version[w] != sim->global_version) {
            t->rc = frl_trainer_set_ranking(tr, sim->global);
            if (t->rc)
                return;
            sim->tr_version[w] = sim->global_version;
        }
        uint32_t idx[FRL_SIM_EVAL_CHUNK];
        for (uint32_t i = 0; i < t->n; i++)
            idx[i] = t->start + i;
        t->rc = frl_trainer_evaluate(tr, sim->test, idx, t->n, &sim->cfg.train, &t->accuracy, &t->loss);
    }
}

typedef struct worker_arg_s {
    frl_sim_t *sim;
    int w;
} worker_arg_t;

static void *worker_main(void *p)
{
    worker_arg_t *a = p;
    frl_sim_t *sim = a->sim;
    for (;;) {
        size_t i = atomic_fetch_add(&sim->run_next, 1);
        if (i >= sim->run_n)
            break;
        run_task(sim, a->w, &sim->run_tasks[i]);
    }
    return NULL;
}

/* Runs tasks[0..n) on up to sim->threads threads (the caller is worker 0).
 * Results land in the tasks; which worker runs which task does not change
 * any result. Returns the first task's error in task order. */
static int run_tasks(frl_sim_t *sim, task_t *tasks, size_t n)
{
    sim->run_tasks = tasks;
    sim->run_n = n;
    atomic_store(&sim->run_next, 0);
    int nt = sim->threads < (int)n ? sim->threads : (int)n;
    pthread_t th[FRL_SIM_MAX_THREADS];
    worker_arg_t args[FRL_SIM_MAX_THREADS];
    int started = 1;
    for (int w = 1; w < nt; w++) {
        args[w].sim = sim;
        args[w].w = w;
        if (pthread_create(&th[w], NULL, worker_main, &args[w]) != 0)
            break; /* fewer threads; the result is the same */
        started++;
    }
    args[0].sim = sim;
    args[0].w = 0;
    worker_main(&args[0]);
    for (int w = 1; w < started; w++)
        pthread_join(th[w], NULL);
    for (size_t i = 0; i < n; i++)
        if (tasks[i].rc)
            return tasks[i].rc;
    return 0;
}

int frl_sim_evaluate(frl_sim_t *sim, uint32_t n, double *accuracy, double *loss)
{
    if (n == 0 || n > sim->test->n)
        n = sim->test->n;
    size_t nt = ((size_t)n + FRL_SIM_EVAL_CHUNK - 1) / FRL_SIM_EVAL_CHUNK;
    for (size_t i = 0; i < nt; i++) {
        task_t *t = &sim->tasks[i];
        memset(t, 0, sizeof *t);
        t->kind = TASK_EVAL;
        t->start = (uint32_t)(i * FRL_SIM_EVAL_CHUNK);
        t->n = n - t->start < FRL_SIM_EVAL_CHUNK ? n - t->start : FRL_SIM_EVAL_CHUNK;
    }
    int rc = run_tasks(sim, sim->tasks, nt);
    if (rc)
        return rc;
    /* Combine in chunk order: the same sums for any thread count. */
    double correct = 0.0, loss_sum = 0.0;
    for (size_t i = 0; i < nt; i++) {
        correct += sim->tasks[i].accuracy * sim->tasks[i].n;
        loss_sum += sim->tasks[i].loss * sim->tasks[i].n;
    }
    if (accuracy)
        *accuracy = n ? floor(correct + 0.5) / n : 0.0;
    if (loss)
        *loss = n ? loss_sum / n : 0.0;
    return 0;
}

/* ------------------------------------------------------------------- round */

static double cpu_now(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

/* Insertion sort of the training tasks by descending shard size, ties by
 * ascending client id (a handful of tasks per round). */
static void sort_tasks_by_size(task_t *t, size_t n, const frl_partition_t *part)
{
    for (size_t i = 1; i < n; i++) {
        task_t x = t[i];
        uint32_t sx = frl_partition_size(part, x.client);
        size_t j = i;
        while (j > 0) {
            uint32_t sj = frl_partition_size(part, t[j - 1].client);
            if (sj > sx || (sj == sx && t[j - 1].client < x.client))
                break;
            t[j] = t[j - 1];
            j--;
        }
        t[j] = x;
    }
}

/* Draws the round's clients (ascending ids into sim->selected); returns the
 * number of malicious ones. */
static int sample_clients(frl_sim_t *sim, uint32_t *n_mal_sel, uint32_t *tries)
{
    const frl_sim_config_t *c = &sim->cfg;
    if (c->schedule) {
        memcpy(sim->selected, c->schedule + (size_t)sim->round * c->per_round, sizeof(uint32_t) * c->per_round);
        qsort(sim->selected, c->per_round, sizeof(uint32_t), cmp_u32);
        uint32_t mal = 0;
        for (uint32_t i = 0; i < c->per_round; i++)
            mal += sim->selected[i] < sim->n_mal;
        *n_mal_sel = mal;
        *tries = 0;
        return 0;
    }
    for (uint32_t t = 0; t < FRL_SIM_MAX_SAMPLE_TRIES; t++) {
        frl_rng_t rng;
        frl_rng_init(&rng, c->seed, FRL_STREAM_SAMPLE, (uint32_t)sim->round, t);
        for (uint32_t i = 0; i < c->clients; i++)
            sim->perm[i] = i;
        uint32_t mal = 0;
        for (uint32_t i = 0; i < c->per_round; i++) {
            uint32_t j = i + frl_rng_below(&rng, c->clients - i);
            uint32_t tmp = sim->perm[i];
            sim->perm[i] = sim->perm[j];
            sim->perm[j] = tmp;
            sim->selected[i] = sim->perm[i];
            mal += sim->perm[i] < sim->n_mal;
        }
        /* The reference's rule: keep the draw only while len(mal) < m / 2. */
        if (c->sampling == FRL_SIM_SAMPLING_PLAIN || 2 * (uint64_t)mal < c->per_round) {
            qsort(sim->selected, c->per_round, sizeof(uint32_t), cmp_u32);
            *n_mal_sel = mal;
            *tries = t + 1;
            return 0;
        }
    }
    return FRL_EINVAL;
}

/* The colluders of a round: min(n_mal, attack_trainers) attackers drawn
 * from all attackers, ascending. */
static uint32_t draw_colluders(frl_sim_t *sim)
{
    frl_rng_t rng;
    frl_rng_init(&rng, sim->cfg.seed, FRL_STREAM_ATTACK, (uint32_t)sim->round, UINT32_MAX);
    uint32_t k = sim->max_colluders;
    for (uint32_t i = 0; i < sim->n_mal; i++)
        sim->colluder_ids[i] = i;
    for (uint32_t i = 0; i < k; i++) {
        uint32_t j = i + frl_rng_below(&rng, sim->n_mal - i);
        uint32_t tmp = sim->colluder_ids[i];
        sim->colluder_ids[i] = sim->colluder_ids[j];
        sim->colluder_ids[j] = tmp;
    }
    qsort(sim->colluder_ids, k, sizeof(uint32_t), cmp_u32);
    return k;
}

/* Mask of the consensus order `order` into `out` (all layers). */
static int mask_into(frl_sim_t *sim, const uint32_t *order, uint8_t *out)
{
    for (int l = 0; l < sim->layout.n_layers; l++) {
        int rc = frl_mask_from_ranking(order + sim->layout.offset[l], sim->net.sorted_init[l], sim->layout.n_edges[l],
                                       sim->cfg.train.keep, sim->cfg.train.rule, out + sim->layout.offset[l], sim->topk_scratch);
        if (rc)
            return rc;
    }
    return 0;
}

static int mask_of(frl_sim_t *sim, const uint32_t *order)
{
    return mask_into(sim, order, sim->mask);
}

/* Fraction of all edges whose mask bit differs between a and b. */
static double mask_diff(const frl_sim_t *sim, const uint8_t *a, const uint8_t *b)
{
    uint64_t d = 0, E = sim->layout.total_edges;
    for (uint64_t e = 0; e < E; e++)
        d += a[e] != b[e];
    return E ? (double)d / (double)E : 0.0;
}

/* Builds the shared malicious ranking of reverse / boundary from the
 * colluders' rankings (slots[per_round ..]) or, without colluders, from
 * the global ranking. */
static int build_consensus_attack(frl_sim_t *sim, uint32_t n_coll)
{
    const frl_sim_config_t *c = &sim->cfg;
    frl_vote_tally_reset(sim->aux);
    int rc = 0;
    if (n_coll == 0) {
        rc = frl_vote_tally_add_valid(sim->aux, sim->global, 1);
    } else {
        for (uint32_t i = 0; i < n_coll && !rc; i++)
            rc = frl_vote_tally_add_valid(sim->aux, sim->slots[c->per_round + i], 1);
    }
    if (rc)
        return rc;
    if (c->attack == FRL_ATTACK_REVERSE)
        return frl_attack_reverse(&sim->layout, frl_vote_tally_sums(sim->aux, 0), sim->attack_rank, sim->attack_scratch);
    if ((rc = frl_vote_tally_finalize(sim->aux, sim->consensus)) != 0 || (rc = mask_of(sim, sim->consensus)) != 0)
        return rc;
    return frl_attack_boundary(&sim->layout, sim->consensus, sim->mask, c->boundary_band, sim->attack_rank, sim->attack_scratch);
}

/* Edges whose vote sum lies within a quarter of one trusted vote's range,
 * w (n_l - 1) / 4, of the sum at a cut of the new global mask: the edges a
 * single colluder moving them by a quarter of the layer (what the boundary
 * attack does under the abs rule) could push across. Summed over the cuts
 * of every layer (an edge near two cuts counts twice). */
static int margin_report(frl_sim_t *sim, const uint32_t *order, uint64_t *edges)
{
    *edges = 0;
    frl_vote_tally_t *t = frl_vote_round_tally(sim->vr);
    if (frl_vote_tally_votes(t) == 0)
        return 0;
    const uint64_t *sums = frl_vote_tally_sums(t, 0);
    int rc = mask_of(sim, order);
    if (rc)
        return rc;
    uint64_t w = sim->cfg.policy.mode == FRL_VOTE_POLICY_DOWNWEIGHT ? sim->cfg.policy.weight_ok : 1;
    for (int l = 0; l < sim->layout.n_layers; l++) {
        const uint32_t n = sim->layout.n_edges[l];
        if (n < 2)
            continue;
        const uint64_t off = sim->layout.offset[l];
        uint32_t cuts[8];
        size_t nc = frl_vote_mask_cuts(order + off, sim->mask + off, n, cuts, 8);
        if (nc > 8)
            nc = 8;
        frl_vote_margin_t m[8];
        if ((rc = frl_vote_margin(sums + off, order + off, n, cuts, nc, w * (uint64_t)(n - 1) / 4, m)) != 0)
            return rc;
        for (size_t i = 0; i < nc; i++)
            *edges += m[i].n_near;
    }
    return 0;
}

/* The new global mask (computed once, kept as the next round's previous
 * mask) and its churn against the previous one and, in a round
 * with malicious rankings, its distance from the plain vote of the round's
 * honest clients alone (what the attack, net of any policy or trimming,
 * changed). Uses sim->aux, sim->consensus and sim->mask, free once the
 * round's attack and margin are done. */
static int mask_effects(frl_sim_t *sim, int mal_ranked, frl_sim_round_t *rec)
{
    int rc;
    if ((rc = mask_into(sim, sim->next, sim->mask_next)) != 0)
        return rc;
    rec->mask_churn = mask_diff(sim, sim->mask_next, sim->mask_global);
    rec->attack_flips = NAN;
    if (!mal_ranked)
        return 0;
    frl_vote_tally_reset(sim->aux);
    for (uint32_t i = 0; i < sim->cfg.per_round; i++)
        if (sim->selected[i] >= sim->n_mal && (rc = frl_vote_tally_add_valid(sim->aux, sim->slots[i], 1)) != 0)
            return rc;
    if (frl_vote_tally_votes(sim->aux) == 0)
        return 0; /* no honest client this round: nothing to compare with */
    if ((rc = frl_vote_tally_finalize(sim->aux, sim->consensus)) != 0 || (rc = mask_of(sim, sim->consensus)) != 0)
        return rc;
    rec->attack_flips = mask_diff(sim, sim->mask_next, sim->mask);
    return 0;
}

int frl_sim_round(frl_sim_t *sim, frl_sim_round_t *rec)
{
    const frl_sim_config_t *c = &sim->cfg;
    if (sim->round >= c->rounds)
        return FRL_ESTATE;
    memset(rec, 0, sizeof *rec);
    const double t0 = frl_now_s(), cpu0 = cpu_now();
    rec->round = sim->round;
    rec->lr = frl_train_round_lr(c->train.lr, c->lr_decay, sim->round);
    uint32_t n_mal_sel = 0, tries = 0;
    int rc = sample_clients(sim, &n_mal_sel, &tries);
    if (rc)
        return rc;
    rec->n_selected = c->per_round;
    rec->selected = sim->selected;
    rec->n_malicious = n_mal_sel;
    rec->sample_tries = tries;

    /* Training tasks: honest clients (and malicious ones under "none"),
     * label-flipping clients, then the colluders. */
    const frl_attack_kind atk = sim->n_mal ? c->attack : FRL_ATTACK_NONE;
    size_t nt = 0;
    for (uint32_t i = 0; i < c->per_round; i++) {
        uint32_t u = sim->selected[i];
        int mal = u < sim->n_mal;
        if (mal && atk != FRL_ATTACK_NONE && atk != FRL_ATTACK_LABELFLIP)
            continue;
        task_t *t = &sim->tasks[nt++];
        memset(t, 0, sizeof *t);
        t->kind = TASK_TRAIN;
        t->client = u;
        t->slot = (int)i;
        t->data = (mal && atk == FRL_ATTACK_LABELFLIP) ? &sim->flipped : sim->train;
        t->out = sim->slots[i];
    }
    uint32_t n_coll = 0;
    const int consensus_attack = n_mal_sel > 0 && (frl_attack_needs(atk) & FRL_ATTACK_NEEDS_CONSENSUS);
    if (consensus_attack) {
        n_coll = draw_colluders(sim);
        for (uint32_t i = 0; i < n_coll; i++) {
            task_t *t = &sim->tasks[nt++];
            memset(t, 0, sizeof *t);
            t->kind = TASK_TRAIN;
            t->client = sim->colluder_ids[i];
            t->slot = -1;
            t->data = sim->train;
            t->out = sim->slots[c->per_round + i];
        }
    }
    rec->attack_trainings = n_coll;
    /* Largest shards first: with dynamic scheduling this balances the
     * threads (longest-processing-time rule). Only the execution order
     * changes; every task writes its own slot. */
    sort_tasks_by_size(sim->tasks, nt, &sim->part);
    sim->progress_done = 0;
    sim->progress_total = (uint32_t)nt;
    const double tt0 = frl_now_s();
    if ((rc = run_tasks(sim, sim->tasks, nt)) != 0)
        return rc;
    rec->train_seconds = frl_now_s() - tt0;
    for (uint32_t i = 0; i < c->per_round; i++) {
        frl_sim_client_t *cr = &sim->clients[i];
        memset(cr, 0, sizeof *cr);
        cr->id = sim->selected[i];
        cr->malicious = cr->id < sim->n_mal;
        cr->train_loss = cr->train_accuracy = cr->train_seconds = NAN;
        cr->vote.agreement = cr->vote.agreement_min = NAN;
    }
    for (size_t i = 0; i < nt; i++) {
        const task_t *t = &sim->tasks[i];
        rec->train_images += t->stats.images;
        if (t->slot < 0)
            continue;
        frl_sim_client_t *cr = &sim->clients[t->slot];
        cr->trained = 1;
        cr->train_images = t->stats.images;
        cr->train_loss = t->stats.loss;
        cr->train_accuracy = t->stats.accuracy;
        cr->train_seconds = t->stats.seconds;
    }
    rec->clients = sim->clients;

    /* Malicious rankings. */
    if (consensus_attack && (rc = build_consensus_attack(sim, n_coll)) != 0)
        return rc;
    if (atk == FRL_ATTACK_RANDOM) {
        for (uint32_t i = 0; i < c->per_round; i++) {
            uint32_t u = sim->selected[i];
            if (u >= sim->n_mal)
                continue;
            frl_rng_t rng;
            frl_rng_init(&rng, c->seed, FRL_STREAM_ATTACK, (uint32_t)sim->round, u);
            if ((rc = frl_attack_random(&sim->layout, &rng, sim->slots[i])) != 0)
                return rc;
        }
    }

    /* Vote, in ascending client id order. */
    const int mal_ranked = n_mal_sel > 0 && atk != FRL_ATTACK_NONE;
    const double tv0 = frl_now_s();
    if ((rc = frl_vote_round_begin(sim->vr, (uint64_t)sim->round, sim->global, sim->selected, c->per_round)) != 0)
        return rc;
    double amin = INFINITY, amax = -INFINITY, asum = 0.0, bsum = 0.0, msum = 0.0;
    uint32_t an = 0, bn = 0, mn = 0;
    for (uint32_t i = 0; i < c->per_round; i++) {
        uint32_t u = sim->selected[i];
        int mal = u < sim->n_mal;
        const uint32_t *ranking = (mal && consensus_attack) ? sim->attack_rank : sim->slots[i];
        frl_vote_result_t res;
        int src = frl_vote_round_submit(sim->vr, u, (uint64_t)sim->round, ranking, sim->layout.n_layers, NULL, &res);
        if (src != 0 && !(src <= FRL_EVOTE_LAYERS && src >= FRL_EVOTE_DROPPED))
            return src; /* an internal error, not a rejection of the vote */
        sim->clients[i].vote = res;
        if (!isnan(res.agreement)) {
            amin = res.agreement < amin ? res.agreement : amin;
            amax = res.agreement > amax ? res.agreement : amax;
            asum += res.agreement;
            an++;
            if (mal) {
                msum += res.agreement;
                mn++;
            } else {
                bsum += res.agreement;
                bn++;
            }
        }
    }
    frl_vote_round_stats_t vs;
    frl_vote_round_stats(sim->vr, &vs);
    rec->accepted = vs.accepted;
    rec->rejected = vs.rejected;
    rec->dropped = vs.dropped;
    rec->flagged = vs.flagged;
    rec->agree_min = an ? amin : NAN;
    rec->agree_max = an ? amax : NAN;
    rec->agree_mean = an ? asum / an : NAN;
    rec->agree_benign = bn ? bsum / bn : NAN;
    rec->agree_malicious = mn ? msum / mn : NAN;
    const uint32_t *plain_order = sim->next;
    if (vs.accepted == 0) {
        memcpy(sim->next, sim->global, sizeof(uint32_t) * sim->layout.total_edges); /* nothing counted: keep */
    } else if (c->trim && vs.accepted > 2 * c->trim) {
        if ((rc = frl_vote_round_finalize_trimmed(sim->vr, c->trim, sim->next)) != 0 ||
            (rc = frl_vote_round_finalize(sim->vr, sim->consensus)) != 0)
            return rc;
        plain_order = sim->consensus;
    } else if ((rc = frl_vote_round_finalize(sim->vr, sim->next)) != 0) {
        return rc;
    }
    if ((rc = margin_report(sim, plain_order, &rec->margin_edges)) != 0)
        return rc;
    rec->margin_frac = sim->layout.total_edges ? (double)rec->margin_edges / (double)sim->layout.total_edges : 0.0;
    if ((rc = mask_effects(sim, mal_ranked, rec)) != 0)
        return rc;
    const int honest_vote = !isnan(rec->attack_flips); /* sim->consensus holds it until the next round */
    rec->honest_accuracy = NAN;
    uint32_t *tmp = sim->global;
    sim->global = sim->next;
    sim->next = tmp;
    uint8_t *mtmp = sim->mask_global;
    sim->mask_global = sim->mask_next;
    sim->mask_next = mtmp;
    sim->global_version++;
    rec->vote_seconds = frl_now_s() - tv0;
    rec->seconds = frl_now_s() - t0;
    sim->round++;

    if ((sim->round % c->eval_every) == 0 || sim->round == c->rounds) {
        const double te0 = frl_now_s();
        rec->eval_n = c->eval_n && c->eval_n < sim->test->n ? c->eval_n : sim->test->n;
        if ((rc = frl_sim_evaluate(sim, rec->eval_n, &rec->accuracy, &rec->loss)) != 0)
            return rc;
        rec->evaluated = 1;
        if (honest_vote) {
            /* Evaluate the honest vote as if it were the global ranking;
             * the version bumps make every trainer reload whichever ranking
             * it evaluates or trains from next. */
            uint32_t *g = sim->global;
            sim->global = sim->consensus;
            sim->global_version++;
            rc = frl_sim_evaluate(sim, rec->eval_n, &rec->honest_accuracy, NULL);
            sim->global = g;
            sim->global_version++;
            if (rc)
                return rc;
        }
        rec->eval_seconds = frl_now_s() - te0;
    }
    rec->cpu_seconds = cpu_now() - cpu0;
    return 0;
}

/* -------------------------------------------------------------------- JSON */

/* Appends printf output to buf at *len; sets *len past cap on overflow. */
static void jcat(char *buf, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void jcat(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    *len += k < 0 ? cap : (size_t)k;
}

/* A double as JSON: null for NaN/inf. */
static void jnum(char *buf, size_t cap, size_t *len, const char *key, double v, const char *fmt)
{
    if (isfinite(v)) {
        /* fmt is "%.Nf" or "%.Ng": precision and style taken from it. */
        int prec = fmt[2] - '0';
        if (fmt[4] == 'f' || fmt[4] == 'g')
            prec = prec * 10 + (fmt[3] - '0');
        if (fmt[strlen(fmt) - 1] == 'g')
            jcat(buf, cap, len, ",\"%s\":%.*g", key, prec, v);
        else
            jcat(buf, cap, len, ",\"%s\":%.*f", key, prec, v);
    } else {
        jcat(buf, cap, len, ",\"%s\":null", key);
    }
}

/* "clients":[{...},...]: each selected client's training and vote. */
static void clients_json(const frl_sim_round_t *r, int with_timing, char *buf, size_t cap, size_t *len)
{
    jcat(buf, cap, len, ",\"clients\":[");
    for (uint32_t i = 0; r->clients && i < r->n_selected; i++) {
        const frl_sim_client_t *c = &r->clients[i];
        jcat(buf, cap, len, "%s{\"id\":%u,\"malicious\":%s,\"trained\":%s,\"train_images\":%llu", i ? "," : "", c->id,
             c->malicious ? "true" : "false", c->trained ? "true" : "false", (unsigned long long)c->train_images);
        jnum(buf, cap, len, "train_loss", c->train_loss, "%.9g");
        jnum(buf, cap, len, "train_accuracy", c->train_accuracy, "%.6f");
        jcat(buf, cap, len, ",\"vote\":\"%s\"", c->vote.code ? frl_err_name(c->vote.code) : "counted");
        jnum(buf, cap, len, "agreement", c->vote.agreement, "%.6f");
        jnum(buf, cap, len, "agreement_min", c->vote.agreement_min, "%.6f");
        jcat(buf, cap, len, ",\"weight\":%u,\"streak\":%u,\"flagged\":%s", c->vote.weight, c->vote.streak,
             c->vote.flagged ? "true" : "false");
        if (with_timing)
            jnum(buf, cap, len, "train_seconds", c->train_seconds, "%.3f");
        jcat(buf, cap, len, "}");
    }
    jcat(buf, cap, len, "]");
}

int frl_sim_round_json(const frl_sim_round_t *r, int with_timing, char *buf, size_t cap)
{
    size_t len = 0;
    jcat(buf, cap, &len, "{\"round\":%d", r->round);
    jnum(buf, cap, &len, "lr", r->lr, "%.9g");
    if (r->evaluated) {
        jnum(buf, cap, &len, "accuracy", r->accuracy, "%.6f");
        jnum(buf, cap, &len, "loss", r->loss, "%.9g");
        jcat(buf, cap, &len, ",\"eval_n\":%u", r->eval_n);
    } else {
        jcat(buf, cap, &len, ",\"accuracy\":null,\"loss\":null,\"eval_n\":0");
    }
    jcat(buf, cap, &len, ",\"selected\":[");
    for (uint32_t i = 0; i < r->n_selected; i++)
        jcat(buf, cap, &len, "%s%u", i ? "," : "", r->selected[i]);
    jcat(buf, cap, &len, "],\"malicious\":%u,\"sample_tries\":%u,\"attack_trainings\":%u", r->n_malicious, r->sample_tries,
         r->attack_trainings);
    jcat(buf, cap, &len, ",\"accepted\":%u,\"rejected\":%u,\"flagged\":%u,\"dropped\":%u", r->accepted, r->rejected, r->flagged,
         r->dropped);
    jnum(buf, cap, &len, "agree_min", r->agree_min, "%.6f");
    jnum(buf, cap, &len, "agree_mean", r->agree_mean, "%.6f");
    jnum(buf, cap, &len, "agree_max", r->agree_max, "%.6f");
    jnum(buf, cap, &len, "agree_benign", r->agree_benign, "%.6f");
    jnum(buf, cap, &len, "agree_malicious", r->agree_malicious, "%.6f");
    jcat(buf, cap, &len, ",\"margin_edges\":%llu", (unsigned long long)r->margin_edges);
    jnum(buf, cap, &len, "margin_frac", r->margin_frac, "%.6f");
    jnum(buf, cap, &len, "mask_churn", r->mask_churn, "%.6f");
    jnum(buf, cap, &len, "attack_flips", r->attack_flips, "%.6f");
    jnum(buf, cap, &len, "honest_accuracy", r->honest_accuracy, "%.6f");
    jcat(buf, cap, &len, ",\"train_images\":%llu", (unsigned long long)r->train_images);
    if (with_timing) {
        jnum(buf, cap, &len, "seconds", r->seconds, "%.3f");
        jnum(buf, cap, &len, "train_seconds", r->train_seconds, "%.3f");
        jnum(buf, cap, &len, "vote_seconds", r->vote_seconds, "%.3f");
        jnum(buf, cap, &len, "eval_seconds", r->eval_seconds, "%.3f");
        jnum(buf, cap, &len, "cpu_seconds", r->cpu_seconds, "%.3f");
    }
    clients_json(r, with_timing, buf, cap, &len);
    jcat(buf, cap, &len, "}");
    if (len >= cap)
        return FRL_ETOOBIG;
    return (int)len;
}

int frl_sim_config_json(const frl_sim_config_t *c, char *buf, size_t cap)
{
    size_t len = 0;
    char part[64], hex[65], bhex[65], bjson[68] = "null";
    if (frl_part_spec_format(&c->partition, part, sizeof part))
        snprintf(part, sizeof part, "?");
    frl_seed_to_hex(c->seed, hex);
    if (c->batch_seed_set) {
        frl_seed_to_hex(c->batch_seed, bhex);
        snprintf(bjson, sizeof bjson, "\"%s\"", bhex);
    }
    jcat(buf, cap, &len,
         "{\"model\":\"%s\",\"clients\":%u,\"per_round\":%u,\"rounds\":%d,\"first_round\":%d,\"local_epochs\":%d,"
         "\"partition\":\"%s\",\"lr\":%.9g,\"lr_decay\":%.9g,\"momentum\":%.9g,\"wd\":%.9g,\"batch\":%d,"
         "\"keep\":%.9g,\"rule\":\"%s\",\"seed\":\"%s\",\"batch_seed\":%s,"
         "\"threads\":%d,\"eval_every\":%d,\"eval_n\":%u,"
         "\"malicious\":%.9g,\"attack\":\"%s\",\"attack_trainers\":%u,\"boundary_band\":%.9g,\"sampling\":\"%s\","
         "\"policy\":\"%s\",\"policy_threshold\":%.9g,\"policy_rounds\":%u,\"policy_weight_ok\":%u,"
         "\"policy_weight_low\":%u,\"trim\":%u,\"schedule\":%s}",
         c->model, c->clients, c->per_round, c->rounds, c->first_round, c->train.epochs, part, c->train.lr, c->lr_decay,
         c->train.momentum, c->train.weight_decay, c->train.batch, c->train.keep, frl_mask_rule_name(c->train.rule), hex, bjson,
         c->threads, c->eval_every, c->eval_n, c->malicious, frl_attack_name(c->attack), c->attack_trainers, c->boundary_band,
         frl_sim_sampling_name(c->sampling), frl_sim_policy_name(c->policy.mode), c->policy.threshold, c->policy.rounds,
         c->policy.weight_ok, c->policy.weight_low, c->trim, c->schedule ? "true" : "false");
    if (len >= cap)
        return FRL_ETOOBIG;
    return (int)len;
}
