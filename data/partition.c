/* Partitioners. Each one decides an owner (a client, or none) for every
 * example; one shared step then turns the owners into the CSR layout of
 * frl_partition_t, visiting examples in ascending order so that every
 * client's list comes out sorted.
 *
 * Draw order on the stream frl_rng_init(seed, FRL_STREAM_PARTITION, 0, 0),
 * which fixes every result (changing it changes every split):
 *   IID        one frl_rng_shuffle_u32 of 0..n-1.
 *   Dirichlet  for each class in order: one frl_rng_shuffle_u32 of the
 *              class's indices (ascending before), then n_clients Gamma
 *              draws for u = 0..n_clients-1.
 *   shards     one frl_rng_shuffle_u32 of the shard ids 0..S-1. */
#include "data/frl_partition.h"
#include "common/frl_error.h"
#include "common/frl_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_OWNER UINT32_MAX

int frl_part_spec_parse(const char *text, frl_part_spec_t *out)
{
    if (!text || !out)
        return FRL_EINVAL;
    frl_part_spec_t s = {FRL_PART_IID, 1.0, 2};
    if (strcmp(text, "iid") == 0) {
        s.kind = FRL_PART_IID;
    } else if (strcmp(text, "dirichlet") == 0) {
        s.kind = FRL_PART_DIRICHLET;
    } else if (strncmp(text, "dirichlet:", 10) == 0) {
        const char *num = text + 10;
        /* strtod would skip leading spaces and accept "nan"/"inf": only a
         * plain number starting with a digit or a point is taken. */
        if (!((*num >= '0' && *num <= '9') || *num == '.'))
            return FRL_EINVAL;
        char *end = NULL;
        double a = strtod(num, &end);
        if (end == num || *end != '\0' || !isfinite(a) || a < FRL_PART_MIN_ALPHA || a > FRL_PART_MAX_ALPHA)
            return FRL_EINVAL;
        s.kind = FRL_PART_DIRICHLET;
        s.alpha = a;
    } else if (strcmp(text, "shards") == 0) {
        s.kind = FRL_PART_SHARDS;
    } else if (strncmp(text, "shards:", 7) == 0) {
        const char *p = text + 7;
        uint64_t k = 0;
        if (*p == '\0')
            return FRL_EINVAL;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return FRL_EINVAL;
            k = k * 10 + (uint64_t)(*p - '0');
            if (k > FRL_PART_MAX_SHARDS_PER_CLIENT)
                return FRL_EINVAL;
        }
        if (k == 0)
            return FRL_EINVAL;
        s.kind = FRL_PART_SHARDS;
        s.shards_per_client = (uint32_t)k;
    } else {
        return FRL_EINVAL;
    }
    *out = s;
    return 0;
}

static int spec_valid(const frl_part_spec_t *spec)
{
    switch (spec->kind) {
    case FRL_PART_IID:
        return 1;
    case FRL_PART_DIRICHLET:
        return isfinite(spec->alpha) && spec->alpha >= FRL_PART_MIN_ALPHA && spec->alpha <= FRL_PART_MAX_ALPHA;
    case FRL_PART_SHARDS:
        return spec->shards_per_client >= 1 && spec->shards_per_client <= FRL_PART_MAX_SHARDS_PER_CLIENT;
    }
    return 0;
}

int frl_part_spec_format(const frl_part_spec_t *spec, char *buf, size_t cap)
{
    if (!spec || !buf || cap == 0 || !spec_valid(spec))
        return FRL_EINVAL;
    int len;
    switch (spec->kind) {
    case FRL_PART_DIRICHLET:
        len = snprintf(buf, cap, "dirichlet:%.17g", spec->alpha);
        break;
    case FRL_PART_SHARDS:
        len = snprintf(buf, cap, "shards:%u", (unsigned)spec->shards_per_client);
        break;
    default:
        len = snprintf(buf, cap, "iid");
        break;
    }
    return (len < 0 || (size_t)len >= cap) ? FRL_ETOOBIG : 0;
}

/* Standard normal variates by Marsaglia's polar method, which needs only
 * log (libm) and sqrt (correctly rounded by IEEE 754), and no cos/sin. Each
 * accepted pair gives two variates; the second is kept for the next call. */
typedef struct gauss_s {
    frl_rng_t *rng;
    int has_spare;
    double spare;
} gauss_t;

