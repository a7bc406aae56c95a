/* The quantised model: pipeline equality across kernel paths and batch
 * sizes, the model file (round trip, truncation, corruption, mismatch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "common/frl_error.h"
#include "quant/frl_quant.h"
#include "supermask/frl_model.h"
#include "supermask/frl_ranking.h"
#include "qtest_util.h"

/* A model of `name` whose mask is the round-1 mask (initial scores, rule
 * abs), calibrated on random sparse images. */
static frl_qmodel_t *make_model(const char *name, uint64_t seed_u64, frl_model_spec_t *spec)
{
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_from_u64(seed_u64, seed);
    assert_int_equal(frl_model_spec_by_name(name, spec), 0);
    uint8_t *masks[FRL_MAX_LAYERS] = {0};
    for (int l = 0; l < spec->n_layers; l++) {
        uint32_t n = spec->layers[l].n_edges;
        float *sc = malloc(n * sizeof(float));
        void *scr = malloc(frl_topk_scratch_size(n) + 64);
        masks[l] = malloc(n);
        frl_init_scores(seed, &spec->layers[l], l, sc);
        assert_int_equal(frl_topk_mask(sc, n, 0.5, FRL_MASK_ABS, masks[l], scr), 0);
        free(sc);
        free(scr);
    }
    frl_qmodel_t *m;
    assert_int_equal(frl_qmodel_create(spec, seed, 0.5, FRL_MASK_ABS, FRL_QZIN_FMNIST, (const uint8_t *const *)masks, &m), 0);
    for (int l = 0; l < spec->n_layers; l++)
        free(masks[l]);
    uint64_t s = seed_u64 * 7 + 1;
    size_t img = (size_t)spec->in_c * spec->in_h * spec->in_w;
    uint8_t *cal = malloc(64 * img);
    qt_bytes(&s, cal, 64 * img, 0);
    frl_qcalib_opts_t o = {32, 0.999};
    assert_int_equal(frl_qmodel_calibrate(m, cal, 64, &o), 0);
    free(cal);
    return m;
}

static void run(const frl_qmodel_t *m, const uint8_t *imgs, int n, int B, int32_t *logits)
{
    size_t ss = frl_qmodel_scratch_size(m, B);
    void *scr = aligned_alloc(64, (ss + 63) & ~(size_t)63);
    const frl_model_spec_t *sp = frl_qmodel_spec(m);
    size_t img = (size_t)sp->in_c * sp->in_h * sp->in_w;
    for (int i = 0; i < n; i += B) {
        int b = n - i < B ? n - i : B;
        assert_int_equal(frl_qmodel_infer(m, imgs + i * img, b, logits + (size_t)i * sp->n_classes, NULL, scr, ss), 0);
    }
    free(scr);
}

static void check_paths_and_batches(const char *name, int n)
{
    frl_model_spec_t spec;
    frl_qmodel_t *m = make_model(name, 3, &spec);
    for (int l = 0; l + 1 < frl_qmodel_n_layers(m); l++) {
        frl_requant_t rq = frl_qmodel_requant(m, l);
        printf("%s layer %d: M0 %d shift %d (M = %.6g)\n", name, l, rq.m0, rq.shift, frl_requant_to_double(rq));
        assert_true(rq.m0 >= (1 << 30));
    }
    size_t img = (size_t)spec.in_c * spec.in_h * spec.in_w;
    uint8_t *imgs = malloc(n * img);
    uint64_t s = 99;
    qt_bytes(&s, imgs, n * img, 0);
    qt_bytes(&s, imgs, img, 1); /* an all-255 image */
    int32_t *ref = malloc(sizeof(int32_t) * n * spec.n_classes), *got = malloc(sizeof(int32_t) * n * spec.n_classes);
    assert_int_equal(frl_qmodel_set_path(m, FRL_QPATH_SCALAR), 0);
    run(m, imgs, n, 1, ref);
    int nonzero = 0;
    for (int i = 0; i < n * spec.n_classes; i++)
        nonzero += ref[i] != 0;
    assert_true(nonzero > n); /* logits are not degenerate */
    static const int Bs[] = {1, 3, 64};
    for (int p = FRL_QPATH_SCALAR; p <= FRL_QPATH_AVX512; p++) {
        if (frl_qmodel_set_path(m, (frl_qpath)p) != 0) {
            printf("path %s unavailable: skipped\n", frl_qpath_name((frl_qpath)p));
            continue;
        }
        for (size_t b = 0; b < sizeof Bs / sizeof Bs[0]; b++) {
            if (p == FRL_QPATH_SCALAR && Bs[b] != 3)
                continue; /* B = 1 is the reference run itself; keep the slow path short */
            memset(got, 0x5a, sizeof(int32_t) * n * spec.n_classes);
            run(m, imgs, n, Bs[b], got);
            char what[64];
            snprintf(what, sizeof what, "%s %s B%d", name, frl_qpath_name((frl_qpath)p), Bs[b]);
            assert_int_equal(qt_first_diff32(ref, got, (size_t)n * spec.n_classes, what), 0);
        }
    }
    free(imgs);
    free(ref);
    free(got);
    frl_qmodel_free(m);
}

static void test_lenet_paths_and_batches_agree(void **state)
{
    check_paths_and_batches("lenet", 21);
}
static void test_conv2_paths_and_batches_agree(void **state)
{
    check_paths_and_batches("conv2", 4);
}
static void test_mlp_paths_and_batches_agree(void **state)
{
    check_paths_and_batches("mlp", 70);
}

