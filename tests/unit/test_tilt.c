/*
 * The stall and clock-jump guard with the clocks given by the test: a
 * late loop and a wall clock moved either way enter TILT, ordinary
 * jitter does not, and the tilt ends after its period with the time
 * held, the stall included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <cmocka.h>

#include "failoverd/alert.h"
#include "failoverd/log.h"
#include "failoverd/tilt.h"

struct seen {
	int		 tilts, overs;
	enum tilt_reason why;
	double		 seconds, held;
	char		 events[512];
};

static void
on_tilt(void *arg, enum tilt_reason why, double seconds)
{
	struct seen *s = arg;

	s->tilts++;
	s->why = why;
	s->seconds = seconds;
}

static void
on_over(void *arg, double held)
{
	struct seen *s = arg;

	s->overs++;
	s->held = held;
}

static void
on_event(enum alert_event ev, const char *service,
    const char *const *kv, size_t nkv, const char *line, void *arg)
{
	struct seen	*s = arg;
	size_t		 len = strlen(s->events);

	snprintf(s->events + len, sizeof(s->events) - len, "%s;",
	    alert_event_name(ev));
}

static struct tilt *
guard(struct seen *s, double period)
{
	struct tilt_env env = { NULL, period, on_tilt, on_over, s };

	memset(s, 0, sizeof(*s));
	assert_int_equal(alert_observe(on_event, s), 0);
	return tilt_new(&env);
}

static void
done(struct tilt *t, struct seen *s)
{
	alert_unobserve(on_event, s);
	tilt_free(t);
}

/* Readings every second from (mono, real), both clocks in step. */
static void
tick(struct tilt *t, double mono, double real)
{
	struct tilt_clock c = { mono, real };

	tilt_observe(t, &c);
}

static void
test_detect_ignores_ordinary_jitter(void **state)
{
	struct tilt_clock	a = { 100, 5000 }, b = { 102.9, 5002.5 };
	double			s;

	assert_int_equal(tilt_detect(&a, &b, 1.0, &s), TILT_NONE);
}

static void
test_detect_a_loop_late_by_more_than_the_threshold_is_a_stall(void **state)
{
	struct tilt_clock	a = { 100, 5000 }, b = { 106, 5006 };
	double			s;

	assert_int_equal(tilt_detect(&a, &b, 1.0, &s), TILT_STALL);
	assert_true(s > 5.9 && s < 6.1);
}

static void
test_detect_wall_clock_forward_and_back_are_jumps(void **state)
{
	struct tilt_clock	a = { 100, 5000 }, fwd = { 101, 5031 },
				back = { 101, 4941 };
	double			s;

	assert_int_equal(tilt_detect(&a, &fwd, 1.0, &s), TILT_CLOCK_JUMP);
	assert_true(s > 29.9 && s < 30.1);
	assert_int_equal(tilt_detect(&a, &back, 1.0, &s), TILT_CLOCK_JUMP);
	assert_true(s < -59.9 && s > -60.1);
}

static void
test_a_clock_jump_tilts_for_the_period_then_ends(void **state)
{
	struct seen	 s;
	struct tilt	*t = guard(&s, 30);
	double		 m;

	tick(t, 100, 5000);
	tick(t, 101, 5001);
	assert_false(tilt_active(t));
	tick(t, 102, 4702);		/* the wall clock went 5 min back */
	assert_true(tilt_active(t));
	assert_int_equal(s.tilts, 1);
	assert_int_equal(s.why, TILT_CLOCK_JUMP);
	assert_string_equal(s.events, "watchdog_tilt;");
	for (m = 103; m < 132; m++)
		tick(t, m, m + 4600);
	assert_true(tilt_active(t));
	assert_int_equal(s.overs, 0);
	tick(t, 132, 4732);
	assert_false(tilt_active(t));
	assert_int_equal(s.overs, 1);
	assert_true(s.held > 29.9 && s.held < 30.1);
	assert_string_equal(s.events, "watchdog_tilt;watchdog_tilt_over;");
	done(t, &s);
}

static void
test_held_time_includes_the_stall_and_a_second_tilt_extends(void **state)
{
	struct seen	 s;
	struct tilt	*t = guard(&s, 10);
	double		 m;

	tick(t, 100, 5000);
	tick(t, 110, 5010);		/* 10 s without a loop iteration */
	assert_int_equal(s.why, TILT_STALL);
	for (m = 111; m < 115; m++)
		tick(t, m, m + 4900);
	tick(t, 119, 5019);		/* stalled again inside the tilt */
	assert_int_equal(s.tilts, 2);
	for (m = 120; m < 129; m++)
		tick(t, m, m + 4900);
	assert_true(tilt_active(t));	/* 10 s from the second one */
	tick(t, 129, 5029);
	assert_false(tilt_active(t));
	assert_int_equal(s.overs, 1);
	/* From the last trusted reading (100) to the end (129). */
	assert_true(s.held > 28.9 && s.held < 29.1);
	done(t, &s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect_ignores_ordinary_jitter),
		cmocka_unit_test(
		    test_detect_a_loop_late_by_more_than_the_threshold_is_a_stall),
		cmocka_unit_test(
		    test_detect_wall_clock_forward_and_back_are_jumps),
		cmocka_unit_test(
		    test_a_clock_jump_tilts_for_the_period_then_ends),
		cmocka_unit_test(
		    test_held_time_includes_the_stall_and_a_second_tilt_extends),
	};

	log_init("test_tilt", LOG_USER, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
