/* frl-bench subcommands. Each area implements one entry point in its own
 * bench/bench_<area>.c; it parses its own flags and prints one JSON object
 * on stdout with --json (human-readable text otherwise). Returns the process
 * exit status. */
#ifndef FRL_BENCH_H
#define FRL_BENCH_H

#include <stddef.h>

int frl_bench_train(int argc, char **argv);
int frl_bench_vote(int argc, char **argv);
int frl_bench_wire(int argc, char **argv);
int frl_bench_infer(int argc, char **argv);
int frl_bench_round(int argc, char **argv);
int frl_bench_sim(int argc, char **argv);

/* Median of v[0..n) (sorts v in place). */
double frl_bench_median(double *v, int n);
/* Makes a throwaway CA, server certificate and key with deploy/gen-certs.sh
 * in a new directory /tmp/<prefix>-XXXXXX, written to dir. 0 or -1. */
int frl_bench_make_certs(const char *prefix, char *dir, size_t cap);

#endif
