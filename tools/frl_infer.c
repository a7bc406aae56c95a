/* frl-infer: integer-only inference with a quantised FRL model file.
 *
 *   frl-infer MODEL [--data DIR] [--split t10k|train] [--batch N] [--threads N]
 *             [--path auto|scalar|avx2|avx512] [--float-agreement] [--image N]... [--json]
 *
 * Default: accuracy of the model on the Fashion-MNIST t10k set (or any
 * MNIST-layout IDX directory) and the throughput of that run. With
 * --float-agreement also the float masked model's accuracy and the argmax
 * agreement. With --image N: classify test image N (repeatable), printing
 * the int32 logits. Exit status: 0 ok, 1 runtime error (bad model file,
 * missing data), 2 usage. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_file.h"
#include "data/frl_idx.h"
#include "quant/frl_quant.h"
#include "supermask/frl_ops.h"

#define MAX_IMAGES 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: frl-infer MODEL [options]\n"
            "  --data DIR          MNIST-layout IDX directory (default %s)\n"
            "  --split NAME        t10k (default) or train\n"
            "  --batch N           images per inference call (default 64)\n"
            "  --threads N         threads for the accuracy run (default 1)\n"
            "  --limit N           use the first N images of the split (default all)\n"
            "  --path P            kernels: auto (default), scalar, avx2, avx512\n"
            "  --float-agreement   also run the float masked model and report agreement\n"
            "  --image N           classify image N of the split (repeatable, up to %d)\n"
            "  --json              one JSON object on stdout\n",
            FRL_FMNIST_DIR, MAX_IMAGES);
}

static int parse_path(const char *s, frl_qpath *p)
{
    static const struct {
        const char *n;
        frl_qpath p;
    } t[] = {{"auto", FRL_QPATH_AUTO}, {"scalar", FRL_QPATH_SCALAR}, {"avx2", FRL_QPATH_AVX2}, {"avx512", FRL_QPATH_AVX512}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(s, t[i].n)) {
            *p = t[i].p;
            return 0;
        }
    return FRL_EINVAL;
}

static int classify(const frl_qmodel_t *m, const frl_dataset_t *ds, const long *idx, int n, int json)
{
    const int nc = frl_qmodel_spec(m)->n_classes;
    size_t ss = frl_qmodel_scratch_size(m, 1);
    void *scr = aligned_alloc(64, (ss + 63) & ~(size_t)63);
    int32_t *lg = malloc(sizeof(int32_t) * (size_t)nc);
    int rc = scr && lg ? 0 : FRL_ENOMEM;
    if (json)
        printf("{\"images\":[");
    for (int i = 0; i < n && !rc; i++) {
        if (idx[i] < 0 || (uint64_t)idx[i] >= ds->n) {
            fprintf(stderr, "frl-infer: image %ld out of range (the split has %u)\n", idx[i], ds->n);
            rc = FRL_ERANGE;
            break;
        }
        uint8_t pred;
        rc = frl_qmodel_infer(m, ds->images + (size_t)idx[i] * ds->rows * ds->cols, 1, lg, &pred, scr, ss);
        if (rc)
            break;
        if (json) {
            printf("%s{\"index\":%ld,\"label\":%u,\"pred\":%u,\"logits\":[", i ? "," : "", idx[i], ds->labels[idx[i]], pred);
            for (int c = 0; c < nc; c++)
                printf("%s%d", c ? "," : "", lg[c]);
            printf("]}");
        } else {
            printf("image %ld: predicted %u, label %u, logits", idx[i], pred, ds->labels[idx[i]]);
            for (int c = 0; c < nc; c++)
                printf(" %d", lg[c]);
            printf("\n");
        }
    }
    if (json)
        printf("]}\n");
    free(scr);
    free(lg);
    return rc;
}

int main(int argc, char **argv)
{
    frl_blas_fix_core(argv); /* before anything is opened: it may exec us again */
    const char *data = NULL, *split = "t10k";
    int batch = 64, threads = 1, json = 0, fagree = 0, nimg = 0;
    long limit = 0;
    long images[MAX_IMAGES];
    frl_qpath path = FRL_QPATH_AUTO;
    static const struct option lo[] = {{"data", required_argument, 0, 'd'},
                                       {"split", required_argument, 0, 's'},
                                       {"batch", required_argument, 0, 'b'},
                                       {"threads", required_argument, 0, 't'},
                                       {"path", required_argument, 0, 'p'},
                                       {"float-agreement", no_argument, 0, 'f'},
                                       {"image", required_argument, 0, 'i'},
                                       {"json", no_argument, 0, 'j'},
                                       {"limit", required_argument, 0, 'n'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'd':
            data = optarg;
            break;
        case 's':
            split = optarg;
            break;
        case 'b':
            batch = (int)strtol(optarg, &end, 10);
            break;
        case 't':
            threads = (int)strtol(optarg, &end, 10);
            break;
        case 'p':
            if (parse_path(optarg, &path)) {
                fprintf(stderr, "frl-infer: unknown path '%s'\n", optarg);
                return 2;
            }
            break;
        case 'f':
            fagree = 1;
            break;
        case 'i':
            if (nimg == MAX_IMAGES) {
                fprintf(stderr, "frl-infer: at most %d --image\n", MAX_IMAGES);
                return 2;
            }
            images[nimg++] = strtol(optarg, &end, 10);
            break;
        case 'j':
            json = 1;
            break;
        case 'n':
            limit = strtol(optarg, &end, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (end && *end) {
            fprintf(stderr, "frl-infer: not a number: '%s'\n", optarg);
            return 2;
        }
    }
    if (optind + 1 != argc || batch < 1 || batch > 4096 || threads < 1 || threads > 64 || limit < 0) {
        usage(stderr);
        return 2;
    }
    const char *model_path = argv[optind];
    frl_qmodel_t *m;
    int rc = frl_qmodel_load(model_path, NULL, &m);
    if (rc) {
        fprintf(stderr, "frl-infer: %s: %s (%s)\n", model_path, frl_strerror(rc), frl_err_name(rc));
        return 1;
    }
    if ((rc = frl_qmodel_set_path(m, path)) != 0) {
        fprintf(stderr, "frl-infer: kernel path not available on this CPU\n");
        frl_qmodel_free(m);
        return 1;
    }
    frl_dataset_t ds;
    rc = frl_mnist_load(data, split, NULL, 0, &ds);
    if (rc) {
        fprintf(stderr, "frl-infer: data %s/%s: %s\n", data ? data : FRL_FMNIST_DIR, split, frl_strerror(rc));
        frl_qmodel_free(m);
        return 1;
    }
    const frl_model_spec_t *spec = frl_qmodel_spec(m);
    if (ds.rows != (uint32_t)spec->in_h || ds.cols != (uint32_t)spec->in_w || spec->in_c != 1) {
        fprintf(stderr, "frl-infer: images are %ux%u, the model takes %dx%dx%d\n", ds.rows, ds.cols, spec->in_c, spec->in_h,
                spec->in_w);
        frl_dataset_free(&ds);
        frl_qmodel_free(m);
        return 1;
    }
    if (limit > 0 && (uint64_t)limit < ds.n)
        ds.n = (uint32_t)limit; /* the buffers keep their size; frl_dataset_free does not need n */
    if (nimg > 0) {
        rc = classify(m, &ds, images, nimg, json);
        frl_dataset_free(&ds);
        frl_qmodel_free(m);
        return rc ? 1 : 0;
    }
    uint8_t *ip = malloc(ds.n ? ds.n : 1), *fp = fagree ? malloc(ds.n ? ds.n : 1) : NULL;
    frl_qeval_t ev;
    rc = ip && (!fagree || fp) ? frl_qmodel_evaluate(m, &ds, batch, threads, &ev, ip) : FRL_ENOMEM;
    uint32_t agree = 0, fcorrect = 0;
    double fsec = 0;
    if (!rc && fagree) {
        double t0 = frl_now_s();
        rc = frl_qmodel_float_predict(m, &ds, 0.2860f, 0.3530f, fp);
        fsec = frl_now_s() - t0;
        for (uint32_t i = 0; i < ds.n && !rc; i++) {
            agree += ip[i] == fp[i];
            fcorrect += fp[i] == ds.labels[i];
        }
    }
    if (rc) {
        fprintf(stderr, "frl-infer: %s (%s)\n", frl_strerror(rc), frl_err_name(rc));
    } else if (json) {
        printf("{\"model\":\"%s\",\"file\":\"%s\",\"path\":\"%s\",\"split\":\"%s\",\"images\":%u,\"batch\":%d,\"threads\":%d,"
               "\"accuracy_int\":%.4f,\"seconds\":%.4f,\"img_per_s\":%.1f",
               spec->name, model_path, frl_qpath_name(frl_qmodel_path(m)), split, ev.n, batch, threads, ev.accuracy, ev.seconds,
               ev.seconds > 0 ? ev.n / ev.seconds : 0.0);
        if (fagree)
            printf(",\"accuracy_float\":%.4f,\"agreement\":%.4f,\"float_seconds\":%.3f", ds.n ? (double)fcorrect / ds.n : 0.0,
                   ds.n ? (double)agree / ds.n : 0.0, fsec);
        printf("}\n");
    } else {
        printf("%s (%s), kernels %s: accuracy %.2f%% on %u %s images; %.0f images/s (batch %d, %d thread%s)\n", model_path,
               spec->name, frl_qpath_name(frl_qmodel_path(m)), 100 * ev.accuracy, ev.n, split,
               ev.seconds > 0 ? ev.n / ev.seconds : 0.0, batch, threads, threads > 1 ? "s" : "");
        if (fagree)
            printf("float masked model: accuracy %.2f%%; argmax agreement %.2f%% (%u of %u)\n",
                   ds.n ? 100.0 * fcorrect / ds.n : 0.0, ds.n ? 100.0 * agree / ds.n : 0.0, agree, ds.n);
    }
    free(ip);
    free(fp);
    frl_dataset_free(&ds);
    frl_qmodel_free(m);
    return rc ? 1 : 0;
}
