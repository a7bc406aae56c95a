/* IDX reader and data set loader: every test writes its own small files
 * (plain or gzip) into a private temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common/frl_error.h"
#include "data/frl_idx.h"

static char g_dir[256];

/* ---- helpers ------------------------------------------------------------ */

typedef struct {
    uint8_t *p;
    size_t len;
} buf_t;

static void buf_free(buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
}

/* An IDX image of unsigned bytes: header for `ndim` dims, then `payload`
 * bytes (which need not match the dims, so broken files can be built). */
static buf_t make_idx_typed(uint8_t type, uint32_t ndim, const uint32_t *dims, const uint8_t *payload, size_t payload_len)
{
    buf_t b;
    b.len = 4 + 4 * (size_t)ndim + payload_len;
    b.p = malloc(b.len ? b.len : 1);
    assert_non_null(b.p);
    b.p[0] = 0;
    b.p[1] = 0;
    b.p[2] = type;
    b.p[3] = (uint8_t)ndim;
    for (uint32_t i = 0; i < ndim; i++) {
        b.p[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        b.p[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        b.p[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        b.p[7 + 4 * i] = (uint8_t)dims[i];
    }
    if (payload_len)
        memcpy(b.p + 4 + 4 * ndim, payload, payload_len);
    return b;
}

static buf_t make_idx(uint32_t ndim, const uint32_t *dims, const uint8_t *payload, size_t payload_len)
{
    return make_idx_typed(0x08, ndim, dims, payload, payload_len);
}

/* gzip (one member) of `in`, in memory. */
static buf_t gzip_bytes(const uint8_t *in, size_t len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    buf_t b;
    b.len = deflateBound(&zs, (uLong)len) + 64;
    b.p = malloc(b.len);
    assert_non_null(b.p);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = b.p;
    zs.avail_out = (uInt)b.len;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    b.len = zs.total_out;
    deflateEnd(&zs);
    return b;
}

/* Writes bytes to <tmpdir>/<name> and returns the full path (static buffer
 * per call slot, so two paths can be held at once). */
static const char *write_file(int slot, const char *name, const uint8_t *p, size_t len)
{
    static char paths[4][512];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", g_dir, name);
    FILE *f = fopen(paths[slot], "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(p, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return paths[slot];
}

static const char *write_buf(int slot, const char *name, const buf_t *b)
{
    return write_file(slot, name, b->p, b->len);
}

/* Pixel value of image i at byte j of a synthetic set. */
static uint8_t pix(uint32_t i, uint32_t j)
{
    return (uint8_t)(i * 31u + j * 7u + (i >> 8));
}

/* Writes a synthetic image file (n, rows, cols) and label file (label = i % 10
 * except the last, which is 12) under the given names, gzip or plain. */
static void write_dataset(const char *img_name, const char *lbl_name, uint32_t n, uint32_t rows, uint32_t cols, int gz,
                          const char **img_path, const char **lbl_path)
{
    size_t row = (size_t)rows * cols;
    uint8_t *px = malloc(n * row);
    uint8_t *lb = malloc(n);
    assert_non_null(px);
    assert_non_null(lb);
    for (uint32_t i = 0; i < n; i++) {
        for (size_t j = 0; j < row; j++)
            px[i * row + j] = pix(i, (uint32_t)j);
        lb[i] = (uint8_t)(i + 1 == n ? 12 : i % 10);
    }
    uint32_t idims[3] = {n, rows, cols}, ldims[1] = {n};
    buf_t bi = make_idx(3, idims, px, n * row);
    buf_t bl = make_idx(1, ldims, lb, n);
    if (gz) {
        buf_t zi = gzip_bytes(bi.p, bi.len), zl = gzip_bytes(bl.p, bl.len);
        buf_free(&bi);
        buf_free(&bl);
        bi = zi;
        bl = zl;
    }
    *img_path = write_buf(0, img_name, &bi);
    *lbl_path = write_buf(1, lbl_name, &bl);
    buf_free(&bi);
    buf_free(&bl);
    free(px);
    free(lb);
}

static int read_status(const char *path)
{
    uint32_t nd = 99, dims[4];
    uint8_t *data = (uint8_t *)1;
    size_t len = 99;
    int rc = frl_idx_read(path, &nd, dims, &data, &len);
    if (rc) {
        assert_null(data);
        assert_int_equal(len, 0);
        assert_int_equal(nd, 0);
    }
    free(data);
    return rc;
}

static int group_setup(void **state)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/frl_test_idx_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    DIR *d = opendir(g_dir);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    return rmdir(g_dir);
}

static const uint8_t small_payload[6] = {1, 2, 3, 4, 5, 6};
static const uint32_t small_dims[2] = {2, 3};

/* ---- frl_idx_read ------------------------------------------------------- */

static void test_read_plain_file_returns_shape_and_payload(void **state)
{
    buf_t b = make_idx(2, small_dims, small_payload, 6);
    const char *path = write_buf(0, "plain.idx", &b);
    buf_free(&b);
    uint32_t nd, dims[4];
    uint8_t *data;
    size_t len;
    assert_int_equal(frl_idx_read(path, &nd, dims, &data, &len), 0);
    assert_int_equal(nd, 2);
    assert_int_equal(dims[0], 2);
    assert_int_equal(dims[1], 3);
    assert_int_equal(dims[2], 0);
    assert_int_equal(dims[3], 0);
    assert_int_equal(len, 6);
    assert_memory_equal(data, small_payload, 6);
    free(data);
}

static void test_read_gzip_is_detected_by_magic_not_by_name(void **state)
{
    buf_t b = make_idx(2, small_dims, small_payload, 6);
    buf_t z = gzip_bytes(b.p, b.len);
    /* A gzip file without .gz and a plain file with .gz must both work. */
    const char *gz_path = write_buf(0, "compressed.idx", &z);
    const char *plain_path = write_buf(1, "notcompressed.gz", &b);
    buf_free(&b);
    buf_free(&z);
    for (int k = 0; k < 2; k++) {
        uint32_t nd, dims[4];
        uint8_t *data;
        size_t len;
        assert_int_equal(frl_idx_read(k ? plain_path : gz_path, &nd, dims, &data, &len), 0);
        assert_int_equal(nd, 2);
        assert_int_equal(len, 6);
        assert_memory_equal(data, small_payload, 6);
        free(data);
    }
}

static void test_read_large_gzip_spanning_many_buffers(void **state)
{
    /* 4 dims and a payload of 1.2 MB: many 64 KiB buffers on both sides of zlib. */
    uint32_t dims[4] = {3, 5, 200, 400};
    size_t len = 3 * 5 * 200 * 400;
    uint8_t *px = malloc(len);
    assert_non_null(px);
    for (size_t j = 0; j < len; j++)
        px[j] = pix((uint32_t)(j / 997), (uint32_t)j);
    buf_t b = make_idx(4, dims, px, len);
    buf_t z = gzip_bytes(b.p, b.len);
    const char *path = write_buf(0, "big.gz", &z);
    buf_free(&b);
    buf_free(&z);
    uint32_t nd, d[4];
    uint8_t *data;
    size_t got;
    assert_int_equal(frl_idx_read(path, &nd, d, &data, &got), 0);
    assert_int_equal(nd, 4);
    assert_int_equal(d[3], 400);
    assert_int_equal(got, len);
    assert_memory_equal(data, px, len);
    free(data);
    free(px);
}

static void test_read_concatenated_gzip_members_are_one_stream(void **state)
{
    buf_t b = make_idx(2, small_dims, small_payload, 6);
    /* Split the file after 5 bytes into two gzip members, as `cat a.gz b.gz` makes. */
    buf_t z1 = gzip_bytes(b.p, 5), z2 = gzip_bytes(b.p + 5, b.len - 5);
    uint8_t *cat = malloc(z1.len + z2.len);
    assert_non_null(cat);
    memcpy(cat, z1.p, z1.len);
    memcpy(cat + z1.len, z2.p, z2.len);
    const char *path = write_file(0, "cat.gz", cat, z1.len + z2.len);
    uint32_t nd, dims[4];
    uint8_t *data;
    size_t len;
    assert_int_equal(frl_idx_read(path, &nd, dims, &data, &len), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(data, small_payload, 6);
    free(data);
    free(cat);
    buf_free(&b);
    buf_free(&z1);
    buf_free(&z2);
}

static void test_read_header_only_file_is_truncated(void **state)
{
    buf_t b = make_idx(2, small_dims, NULL, 0);
    const char *path = write_buf(0, "header_only", &b);
    assert_int_equal(read_status(path), FRL_ETRUNC);
    buf_t z = gzip_bytes(b.p, b.len);
    path = write_buf(0, "header_only.gz", &z);
    assert_int_equal(read_status(path), FRL_ETRUNC);
    buf_free(&b);
    buf_free(&z);
}

static void test_read_partial_header_is_truncated(void **state)
{
    buf_t b = make_idx(2, small_dims, NULL, 0);
    assert_int_equal(read_status(write_file(0, "half_header", b.p, 7)), FRL_ETRUNC);
    assert_int_equal(read_status(write_file(0, "magic_only", b.p, 3)), FRL_ETRUNC);
    assert_int_equal(read_status(write_file(0, "empty", NULL, 0)), FRL_ETRUNC);
    buf_free(&b);
}

static void test_read_payload_one_byte_short_is_truncated(void **state)
{
    buf_t b = make_idx(2, small_dims, small_payload, 5);
    assert_int_equal(read_status(write_buf(0, "short", &b)), FRL_ETRUNC);
    buf_t z = gzip_bytes(b.p, b.len);
    assert_int_equal(read_status(write_buf(0, "short.gz", &z)), FRL_ETRUNC);
    buf_free(&b);
    buf_free(&z);
}

static void test_read_trailing_byte_is_format_error(void **state)
{
    uint8_t seven[7] = {1, 2, 3, 4, 5, 6, 7};
    buf_t b = make_idx(2, small_dims, seven, 7);
    assert_int_equal(read_status(write_buf(0, "long", &b)), FRL_EFORMAT);
    buf_t z = gzip_bytes(b.p, b.len);
    assert_int_equal(read_status(write_buf(0, "long.gz", &z)), FRL_EFORMAT);
    buf_free(&b);
    buf_free(&z);
}

static void test_read_garbage_after_gzip_member_is_format_error(void **state)
{
    buf_t b = make_idx(2, small_dims, small_payload, 6);
    buf_t z = gzip_bytes(b.p, b.len);
    /* Longer garbage and a single stray byte (which cannot even start a member). */
    uint8_t *p = malloc(z.len + 8);
    assert_non_null(p);
    memcpy(p, z.p, z.len);
    memcpy(p + z.len, "garbage!", 8);
    assert_int_equal(read_status(write_file(0, "garbage.gz", p, z.len + 8)), FRL_EFORMAT);
    p[z.len] = 0x1f;
    assert_int_equal(read_status(write_file(0, "stray.gz", p, z.len + 1)), FRL_EFORMAT);
    free(p);
    buf_free(&b);
    buf_free(&z);
}

static void test_read_wrong_magic_is_format_error(void **state)
{
    buf_t b = make_idx(2, small_dims, small_payload, 6);
    b.p[0] = 0x12;
    assert_int_equal(read_status(write_buf(0, "magic0", &b)), FRL_EFORMAT);
    b.p[0] = 0;
    b.p[1] = 1;
    assert_int_equal(read_status(write_buf(0, "magic1", &b)), FRL_EFORMAT);
    b.p[1] = 0;
    b.p[2] = 0x42; /* not an IDX type at all */
    assert_int_equal(read_status(write_buf(0, "magic2", &b)), FRL_EFORMAT);
    buf_free(&b);
}

static void test_read_other_idx_element_type_is_unsupported(void **state)
{
    /* 0x0D = float: a valid IDX file, just not one we read. */
    buf_t b = make_idx_typed(0x0D, 2, small_dims, small_payload, 6);
    assert_int_equal(read_status(write_buf(0, "float.idx", &b)), FRL_EUNSUPPORTED);
    buf_free(&b);
}

static void test_read_ndim_zero_or_five_is_format_error(void **state)
{
    uint32_t dims5[5] = {1, 1, 1, 1, 6};
    buf_t b0 = make_idx(0, NULL, small_payload, 6);
    assert_int_equal(read_status(write_buf(0, "ndim0", &b0)), FRL_EFORMAT);
    buf_t b5 = make_idx(5, dims5, small_payload, 6);
    assert_int_equal(read_status(write_buf(0, "ndim5", &b5)), FRL_EFORMAT);
    buf_free(&b0);
    buf_free(&b5);
}

static void test_read_zero_dim_is_format_error(void **state)
{
    uint32_t dims[3] = {2, 0, 3};
    buf_t b = make_idx(3, dims, small_payload, 6);
    assert_int_equal(read_status(write_buf(0, "zerodim", &b)), FRL_EFORMAT);
    buf_free(&b);
}

static void test_read_size_above_limit_is_too_big(void **state)
{
    /* 65536 x 65536 = 2^32 bytes > FRL_IDX_MAX_BYTES; also the 4-dim product overflowing 32 bits. */
    uint32_t dims2[2] = {65536, 65536};
    buf_t b = make_idx(2, dims2, small_payload, 6);
    assert_int_equal(read_status(write_buf(0, "huge", &b)), FRL_ETOOBIG);
    uint32_t dims4[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    buf_t b4 = make_idx(4, dims4, small_payload, 6);
    assert_int_equal(read_status(write_buf(0, "huge4", &b4)), FRL_ETOOBIG);
    buf_free(&b);
    buf_free(&b4);
}

static void test_read_big_claim_with_small_payload_is_truncated(void **state)
{
    /* Exactly 2 GiB announced, 6 bytes present: must fail cleanly without
     * touching 2 GiB of memory (ASan would report an allocation that big). */
    uint32_t dims[2] = {32768, 65536};
    buf_t b = make_idx(2, dims, small_payload, 6);
    assert_int_equal(read_status(write_buf(0, "liar", &b)), FRL_ETRUNC);
    buf_t z = gzip_bytes(b.p, b.len);
    assert_int_equal(read_status(write_buf(0, "liar.gz", &z)), FRL_ETRUNC);
    buf_free(&b);
    buf_free(&z);
}

static void test_read_corrupt_gzip_stream_is_format_error(void **state)
{
    uint8_t px[4096];
    for (size_t j = 0; j < sizeof px; j++)
        px[j] = pix((uint32_t)j, 3);
    uint32_t dims[1] = {sizeof px};
    buf_t b = make_idx(1, dims, px, sizeof px);
    buf_t z = gzip_bytes(b.p, b.len);
    /* Byte 12 is inside the deflate data (the gzip header is 10 bytes):
     * an invalid block type or code must be caught by zlib or by the CRC. */
    z.p[12] ^= 0xFF;
    z.p[13] ^= 0x55;
    assert_int_equal(read_status(write_buf(0, "corrupt.gz", &z)), FRL_EFORMAT);
    buf_free(&b);
    buf_free(&z);
}

static void test_read_gzip_crc_mismatch_is_format_error(void **state)
{
    buf_t b = make_idx(2, small_dims, small_payload, 6);
    buf_t z = gzip_bytes(b.p, b.len);
    z.p[z.len - 8] ^= 1; /* the trailer is CRC32 then ISIZE, 4 bytes each */
    assert_int_equal(read_status(write_buf(0, "crc.gz", &z)), FRL_EFORMAT);
    buf_free(&b);
    buf_free(&z);
}

static void test_read_truncated_gzip_stream_is_truncated(void **state)
{
    uint8_t px[4096];
    for (size_t j = 0; j < sizeof px; j++)
        px[j] = pix((uint32_t)j, 5);
    uint32_t dims[1] = {sizeof px};
    buf_t b = make_idx(1, dims, px, sizeof px);
    buf_t z = gzip_bytes(b.p, b.len);
    assert_int_equal(read_status(write_file(0, "cut.gz", z.p, z.len / 2)), FRL_ETRUNC);
    /* Cut inside the 8-byte trailer: all data is there but unverified. */
    assert_int_equal(read_status(write_file(0, "cut_trailer.gz", z.p, z.len - 3)), FRL_ETRUNC);
    buf_free(&b);
    buf_free(&z);
}

static void test_read_missing_file_is_enoent(void **state)
{
    char path[600];
    snprintf(path, sizeof path, "%s/does-not-exist.gz", g_dir);
    assert_int_equal(read_status(path), FRL_ENOENT);
}

static void test_read_null_arguments_are_rejected(void **state)
{
    uint32_t nd, dims[4];
    uint8_t *data;
    size_t len;
    assert_int_equal(frl_idx_read(NULL, &nd, dims, &data, &len), FRL_EINVAL);
    assert_int_equal(frl_idx_read("x", NULL, dims, &data, &len), FRL_EINVAL);
    assert_int_equal(frl_idx_read("x", &nd, dims, NULL, &len), FRL_EINVAL);
}

/* ---- frl_dataset_load / frl_labels_load --------------------------------- */

static void check_example(const frl_dataset_t *d, uint32_t k, uint32_t i, uint32_t n_total)
{
    size_t row = (size_t)d->rows * d->cols;
    for (size_t j = 0; j < row; j++) {
        if (d->images[k * row + j] != pix(i, (uint32_t)j))
            fail_msg("example %u (file row %u) byte %zu: %u != %u", k, i, j, d->images[k * row + j], pix(i, (uint32_t)j));
    }
    assert_int_equal(d->labels[k], i + 1 == n_total ? 12 : i % 10);
}

static void test_load_full_dataset_plain_and_gzip(void **state)
{
    for (int gz = 0; gz < 2; gz++) {
        const char *ip, *lp;
        write_dataset("full-images", "full-labels", 50, 4, 5, gz, &ip, &lp);
        frl_dataset_t d;
        assert_int_equal(frl_dataset_load(ip, lp, NULL, 12345, &d), 0);
        assert_int_equal(d.n, 50);
        assert_int_equal(d.rows, 4);
        assert_int_equal(d.cols, 5);
        assert_int_equal(d.n_classes, 13); /* the last label is 12 */
        for (uint32_t i = 0; i < 50; i++)
            check_example(&d, i, i, 50);
        frl_dataset_free(&d);
        assert_null(d.images);
        frl_dataset_free(&d); /* a second free is harmless */
    }
}

static void test_load_select_keeps_order_and_duplicates(void **state)
{
    /* 400 images of 28x28 = 313 KB: the selection crosses many buffer edges. */
    const uint32_t n = 400;
    const uint32_t sel[] = {399, 0, 17, 17, 250, 1, 83, 398, 84, 0};
    const uint32_t ns = (uint32_t)(sizeof sel / sizeof sel[0]);
    for (int gz = 0; gz < 2; gz++) {
        const char *ip, *lp;
        write_dataset("sel-images", "sel-labels", n, 28, 28, gz, &ip, &lp);
        frl_dataset_t d;
        assert_int_equal(frl_dataset_load(ip, lp, sel, ns, &d), 0);
        assert_int_equal(d.n, ns);
        assert_int_equal(d.rows, 28);
        assert_int_equal(d.cols, 28);
        /* n_classes is that of the whole file, not of the selection. */
        assert_int_equal(d.n_classes, 13);
        for (uint32_t k = 0; k < ns; k++)
            check_example(&d, k, sel[k], n);
        frl_dataset_free(&d);
    }
}

static void test_load_select_matches_full_load(void **state)
{
    const uint32_t n = 300;
    const char *ip, *lp;
    write_dataset("m-images.gz", "m-labels.gz", n, 28, 28, 1, &ip, &lp);
    uint32_t sel[100];
    for (uint32_t k = 0; k < 100; k++)
        sel[k] = (k * 37u + 11u) % n;
    frl_dataset_t full, part;
    assert_int_equal(frl_dataset_load(ip, lp, NULL, 0, &full), 0);
    assert_int_equal(frl_dataset_load(ip, lp, sel, 100, &part), 0);
    for (uint32_t k = 0; k < 100; k++) {
        assert_memory_equal(part.images + k * 784, full.images + sel[k] * 784, 784);
        assert_int_equal(part.labels[k], full.labels[sel[k]]);
    }
    frl_dataset_free(&full);
    frl_dataset_free(&part);
}

static void test_load_empty_selection_gives_empty_dataset(void **state)
{
    const char *ip, *lp;
    write_dataset("e-images", "e-labels", 20, 2, 2, 0, &ip, &lp);
    uint32_t dummy = 0;
    frl_dataset_t d;
    assert_int_equal(frl_dataset_load(ip, lp, &dummy, 0, &d), 0);
    assert_int_equal(d.n, 0);
    assert_null(d.images);
    assert_null(d.labels);
    assert_int_equal(d.n_classes, 13);
    assert_int_equal(d.rows, 2);
    frl_dataset_free(&d);
}

static void test_load_select_out_of_range_is_erange(void **state)
{
    const char *ip, *lp;
    write_dataset("r-images", "r-labels", 20, 2, 2, 1, &ip, &lp);
    const uint32_t sel[3] = {0, 19, 20};
    frl_dataset_t d;
    assert_int_equal(frl_dataset_load(ip, lp, sel, 3, &d), FRL_ERANGE);
    assert_int_equal(d.n, 0);
    assert_null(d.images);
    assert_null(d.labels);
    const uint32_t sel2[1] = {UINT32_MAX};
    assert_int_equal(frl_dataset_load(ip, lp, sel2, 1, &d), FRL_ERANGE);
}

static void test_load_count_mismatch_is_emismatch(void **state)
{
    const char *ip, *lp;
    write_dataset("c-images", "c-labels", 20, 2, 2, 0, &ip, &lp);
    uint8_t lb[19] = {0};
    uint32_t ld[1] = {19};
    buf_t b = make_idx(1, ld, lb, 19);
    lp = write_buf(1, "c-labels-19", &b);
    buf_free(&b);
    frl_dataset_t d;
    assert_int_equal(frl_dataset_load(ip, lp, NULL, 0, &d), FRL_EMISMATCH);
    assert_null(d.images);
    const uint32_t sel[1] = {3};
    assert_int_equal(frl_dataset_load(ip, lp, sel, 1, &d), FRL_EMISMATCH);
}

static void test_load_wrong_dims_are_format_errors(void **state)
{
    const char *ip, *lp;
    write_dataset("w-images", "w-labels", 6, 1, 1, 0, &ip, &lp);
    /* Swap roles: a 1-dim file as images, a 3-dim file as labels. */
    frl_dataset_t d;
    assert_int_equal(frl_dataset_load(lp, lp, NULL, 0, &d), FRL_EFORMAT);
    assert_int_equal(frl_dataset_load(ip, ip, NULL, 0, &d), FRL_EFORMAT);
}

static void test_load_selection_still_validates_whole_file(void **state)
{
    /* A selection of the first row must still see the trailing byte at the end. */
    uint8_t px[4 * 4 + 1] = {0};
    uint32_t idims[3] = {4, 2, 2}, ldims[1] = {4};
    uint8_t lb[4] = {0, 1, 2, 3};
    buf_t bi = make_idx(3, idims, px, sizeof px);
    buf_t bl = make_idx(1, ldims, lb, 4);
    const char *ip = write_buf(0, "v-images", &bi);
    const char *lp = write_buf(1, "v-labels", &bl);
    const uint32_t sel[1] = {0};
    frl_dataset_t d;
    assert_int_equal(frl_dataset_load(ip, lp, sel, 1, &d), FRL_EFORMAT);
    assert_null(d.images);
    buf_free(&bi);
    buf_free(&bl);
}

static void test_load_missing_file_is_enoent(void **state)
{
    const char *ip, *lp;
    write_dataset("n-images", "n-labels", 6, 1, 1, 0, &ip, &lp);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope", g_dir);
    frl_dataset_t d;
    assert_int_equal(frl_dataset_load(missing, lp, NULL, 0, &d), FRL_ENOENT);
    assert_int_equal(frl_dataset_load(ip, missing, NULL, 0, &d), FRL_ENOENT);
    assert_int_equal(frl_dataset_load(ip, lp, NULL, 0, NULL), FRL_EINVAL);
}

static void test_labels_load_reads_label_file(void **state)
{
    const char *ip, *lp;
    write_dataset("l-images.gz", "l-labels.gz", 33, 1, 1, 1, &ip, &lp);
    uint8_t *labels;
    uint32_t n;
    assert_int_equal(frl_labels_load(lp, &labels, &n), 0);
    assert_int_equal(n, 33);
    for (uint32_t i = 0; i < 33; i++)
        assert_int_equal(labels[i], i == 32 ? 12 : i % 10);
    free(labels);
    /* An image file is not a label file. */
    assert_int_equal(frl_labels_load(ip, &labels, &n), FRL_EFORMAT);
    assert_null(labels);
    assert_int_equal(n, 0);
}

/* ---- frl_mnist_paths ---------------------------------------------------- */

static void test_mnist_paths_prefers_gz_and_falls_back_to_unzipped(void **state)
{
    uint8_t one = 0;
    write_file(0, "train-images-idx3-ubyte.gz", &one, 1);
    write_file(1, "train-labels-idx1-ubyte", &one, 1); /* only the unzipped one */
    char ip[600], lp[600], want[600];
    assert_int_equal(frl_mnist_paths(g_dir, "train", ip, sizeof ip, lp, sizeof lp), 0);
    snprintf(want, sizeof want, "%s/train-images-idx3-ubyte.gz", g_dir);
    assert_string_equal(ip, want);
    snprintf(want, sizeof want, "%s/train-labels-idx1-ubyte", g_dir);
    assert_string_equal(lp, want);
    /* t10k is absent: ENOENT, with the .gz names filled in for the message. */
    assert_int_equal(frl_mnist_paths(g_dir, "t10k", ip, sizeof ip, lp, sizeof lp), FRL_ENOENT);
    snprintf(want, sizeof want, "%s/t10k-images-idx3-ubyte.gz", g_dir);
    assert_string_equal(ip, want);
}

static void test_mnist_paths_rejects_bad_split_and_small_buffer(void **state)
{
    char ip[600], lp[600], tiny[8];
    assert_int_equal(frl_mnist_paths(g_dir, "test", ip, sizeof ip, lp, sizeof lp), FRL_EINVAL);
    assert_int_equal(frl_mnist_paths(g_dir, NULL, ip, sizeof ip, lp, sizeof lp), FRL_EINVAL);
    assert_int_equal(frl_mnist_paths(g_dir, "train", tiny, sizeof tiny, lp, sizeof lp), FRL_ETOOBIG);
}

/* ---- the real data set --------------------------------------------------- */

static void test_real_fashion_mnist_loads_if_installed(void **state)
{
    char ip[512], lp[512], tip[512], tlp[512];
    if (frl_mnist_paths(NULL, "train", ip, sizeof ip, lp, sizeof lp) != 0 ||
        frl_mnist_paths(NULL, "t10k", tip, sizeof tip, tlp, sizeof tlp) != 0) {
        print_message("SKIP: Fashion-MNIST not found in " FRL_FMNIST_DIR " (Debian package dataset-fashion-mnist)\n");
        skip();
    }
    /* Train labels: 60,000, ten balanced classes. */
    uint8_t *labels;
    uint32_t n;
    assert_int_equal(frl_labels_load(lp, &labels, &n), 0);
    assert_int_equal(n, 60000);
    uint32_t count[256] = {0};
    for (uint32_t i = 0; i < n; i++)
        count[labels[i]]++;
    for (int c = 0; c < 10; c++)
        assert_int_equal(count[c], 6000);
    for (int c = 10; c < 256; c++)
        assert_int_equal(count[c], 0);

    /* Test set: 10,000 images of 28 x 28, 10 classes. */
    frl_dataset_t test;
    assert_int_equal(frl_dataset_load(tip, tlp, NULL, 0, &test), 0);
    assert_int_equal(test.n, 10000);
    assert_int_equal(test.rows, 28);
    assert_int_equal(test.cols, 28);
    assert_int_equal(test.n_classes, 10);

    /* A scattered selection of the train set equals the full load's rows. */
    frl_dataset_t full, part;
    uint32_t sel[64];
    for (uint32_t k = 0; k < 64; k++)
        sel[k] = (k * 7919u + 59999u) % 60000u;
    assert_int_equal(frl_dataset_load(ip, lp, NULL, 0, &full), 0);
    assert_int_equal(frl_dataset_load(ip, lp, sel, 64, &part), 0);
    assert_int_equal(full.n, 60000);
    assert_int_equal(full.n_classes, 10);
    assert_int_equal(part.n_classes, 10);
    for (uint32_t k = 0; k < 64; k++) {
        assert_memory_equal(part.images + (size_t)k * 784, full.images + (size_t)sel[k] * 784, 784);
        assert_int_equal(part.labels[k], labels[sel[k]]);
    }
    frl_dataset_free(&full);
    frl_dataset_free(&part);
    frl_dataset_free(&test);
    free(labels);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_plain_file_returns_shape_and_payload),
        cmocka_unit_test(test_read_gzip_is_detected_by_magic_not_by_name),
        cmocka_unit_test(test_read_large_gzip_spanning_many_buffers),
        cmocka_unit_test(test_read_concatenated_gzip_members_are_one_stream),
        cmocka_unit_test(test_read_header_only_file_is_truncated),
        cmocka_unit_test(test_read_partial_header_is_truncated),
        cmocka_unit_test(test_read_payload_one_byte_short_is_truncated),
        cmocka_unit_test(test_read_trailing_byte_is_format_error),
        cmocka_unit_test(test_read_garbage_after_gzip_member_is_format_error),
        cmocka_unit_test(test_read_wrong_magic_is_format_error),
        cmocka_unit_test(test_read_other_idx_element_type_is_unsupported),
        cmocka_unit_test(test_read_ndim_zero_or_five_is_format_error),
        cmocka_unit_test(test_read_zero_dim_is_format_error),
        cmocka_unit_test(test_read_size_above_limit_is_too_big),
        cmocka_unit_test(test_read_big_claim_with_small_payload_is_truncated),
        cmocka_unit_test(test_read_corrupt_gzip_stream_is_format_error),
        cmocka_unit_test(test_read_gzip_crc_mismatch_is_format_error),
        cmocka_unit_test(test_read_truncated_gzip_stream_is_truncated),
        cmocka_unit_test(test_read_missing_file_is_enoent),
        cmocka_unit_test(test_read_null_arguments_are_rejected),
        cmocka_unit_test(test_load_full_dataset_plain_and_gzip),
        cmocka_unit_test(test_load_select_keeps_order_and_duplicates),
        cmocka_unit_test(test_load_select_matches_full_load),
        cmocka_unit_test(test_load_empty_selection_gives_empty_dataset),
        cmocka_unit_test(test_load_select_out_of_range_is_erange),
        cmocka_unit_test(test_load_count_mismatch_is_emismatch),
        cmocka_unit_test(test_load_wrong_dims_are_format_errors),
        cmocka_unit_test(test_load_selection_still_validates_whole_file),
        cmocka_unit_test(test_load_missing_file_is_enoent),
        cmocka_unit_test(test_labels_load_reads_label_file),
        cmocka_unit_test(test_mnist_paths_prefers_gz_and_falls_back_to_unzipped),
        cmocka_unit_test(test_mnist_paths_rejects_bad_split_and_small_buffer),
        cmocka_unit_test(test_real_fashion_mnist_loads_if_installed),
    };
    return cmocka_run_group_tests_name("data_idx", tests, group_setup, group_teardown);
}