static double gauss_next(gauss_t *g)
{
    if (g->has_spare) {
        g->has_spare = 0;
        return g->spare;
    }
    double x, y, s;
    do {
        /* 2u - 1 is exact for u = k * 2^-53, so x, y are in [-1, 1). */
        x = 2.0 * frl_rng_unit_f64(g->rng) - 1.0;
        y = 2.0 * frl_rng_unit_f64(g->rng) - 1.0;
        s = x * x + y * y;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    g->spare = y * f;
    g->has_spare = 1;
    return x * f;
}

/* Returns log(X) for X ~ Gamma(a, 1), a > 0, by Marsaglia & Tsang (2000),
 * "A simple method for generating gamma variables". For a < 1 it draws
 * X' ~ Gamma(a + 1) and then U uniform in (0, 1], and X = X' * U^(1/a)
 * (the paper's boost). Working in logs keeps tiny alphas from underflowing
 * to an all-zero Dirichlet draw. */
static double log_gamma_draw(gauss_t *g, double a)
{
    double shape = a < 1.0 ? a + 1.0 : a;
    double d = shape - 1.0 / 3.0;
    double c = 1.0 / sqrt(9.0 * d);
    double lx;
    for (;;) {
        double x, v;
        do {
            x = gauss_next(g);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = frl_rng_unit_f64(g->rng);
        double x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2) {
            lx = log(d * v);
            break;
        }
        if (u > 0.0 && log(u) < 0.5 * x2 + d * (1.0 - v + log(v))) {
            lx = log(d * v);
            break;
        }
    }
    if (a < 1.0) {
        double u = 1.0 - frl_rng_unit_f64(g->rng); /* in (0, 1] */
        lx += log(u) / a;
    }
    return lx;
}

/* Rounds x >= 0 (x < 2^52) to the nearest integer, halves to even, as
 * numpy's round() does. Only exact operations (floor, subtraction of a
 * double's own integer part, comparison). */
static uint64_t round_half_even(double x)
{
    double f = floor(x);
    double r = x - f;
    uint64_t k = (uint64_t)f;
    if (r > 0.5 || (r == 0.5 && (k & 1)))
        k++;
    return k;
}

/* Example indices sorted by (label, index) (a stable counting sort), and
 * each class's start: class c is sorted[start[c] .. start[c+1]). */
static void sort_by_label(const uint8_t *labels, uint32_t n, uint32_t n_classes, uint32_t *sorted, uint32_t start[257])
{
    memset(start, 0, (n_classes + 1) * sizeof *start);
    for (uint32_t i = 0; i < n; i++)
        start[labels[i] + 1]++;
    for (uint32_t c = 0; c < n_classes; c++)
        start[c + 1] += start[c];
    uint32_t cur[256];
    memcpy(cur, start, n_classes * sizeof *cur);
    for (uint32_t i = 0; i < n; i++)
        sorted[cur[labels[i]]++] = i;
}

static void split_iid(frl_rng_t *rng, uint32_t n, uint32_t n_clients, uint32_t *perm, uint32_t *owner)
{
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    frl_rng_shuffle_u32(rng, perm, n);
    uint32_t base = n / n_clients, extra = n % n_clients, j = 0;
    for (uint32_t u = 0; u < n_clients; u++) {
        uint32_t size = base + (u < extra ? 1 : 0);
        for (uint32_t t = 0; t < size; t++)
            owner[perm[j++]] = u;
    }
}

/* The reference's Dirichlet split, class by class (see frl_partition.h).
 * `sorted`/`start` come from sort_by_label; `logw` has n_clients slots. */
static void split_dirichlet(frl_rng_t *rng, double alpha, uint32_t n_classes, uint32_t n_clients, uint32_t *sorted,
                            const uint32_t *start, double *logw, uint32_t *owner)
{
    gauss_t g = {rng, 0, 0.0};
    for (uint32_t c = 0; c < n_classes; c++) {
        uint32_t *idx = sorted + start[c];
        uint32_t len = start[c + 1] - start[c];
        frl_rng_shuffle_u32(rng, idx, len);

        /* p_u = G_u / sum(G) computed as exp(log G_u - max) / sum(exp(...)),
         * summed in client order. */
        double mx = -INFINITY;
        for (uint32_t u = 0; u < n_clients; u++) {
            logw[u] = log_gamma_draw(&g, alpha);
            if (logw[u] > mx)
                mx = logw[u];
        }
        double sum = 0.0;
        for (uint32_t u = 0; u < n_clients; u++) {
            logw[u] = exp(logw[u] - mx);
            sum += logw[u];
        }
        uint32_t pos = 0;
        for (uint32_t u = 0; u < n_clients && pos < len; u++) {
            double want = (double)len * (logw[u] / sum);
            uint64_t k = round_half_even(want);
            if (k > len - pos)
                k = len - pos;
            for (uint64_t t = 0; t < k; t++)
                owner[idx[pos++]] = u;
        }
        /* idx[pos .. len) stay unassigned, as in the reference. */
    }
}

/* Label-sorted shards of near-equal size (shard s is
 * sorted[s*n/S .. (s+1)*n/S)), dealt k at a time after a shuffle. */
static void split_shards(frl_rng_t *rng, uint32_t n, uint32_t n_clients, uint32_t k, const uint32_t *sorted, uint32_t *shard_ids,
                         uint32_t *owner)
{
    uint32_t n_shards = n_clients * k; /* the caller checked that this does not wrap */
    if (n_shards == 0)
        return;
    for (uint32_t s = 0; s < n_shards; s++)
        shard_ids[s] = s;
    frl_rng_shuffle_u32(rng, shard_ids, n_shards);
    for (uint32_t u = 0; u < n_clients; u++) {
        for (uint32_t t = 0; t < k; t++) {
            uint64_t s = shard_ids[(uint64_t)u * k + t];
            uint64_t lo = s * n / n_shards, hi = (s + 1) * n / n_shards;
            for (uint64_t j = lo; j < hi; j++)
                owner[sorted[j]] = u;
        }
    }
}

/* Turns owner[0..n) into the CSR arrays of `out`. Examples are visited in
 * ascending order, so each client's list is sorted. */
static int build_csr(const uint32_t *owner, uint32_t n, uint32_t n_clients, frl_partition_t *out)
{
    uint32_t *offsets = calloc((size_t)n_clients + 1, sizeof *offsets);
    if (!offsets)
        return FRL_ENOMEM;
    uint32_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (owner[i] != NO_OWNER) {
            offsets[owner[i] + 1]++;
            total++;
        }
    }
    uint32_t *indices = malloc(total ? (size_t)total * sizeof *indices : 1);
    if (!indices) {
        free(offsets);
        return FRL_ENOMEM;
    }
    /* Exclusive scan shifted by one: offsets[u + 1] is client u's write
     * cursor; after the fill it holds client u's end, i.e. its final value. */
    uint32_t run = 0;
    for (uint32_t u = 0; u < n_clients; u++) {
        uint32_t cnt = offsets[u + 1];
        offsets[u + 1] = run;
        run += cnt;
    }
    for (uint32_t i = 0; i < n; i++)
        if (owner[i] != NO_OWNER)
            indices[offsets[owner[i] + 1]++] = i;
    offsets[0] = 0;
    out->n_clients = n_clients;
    out->offsets = offsets;
    out->indices = indices;
    return 0;
}