static void test_file_round_trip(void **state)
{
    frl_model_spec_t spec;
    frl_qmodel_t *m = make_model("lenet", 5, &spec);
    uint8_t *buf, *buf2;
    size_t len, len2;
    assert_int_equal(frl_qmodel_to_bytes(m, &buf, &len), 0);
    printf("lenet model file: %zu bytes\n", len);
    assert_true(len > 200000 && len < 210000);
    frl_qmodel_t *m2;
    assert_int_equal(frl_qmodel_from_bytes(buf, len, &spec, &m2), 0);
    assert_int_equal(frl_qmodel_to_bytes(m2, &buf2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    /* same logits */
    uint8_t imgs[8 * 784];
    uint64_t s = 1;
    qt_bytes(&s, imgs, sizeof imgs, 0);
    int32_t a[80], b[80];
    run(m, imgs, 8, 8, a);
    run(m2, imgs, 8, 8, b);
    assert_memory_equal(a, b, sizeof a);
    /* through a file */
    char path[] = "/tmp/frl_qmodel_testXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(frl_qmodel_save(m, path), 0);
    frl_qmodel_t *m3;
    assert_int_equal(frl_qmodel_load(path, NULL, &m3), 0);
    run(m3, imgs, 8, 1, b);
    assert_memory_equal(a, b, sizeof a);
    unlink(path);
    frl_qmodel_free(m3);
    assert_int_equal(frl_qmodel_load(path, NULL, &m3), FRL_ENOENT);
    assert_null(m3);
    frl_qmodel_free(m2);
    free(buf);
    free(buf2);
    frl_qmodel_free(m);
}

static void rehash(uint8_t *buf, size_t len)
{
    crypto_generichash(buf + len - 32, 32, buf, len - 32, NULL, 0);
}

static void test_file_truncation_and_corruption(void **state)
{
    frl_model_spec_t spec, other;
    frl_qmodel_t *m = make_model("lenet", 6, &spec), *m2 = NULL;
    uint8_t *buf;
    size_t len;
    assert_int_equal(frl_qmodel_to_bytes(m, &buf, &len), 0);
    /* every short prefix of the header, then a sample of longer ones */
    for (size_t cut = 0; cut < 400; cut++)
        assert_int_equal(frl_qmodel_from_bytes(buf, cut, NULL, &m2), FRL_ETRUNC);
    for (size_t cut = 400; cut < len; cut += 997)
        assert_int_equal(frl_qmodel_from_bytes(buf, cut, NULL, &m2), FRL_ETRUNC);
    assert_int_equal(frl_qmodel_from_bytes(buf, len - 1, NULL, &m2), FRL_ETRUNC);
    assert_null(m2);
    /* trailing bytes */
    uint8_t *big = malloc(len + 1);
    memcpy(big, buf, len);
    big[len] = 0;
    assert_int_equal(frl_qmodel_from_bytes(big, len + 1, NULL, &m2), FRL_EFORMAT);
    free(big);
    /* a flipped bit anywhere past the length field is a checksum error */
    uint64_t s = 3;
    for (int i = 0; i < 300; i++) {
        size_t pos = 16 + qt_below(&s, (uint32_t)(len - 16));
        buf[pos] ^= (uint8_t)(1u << qt_below(&s, 8));
        assert_int_equal(frl_qmodel_from_bytes(buf, len, NULL, &m2), FRL_ECHECKSUM);
        frl_qmodel_free(m2);
        m2 = NULL;
        /* restore */
        uint8_t *fresh;
        size_t fl;
        assert_int_equal(frl_qmodel_to_bytes(m, &fresh, &fl), 0);
        memcpy(buf, fresh, len);
        free(fresh);
    }
    /* header fields */
    buf[0] ^= 1;
    assert_int_equal(frl_qmodel_from_bytes(buf, len, NULL, &m2), FRL_EFORMAT);
    buf[0] ^= 1;
    buf[8] = 2; /* version 2 */
    assert_int_equal(frl_qmodel_from_bytes(buf, len, NULL, &m2), FRL_EUNSUPPORTED);
    buf[8] = 1;
    /* valid checksum but a different model: mismatch */
    assert_int_equal(frl_model_spec_by_name("conv2", &other), 0);
    assert_int_equal(frl_qmodel_from_bytes(buf, len, &other, &m2), FRL_EMISMATCH);
    memcpy(buf + 16, "nosuchmodel\0\0\0\0\0", 16);
    rehash(buf, len);
    assert_int_equal(frl_qmodel_from_bytes(buf, len, NULL, &m2), FRL_EMISMATCH);
    memcpy(buf + 16, "lenet\0\0\0\0\0\0\0\0\0\0\0", 16);
    buf[40] ^= 0x80; /* spec hash */
    rehash(buf, len);
    assert_int_equal(frl_qmodel_from_bytes(buf, len, NULL, &m2), FRL_EMISMATCH);
    buf[40] ^= 0x80;
    buf[108] = 2; /* rounding rule */
    rehash(buf, len);
    assert_int_equal(frl_qmodel_from_bytes(buf, len, NULL, &m2), FRL_EUNSUPPORTED);
    buf[108] = 1;
    /* a mask with one edge too many (consistent checksum): format error */
    size_t mask0 = 132 + 16 * (size_t)spec.n_layers;
    for (size_t i = 0; i < 36; i++)
        if (buf[mask0 + i] != 0xff) {
            buf[mask0 + i] |= (uint8_t)(buf[mask0 + i] + 1);
            break;
        }
    rehash(buf, len);
    assert_int_equal(frl_qmodel_from_bytes(buf, len, NULL, &m2), FRL_EFORMAT);
    assert_null(m2);
    free(buf);
    frl_qmodel_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenet_paths_and_batches_agree),  cmocka_unit_test(test_conv2_paths_and_batches_agree),
        cmocka_unit_test(test_mlp_paths_and_batches_agree),    cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_file_truncation_and_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
