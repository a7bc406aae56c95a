/* Sampling schedules: the parser (rows, comments, every error with its
 * line) and a simulation that takes its clients from one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/frl_error.h"
#include "data/frl_idx.h"
#include "sim/frl_sim.h"
#include "tests/sim/sim_test_data.h"

static int parse(const char *text, uint32_t clients, uint32_t per_round, uint32_t **ids, uint32_t *rounds, char *err, size_t cap)
{
    return frl_sim_schedule_parse(text, strlen(text), clients, per_round, ids, rounds, err, cap);
}

static void test_parse_reads_rows_comments_and_separators(void **state)
{
    (void)state;
    const char *text = "# replay\n"
                       "3 1 4\n"
                       "\n"
                       "0,9,\t2   # round 1\r\n"
                       "5 6 7";
    uint32_t *ids = NULL, rounds = 0;
    assert_int_equal(parse(text, 10, 3, &ids, &rounds, NULL, 0), 0);
    assert_int_equal(rounds, 3);
    const uint32_t want[] = {3, 1, 4, 0, 9, 2, 5, 6, 7};
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
}

static void expect_error(const char *text, uint32_t clients, uint32_t per_round, const char *want)
{
    uint32_t *ids = (uint32_t *)1, rounds = 7;
    char err[160];
    assert_int_equal(parse(text, clients, per_round, &ids, &rounds, err, sizeof err), FRL_EINVAL);
    assert_null(ids);
    assert_int_equal(rounds, 0);
    if (!strstr(err, want))
        fail_msg("error '%s' does not contain '%s'", err, want);
}

static void test_parse_rejects_a_short_row_naming_its_line(void **state)
{
    (void)state;
    expect_error("1 2 3\n# c\n4 5\n", 10, 3, "line 3: 2 client ids, expected 3");
}

static void test_parse_rejects_a_long_row(void **state)
{
    (void)state;
    expect_error("1 2 3 4\n", 10, 3, "line 1: more than 3 client ids");
}

static void test_parse_rejects_a_repeated_id(void **state)
{
    (void)state;
    expect_error("1 2 3\n4 5 4\n", 10, 3, "line 2: a client id appears twice");
}

static void test_parse_rejects_an_id_out_of_range(void **state)
{
    (void)state;
    expect_error("1 2 10\n", 10, 3, "line 1: client id out of range");
    expect_error("1 2 99999999999999999999999\n", 10, 3, "line 1: client id out of range");
}

static void test_parse_rejects_a_character_that_is_not_an_id(void **state)
{
    (void)state;
    expect_error("1 2 -3\n", 10, 3, "line 1: '-'");
}

static void test_parse_rejects_a_schedule_without_rounds(void **state)
{
    (void)state;
    expect_error("# nothing\n\n", 10, 3, "no rounds");
    expect_error("", 10, 3, "no rounds");
}

static void small_config(frl_sim_config_t *c)
{
    frl_sim_config_default(c);
    snprintf(c->model, sizeof c->model, "mlp");
    c->clients = 10;
    c->per_round = 4;
    c->rounds = 3;
    c->eval_n = 100;
    c->attack_trainers = 2;
    c->malicious = 0.3;
    c->attack = FRL_ATTACK_REVERSE;
}

/* Runs cfg; the per-round selections (rounds x per_round) and the final
 * global ranking, malloc'd. */
static void run(const data_t *d, const frl_sim_config_t *c, uint32_t **selected, uint32_t **ranking, uint32_t *tries)
{
    frl_sim_t *sim = NULL;
    assert_int_equal(frl_sim_create(c, &d->train, &d->test, &sim), 0);
    *selected = malloc(sizeof(uint32_t) * c->per_round * (size_t)c->rounds);
    assert_non_null(*selected);
    for (int r = 0; r < c->rounds; r++) {
        frl_sim_round_t rec;
        assert_int_equal(frl_sim_round(sim, &rec), 0);
        assert_int_equal(rec.n_selected, c->per_round);
        uint32_t mal = 0;
        for (uint32_t i = 0; i < rec.n_selected; i++)
            mal += rec.selected[i] < frl_sim_n_malicious(sim);
        assert_int_equal(rec.n_malicious, mal);
        memcpy(*selected + (size_t)r * c->per_round, rec.selected, sizeof(uint32_t) * c->per_round);
        tries[r] = rec.sample_tries;
    }
    size_t E = frl_sim_spec(sim)->total_edges;
    *ranking = malloc(E * sizeof(uint32_t));
    assert_non_null(*ranking);
    memcpy(*ranking, frl_sim_global_ranking(sim), E * sizeof(uint32_t));
    frl_sim_destroy(sim);
}

