/*
 * The pure parts of the health checks: fall/rise counting, the reason
 * text on-call reads, the start spread, and the service verdict under
 * each failover_when policy. The probes' line, which caps the checks in
 * flight at once, daemon-wide, is an admission line (test_admission.c).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "failoverd/probe.h"
#include "failoverd/service.h"

static enum probe_state
feed(struct probe_health *h, const char *results, int fall, int rise)
{
	const char *p;

	for (p = results; *p != '\0'; p++)
		probe_health_record(h, *p == '+', fall, rise);
	return h->state;
}

static void
test_new_probe_is_unknown_until_rise_or_fall(void **state)
{
	struct probe_health h = { PROBE_UNKNOWN, 0, 0 };

	assert_int_equal(feed(&h, "+", 3, 2), PROBE_UNKNOWN);
	assert_int_equal(feed(&h, "+", 3, 2), PROBE_UP);

	memset(&h, 0, sizeof(h));
	assert_int_equal(feed(&h, "--", 3, 2), PROBE_UNKNOWN);
	assert_int_equal(feed(&h, "-", 3, 2), PROBE_DOWN);
}

static void
test_up_probe_goes_down_after_fall_straight_failures(void **state)
{
	struct probe_health h = { PROBE_UP, 2, 0 };

	/* A success in between resets the count: flapping is not down. */
	assert_int_equal(feed(&h, "--+--+--+", 3, 2), PROBE_UP);
	assert_int_equal(feed(&h, "--", 3, 2), PROBE_UP);
	assert_int_equal(feed(&h, "-", 3, 2), PROBE_DOWN);
	assert_int_equal(h.fail_streak, 3);
}

static void
test_down_probe_comes_up_after_rise_straight_successes(
    void **state)
{
	struct probe_health h = { PROBE_DOWN, 0, 3 };

	assert_int_equal(feed(&h, "++-++-+", 3, 3), PROBE_DOWN);
	assert_int_equal(feed(&h, "++", 3, 3), PROBE_UP);
	/* One failure after coming back is not down again. */
	assert_int_equal(feed(&h, "-", 3, 3), PROBE_UP);
}

static void
test_fall_and_rise_of_one_flip_on_every_result(void **state)
{
	struct probe_health h = { PROBE_UNKNOWN, 0, 0 };

	assert_int_equal(feed(&h, "-", 1, 1), PROBE_DOWN);
	assert_int_equal(feed(&h, "+", 1, 1), PROBE_UP);
	assert_int_equal(feed(&h, "-", 1, 1), PROBE_DOWN);
}

static void
fmt(enum probe_reason r, enum probe_stage st, int code, const char *want)
{
	struct probe_result	res;
	char			out[64];

	probe_result_set(&res, r, st, code, NULL);
	probe_result_fmt(&res, out, sizeof(out));
	assert_string_equal(out, want);
}

static void
test_reasons_read_as_the_issue_names_them(void **state)
{
	fmt(PROBE_OK, PROBE_STAGE_CLOSE, 0, "ok");
	fmt(PROBE_ERR_CONNECT_REFUSED, PROBE_STAGE_CONNECT, 0,
	    "connect_refused");
	fmt(PROBE_ERR_TIMEOUT, PROBE_STAGE_BANNER, 0, "timeout_in=banner");
	fmt(PROBE_ERR_TIMEOUT, PROBE_STAGE_CONNECT, 0, "timeout_in=connect");
	fmt(PROBE_ERR_TIMEOUT, PROBE_STAGE_RESPONSE, 0,
	    "timeout_in=response");
	fmt(PROBE_ERR_COMMAND_EXIT, PROBE_STAGE_COMMAND, 3,
	    "command_exit=3");
	fmt(PROBE_ERR_HTTP_STATUS, PROBE_STAGE_RESPONSE, 500, "status=500");
	fmt(PROBE_ERR_HOSTKEY_MISMATCH, PROBE_STAGE_HOSTKEY, 0,
	    "hostkey_mismatch");
	fmt(PROBE_ERR_HOSTKEY_UNKNOWN, PROBE_STAGE_HOSTKEY, 0,
	    "hostkey_unknown");
	fmt(PROBE_ERR_KEX, PROBE_STAGE_KEX, 0, "kex");
	fmt(PROBE_ERR_AUTH, PROBE_STAGE_AUTH, 0, "auth");
	fmt(PROBE_ERR_LOCAL, PROBE_STAGE_CONNECT, 0, "local");
}

