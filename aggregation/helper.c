/* One helper thread for the vote's two-thread kernels (vote_internal.h):
 * the caller posts a job, does its own half, then joins. A mutex and two
 * condition variables: a post or a join is a few microseconds against the
 * milliseconds of a half. */
#include <pthread.h>
#include <stdlib.h>

#include "aggregation/vote_internal.h"
#include "common/frl_error.h"

struct frl__vote_helper_s {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t job_cv;  /* a job was posted, or stop */
    pthread_cond_t done_cv; /* the job returned */
    void (*fn)(void *);
    void *arg;
    int busy; /* a job is posted and has not returned */
    int stop;
};

static void *helper_main(void *p)
{
    frl__vote_helper_t *h = p;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->busy && !h->stop)
            pthread_cond_wait(&h->job_cv, &h->lock);
        if (h->stop && !h->busy)
            break;
        void (*fn)(void *) = h->fn;
        void *arg = h->arg;
        pthread_mutex_unlock(&h->lock);
        fn(arg);
        pthread_mutex_lock(&h->lock);
        h->busy = 0;
        pthread_cond_signal(&h->done_cv);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

int frl__vote_helper_create(frl__vote_helper_t **out)
{
    *out = NULL;
    frl__vote_helper_t *h = calloc(1, sizeof *h);
    if (!h)
        return FRL_ENOMEM;
    int made = 0; /* lock, job_cv, done_cv, thread: how many exist */
    if (pthread_mutex_init(&h->lock, NULL) == 0 && ++made && pthread_cond_init(&h->job_cv, NULL) == 0 && ++made &&
        pthread_cond_init(&h->done_cv, NULL) == 0 && ++made && pthread_create(&h->thread, NULL, helper_main, h) == 0) {
        *out = h;
        return 0;
    }
    if (made > 2)
        pthread_cond_destroy(&h->done_cv);
    if (made > 1)
        pthread_cond_destroy(&h->job_cv);
    if (made > 0)
        pthread_mutex_destroy(&h->lock);
    free(h);
    return FRL_ENOMEM;
}

void frl__vote_helper_destroy(frl__vote_helper_t *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = 1;
    pthread_cond_signal(&h->job_cv);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->done_cv);
    pthread_cond_destroy(&h->job_cv);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static void helper_post(frl__vote_helper_t *h, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&h->lock);
    h->fn = fn;
    h->arg = arg;
    h->busy = 1;
    pthread_cond_signal(&h->job_cv);
    pthread_mutex_unlock(&h->lock);
}

static void helper_join(frl__vote_helper_t *h)
{
    pthread_mutex_lock(&h->lock);
    while (h->busy)
        pthread_cond_wait(&h->done_cv, &h->lock);
    pthread_mutex_unlock(&h->lock);
}

void frl__vote_helper_run2(frl__vote_helper_t *h, void (*fn)(void *), void *mine, void *other)
{
    helper_post(h, fn, other);
    fn(mine);
    helper_join(h);
}
