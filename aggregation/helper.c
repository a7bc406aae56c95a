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
    if (pthread_mutex_init(&h->lock, NULL)) {
        free(h);
        return FRL_ENOMEM;
    }
    if (pthread_cond_init(&h->job_cv, NULL)) {
        pthread_mutex_destroy(&h->lock);
        free(h);
        return FRL_ENOMEM;
    }
    if (pthread_cond_init(&h->done_cv, NULL)) {
        pthread_cond_destroy(&h->job_cv);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return FRL_ENOMEM;
    }
    if (pthread_create(&h->thread, NULL, helper_main, h)) {
        pthread_cond_destroy(&h->done_cv);
        pthread_cond_destroy(&h->job_cv);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return FRL_ENOMEM;
    }
    *out = h;
    return 0;
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

void frl__vote_helper_post(frl__vote_helper_t *h, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&h->lock);
    h->fn = fn;
    h->arg = arg;
    h->busy = 1;
    pthread_cond_signal(&h->job_cv);
    pthread_mutex_unlock(&h->lock);
}

void frl__vote_helper_join(frl__vote_helper_t *h)
{
    pthread_mutex_lock(&h->lock);
    while (h->busy)
        pthread_cond_wait(&h->done_cv, &h->lock);
    pthread_mutex_unlock(&h->lock);
}
