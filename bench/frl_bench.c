/* frl-bench: one benchmark binary for the whole project, one subcommand per
 * area. Benchmarks print figures; they never decide pass or fail. */
#include "bench/frl_bench.h"
#include "supermask/frl_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Areas whose benchmark is not linked into this build resolve to NULL. */
#pragma weak frl_bench_train
#pragma weak frl_bench_vote
#pragma weak frl_bench_wire
#pragma weak frl_bench_infer
#pragma weak frl_bench_round
#pragma weak frl_bench_sim

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double frl_bench_median(double *v, int n)
{
    if (n <= 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct subcommand {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
};

int main(int argc, char **argv)
{
    frl_blas_fix_core(argv); /* before anything is opened: it may exec us again */
    const struct subcommand cmds[] = {
        {"train", frl_bench_train, "local training throughput and memory (supermask)"},
        {"vote", frl_bench_vote, "vote validate+add and finalize (aggregation)"},
        {"wire", frl_bench_wire, "TLS bulk throughput, handshakes, idle memory (net)"},
        {"infer", frl_bench_infer, "integer-only inference throughput and agreement (quant)"},
        {"round", frl_bench_round, "server overhead per round and load test (server)"},
        {"sim", frl_bench_sim, "simulated rounds per second (sim)"},
    };
    const size_t n = sizeof cmds / sizeof cmds[0];
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: frl-bench SUBCOMMAND [options] [--json]\n\nsubcommands:\n");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "  %-6s %s%s\n", cmds[i].name, cmds[i].help, cmds[i].fn ? "" : " (not built)");
        fprintf(stderr, "\n'frl-bench SUBCOMMAND --help' lists a subcommand's options.\n");
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], cmds[i].name) == 0) {
            if (!cmds[i].fn) {
                fprintf(stderr, "frl-bench: subcommand '%s' is not built into this binary\n", argv[1]);
                return 2;
            }
            return cmds[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "frl-bench: unknown subcommand '%s' (try --help)\n", argv[1]);
    return 2;
}

int frl_bench_make_certs(const char *prefix, char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(dir))
        return -1;
    /* __FILE__ is bench/frl_bench.c in the source tree (CMake passes
     * absolute paths); the script sits next door in deploy/. */
    char script[1024];
    snprintf(script, sizeof script, "%s", __FILE__);
    char *slash = strrchr(script, '/');
    if (slash) {
        *slash = '\0';
        slash = strrchr(script, '/');
    }
    if (slash)
        snprintf(slash, sizeof script - (size_t)(slash - script), "/deploy/gen-certs.sh");
    else
        snprintf(script, sizeof script, "deploy/gen-certs.sh");
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "'%s' '%s' >/dev/null 2>&1", script, dir);
    return system(cmd) == 0 ? 0 : -1;
}
