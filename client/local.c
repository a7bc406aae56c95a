/* The client's local side: Welcome checks, this client's shard, the frozen
 * network, the trainer, one round of local work and the attacks. Pure
 * computation and file reads; nothing here touches libuv or the network,
 * so frl__local_round can run on a worker thread. */
#include "client/client_internal.h"

#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_log.h"
#include "data/frl_partition.h"
#include "supermask/frl_ranking.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void copy_text(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

void frl__welcome_from_msg(const Frl__V1__Welcome *m, frl__welcome_t *w)
{
    memset(w, 0, sizeof *w);
    copy_text(w->federation_id, sizeof w->federation_id, m->federation_id);
    copy_text(w->model_name, sizeof w->model_name, m->model_name);
    memcpy(w->spec_hash, m->model_spec_hash.data, sizeof w->spec_hash); /* validated: 32 bytes */
    memcpy(w->seed, m->seed.data, sizeof w->seed);
    w->keep = m->keep_fraction;
    w->mask_rule = m->mask_rule;
    w->epochs = m->hyper->local_epochs;
    w->batch = m->hyper->batch_size;
    w->lr = m->hyper->lr;
    w->lr_decay = m->hyper->lr_decay;
    w->momentum = m->hyper->momentum;
    w->weight_decay = m->hyper->weight_decay;
    w->current_round = m->current_round;
    w->total_rounds = m->total_rounds;
    w->heartbeat_ms = m->heartbeat_ms;
}