/* The clients of every round are the schedule's row (ascending), and
 * replaying a drawn run's selections gives that run's model bit for bit. */
static void test_sim_takes_each_rounds_clients_from_the_schedule(void **state)
{
    const data_t *d = *state;
    frl_sim_config_t c;
    small_config(&c);
    const uint32_t rows[] = {9, 0, 5, 2, /* */ 1, 2, 3, 4, /* */ 8, 7, 6, 0};
    c.schedule = rows;
    c.schedule_rounds = 3;
    uint32_t *sel = NULL, *rank = NULL, tries[3];
    run(d, &c, &sel, &rank, tries);
    const uint32_t want[] = {0, 2, 5, 9, 1, 2, 3, 4, 0, 6, 7, 8};
    assert_memory_equal(sel, want, sizeof want);
    for (int r = 0; r < 3; r++)
        assert_int_equal(tries[r], 0);
    free(sel);
    free(rank);

    /* A drawn run, then the same run replaying its draws. */
    small_config(&c);
    uint32_t *sel1 = NULL, *rank1 = NULL, *sel2 = NULL, *rank2 = NULL;
    run(d, &c, &sel1, &rank1, tries);
    assert_int_equal(tries[0] >= 1, 1);
    c.schedule = sel1;
    c.schedule_rounds = (uint32_t)c.rounds;
    run(d, &c, &sel2, &rank2, tries);
    assert_memory_equal(sel1, sel2, sizeof(uint32_t) * c.per_round * (size_t)c.rounds);
    frl_sim_t *probe = NULL;
    assert_int_equal(frl_sim_create(&c, &d->train, &d->test, &probe), 0);
    size_t E = frl_sim_spec(probe)->total_edges;
    frl_sim_destroy(probe);
    assert_memory_equal(rank1, rank2, E * sizeof(uint32_t));
    free(sel1);
    free(rank1);
    free(sel2);
    free(rank2);
}

/* A schedule shorter than the run, or with a bad row, is refused; the
 * sampling rule does not apply to it (half the round malicious is fine). */
static void test_sim_checks_the_schedule_it_is_given(void **state)
{
    const data_t *d = *state;
    frl_sim_config_t c;
    small_config(&c);
    const uint32_t ok[] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
    const uint32_t dup[] = {0, 1, 2, 3, 0, 1, 1, 3, 0, 1, 2, 3};
    const uint32_t far[] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 10};
    frl_sim_t *sim = NULL;
    c.schedule = ok;
    c.schedule_rounds = 2;
    assert_int_equal(frl_sim_create(&c, &d->train, &d->test, &sim), FRL_EINVAL);
    assert_null(sim);
    c.schedule_rounds = 3;
    c.schedule = dup;
    assert_int_equal(frl_sim_create(&c, &d->train, &d->test, &sim), FRL_EINVAL);
    c.schedule = far;
    assert_int_equal(frl_sim_create(&c, &d->train, &d->test, &sim), FRL_EINVAL);
    assert_null(sim);
    c.schedule = ok; /* 3 of 4 malicious: the reference rule would redraw */
    assert_int_equal(frl_sim_create(&c, &d->train, &d->test, &sim), 0);
    frl_sim_round_t rec;
    assert_int_equal(frl_sim_round(sim, &rec), 0);
    assert_int_equal(rec.n_malicious, 3);
    frl_sim_destroy(sim);
}

int main(void)
{
    const struct CMUnitTest parser[] = {
        cmocka_unit_test(test_parse_reads_rows_comments_and_separators),
        cmocka_unit_test(test_parse_rejects_a_short_row_naming_its_line),
        cmocka_unit_test(test_parse_rejects_a_long_row),
        cmocka_unit_test(test_parse_rejects_a_repeated_id),
        cmocka_unit_test(test_parse_rejects_an_id_out_of_range),
        cmocka_unit_test(test_parse_rejects_a_character_that_is_not_an_id),
        cmocka_unit_test(test_parse_rejects_a_schedule_without_rounds),
    };
    const struct CMUnitTest sim[] = {
        cmocka_unit_test(test_sim_takes_each_rounds_clients_from_the_schedule),
        cmocka_unit_test(test_sim_checks_the_schedule_it_is_given),
    };
    int failed = cmocka_run_group_tests_name("schedule_parse", parser, NULL, NULL);
    return failed | cmocka_run_group_tests_name("schedule_sim", sim, setup, teardown);
}
