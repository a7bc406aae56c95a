/* Test helper: writes a lenet model file with the round-1 mask of seed 1,
 * calibrated on random images (no data set needed). usage: mkmodel FILE */
#include <stdio.h>
#include <stdlib.h>

#include "common/frl_error.h"
#include "quant/frl_quant.h"
#include "supermask/frl_ranking.h"

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    frl_model_spec_t spec;
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_from_u64(1, seed);
    int rc = frl_model_spec_by_name("lenet", &spec);
    uint8_t *masks[FRL_MAX_LAYERS] = {0};
    for (int l = 0; l < spec.n_layers && !rc; l++) {
        uint32_t n = spec.layers[l].n_edges;
        float *sc = malloc(n * sizeof(float));
        void *scr = malloc(frl_topk_scratch_size(n) + 64);
        masks[l] = malloc(n);
        if (!sc || !scr || !masks[l])
            rc = FRL_ENOMEM;
        else {
            frl_init_scores(seed, &spec.layers[l], l, sc);
            rc = frl_topk_mask(sc, n, 0.5, FRL_MASK_ABS, masks[l], scr);
        }
        free(sc);
        free(scr);
    }
    frl_qmodel_t *m = NULL;
    if (!rc)
        rc = frl_qmodel_create(&spec, seed, 0.5, FRL_MASK_ABS, FRL_QZIN_FMNIST, (const uint8_t *const *)masks, &m);
    uint8_t *img = malloc(64 * 784);
    for (int i = 0; img && i < 64 * 784; i++)
        img[i] = (uint8_t)((i * 2654435761u) >> 24);
    if (!rc)
        rc = img ? frl_qmodel_calibrate(m, img, 64, NULL) : FRL_ENOMEM;
    if (!rc)
        rc = frl_qmodel_save(m, argv[1]);
    if (rc)
        fprintf(stderr, "mkmodel: %s\n", frl_strerror(rc));
    frl_qmodel_free(m);
    free(img);
    for (int l = 0; l < FRL_MAX_LAYERS; l++)
        free(masks[l]);
    return rc ? 1 : 0;
}