static void hex8(const uint8_t *h, char out[17])
{
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

int frl__welcome_check(const frl__welcome_t *w, const char *expected_model, frl_model_spec_t *spec, char *why, size_t cap)
{
    if (expected_model && *expected_model && strcmp(expected_model, w->model_name) != 0)
        return frl_errorf(FRL_EMISMATCH, why, cap, "the server runs model '%s' but this client was started with --model %s",
                          w->model_name, expected_model);
    if (frl_model_spec_by_name(w->model_name, spec) != 0)
        return frl_errorf(FRL_EMISMATCH, why, cap, "the server's model '%s' is not in this client's model zoo", w->model_name);
    if (memcmp(spec->hash, w->spec_hash, sizeof spec->hash) != 0) {
        char a[17], b[17];
        hex8(spec->hash, a);
        hex8(w->spec_hash, b);
        return frl_errorf(FRL_EMISMATCH, why, cap,
                          "model spec hash mismatch for '%s': this client builds %s..., the server announces %s... "
                          "(different frl versions?)",
                          w->model_name, a, b);
    }
    if (w->mask_rule > FRL_MASK_SIGNED)
        return frl_errorf(FRL_EUNSUPPORTED, why, cap, "unknown mask rule %u", w->mask_rule);
    return 0;
}

int frl__shard_indices(const char *labels_path, const frl_part_spec_t *pspec, uint32_t shard, uint32_t shards,
                       const uint8_t seed[FRL_SEED_BYTES], uint32_t **idx, uint32_t *n, uint32_t *n_classes)
{
    uint8_t *labels = NULL;
    uint32_t nl = 0;
    *idx = NULL;
    *n = 0;
    if (shards == 0 || shard >= shards)
        return FRL_EINVAL;
    int r = frl_labels_load(labels_path, &labels, &nl);
    if (r)
        return r;
    uint32_t nc = 0;
    for (uint32_t i = 0; i < nl; i++)
        if ((uint32_t)labels[i] + 1 > nc)
            nc = (uint32_t)labels[i] + 1;
    frl_partition_t p = {0};
    r = frl_partition_make(pspec, labels, nl, nc ? nc : 1, shards, seed, &p);
    free(labels);
    if (r)
        return r;
    uint32_t m = frl_partition_size(&p, shard);
    uint32_t *out = malloc((m ? m : 1) * sizeof *out);
    if (!out) {
        frl_partition_free(&p);
        return FRL_ENOMEM;
    }
    memcpy(out, frl_partition_client(&p, shard), m * sizeof *out);
    frl_partition_free(&p);
    *idx = out;
    *n = m;
    *n_classes = nc;
    return 0;
}

void frl__local_free(frl__local_t *L)
{
    frl_trainer_destroy(L->tr);
    if (L->have_network)
        frl_network_free(&L->network);
    frl_dataset_free(&L->data);
    free(L->ranking);
    free(L->scratch);
    memset(L, 0, sizeof *L);
}

/* Loads this client's shard for seed w->seed. */
static int load_shard(frl__local_t *L, const frl_client_opts_t *o, const frl__welcome_t *w, char *why, size_t cap)
{
    char img[FRL_CLIENT_PATH_MAX + 64], lbl[FRL_CLIENT_PATH_MAX + 64];
    const char *dir = o->data_dir[0] ? o->data_dir : NULL;
    int r = frl_mnist_paths(dir, "train", img, sizeof img, lbl, sizeof lbl);
    if (r)
        return frl_errorf(r, why, cap, "training data not found: %s or %s (%s)", img, lbl, frl_strerror(r));
    uint32_t *idx = NULL, n = 0, nc = 0;
    double t0 = frl_now_s();
    r = frl__shard_indices(lbl, &o->partition, o->shard, o->shards, w->seed, &idx, &n, &nc);
    if (r)
        return frl_errorf(r, why, cap, "cannot partition %s: %s", lbl, frl_strerror(r));
    if (nc > (uint32_t)L->spec.n_classes) {
        free(idx);
        return frl_errorf(FRL_EMISMATCH, why, cap, "%s has %u classes, model %s has %d", lbl, nc, L->spec.name, L->spec.n_classes);
    }
    r = frl_dataset_load(img, lbl, idx, n, &L->data);
    free(idx);
    if (r)
        return frl_errorf(r, why, cap, "cannot load shard %u/%u from %s: %s", o->shard, o->shards, img, frl_strerror(r));
    if (L->data.rows * L->data.cols != (uint32_t)(L->spec.in_c * L->spec.in_h * L->spec.in_w)) {
        uint32_t rows = L->data.rows, cols = L->data.cols;
        frl_dataset_free(&L->data);
        return frl_errorf(FRL_EMISMATCH, why, cap, "images are %ux%u, model %s wants %dx%dx%d", rows, cols, L->spec.name,
                          L->spec.in_c, L->spec.in_h, L->spec.in_w);
    }
    if (o->attack == FRL_ATTACK_LABELFLIP)
        frl_attack_flip_labels(L->data.labels, L->data.n, (uint32_t)L->spec.n_classes, L->data.labels);
    char ptext[64];
    frl_part_spec_format(&o->partition, ptext, sizeof ptext);
    FRL_LOG_I("shard_loaded", "shard=%u shards=%u partition=%s examples=%u seconds=%.2f rss_kb=%ld", o->shard, o->shards, ptext,
              L->data.n, frl_now_s() - t0, frl_rss_kb());
    if (L->data.n == 0)
        FRL_LOG_W("shard_empty", "shard=%u shards=%u msg=\"this client holds no example; it will submit the global ranking back\"",
                  o->shard, o->shards);
    return 0;
}

int frl__local_setup(frl__local_t *L, const frl_client_opts_t *o, const frl__welcome_t *w, const frl_model_spec_t *spec, char *why,
                     size_t cap)
{
    int r;
    const int same_net = L->ready && strcmp(L->w.model_name, w->model_name) == 0 && memcmp(L->w.seed, w->seed, 32) == 0 &&
                         memcmp(L->w.spec_hash, w->spec_hash, 32) == 0;
    if (!same_net) {
        frl__local_free(L);
        L->spec = *spec;
        L->load_test = o->load_test;
        L->client_index = o->shard;
        for (int l = 0; l < spec->n_layers; l++)
            L->n_edges[l] = spec->layers[l].n_edges;
        if ((r = frl_vote_layout_init(&L->layout, spec->n_layers, L->n_edges)))
            return frl_errorf(r, why, cap, "model %s: bad layout", spec->name);
        L->scratch = o->load_test ? NULL : malloc(frl_vote_validate_scratch_size(&L->layout));
        if (!o->load_test && !L->scratch)
            return frl_errorf(FRL_ENOMEM, why, cap, "out of memory for the ranking of %s", spec->name);
        if (!o->load_test) {
            double t0 = frl_now_s();
            if ((r = frl_network_init(&L->network, spec, w->seed, 1)))
                return frl_errorf(r, why, cap, "cannot build network %s: %s", spec->name, frl_strerror(r));
            L->have_network = 1;
            FRL_LOG_I("network_ready", "model=%s edges=%llu seconds=%.2f", spec->name, (unsigned long long)spec->total_edges,
                      frl_now_s() - t0);
            if ((r = load_shard(L, o, w, why, cap)))
                return r;
        }
    }
    frl_train_cfg_t cfg;
    frl_train_cfg_default(&cfg);
    cfg.keep = w->keep;
    cfg.rule = (frl_mask_rule)w->mask_rule;
    cfg.epochs = (int)w->epochs;
    cfg.batch = (int)w->batch;
    cfg.lr = w->lr;
    cfg.momentum = w->momentum;
    cfg.weight_decay = w->weight_decay;
    if (!o->load_test) {
        const int same_tr = L->tr && L->cfg.batch == cfg.batch && L->cfg.keep == cfg.keep && L->cfg.rule == cfg.rule;
        if (!same_tr) {
            frl_trainer_destroy(L->tr);
            L->tr = NULL;
            if ((r = frl_trainer_create(&L->network, cfg.batch, cfg.keep, cfg.rule, &L->tr)))
                return frl_errorf(r, why, cap, "cannot create trainer: %s", frl_strerror(r));
            FRL_LOG_I("trainer_ready", "batch=%d keep=%g rule=%s trainer_kb=%zu rss_kb=%ld", cfg.batch, cfg.keep,
                      frl_mask_rule_name(cfg.rule), frl_trainer_bytes(L->tr) / 1024, frl_rss_kb());
        }
    }
    L->cfg = cfg;
    L->w = *w;
    L->ready = 1;
    return 0;
}

Frl__V1__RankingBlob *frl__ranking_copy(const Frl__V1__RankingBlob *g)
{
    size_t n = g->n_layers;
    size_t head = sizeof(Frl__V1__RankingBlob) + n * (sizeof(Frl__V1__LayerRanking) + sizeof(void *));
    head = (head + 15) & ~(size_t)15;
    size_t total = head;
    for (size_t l = 0; l < n; l++)
        total += g->layers[l]->packed.len;
    uint8_t *mem = malloc(total);
    if (!mem)
        return NULL;
    Frl__V1__RankingBlob *blob = (Frl__V1__RankingBlob *)mem;
    Frl__V1__LayerRanking *layers = (Frl__V1__LayerRanking *)(blob + 1);
    Frl__V1__LayerRanking **ptrs = (Frl__V1__LayerRanking **)(layers + n);
    frl__v1__ranking_blob__init(blob);
    blob->encoding = g->encoding;
    blob->n_layers = n;
    blob->layers = ptrs;
    uint8_t *p = mem + head;
    for (size_t l = 0; l < n; l++) {
        frl__v1__layer_ranking__init(&layers[l]);
        layers[l].n_edges = g->layers[l]->n_edges;
        layers[l].packed.data = p;
        layers[l].packed.len = g->layers[l]->packed.len;
        memcpy(p, g->layers[l]->packed.data, g->layers[l]->packed.len);
        ptrs[l] = &layers[l];
        p += g->layers[l]->packed.len;
    }
    return blob;
}

int frl__local_check_shape(const frl__local_t *L, const Frl__V1__RankingBlob *g, char *why, size_t cap)
{
    if (!L->ready)
        return frl_errorf(FRL_ESTATE, why, cap, "task before welcome");
    if ((int)g->n_layers != L->layout.n_layers)
        return frl_errorf(FRL_EVOTE_LAYERS, why, cap, "global ranking has %zu layers, model %s has %d", g->n_layers, L->spec.name,
                          L->layout.n_layers);
    for (int l = 0; l < L->layout.n_layers; l++)
        if (g->layers[l]->n_edges != L->layout.n_edges[l])
            return frl_errorf(FRL_EVOTE_LENGTH, why, cap, "global ranking layer %d has %u edges, model %s has %u", l,
                              g->layers[l]->n_edges, L->spec.name, L->layout.n_edges[l]);
    return 0;
}

int frl__local_take_task(frl__local_t *L, const Frl__V1__RankingBlob *g, char *why, size_t cap)
{
    int rs = frl__local_check_shape(L, g, why, cap);
    if (rs)
        return rs;
    if (L->load_test)
        return 0; /* the global ranking is not used */
    /* The ranking buffer (4 bytes per edge) lives from here until the
     * round's ranking is packed: not between rounds. */
    if (!L->ranking && !(L->ranking = malloc((size_t)L->layout.total_edges * sizeof *L->ranking)))
        return frl_errorf(FRL_ENOMEM, why, cap, "out of memory for the global ranking");
    for (int l = 0; l < L->layout.n_layers; l++) {
        int r = frl_msg_ranking_layer(g, (size_t)l, L->ranking + L->layout.offset[l]);
        if (r)
            return frl_errorf(r, why, cap, "global ranking layer %d does not unpack: %s", l, frl_strerror(r));
    }
    frl_vote_reject_t rej;
    int r = frl_vote_validate(&L->layout, L->ranking, L->layout.n_layers, NULL, L->scratch, &rej);
    if (r)
        return frl_errorf(r, why, cap, "global ranking is not a permutation: %s (layer %d, position %lld)", frl_strerror(r),
                          rej.layer, (long long)rej.index);
    return 0;
}

/* ---- attacks ---- */

static void reverse_u32(uint32_t *v, size_t n)
{
    for (size_t i = 0, j = n ? n - 1 : 0; i < j; i++, j--) {
        uint32_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

void frl__attack_reverse(uint32_t *ranking, const frl_vote_layout_t *layout)
{
    for (int l = 0; l < layout->n_layers; l++)
        reverse_u32(ranking + layout->offset[l], layout->n_edges[l]);
}

int frl__attack_boundary(frl__local_t *L)
{
    const frl_vote_layout_t *lay = &L->layout;
    const size_t n = (size_t)lay->total_edges;
    uint8_t *mask = malloc(n);
    void *tk = malloc(frl_topk_scratch_size(lay->max_layer_edges));
    uint32_t *out = malloc(n * sizeof *out);
    void *scratch = malloc(frl_attack_scratch_size(lay));
    int r = FRL_ENOMEM;
    if (!mask || !tk || !out || !scratch)
        goto out;
    for (int l = 0; l < lay->n_layers; l++) {
        r = frl_mask_from_ranking(L->ranking + lay->offset[l], L->network.sorted_init[l], lay->n_edges[l], L->cfg.keep, L->cfg.rule,
                                  mask + lay->offset[l], tk);
        if (r)
            goto out;
    }
    r = frl_attack_boundary(lay, L->ranking, mask, FRL_ATTACK_DEFAULT_BAND, out, scratch);
    if (r == 0)
        memcpy(L->ranking, out, n * sizeof *out);
out:
    free(mask);
    free(tk);
    free(out);
    free(scratch);
    return r;
}

static void on_progress(void *user, int epoch, uint64_t step, uint64_t total, double loss)
{
    frl__progress_t *p = user;
    if (!p->tty)
        return;
    double el = frl_now_s() - p->t0;
    double eta = step ? el * (double)(total - step) / (double)step : 0.0;
    fprintf(stderr, "\rround %u  epoch %d  step %llu/%llu  loss %.4f  eta %.0fs   ", p->round, epoch + 1, (unsigned long long)step,
            (unsigned long long)total, loss, eta);
    fflush(stderr);
}

void frl__local_round(frl__local_t *L, frl_attack_kind attack, uint32_t round, double lr, frl__progress_t *prog,
                      frl__round_result_t *res)
{
    memset(res, 0, sizeof *res);
    double t0 = frl_now_s();
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    int r = 0;
    /* Rounds on the wire count from 1 (frl-server); the seeded streams use
     * frl-sim's 0-based numbering, so client u of round r draws the same
     * mini-batch order (and attack randomness) in both. */
    const uint32_t sr = round > 0 ? round - 1 : 0;
    if (!L->ranking && !(L->ranking = malloc((size_t)L->layout.total_edges * sizeof *L->ranking))) {
        r = FRL_ENOMEM;
        goto out;
    }
    if (L->load_test || attack == FRL_ATTACK_RANDOM) {
        /* No training: a uniformly random permutation per layer. */
        frl_rng_t rng;
        frl_rng_init(&rng, L->w.seed, FRL_STREAM_ATTACK, sr, L->client_index);
        if ((r = frl_attack_random(&L->layout, &rng, L->ranking)))
            goto out;
    } else {
        frl_train_cfg_t cfg = L->cfg;
        cfg.lr = lr;
        frl_rng_t rng;
        frl_rng_init(&rng, L->w.seed, FRL_STREAM_SHUFFLE, L->client_index, sr);
        if ((r = frl_trainer_set_ranking(L->tr, L->ranking)))
            goto out;
        /* Not needed while training: give its pages back (mmap'd). */
        free(L->ranking);
        L->ranking = NULL;
        FRL_LOG_D("round_step", "round=%u step=scores_set rss_kb=%ld", round, frl_rss_kb());
        if (L->data.n > 0) {
            frl_train_stats_t st;
            if (prog)
                prog->t0 = frl_now_s();
            r = frl_train_local(L->tr, &L->data, NULL, L->data.n, &cfg, &rng, &st, prog && prog->tty ? on_progress : NULL, prog);
            if (prog && prog->tty)
                fputc('\n', stderr);
            if (r)
                goto out;
            res->loss = st.loss;
            res->images = st.images;
        }
        if (!(L->ranking = malloc((size_t)L->layout.total_edges * sizeof *L->ranking))) {
            r = FRL_ENOMEM;
            goto out;
        }
        FRL_LOG_D("round_step", "round=%u step=trained rss_kb=%ld", round, frl_rss_kb());
        if ((r = frl_trainer_get_ranking(L->tr, L->ranking)))
            goto out;
        if (attack == FRL_ATTACK_REVERSE)
            frl__attack_reverse(L->ranking, &L->layout);
        else if (attack == FRL_ATTACK_BOUNDARY && (r = frl__attack_boundary(L)))
            goto out;
    }
    const uint32_t *layers[FRL_MAX_LAYERS];
    for (int l = 0; l < L->layout.n_layers; l++)
        layers[l] = L->ranking + L->layout.offset[l];
    r = frl_msg_ranking_new(layers, L->layout.n_edges, (size_t)L->layout.n_layers, &res->blob);
    FRL_LOG_D("round_step", "round=%u step=packed rss_kb=%ld peak_rss_kb=%ld", round, frl_rss_kb(), frl_peak_rss_kb());
out:
    free(L->ranking);
    L->ranking = NULL;
    res->status = r;
    res->seconds = frl_now_s() - t0;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    res->cpu_seconds = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
    res->peak_rss_kb = frl_peak_rss_kb();
}
