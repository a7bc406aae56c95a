/* Partitioners: spec parsing, coverage and overlap of each split, seeding,
 * and the statistics of the Gamma sampler behind the Dirichlet split. The
 * .c file is included so that its static helpers can be tested too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/partition.c"

/* ---- helpers ------------------------------------------------------------ */

/* Synthetic labels: 10 classes of unequal sizes (class c has 400 + 40c
 * examples, interleaved), n = 5800. */
#define SYN_N 5800u
static uint8_t *syn_labels(void)
{
    uint8_t *l = malloc(SYN_N);
    assert_non_null(l);
    uint32_t left[10], k = 0;
    for (int c = 0; c < 10; c++)
        left[c] = 400u + 40u * (uint32_t)c;
    while (k < SYN_N) {
        for (int c = 0; c < 10 && k < SYN_N; c++) {
            if (left[c]) {
                left[c]--;
                l[k++] = (uint8_t)c;
            }
        }
    }
    return l;
}

static void seed_of(uint64_t x, uint8_t seed[32])
{
    frl_seed_from_u64(x, seed);
}

/* Checks the structural invariants of any partition: offsets monotone,
 * every index < n, no index twice, each client's list strictly ascending.
 * Returns how many examples are assigned. */
static uint32_t check_partition(const frl_partition_t *p, uint32_t n, uint32_t n_clients)
{
    assert_int_equal(p->n_clients, n_clients);
    assert_non_null(p->offsets);
    assert_non_null(p->indices);
    assert_int_equal(p->offsets[0], 0);
    uint8_t *seen = calloc(n ? n : 1, 1);
    assert_non_null(seen);
    for (uint32_t u = 0; u < n_clients; u++) {
        assert_true(p->offsets[u] <= p->offsets[u + 1]);
        for (uint32_t j = p->offsets[u]; j < p->offsets[u + 1]; j++) {
            uint32_t i = p->indices[j];
            assert_true(i < n);
            if (seen[i])
                fail_msg("example %u assigned twice (client %u)", i, u);
            seen[i] = 1;
            if (j > p->offsets[u])
                assert_true(p->indices[j - 1] < i);
        }
    }
    free(seen);
    return p->offsets[n_clients];
}

static int same_partition(const frl_partition_t *a, const frl_partition_t *b)
{
    if (a->n_clients != b->n_clients)
        return 0;
    if (memcmp(a->offsets, b->offsets, ((size_t)a->n_clients + 1) * sizeof *a->offsets) != 0)
        return 0;
    return memcmp(a->indices, b->indices, (size_t)a->offsets[a->n_clients] * sizeof *a->indices) == 0;
}

/* ---- frl_part_spec_parse / format ---------------------------------------- */

static void test_spec_parse_accepts_every_documented_form(void **state)
{
    frl_part_spec_t s;
    assert_int_equal(frl_part_spec_parse("iid", &s), 0);
    assert_int_equal(s.kind, FRL_PART_IID);
    assert_int_equal(frl_part_spec_parse("dirichlet", &s), 0);
    assert_int_equal(s.kind, FRL_PART_DIRICHLET);
    assert_true(s.alpha == 1.0);
    assert_int_equal(frl_part_spec_parse("dirichlet:0.5", &s), 0);
    assert_int_equal(s.kind, FRL_PART_DIRICHLET);
    assert_true(s.alpha == 0.5);
    assert_int_equal(frl_part_spec_parse("dirichlet:.25", &s), 0);
    assert_true(s.alpha == 0.25);
    assert_int_equal(frl_part_spec_parse("dirichlet:1e2", &s), 0);
    assert_true(s.alpha == 100.0);
    assert_int_equal(frl_part_spec_parse("shards", &s), 0);
    assert_int_equal(s.kind, FRL_PART_SHARDS);
    assert_int_equal(s.shards_per_client, 2);
    assert_int_equal(frl_part_spec_parse("shards:3", &s), 0);
    assert_int_equal(s.kind, FRL_PART_SHARDS);
    assert_int_equal(s.shards_per_client, 3);
}

