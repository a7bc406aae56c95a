/* The simulator tests' data: the first 400 Fashion-MNIST training images
 * and the first 200 test images, loaded once per group (cmocka setup and
 * teardown). */
#ifndef FRL_SIM_TEST_DATA_H
#define FRL_SIM_TEST_DATA_H

#include <stdint.h>
#include <stdlib.h>

#include "data/frl_idx.h"

typedef struct data_s {
    frl_dataset_t train; /* the first 400 training images */
    frl_dataset_t test;  /* the first 200 test images */
} data_t;

static int setup(void **state)
{
    data_t *d = calloc(1, sizeof *d);
    uint32_t sel[400];
    for (uint32_t i = 0; i < 400; i++)
        sel[i] = i;
    if (!d || frl_mnist_load(NULL, "train", sel, 400, &d->train) || frl_mnist_load(NULL, "t10k", sel, 200, &d->test))
        return -1;
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    data_t *d = *state;
    frl_dataset_free(&d->train);
    frl_dataset_free(&d->test);
    free(d);
    return 0;
}

#endif