/* Only the watchdog's own faults are kept out of fall/rise. */
static void
test_only_local_results_are_not_counted(void **state)
{
	struct probe_result	res;
	int			i;

	for (i = 0; i < PROBE_REASON_MAX; i++) {
		probe_result_set(&res, i, PROBE_STAGE_CONNECT, 0, NULL);
		assert_int_equal(probe_result_is_local(&res),
		    i == PROBE_ERR_LOCAL || i == PROBE_ERR_INTERNAL);
	}
}

static void
test_every_reason_and_stage_has_a_name(void **state)
{
	int i;

	for (i = 0; i < PROBE_REASON_MAX; i++) {
		assert_non_null(probe_reason_str(i));
		assert_string_not_equal(probe_reason_str(i), "?");
	}
	for (i = 0; i < PROBE_STAGE_MAX; i++) {
		assert_non_null(probe_stage_str(i));
		assert_string_not_equal(probe_stage_str(i), "?");
	}
}

static void
test_start_spread_stays_inside_the_interval_and_differs(void **state)
{
	char	name[16];
	double	first[20], t;
	int	i, same = 0;

	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "probe%d", i);
		t = probe_spread("web", name, 10.0, 0.02);
		assert_true(t >= 0.0 && t < 10.0);
		/* Deterministic: the same names give the same phase. */
		assert_true(probe_spread("web", name, 10.0, 0.02) == t);
		first[i] = t;
		/* On the 20 ms grid, where checks share the loop's wakeups. */
		assert_true(fabs(t / 0.02 - (long)(t / 0.02 + 0.5)) < 1e-6);
	}
	for (i = 1; i < 20; i++)
		if (first[i] == first[0])
			same++;
	assert_true(same < 3);
}

/*
 * The grid batches ~20 checks a wakeup: coarse for a few services, fine
 * for many, never coarser than a quarter of the shortest interval.
 */
static void
test_grid_follows_the_load(void **state)
{
	double t;

	assert_true(fabs(probe_grid_for(1000.0, 1.0) - 0.02) < 1e-9);
	assert_true(fabs(probe_grid_for(10000.0, 1.0) - 0.02) < 1e-9);
	assert_true(fabs(probe_grid_for(100.0, 1.0) - 0.2) < 1e-9);
	assert_true(fabs(probe_grid_for(200.0, 1.0) - 0.1) < 1e-9);
	assert_true(fabs(probe_grid_for(0.2, 5.0) - 0.2) < 1e-9);
	assert_true(fabs(probe_grid_for(10.0, 0.3) - 0.075) < 1e-9);
	assert_true(fabs(probe_grid_for(10.0, 0.05) - 0.02) < 1e-9);
	assert_true(fabs(probe_grid_for(0, 0) - 0.2) < 1e-9);
	/* A spread on a coarse grid is still inside the interval. */
	t = probe_spread("web", "http", 1.0, 0.2);
	assert_true(t >= 0.0 && t < 1.0);
	assert_true(fabs(t / 0.2 - (long)(t / 0.2 + 0.5)) < 1e-6);
}

static const char *names3[] = { "http", "ssh", "api" };

static enum service_verdict
verdict(enum policy_when when, const char **list, size_t nlist,
    enum probe_state a, enum probe_state b, enum probe_state c)
{
	struct policy_conf	pol;
	enum probe_state	states[3] = { a, b, c };

	memset(&pol, 0, sizeof(pol));
	pol.when = when;
	pol.failover_probes = (char **)list;
	pol.nfailover_probes = nlist;
	return service_verdict_compute(&pol, names3, states, 3);
}

