/* IDX reader: plain or gzip files, streamed through fixed buffers so that a
 * caller can keep a few rows of a large file without holding all of it. See
 * frl_idx.h for the format and the error codes. */
#include "data/frl_idx.h"
#include "common/frl_error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define RD_BUF ((size_t)65536)       /* size of the input and output buffers of a reader */
#define GROW_START ((size_t)4 << 20) /* first allocation of a whole-payload read */
#define IDX_TYPE_UBYTE 0x08

/* A byte stream over one file that hides whether the file is gzip. The
 * decoded bytes are handed out of `out`; in gzip mode `in` holds compressed
 * input for zlib. */
typedef struct idx_reader_s {
    int fd;
    int gz;              /* the file starts with the gzip magic 1f 8b */
    int z_live;          /* zs was initialised and needs inflateEnd */
    int src_eof;         /* read() reached the end of the file */
    int member_done;     /* the current gzip member ended (Z_STREAM_END) */
    uint32_t members;    /* gzip members started so far */
    uint64_t member_out; /* bytes produced by the current gzip member */
    z_stream zs;
    uint8_t *in;  /* [RD_BUF] compressed input (gzip mode) */
    uint8_t *out; /* [RD_BUF] decoded bytes */
    size_t out_pos, out_len;
} idx_reader;

/* Reads until `cap` bytes or the end of the file, retrying on EINTR and
 * short reads. Returns the byte count, or -1 on a read error. */