static void test_spec_parse_rejects_bad_text_without_side_effect(void **state)
{
    static const char *bad[] = {
        "",
        "IID",
        "iid ",
        " iid",
        "iid:1",
        "dirichlet:",
        "dirichlet:0",
        "dirichlet:-1",
        "dirichlet:+1",
        "dirichlet:nan",
        "dirichlet:inf",
        "dirichlet:1x",
        "dirichlet: 1",
        "dirichlet:1e-9",
        "dirichlet:1e7",
        "dirichlet:1e999",
        "dirichlet0.5",
        "shards:",
        "shards:0",
        "shards:-1",
        "shards:2x",
        "shards: 2",
        "shards:99999999999",
        "shards:1000001",
        "shard",
        "foo",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        frl_part_spec_t s = {FRL_PART_SHARDS, 42.0, 42};
        if (frl_part_spec_parse(bad[i], &s) != FRL_EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_int_equal(s.kind, FRL_PART_SHARDS);
        assert_true(s.alpha == 42.0);
        assert_int_equal(s.shards_per_client, 42);
    }
    frl_part_spec_t s;
    assert_int_equal(frl_part_spec_parse(NULL, &s), FRL_EINVAL);
    assert_int_equal(frl_part_spec_parse("iid", NULL), FRL_EINVAL);
}

static void test_spec_format_round_trips_through_parse(void **state)
{
    static const char *texts[] = {"iid", "dirichlet", "dirichlet:0.1", "dirichlet:3.75", "shards", "shards:7"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        frl_part_spec_t a, b;
        char buf[64];
        assert_int_equal(frl_part_spec_parse(texts[i], &a), 0);
        assert_int_equal(frl_part_spec_format(&a, buf, sizeof buf), 0);
        assert_int_equal(frl_part_spec_parse(buf, &b), 0);
        assert_int_equal(a.kind, b.kind);
        if (a.kind == FRL_PART_DIRICHLET)
            assert_true(a.alpha == b.alpha);
        if (a.kind == FRL_PART_SHARDS)
            assert_int_equal(a.shards_per_client, b.shards_per_client);
    }
    frl_part_spec_t s = {FRL_PART_DIRICHLET, 0.5, 0};
    char tiny[4];
    assert_int_equal(frl_part_spec_format(&s, tiny, sizeof tiny), FRL_ETOOBIG);
    s.alpha = -1.0;
    assert_int_equal(frl_part_spec_format(&s, tiny, sizeof tiny), FRL_EINVAL);
}

/* ---- IID ---------------------------------------------------------------- */

static void test_iid_sizes_differ_by_at_most_one_and_cover_all(void **state)
{
    uint8_t *labels = syn_labels();
    uint8_t seed[32];
    seed_of(1, seed);
    frl_part_spec_t spec = {FRL_PART_IID, 0, 0};
    frl_partition_t p;
    assert_int_equal(frl_partition_make(&spec, labels, SYN_N, 10, 17, seed, &p), 0);
    assert_int_equal(check_partition(&p, SYN_N, 17), SYN_N);
    /* 5800 = 17 * 341 + 3: the first three clients get 342. */
    for (uint32_t u = 0; u < 17; u++)
        assert_int_equal(frl_partition_size(&p, u), u < 3 ? 342 : 341);
    frl_partition_free(&p);
    assert_null(p.offsets);
    frl_partition_free(&p);
    free(labels);
}

static void test_iid_is_a_shuffle_not_contiguous_blocks(void **state)
{
    uint8_t *labels = syn_labels();
    uint8_t seed[32];
    seed_of(2, seed);
    frl_part_spec_t spec = {FRL_PART_IID, 0, 0};
    frl_partition_t p;
    assert_int_equal(frl_partition_make(&spec, labels, SYN_N, 10, 4, seed, &p), 0);
    /* Each quarter's indices should span most of 0..n-1 and hold every class. */
    for (uint32_t u = 0; u < 4; u++) {
        const uint32_t *ix = frl_partition_client(&p, u);
        uint32_t sz = frl_partition_size(&p, u);
        assert_true(ix[0] < 100);
        assert_true(ix[sz - 1] > SYN_N - 100);
        uint32_t cls[10] = {0};
        for (uint32_t j = 0; j < sz; j++)
            cls[labels[ix[j]]]++;
        for (int c = 0; c < 10; c++)
            assert_true(cls[c] > 50);
    }
    frl_partition_free(&p);
    free(labels);
}

static void test_iid_more_clients_than_examples_leaves_some_empty(void **state)
{
    uint8_t labels[5] = {0, 1, 0, 1, 0};
    uint8_t seed[32];
    seed_of(3, seed);
    frl_part_spec_t spec = {FRL_PART_IID, 0, 0};
    frl_partition_t p;
    assert_int_equal(frl_partition_make(&spec, labels, 5, 2, 8, seed, &p), 0);
    assert_int_equal(check_partition(&p, 5, 8), 5);
    for (uint32_t u = 0; u < 8; u++)
        assert_int_equal(frl_partition_size(&p, u), u < 5 ? 1 : 0);
    frl_partition_free(&p);
}

/* ---- shards -------------------------------------------------------------- */

static void test_shards_cover_all_and_give_each_client_few_labels(void **state)
{
    uint8_t *labels = syn_labels();
    uint8_t seed[32];
    seed_of(4, seed);
    frl_part_spec_t spec = {FRL_PART_SHARDS, 0, 2};
    frl_partition_t p;
    /* 5800 / (29 * 2) = 100 per shard. */
    assert_int_equal(frl_partition_make(&spec, labels, SYN_N, 10, 29, seed, &p), 0);
    assert_int_equal(check_partition(&p, SYN_N, 29), SYN_N);
    for (uint32_t u = 0; u < 29; u++) {
        assert_int_equal(frl_partition_size(&p, u), 200);
        /* Two label-sorted shards hold at most 2 labels each. */
        uint32_t cls[10] = {0}, distinct = 0;
        const uint32_t *ix = frl_partition_client(&p, u);
        for (uint32_t j = 0; j < 200; j++)
            cls[labels[ix[j]]]++;
        for (int c = 0; c < 10; c++)
            distinct += cls[c] > 0;
        assert_true(distinct >= 1 && distinct <= 4);
    }
    frl_partition_free(&p);
    free(labels);
}

static void test_shards_uneven_split_sizes_differ_by_at_most_k(void **state)
{
    uint8_t *labels = syn_labels();
    uint8_t seed[32];
    seed_of(5, seed);
    frl_part_spec_t spec = {FRL_PART_SHARDS, 0, 3};
    frl_partition_t p;
    /* 5800 / 21 shards is not whole: shards are 276 or 277. */
    assert_int_equal(frl_partition_make(&spec, labels, SYN_N, 10, 7, seed, &p), 0);
    assert_int_equal(check_partition(&p, SYN_N, 7), SYN_N);
    for (uint32_t u = 0; u < 7; u++) {
        uint32_t sz = frl_partition_size(&p, u);
        assert_true(sz >= 3 * 276 && sz <= 3 * 277);
    }
    frl_partition_free(&p);
    free(labels);
}

/* ---- Dirichlet ------------------------------------------------------------ */

static void test_dirichlet_has_no_overlap_and_covers_99_percent(void **state)
{
    uint8_t *labels = syn_labels();
    const double alphas[] = {0.1, 0.5, 1.0, 10.0};
    for (size_t a = 0; a < 4; a++) {
        for (uint64_t sd = 0; sd < 3; sd++) {
            uint8_t seed[32];
            seed_of(100 + sd, seed);
            frl_part_spec_t spec = {FRL_PART_DIRICHLET, alphas[a], 0};
            frl_partition_t p;
            assert_int_equal(frl_partition_make(&spec, labels, SYN_N, 10, 50, seed, &p), 0);
            uint32_t got = check_partition(&p, SYN_N, 50);
            if ((double)got < 0.99 * SYN_N)
                fail_msg("alpha %g seed %u: only %u of %u assigned", alphas[a], (unsigned)sd, got, SYN_N);
            frl_partition_free(&p);
        }
    }
    free(labels);
}

/* Mean over clients of the largest class share in that client's data. */
static double mean_top_class_share(const frl_partition_t *p, const uint8_t *labels)
{
    double sum = 0;
    uint32_t nonempty = 0;
    for (uint32_t u = 0; u < p->n_clients; u++) {
        uint32_t sz = frl_partition_size(p, u), cls[10] = {0}, mx = 0;
        if (!sz)
            continue;
        const uint32_t *ix = frl_partition_client(p, u);
        for (uint32_t j = 0; j < sz; j++)
            cls[labels[ix[j]]]++;
        for (int c = 0; c < 10; c++)
            mx = cls[c] > mx ? cls[c] : mx;
        sum += (double)mx / sz;
        nonempty++;
    }
    return sum / nonempty;
}

static void test_dirichlet_small_alpha_concentrates_classes(void **state)
{
    uint8_t *labels = syn_labels();
    uint8_t seed[32];
    seed_of(7, seed);
    frl_part_spec_t lo = {FRL_PART_DIRICHLET, 0.05, 0}, hi = {FRL_PART_DIRICHLET, 1000.0, 0};
    frl_partition_t pl, ph;
    assert_int_equal(frl_partition_make(&lo, labels, SYN_N, 10, 20, seed, &pl), 0);
    assert_int_equal(frl_partition_make(&hi, labels, SYN_N, 10, 20, seed, &ph), 0);
    double s_lo = mean_top_class_share(&pl, labels), s_hi = mean_top_class_share(&ph, labels);
    /* Near-IID (alpha 1000): top class ~ 1/10 of a client. Alpha 0.05: most clients nearly one class. */
    assert_true(s_hi < 0.2);
    assert_true(s_lo > 0.6);
    /* Alpha 1000 gives every client about n / 20 = 290 examples. */
    for (uint32_t u = 0; u < 20; u++) {
        uint32_t sz = frl_partition_size(&ph, u);
        assert_true(sz > 230 && sz < 350);
    }
    frl_partition_free(&pl);
    frl_partition_free(&ph);
    free(labels);
}

static void test_dirichlet_many_clients_may_leave_some_empty(void **state)
{
    /* 30 examples, 200 clients, tiny alpha: empty clients are allowed, the
     * structure must still be valid. */
    uint8_t labels[30];
    for (int i = 0; i < 30; i++)
        labels[i] = (uint8_t)(i % 3);
    uint8_t seed[32];
    seed_of(8, seed);
    frl_part_spec_t spec = {FRL_PART_DIRICHLET, 0.01, 0};
    frl_partition_t p;
    assert_int_equal(frl_partition_make(&spec, labels, 30, 3, 200, seed, &p), 0);
    check_partition(&p, 30, 200);
    uint32_t empty = 0;
    for (uint32_t u = 0; u < 200; u++)
        empty += frl_partition_size(&p, u) == 0;
    assert_true(empty >= 170);
    frl_partition_free(&p);
}

static void test_dirichlet_unused_class_still_works(void **state)
{
    /* n_classes 12 with labels only in 0..9: classes 10, 11 are empty. */
    uint8_t *labels = syn_labels();
    uint8_t seed[32];
    seed_of(9, seed);
    frl_part_spec_t spec = {FRL_PART_DIRICHLET, 1.0, 0};
    frl_partition_t p;
    assert_int_equal(frl_partition_make(&spec, labels, SYN_N, 12, 10, seed, &p), 0);
    assert_true(check_partition(&p, SYN_N, 10) >= (uint32_t)(0.99 * SYN_N));
    frl_partition_free(&p);
    free(labels);
}

/* ---- seeding ---------------------------------------------------------------- */

static void test_same_seed_gives_same_partition(void **state)
{
    uint8_t *labels = syn_labels();
    const frl_part_spec_t specs[3] = {{FRL_PART_IID, 0, 0}, {FRL_PART_DIRICHLET, 0.5, 0}, {FRL_PART_SHARDS, 0, 2}};
    uint8_t seed[32];
    seed_of(10, seed);
    for (int k = 0; k < 3; k++) {
        frl_partition_t a, b;
        assert_int_equal(frl_partition_make(&specs[k], labels, SYN_N, 10, 25, seed, &a), 0);
        assert_int_equal(frl_partition_make(&specs[k], labels, SYN_N, 10, 25, seed, &b), 0);
        assert_true(same_partition(&a, &b));
        frl_partition_free(&a);
        frl_partition_free(&b);
    }
    free(labels);
}

/* The text form lists every client's indices in order, one line each,
 * empty lines for empty clients, and reads back to the same partition. */
static void test_format_lists_each_client_on_its_line(void **state)
{
    (void)state;
    uint32_t offsets[4] = {0, 2, 2, 5}, indices[5] = {3, 17, 0, 4294967295u, 9};
    frl_partition_t p = {3, offsets, indices};
    char *text;
    size_t len;
    assert_int_equal(frl_partition_format(&p, &text, &len), 0);
    assert_string_equal(text, "3 17\n\n0 4294967295 9\n");
    assert_int_equal(len, strlen(text));
    free(text);
    uint8_t *labels = syn_labels();
    uint8_t seed[32];
    seed_of(3, seed);
    const frl_part_spec_t spec = {FRL_PART_DIRICHLET, 1.0, 0};
    frl_partition_t a;
    assert_int_equal(frl_partition_make(&spec, labels, SYN_N, 10, 25, seed, &a), 0);
    assert_int_equal(frl_partition_format(&a, &text, &len), 0);
    const char *c = text;
    for (uint32_t u = 0; u < a.n_clients; u++) {
        for (uint32_t k = 0; k < frl_partition_size(&a, u); k++) {
            char *end;
            unsigned long v = strtoul(c, &end, 10);
            assert_true(end > c);
            assert_int_equal(v, frl_partition_client(&a, u)[k]);
            c = end;
            if (k + 1 < frl_partition_size(&a, u))
                assert_int_equal(*c++, ' ');
        }
        assert_int_equal(*c++, '\n');
    }
    assert_int_equal(*c, 0);
    free(text);
    frl_partition_free(&a);
    free(labels);
    assert_int_equal(frl_partition_format(NULL, &text, &len), FRL_EINVAL);
    assert_null(text);
}

static void test_different_seed_gives_different_partition(void **state)
{
    uint8_t *labels = syn_labels();
    const frl_part_spec_t specs[3] = {{FRL_PART_IID, 0, 0}, {FRL_PART_DIRICHLET, 0.5, 0}, {FRL_PART_SHARDS, 0, 2}};
    uint8_t s1[32], s2[32];
    seed_of(11, s1);
    memcpy(s2, s1, 32);
    s2[31] ^= 1; /* one bit apart */
    for (int k = 0; k < 3; k++) {
        frl_partition_t a, b;
        assert_int_equal(frl_partition_make(&specs[k], labels, SYN_N, 10, 25, s1, &a), 0);
        assert_int_equal(frl_partition_make(&specs[k], labels, SYN_N, 10, 25, s2, &b), 0);
        assert_false(same_partition(&a, &b));
        frl_partition_free(&a);
        frl_partition_free(&b);
    }
    free(labels);
}

static void test_dirichlet_result_is_pinned(void **state)
{
    /* Regression pin (generated by this implementation, not by an external
     * reference): any change to the draw order, the Gamma sampler, the
     * rounding or the RNG shows up here, and would change every
     * federation's data split. */
    uint8_t *labels = syn_labels();
    uint8_t seed[32];
    seed_of(0, seed);
    frl_part_spec_t spec = {FRL_PART_DIRICHLET, 1.0, 0};
    frl_partition_t p;
    assert_int_equal(frl_partition_make(&spec, labels, SYN_N, 10, 8, seed, &p), 0);
    static const uint32_t want_offsets[9] = {0, 962, 1571, 2731, 3378, 4114, 4714, 5185, 5799};
    static const uint32_t want_first[8] = {0, 12, 6, 22, 3, 10, 2, 1};
    for (uint32_t u = 0; u <= 8; u++)
        assert_int_equal(p.offsets[u], want_offsets[u]);
    for (uint32_t u = 0; u < 8; u++)
        if (frl_partition_size(&p, u))
            assert_int_equal(frl_partition_client(&p, u)[0], want_first[u]);
    frl_partition_free(&p);
    free(labels);
}

/* ---- argument checks ---------------------------------------------------- */

static void test_label_out_of_range_is_erange(void **state)
{
    uint8_t labels[4] = {0, 1, 9, 10};
    uint8_t seed[32] = {0};
    frl_part_spec_t spec = {FRL_PART_IID, 0, 0};
    frl_partition_t p;
    assert_int_equal(frl_partition_make(&spec, labels, 4, 10, 2, seed, &p), FRL_ERANGE);
    assert_null(p.offsets);
    assert_null(p.indices);
}

static void test_bad_arguments_are_einval_and_leave_output_zeroed(void **state)
{
    uint8_t labels[4] = {0, 1, 1, 0};
    uint8_t seed[32] = {0};
    frl_part_spec_t iid = {FRL_PART_IID, 0, 0};
    frl_part_spec_t bad_alpha = {FRL_PART_DIRICHLET, 0.0, 0};
    frl_part_spec_t nan_alpha = {FRL_PART_DIRICHLET, NAN, 0};
    frl_part_spec_t zero_k = {FRL_PART_SHARDS, 0, 0};
    frl_part_spec_t bad_kind = {(frl_part_kind)7, 1.0, 1};
    frl_part_spec_t big_k = {FRL_PART_SHARDS, 0, 1000000};
    frl_partition_t p;
    assert_int_equal(frl_partition_make(&iid, labels, 4, 2, 0, seed, &p), FRL_EINVAL);
    assert_null(p.offsets);
    assert_int_equal(frl_partition_make(&iid, labels, 4, 0, 2, seed, &p), FRL_EINVAL);
    assert_int_equal(frl_partition_make(&iid, labels, 4, 257, 2, seed, &p), FRL_EINVAL);
    assert_int_equal(frl_partition_make(&iid, NULL, 4, 2, 2, seed, &p), FRL_EINVAL);
    assert_int_equal(frl_partition_make(&iid, labels, 4, 2, 2, NULL, &p), FRL_EINVAL);
    assert_int_equal(frl_partition_make(NULL, labels, 4, 2, 2, seed, &p), FRL_EINVAL);
    assert_int_equal(frl_partition_make(&iid, labels, 4, 2, 2, seed, NULL), FRL_EINVAL);
    assert_int_equal(frl_partition_make(&bad_alpha, labels, 4, 2, 2, seed, &p), FRL_EINVAL);
    assert_int_equal(frl_partition_make(&nan_alpha, labels, 4, 2, 2, seed, &p), FRL_EINVAL);
    assert_int_equal(frl_partition_make(&zero_k, labels, 4, 2, 2, seed, &p), FRL_EINVAL);
    assert_int_equal(frl_partition_make(&bad_kind, labels, 4, 2, 2, seed, &p), FRL_EINVAL);
    assert_int_equal(frl_partition_make(&big_k, labels, 4, 2, 5000, seed, &p), FRL_EINVAL);
    assert_null(p.offsets);
}

static void test_empty_training_set_gives_empty_clients(void **state)
{
    uint8_t seed[32] = {0};
    const frl_part_spec_t specs[3] = {{FRL_PART_IID, 0, 0}, {FRL_PART_DIRICHLET, 1.0, 0}, {FRL_PART_SHARDS, 0, 2}};
    for (int k = 0; k < 3; k++) {
        frl_partition_t p;
        assert_int_equal(frl_partition_make(&specs[k], NULL, 0, 10, 3, seed, &p), 0);
        assert_int_equal(check_partition(&p, 0, 3), 0);
        frl_partition_free(&p);
    }
}

/* ---- static helpers ----------------------------------------------------- */

static void test_round_half_even_matches_numpy(void **state)
{
    assert_int_equal(round_half_even(0.0), 0);
    assert_int_equal(round_half_even(0.49999999999999994), 0);
    assert_int_equal(round_half_even(0.5), 0);
    assert_int_equal(round_half_even(1.5), 2);
    assert_int_equal(round_half_even(2.5), 2);
    assert_int_equal(round_half_even(2.5000000000000004), 3);
    assert_int_equal(round_half_even(3.4), 3);
    assert_int_equal(round_half_even(5999.5), 6000);
    assert_int_equal(round_half_even(4294967295.0), 4294967295u);
}

/* Sample mean and variance of Gamma(a, 1) are both a; with 200,000 draws
 * the standard error of the mean is sqrt(a / 200000). */
static void test_gamma_sampler_has_right_mean_and_variance(void **state)
{
    const double shapes[] = {0.05, 0.3, 1.0, 2.5, 40.0};
    uint8_t seed[32];
    seed_of(12, seed);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        double a = shapes[k];
        frl_rng_t rng;
        frl_rng_init(&rng, seed, FRL_STREAM_TEST, (uint32_t)k, 0);
        gauss_t g = {&rng, 0, 0.0};
        const int n = 200000;
        double s = 0, s2 = 0;
        for (int i = 0; i < n; i++) {
            double x = exp(log_gamma_draw(&g, a));
            assert_true(x >= 0.0 && isfinite(x));
            s += x;
            s2 += x * x;
        }
        double mean = s / n, var = s2 / n - mean * mean;
        double se = sqrt(a / n);
        if (fabs(mean - a) > 5 * se || fabs(var - a) > 0.05 * a + 10 * se)
            fail_msg("Gamma(%g): mean %g var %g", a, mean, var);
    }
}

