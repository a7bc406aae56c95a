/* Accuracy of a quantised model on a data set, optionally on several
 * threads (each with its own scratch; the model is read-only). */
#include "quant/qmodel_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_file.h"

typedef struct {
    const frl_qmodel_t *m;
    const frl_dataset_t *ds;
    uint32_t i0, i1;
    int batch;
    uint8_t *pred;
    uint32_t correct;
    int rc;
} job_t;

static void *run_job(void *arg)
{
    job_t *j = arg;
    size_t ss = frl_qmodel_scratch_size(j->m, j->batch);
    void *scratch = aligned_alloc(64, (ss + 63) & ~(size_t)63);
    uint8_t *pred = malloc((size_t)j->batch);
    if (!scratch || !pred) {
        j->rc = FRL_ENOMEM;
        goto out;
    }
    for (uint32_t i = j->i0; i < j->i1; i += (uint32_t)j->batch) {
        int B = j->i1 - i < (uint32_t)j->batch ? (int)(j->i1 - i) : j->batch;
        j->rc = frl_qmodel_infer(j->m, j->ds->images + (size_t)i * j->m->img_bytes, B, NULL, pred, scratch, ss);
        if (j->rc)
            break;
        for (int b = 0; b < B; b++) {
            j->correct += pred[b] == j->ds->labels[i + b];
            if (j->pred)
                j->pred[i + b] = pred[b];
        }
    }
out:
    free(scratch);
    free(pred);
    return NULL;
}

int frl_qmodel_evaluate(const frl_qmodel_t *m, const frl_dataset_t *ds, int batch, int threads, frl_qeval_t *res, uint8_t *pred)
{
    if (!m || !ds || !res || (ds->n && (!ds->images || !ds->labels)))
        return FRL_EINVAL;
    if ((size_t)ds->rows * ds->cols != m->img_bytes)
        return FRL_EMISMATCH;
    memset(res, 0, sizeof *res);
    if (batch <= 0)
        batch = 64;
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    job_t jobs[64];
    pthread_t tid[64];
    double t0 = frl_now_s();
    uint32_t per = (ds->n + (uint32_t)threads - 1) / (uint32_t)threads;
    int started = 0, rc = 0;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job_t){m, ds, (uint32_t)t * per, (uint32_t)(t + 1) * per, batch, pred, 0, 0};
        if (jobs[t].i0 > ds->n)
            jobs[t].i0 = ds->n;
        if (jobs[t].i1 > ds->n)
            jobs[t].i1 = ds->n;
        if (t == 0)
            continue;
        if (pthread_create(&tid[t], NULL, run_job, &jobs[t]) != 0) {
            jobs[t].rc = FRL_ENOMEM;
            break;
        }
        started = t;
    }
    run_job(&jobs[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    res->seconds = frl_now_s() - t0;
    for (int t = 0; t < threads; t++) {
        if (jobs[t].rc && !rc)
            rc = jobs[t].rc;
        res->correct += jobs[t].correct;
    }
    res->n = ds->n;
    res->accuracy = ds->n ? (double)res->correct / ds->n : 0.0;
    return rc;
}