static ssize_t read_full(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static void rd_close(idx_reader *r)
{
    if (!r)
        return;
    if (r->z_live)
        inflateEnd(&r->zs);
    if (r->fd >= 0)
        close(r->fd);
    free(r->in);
    free(r->out);
    free(r);
}

/* Opens `path` and decides plain versus gzip from its first two bytes: the
 * first buffer of the file is read into `out`, and in gzip mode the two
 * buffers are swapped so that it becomes zlib's input. */
static int rd_open(const char *path, idx_reader **out)
{
    *out = NULL;
    if (!path)
        return FRL_EINVAL;
    idx_reader *r = calloc(1, sizeof *r);
    if (!r)
        return FRL_ENOMEM;
    r->fd = -1;
    r->in = malloc(RD_BUF);
    r->out = malloc(RD_BUF);
    if (!r->in || !r->out) {
        rd_close(r);
        return FRL_ENOMEM;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int rc = errno == ENOENT ? FRL_ENOENT : FRL_EIO;
        rd_close(r);
        return rc;
    }
    ssize_t n = read_full(r->fd, r->out, RD_BUF);
    if (n < 0) {
        rd_close(r);
        return FRL_EIO;
    }
    if ((size_t)n < RD_BUF)
        r->src_eof = 1;
    if (n >= 2 && r->out[0] == 0x1f && r->out[1] == 0x8b) {
        uint8_t *t = r->in;
        r->in = r->out;
        r->out = t;
        r->gz = 1;
        /* 15 + 16: a gzip wrapper with a window of up to 32 KiB. */
        if (inflateInit2(&r->zs, 15 + 16) != Z_OK) {
            rd_close(r);
            return FRL_ENOMEM;
        }
        r->z_live = 1;
        r->members = 1;
        r->zs.next_in = r->in;
        r->zs.avail_in = (uInt)n;
    } else {
        r->out_len = (size_t)n;
    }
    *out = r;
    return 0;
}

/* Refills zlib's input buffer from the file once it is used up. */
static int rd_fill_in(idx_reader *r)
{
    if (r->zs.avail_in > 0 || r->src_eof)
        return 0;
    ssize_t n = read_full(r->fd, r->in, RD_BUF);
    if (n < 0)
        return FRL_EIO;
    if ((size_t)n < RD_BUF)
        r->src_eof = 1;
    r->zs.next_in = r->in;
    r->zs.avail_in = (uInt)n;
    return 0;
}

/* Makes `out` hold new decoded bytes; out_len == 0 afterwards means the end
 * of the data. In gzip mode a member end followed by more input starts the
 * next member; input that is not a complete member is FRL_EFORMAT (bytes
 * that are not gzip) or FRL_ETRUNC (a member cut short). */
static int rd_fill(idx_reader *r)
{
    r->out_pos = 0;
    r->out_len = 0;
    if (!r->gz) {
        if (r->src_eof)
            return 0;
        ssize_t n = read_full(r->fd, r->out, RD_BUF);
        if (n < 0)
            return FRL_EIO;
        if ((size_t)n < RD_BUF)
            r->src_eof = 1;
        r->out_len = (size_t)n;
        return 0;
    }
    for (;;) {
        int rc = rd_fill_in(r);
        if (rc)
            return rc;
        if (r->member_done) {
            if (r->zs.avail_in == 0)
                return 0; /* clean end after a complete member */
            if (inflateReset(&r->zs) != Z_OK)
                return FRL_EFORMAT;
            r->member_done = 0;
            r->member_out = 0;
            r->members++;
        }
        r->zs.next_out = r->out;
        r->zs.avail_out = (uInt)RD_BUF;
        int zr = inflate(&r->zs, Z_NO_FLUSH);
        size_t produced = RD_BUF - r->zs.avail_out;
        r->member_out += produced;
        /* Bytes after the first member that do not even start a member
         * are trailing garbage, whatever zlib calls them. */
        int garbage = r->members > 1 && r->member_out == 0;
        switch (zr) {
        case Z_OK:
            break;
        case Z_STREAM_END:
            r->member_done = 1;
            break;
        case Z_BUF_ERROR:
            /* No progress: zlib needs input and the file has none left. */
            if (r->zs.avail_in == 0 && r->src_eof)
                return garbage ? FRL_EFORMAT : FRL_ETRUNC;
            return FRL_EFORMAT;
        case Z_MEM_ERROR:
            return FRL_ENOMEM;
        default: /* Z_DATA_ERROR (bad data, CRC or length), Z_NEED_DICT, Z_STREAM_ERROR */
            return FRL_EFORMAT;
        }
        if (produced > 0) {
            r->out_len = produced;
            return 0;
        }
        if (zr == Z_OK && r->zs.avail_in == 0 && r->src_eof)
            return garbage ? FRL_EFORMAT : FRL_ETRUNC;
    }
}

/* Copies the next `len` decoded bytes to `dst` (or drops them when dst is
 * NULL). FRL_ETRUNC when the data ends first. */
static int rd_read(idx_reader *r, uint8_t *dst, uint64_t len)
{
    while (len > 0) {
        if (r->out_pos == r->out_len) {
            int rc = rd_fill(r);
            if (rc)
                return rc;
            if (r->out_len == 0)
                return FRL_ETRUNC;
        }
        size_t take = r->out_len - r->out_pos;
        if (take > len)
            take = (size_t)len;
        if (dst) {
            memcpy(dst, r->out + r->out_pos, take);
            dst += take;
        }
        r->out_pos += take;
        len -= take;
    }
    return 0;
}

/* 0 when no decoded byte is left (in gzip mode this also runs zlib to the
 * end of the stream, which checks the CRC and length), FRL_EFORMAT when one
 * is. */
static int rd_expect_eof(idx_reader *r)
{
    if (r->out_pos < r->out_len)
        return FRL_EFORMAT;
    int rc = rd_fill(r);
    if (rc)
        return rc;
    return r->out_len == 0 ? 0 : FRL_EFORMAT;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads and checks the IDX header: magic, element type, ndim in 1..4,
 * nonzero dims, and a payload of at most FRL_IDX_MAX_BYTES. */
static int rd_header(idx_reader *r, uint32_t *ndim, uint32_t dims[4], uint64_t *total)
{
    uint8_t h[16];
    int rc = rd_read(r, h, 4);
    if (rc)
        return rc;
    if (h[0] != 0 || h[1] != 0)
        return FRL_EFORMAT;
    switch (h[2]) {
    case IDX_TYPE_UBYTE:
        break;
    case 0x09: /* signed byte */
    case 0x0B: /* short */
    case 0x0C: /* int */
    case 0x0D: /* float */
    case 0x0E: /* double */
        return FRL_EUNSUPPORTED;
    default:
        return FRL_EFORMAT;
    }
    uint32_t nd = h[3];
    if (nd < 1 || nd > 4)
        return FRL_EFORMAT;
    rc = rd_read(r, h, 4 * (uint64_t)nd);
    if (rc)
        return rc;
    uint64_t prod = 1;
    for (uint32_t i = 0; i < 4; i++)
        dims[i] = 0;
    for (uint32_t i = 0; i < nd; i++) {
        dims[i] = be32(h + 4 * i);
        if (dims[i] == 0)
            return FRL_EFORMAT;
        /* Both factors are <= 2^32 and prod <= 2^31 before this, so no overflow. */
        prod *= dims[i];
        if (prod > FRL_IDX_MAX_BYTES)
            return FRL_ETOOBIG;
    }
    *ndim = nd;
    *total = prod;
    return 0;
}

/* Reads `total` payload bytes into a new buffer that grows (doubling from
 * GROW_START) as data arrives, so a header that lies about its size costs
 * at most about twice the data really present. */
static int rd_read_growing(idx_reader *r, uint64_t total, uint8_t **out)
{
    *out = NULL;
    size_t cap = total < GROW_START ? (size_t)total : GROW_START;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return FRL_ENOMEM;
    size_t got = 0;
    for (;;) {
        int rc = rd_read(r, buf + got, cap - got);
        if (rc) {
            free(buf);
            return rc;
        }
        got = cap;
        if (got == total)
            break;
        size_t ncap = (uint64_t)cap * 2 < total ? cap * 2 : (size_t)total;
        uint8_t *nb = realloc(buf, ncap);
        if (!nb) {
            free(buf);
            return FRL_ENOMEM;
        }
        buf = nb;
        cap = ncap;
    }
    *out = buf;
    return 0;
}

int frl_idx_read(const char *path, uint32_t *ndim, uint32_t dims[4], uint8_t **data, size_t *len)
{
    if (!ndim || !dims || !data || !len)
        return FRL_EINVAL;
    *ndim = 0;
    *data = NULL;
    *len = 0;
    uint32_t nd = 0, d[4] = {0, 0, 0, 0};
    uint64_t total = 0;
    uint8_t *buf = NULL;
    idx_reader *r = NULL;
    int rc = rd_open(path, &r);
    if (rc)
        return rc;
    rc = rd_header(r, &nd, d, &total);
    if (!rc)
        rc = rd_read_growing(r, total, &buf);
    if (!rc)
        rc = rd_expect_eof(r);
    rd_close(r);
    if (rc) {
        free(buf);
        return rc;
    }
    *ndim = nd;
    memcpy(dims, d, sizeof d);
    *data = buf;
    *len = (size_t)total;
    return 0;
}

/* Opens a label file and checks that it has exactly one dim. */
static int open_labels(const char *path, idx_reader **r, uint32_t *n)
{
    uint32_t nd = 0, d[4];
    uint64_t total = 0;
    int rc = rd_open(path, r);
    if (rc)
        return rc;
    rc = rd_header(*r, &nd, d, &total);
    if (!rc && nd != 1)
        rc = FRL_EFORMAT;
    if (rc) {
        rd_close(*r);
        *r = NULL;
        return rc;
    }
    *n = d[0];
    return 0;
}

int frl_labels_load(const char *labels_path, uint8_t **labels, uint32_t *n)
{
    if (!labels || !n)
        return FRL_EINVAL;
    *labels = NULL;
    *n = 0;
    idx_reader *r = NULL;
    uint32_t count = 0;
    uint8_t *buf = NULL;
    int rc = open_labels(labels_path, &r, &count);
    if (rc)
        return rc;
    rc = rd_read_growing(r, count, &buf);
    if (!rc)
        rc = rd_expect_eof(r);
    rd_close(r);
    if (rc) {
        free(buf);
        return rc;
    }
    *labels = buf;
    *n = count;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Streams all n labels in small chunks, keeps the selected ones and returns
 * the largest label of the whole file. With keep_all, dst receives all n
 * labels; otherwise `pairs` (sorted, (index << 32) | slot) names which label
 * goes to which output slot. */
static int stream_labels(idx_reader *r, uint32_t n, int keep_all, const uint64_t *pairs, size_t n_pairs, uint8_t *dst,
                         uint8_t *max_label)
{
    uint8_t chunk[4096];
    uint8_t mx = 0;
    size_t j = 0;
    for (uint32_t base = 0; base < n;) {
        uint32_t take = n - base < sizeof chunk ? n - base : (uint32_t)sizeof chunk;
        int rc = rd_read(r, chunk, take);
        if (rc)
            return rc;
        for (uint32_t i = 0; i < take; i++)
            mx = chunk[i] > mx ? chunk[i] : mx;
        if (keep_all) {
            memcpy(dst + base, chunk, take);
        } else {
            for (; j < n_pairs && (uint32_t)(pairs[j] >> 32) < base + take; j++)
                dst[(uint32_t)pairs[j]] = chunk[(uint32_t)(pairs[j] >> 32) - base];
        }
        base += take;
    }
    *max_label = mx;
    return rd_expect_eof(r);
}

/* Streams n rows of `row` bytes, copying the selected ones into their
 * output slots and skipping the rest without storing them. A row selected
 * twice is read once and copied. */
static int stream_rows(idx_reader *r, uint32_t n, size_t row, const uint64_t *pairs, size_t n_pairs, uint8_t *dst)
{
    uint64_t cur = 0; /* next row of the file to be read */
    uint32_t prev_slot = 0;
    for (size_t j = 0; j < n_pairs; j++) {
        uint32_t idx = (uint32_t)(pairs[j] >> 32), slot = (uint32_t)pairs[j];
        if (j > 0 && idx == (uint32_t)(pairs[j - 1] >> 32)) {
            memcpy(dst + (size_t)slot * row, dst + (size_t)prev_slot * row, row);
            continue;
        }
        int rc = rd_read(r, NULL, (idx - cur) * row);
        if (!rc)
            rc = rd_read(r, dst + (size_t)slot * row, row);
        if (rc)
            return rc;
        cur = (uint64_t)idx + 1;
        prev_slot = slot;
    }
    int rc = rd_read(r, NULL, (n - cur) * row);
    if (rc)
        return rc;
    return rd_expect_eof(r);
}

int frl_dataset_load(const char *images_path, const char *labels_path, const uint32_t *select, uint32_t n_select,
                     frl_dataset_t *out)
{
    if (!out)
        return FRL_EINVAL;
    memset(out, 0, sizeof *out);
    if (select == NULL)
        n_select = 0;
    idx_reader *ri = NULL, *rl = NULL;
    uint64_t *pairs = NULL;
    frl_dataset_t d;
    memset(&d, 0, sizeof d);
    uint32_t nd = 0, dims[4], n_labels = 0, n = 0;
    uint64_t total = 0;
    size_t row = 0;
    uint8_t max_label = 0;

    int rc = rd_open(images_path, &ri);
    if (rc)
        goto fail;
    rc = rd_header(ri, &nd, dims, &total);
    if (rc)
        goto fail;
    if (nd != 3) {
        rc = FRL_EFORMAT;
        goto fail;
    }
    rc = open_labels(labels_path, &rl, &n_labels);
    if (rc)
        goto fail;
    if (n_labels != dims[0]) {
        rc = FRL_EMISMATCH;
        goto fail;
    }
    n = dims[0];
    row = (size_t)dims[1] * dims[2]; /* <= total <= 2^31 */
    d.rows = dims[1];
    d.cols = dims[2];

    if (select) {
        for (uint32_t i = 0; i < n_select; i++) {
            if (select[i] >= n) {
                rc = FRL_ERANGE;
                goto fail;
            }
        }
        if ((uint64_t)n_select * row > FRL_IDX_MAX_BYTES) {
            rc = FRL_ETOOBIG;
            goto fail;
        }
        d.n = n_select;
        if (n_select > 0) {
            pairs = malloc((size_t)n_select * sizeof *pairs);
            d.images = malloc((size_t)n_select * row);
            d.labels = malloc(n_select);
            if (!pairs || !d.images || !d.labels) {
                rc = FRL_ENOMEM;
                goto fail;
            }
            for (uint32_t i = 0; i < n_select; i++)
                pairs[i] = (uint64_t)select[i] << 32 | i;
            qsort(pairs, n_select, sizeof *pairs, cmp_u64);
        }
        /* Labels first: the cheap file fails fast before the big one is decoded. */
        rc = stream_labels(rl, n, 0, pairs, n_select, d.labels, &max_label);
        if (!rc)
            rc = stream_rows(ri, n, row, pairs, n_select, d.images);
        if (rc)
            goto fail;
    } else {
        d.n = n;
        d.labels = malloc(n);
        if (!d.labels) {
            rc = FRL_ENOMEM;
            goto fail;
        }
        rc = stream_labels(rl, n, 1, NULL, 0, d.labels, &max_label);
        if (!rc)
            rc = rd_read_growing(ri, total, &d.images);
        if (!rc)
            rc = rd_expect_eof(ri);
        if (rc)
            goto fail;
    }
    d.n_classes = (uint32_t)max_label + 1;
    rd_close(ri);
    rd_close(rl);
    free(pairs);
    *out = d;
    return 0;
fail:
    rd_close(ri);
    rd_close(rl);
    free(pairs);
    frl_dataset_free(&d);
    return rc;
}

/* Writes "<dir>/<split>-<kind>.gz" into buf, or the name without ".gz" when
 * only that one exists. FRL_ENOENT (with the .gz name left in buf) when
 * neither exists. */
static int pick_path(const char *dir, const char *split, const char *kind, char *buf, size_t cap)
{
    int len = snprintf(buf, cap, "%s/%s-%s.gz", dir, split, kind);
    if (len < 0 || (size_t)len >= cap)
        return FRL_ETOOBIG;
    if (access(buf, F_OK) == 0)
        return 0;
    buf[len - 3] = '\0';
    if (access(buf, F_OK) == 0)
        return 0;
    buf[len - 3] = '.';
    return FRL_ENOENT;
}

int frl_mnist_paths(const char *dir, const char *split, char *images, size_t images_cap, char *labels, size_t labels_cap)
{
    if (!split || !images || !labels || images_cap == 0 || labels_cap == 0)
        return FRL_EINVAL;
    if (strcmp(split, "train") != 0 && strcmp(split, "t10k") != 0)
        return FRL_EINVAL;
    if (!dir)
        dir = FRL_FMNIST_DIR;
    int rc_i = pick_path(dir, split, "images-idx3-ubyte", images, images_cap);
    int rc_l = pick_path(dir, split, "labels-idx1-ubyte", labels, labels_cap);
    if (rc_i == FRL_ETOOBIG || rc_l == FRL_ETOOBIG)
        return FRL_ETOOBIG;
    return rc_i ? rc_i : rc_l;
}

int frl_mnist_load(const char *dir, const char *split, const uint32_t *select, uint32_t n_select, frl_dataset_t *out)
{
    char ip[4096], lp[4096];
    if (out)
        memset(out, 0, sizeof *out);
    int rc = frl_mnist_paths(dir, split, ip, sizeof ip, lp, sizeof lp);
    if (rc)
        return rc;
    return frl_dataset_load(ip, lp, select, n_select, out);
}

void frl_dataset_free(frl_dataset_t *d)
{
    if (!d)
        return;
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}