static void test_gauss_has_unit_variance(void **state)
{
    uint8_t seed[32];
    seed_of(13, seed);
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_TEST, 99, 0);
    gauss_t g = {&rng, 0, 0.0};
    const int n = 200000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        double x = gauss_next(&g);
        s += x;
        s2 += x * x;
    }
    assert_true(fabs(s / n) < 0.015);
    assert_true(fabs(s2 / n - 1.0) < 0.02);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_parse_accepts_every_documented_form),
        cmocka_unit_test(test_spec_parse_rejects_bad_text_without_side_effect),
        cmocka_unit_test(test_spec_format_round_trips_through_parse),
        cmocka_unit_test(test_iid_sizes_differ_by_at_most_one_and_cover_all),
        cmocka_unit_test(test_iid_is_a_shuffle_not_contiguous_blocks),
        cmocka_unit_test(test_iid_more_clients_than_examples_leaves_some_empty),
        cmocka_unit_test(test_shards_cover_all_and_give_each_client_few_labels),
        cmocka_unit_test(test_shards_uneven_split_sizes_differ_by_at_most_k),
        cmocka_unit_test(test_dirichlet_has_no_overlap_and_covers_99_percent),
        cmocka_unit_test(test_dirichlet_small_alpha_concentrates_classes),
        cmocka_unit_test(test_dirichlet_many_clients_may_leave_some_empty),
        cmocka_unit_test(test_dirichlet_unused_class_still_works),
        cmocka_unit_test(test_same_seed_gives_same_partition),
        cmocka_unit_test(test_format_lists_each_client_on_its_line),
        cmocka_unit_test(test_different_seed_gives_different_partition),
        cmocka_unit_test(test_dirichlet_result_is_pinned),
        cmocka_unit_test(test_label_out_of_range_is_erange),
        cmocka_unit_test(test_bad_arguments_are_einval_and_leave_output_zeroed),
        cmocka_unit_test(test_empty_training_set_gives_empty_clients),
        cmocka_unit_test(test_round_half_even_matches_numpy),
        cmocka_unit_test(test_gamma_sampler_has_right_mean_and_variance),
        cmocka_unit_test(test_gauss_has_unit_variance),
    };
    return cmocka_run_group_tests_name("data_partition", tests, NULL, NULL);
}
