/* Sampling schedules: the clients of every round, given instead of drawn
 * (see frl_sim.h). Text in, a rounds x per_round array of ids out; every
 * error names its line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "sim/frl_sim.h"

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int frl_sim_schedule_check_row(const uint32_t *ids, uint32_t per_round, uint32_t clients, uint32_t *tmp)
{
    for (uint32_t i = 0; i < per_round; i++)
        if (ids[i] >= clients)
            return FRL_ERANGE;
    memcpy(tmp, ids, per_round * sizeof *tmp);
    qsort(tmp, per_round, sizeof *tmp, cmp_u32);
    for (uint32_t i = 1; i < per_round; i++)
        if (tmp[i] == tmp[i - 1])
            return FRL_EINVAL;
    return 0;
}

int frl_sim_schedule_parse(const char *text, size_t len, uint32_t clients, uint32_t per_round, uint32_t **ids_out,
                           uint32_t *rounds_out, char *err, size_t errcap)
{
    *ids_out = NULL;
    *rounds_out = 0;
    if (err && errcap)
        err[0] = 0;
    if (!text || clients < 1 || per_round < 1 || per_round > clients) {
        if (err && errcap)
            snprintf(err, errcap, "needs 1 <= per-round (%u) <= clients (%u)", per_round, clients);
        return FRL_EINVAL;
    }
    size_t cap = 16, rounds = 0;
    uint32_t *ids = malloc(cap * per_round * sizeof *ids);
    uint32_t *tmp = malloc(per_round * sizeof *tmp);
    if (!ids || !tmp) {
        free(ids);
        free(tmp);
        return FRL_ENOMEM;
    }
    int rc = 0;
    unsigned line = 0;
    size_t pos = 0;
    while (pos < len && !rc) {
        line++;
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t stop = end; /* a comment ends the line's content */
        for (size_t i = pos; i < end; i++)
            if (text[i] == '#') {
                stop = i;
                break;
            }
        uint32_t got = 0;
        size_t i = pos;
        while (i < stop && !rc) {
            char ch = text[i];
            if (ch == ' ' || ch == '\t' || ch == ',' || ch == '\r') {
                i++;
                continue;
            }
            if (ch < '0' || ch > '9') {
                rc = frl_errorf(FRL_EINVAL, err, errcap, "line %u: '%c' is not part of a client id", line, ch);
                break;
            }
            uint64_t v = 0;
            while (i < stop && text[i] >= '0' && text[i] <= '9') {
                v = v * 10 + (uint64_t)(text[i] - '0');
                if (v >= clients) {
                    rc = frl_errorf(FRL_EINVAL, err, errcap, "line %u: client id out of range (clients: %u)", line, clients);
                    break;
                }
                i++;
            }
            if (rc)
                break;
            if (got == per_round) {
                rc = frl_errorf(FRL_EINVAL, err, errcap, "line %u: more than %u client ids", line, per_round);
                break;
            }
            if (rounds == cap) {
                uint32_t *bigger = realloc(ids, 2 * cap * per_round * sizeof *ids);
                if (!bigger) {
                    rc = FRL_ENOMEM;
                    break;
                }
                ids = bigger;
                cap *= 2;
            }
            ids[rounds * per_round + got++] = (uint32_t)v;
        }
        if (!rc && got) {
            if (got != per_round)
                rc = frl_errorf(FRL_EINVAL, err, errcap, "line %u: %u client ids, expected %u", line, got, per_round);
            else if (frl_sim_schedule_check_row(ids + rounds * per_round, per_round, clients, tmp))
                rc = frl_errorf(FRL_EINVAL, err, errcap, "line %u: a client id appears twice", line);
            else if (rounds == (size_t)INT32_MAX)
                rc = frl_errorf(FRL_EINVAL, err, errcap, "line %u: too many rounds", line);
            else
                rounds++;
        }
        pos = end + 1;
    }
    free(tmp);
    if (!rc && rounds == 0) {
        if (err && errcap)
            snprintf(err, errcap, "no rounds in the schedule");
        rc = FRL_EINVAL;
    }
    if (rc) {
        free(ids);
        return rc;
    }
    *ids_out = ids;
    *rounds_out = (uint32_t)rounds;
    return 0;
}