int frl_partition_make(const frl_part_spec_t *spec, const uint8_t *labels, uint32_t n, uint32_t n_classes, uint32_t n_clients,
                       const uint8_t seed[32], frl_partition_t *out)
{
    if (!out)
        return FRL_EINVAL;
    memset(out, 0, sizeof *out);
    if (!spec || !seed || (n > 0 && !labels) || n_clients == 0 || n_clients == UINT32_MAX || n_classes == 0 || n_classes > 256 ||
        !spec_valid(spec))
        return FRL_EINVAL;
    if (spec->kind == FRL_PART_SHARDS && (uint64_t)n_clients * spec->shards_per_client > UINT32_MAX)
        return FRL_EINVAL;
    for (uint32_t i = 0; i < n; i++)
        if (labels[i] >= n_classes)
            return FRL_ERANGE;

    int rc = FRL_ENOMEM;
    uint32_t *owner = malloc(n ? (size_t)n * sizeof *owner : 1);
    uint32_t *work = malloc(n ? (size_t)n * sizeof *work : 1); /* perm or label-sorted indices */
    uint32_t *extra = NULL;                                    /* shard ids */
    double *logw = NULL;
    uint32_t start[257];
    frl_rng_t rng;
    if (!owner || !work)
        goto done;
    for (uint32_t i = 0; i < n; i++)
        owner[i] = NO_OWNER;
    frl_rng_init(&rng, seed, FRL_STREAM_PARTITION, 0, 0);

    switch (spec->kind) {
    case FRL_PART_IID:
        split_iid(&rng, n, n_clients, work, owner);
        break;
    case FRL_PART_DIRICHLET:
        logw = malloc((size_t)n_clients * sizeof *logw);
        if (!logw)
            goto done;
        sort_by_label(labels, n, n_classes, work, start);
        split_dirichlet(&rng, spec->alpha, n_classes, n_clients, work, start, logw, owner);
        break;
    case FRL_PART_SHARDS:
        extra = malloc((size_t)n_clients * spec->shards_per_client * sizeof *extra);
        if (!extra)
            goto done;
        sort_by_label(labels, n, n_classes, work, start);
        split_shards(&rng, n, n_clients, spec->shards_per_client, work, extra, owner);
        break;
    }
    rc = build_csr(owner, n, n_clients, out);
done:
    free(owner);
    free(work);
    free(extra);
    free(logw);
    return rc;
}

void frl_partition_free(frl_partition_t *p)
{
    if (!p)
        return;
    free(p->offsets);
    free(p->indices);
    memset(p, 0, sizeof *p);
}

int frl_partition_format(const frl_partition_t *p, char **text, size_t *len)
{
    if (!text || !len)
        return FRL_EINVAL;
    *text = NULL;
    *len = 0;
    if (!p || (p->n_clients && !p->offsets))
        return FRL_EINVAL;
    size_t total = p->n_clients ? p->offsets[p->n_clients] : 0;
    size_t cap = total * 11 + p->n_clients + 1, n = 0; /* an index is at most 10 digits and a separator */
    char *t = malloc(cap);
    if (!t)
        return FRL_ENOMEM;
    for (uint32_t u = 0; u < p->n_clients; u++) {
        for (uint32_t k = p->offsets[u]; k < p->offsets[u + 1]; k++)
            n += (size_t)snprintf(t + n, cap - n, k > p->offsets[u] ? " %u" : "%u", p->indices[k]);
        t[n++] = '\n';
    }
    t[n] = 0;
    *text = t;
    *len = n;
    return 0;
}