#define U PROBE_UP
#define D PROBE_DOWN
#define K PROBE_UNKNOWN

static void
test_policy_all_is_down_only_when_every_probe_is(void **state)
{
	assert_int_equal(verdict(POLICY_WHEN_ALL, NULL, 0, U, U, U),
	    SERVICE_HEALTHY);
	/* sshd dead while HTTP answers: alert, do not fail over. */
	assert_int_equal(verdict(POLICY_WHEN_ALL, NULL, 0, U, D, U),
	    SERVICE_DEGRADED);
	assert_int_equal(verdict(POLICY_WHEN_ALL, NULL, 0, D, D, U),
	    SERVICE_DEGRADED);
	assert_int_equal(verdict(POLICY_WHEN_ALL, NULL, 0, D, D, D),
	    SERVICE_DOWN);
	/* Not known to be down is not down. */
	assert_int_equal(verdict(POLICY_WHEN_ALL, NULL, 0, D, D, K),
	    SERVICE_DEGRADED);
}

static void
test_policy_any_is_down_when_one_probe_is(void **state)
{
	assert_int_equal(verdict(POLICY_WHEN_ANY, NULL, 0, U, U, U),
	    SERVICE_HEALTHY);
	assert_int_equal(verdict(POLICY_WHEN_ANY, NULL, 0, U, D, U),
	    SERVICE_DOWN);
	assert_int_equal(verdict(POLICY_WHEN_ANY, NULL, 0, D, D, D),
	    SERVICE_DOWN);
	assert_int_equal(verdict(POLICY_WHEN_ANY, NULL, 0, K, D, K),
	    SERVICE_DOWN);
}

static void
test_policy_list_is_down_when_the_listed_probes_are(void **state)
{
	const char *list[] = { "http", "api" };

	assert_int_equal(verdict(POLICY_WHEN_LIST, list, 2, U, D, U),
	    SERVICE_DEGRADED);
	assert_int_equal(verdict(POLICY_WHEN_LIST, list, 2, D, U, U),
	    SERVICE_DEGRADED);
	assert_int_equal(verdict(POLICY_WHEN_LIST, list, 2, D, U, D),
	    SERVICE_DOWN);
	assert_int_equal(verdict(POLICY_WHEN_LIST, list, 2, D, D, D),
	    SERVICE_DOWN);
	assert_int_equal(verdict(POLICY_WHEN_LIST, list, 2, U, U, U),
	    SERVICE_HEALTHY);
}

static void
test_unknown_probes_keep_the_verdict_unknown(void **state)
{
	assert_int_equal(verdict(POLICY_WHEN_ALL, NULL, 0, K, K, K),
	    SERVICE_UNKNOWN);
	assert_int_equal(verdict(POLICY_WHEN_ALL, NULL, 0, U, K, U),
	    SERVICE_UNKNOWN);
	assert_int_equal(verdict(POLICY_WHEN_ANY, NULL, 0, U, K, U),
	    SERVICE_UNKNOWN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_probe_is_unknown_until_rise_or_fall),
		cmocka_unit_test(
		    test_up_probe_goes_down_after_fall_straight_failures),
		cmocka_unit_test(
		    test_down_probe_comes_up_after_rise_straight_successes),
		cmocka_unit_test(
		    test_fall_and_rise_of_one_flip_on_every_result),
		cmocka_unit_test(test_reasons_read_as_the_issue_names_them),
		cmocka_unit_test(test_every_reason_and_stage_has_a_name),
		cmocka_unit_test(test_only_local_results_are_not_counted),
		cmocka_unit_test(test_grid_follows_the_load),
		cmocka_unit_test(
		    test_start_spread_stays_inside_the_interval_and_differs),
		cmocka_unit_test(
		    test_policy_all_is_down_only_when_every_probe_is),
		cmocka_unit_test(test_policy_any_is_down_when_one_probe_is),
		cmocka_unit_test(
		    test_policy_list_is_down_when_the_listed_probes_are),
		cmocka_unit_test(
		    test_unknown_probes_keep_the_verdict_unknown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
