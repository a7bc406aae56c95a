/* frl-state-check DIR: reads DIR/state.frl the way frl-server does on a
 * restart (checksum, every layer a permutation, the registry) and prints
 * "rounds_done=N clients=M total_edges=E". Exit 0 when the state is
 * consistent, 1 otherwise. Used by the end-to-end tests after kill -9 and
 * SIGTERM. */
#include <stdio.h>

#include "common/frl_error.h"
#include "server/frl_server_state.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: frl-state-check STATE_DIR\n");
        return 2;
    }
    frl_registry_t reg;
    frl_state_t st;
    if (frl_registry_init(&reg, 1u << 20) != 0)
        return 1;
    int r = frl_state_load(argv[1], &st, &reg);
    if (r) {
        fprintf(stderr, "frl-state-check: %s: %s\n", argv[1], frl_strerror(r));
        frl_registry_free(&reg);
        return 1;
    }
    printf("rounds_done=%u clients=%u total_edges=%llu model=%s\n", st.rounds_done, reg.n,
           (unsigned long long)st.total_edges, st.model);
    frl_state_free(&st);
    frl_registry_free(&reg);
    return 0;
}
