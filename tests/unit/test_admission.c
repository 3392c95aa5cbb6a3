/*
 * The admission line: at most `limit` in at once, the rest wait first
 * in, first out, their turns given from the loop; what a caller relies
 * on when a check, a preflight or a refresh ends, stops or is reloaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "failoverd/admission.h"

/* The work of one owner: it records when its turn came. */
struct work {
	struct admission_ticket	 ticket;
	struct admission	*line;
	char			 id;
	int			 ends_at_once;	/* could not start */
	struct admission_ticket	*enters;	/* on its turn */
	char			*order;		/* ids, by turn */
};

static int depth, deepest;

static void
work_on_turn(void *arg)
{
	struct work *w = arg;

	if (++depth > deepest)
		deepest = depth;
	w->order[strlen(w->order)] = w->id;
	if (w->enters != NULL)
		admission_enter(w->line, w->enters);
	if (w->ends_at_once)
		admission_leave(w->line, &w->ticket);
	depth--;
}

static void
work_init(struct work *w, struct admission *line, char id, char *order)
{
	memset(w, 0, sizeof(*w));
	admission_ticket_init(&w->ticket, work_on_turn, w);
	w->line = line;
	w->id = id;
	w->order = order;
}

static void
test_past_the_limit_work_waits_and_starts_in_order(void **state)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 2);
	struct work		 w[5];
	char			 order[8] = "";
	int			 i;

	for (i = 0; i < 5; i++)
		work_init(&w[i], line, (char)('a' + i), order);
	assert_int_equal(admission_enter(line, &w[0].ticket), 1);
	assert_int_equal(admission_enter(line, &w[1].ticket), 1);
	assert_true(admission_ticket_in(&w[0].ticket));
	for (i = 2; i < 5; i++)
		assert_int_equal(admission_enter(line, &w[i].ticket), 0);
	assert_true(admission_ticket_waiting(&w[2].ticket));
	assert_int_equal(admission_in_use(line), 2);
	assert_int_equal(admission_waiting(line), 3);
	assert_int_equal(admission_limit(line), 2);
	/* Those admitted at once were told so, not called. */
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "");

	admission_leave(line, &w[1].ticket);
	assert_false(admission_ticket_in(&w[1].ticket));
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "c");
	admission_leave(line, &w[0].ticket);
	admission_leave(line, &w[2].ticket);
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "cde");
	assert_true(admission_ticket_in(&w[4].ticket));
	assert_int_equal(admission_in_use(line), 2);
	assert_int_equal(admission_waiting(line), 0);
	admission_free(line);
	ev_loop_destroy(loop);
}

static void
test_a_turn_comes_from_the_loop_never_from_leave(void **state)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 1);
	struct work		 a, b;
	char			 order[8] = "";

	work_init(&a, line, 'a', order);
	work_init(&b, line, 'b', order);
	assert_int_equal(admission_enter(line, &a.ticket), 1);
	assert_int_equal(admission_enter(line, &b.ticket), 0);
	admission_leave(line, &a.ticket);
	/* The place is b's, but b has not run inside a's leave. */
	assert_string_equal(order, "");
	assert_true(admission_ticket_waiting(&b.ticket));
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "b");
	assert_true(admission_ticket_in(&b.ticket));
	admission_leave(line, &b.ticket);
	admission_free(line);
	ev_loop_destroy(loop);
}

static void
test_a_newcomer_never_passes_a_waiting_ticket(void **state)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 1);
	struct work		 a, b, x;
	char			 order[8] = "";

	work_init(&a, line, 'a', order);
	work_init(&b, line, 'b', order);
	work_init(&x, line, 'x', order);
	assert_int_equal(admission_enter(line, &a.ticket), 1);
	assert_int_equal(admission_enter(line, &b.ticket), 0);
	admission_leave(line, &a.ticket);
	/* A place is free, but b was there first. */
	assert_int_equal(admission_enter(line, &x.ticket), 0);
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "b");
	admission_leave(line, &b.ticket);
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "bx");
	admission_leave(line, &x.ticket);
	assert_int_equal(admission_in_use(line), 0);
	admission_free(line);
	ev_loop_destroy(loop);
}

static void
test_a_cancelled_ticket_never_gets_its_turn(void **state)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 1);
	struct work		 w[4];
	char			 order[8] = "";
	int			 i;

	for (i = 0; i < 4; i++) {
		work_init(&w[i], line, (char)('a' + i), order);
		admission_enter(line, &w[i].ticket);
	}
	/* From the middle, the tail and the head of the line. */
	admission_cancel(line, &w[2].ticket);
	assert_false(admission_ticket_waiting(&w[2].ticket));
	assert_int_equal(admission_waiting(line), 2);
	admission_cancel(line, &w[3].ticket);
	admission_cancel(line, &w[1].ticket);
	assert_int_equal(admission_waiting(line), 0);
	/* Cancel does not give back a place that is held. */
	admission_cancel(line, &w[0].ticket);
	assert_true(admission_ticket_in(&w[0].ticket));
	admission_leave(line, &w[0].ticket);
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "");
	assert_int_equal(admission_in_use(line), 0);

	/* The line still works after being emptied from every end. */
	assert_int_equal(admission_enter(line, &w[3].ticket), 1);
	assert_int_equal(admission_enter(line, &w[1].ticket), 0);
	admission_leave(line, &w[3].ticket);
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "b");
	admission_leave(line, &w[1].ticket);
	admission_free(line);
	ev_loop_destroy(loop);
}

static void
test_leaving_twice_gives_back_one_place(void **state)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 2);
	struct work		 a, b, c;
	char			 order[8] = "";

	work_init(&a, line, 'a', order);
	work_init(&b, line, 'b', order);
	work_init(&c, line, 'c', order);
	admission_enter(line, &a.ticket);
	admission_enter(line, &b.ticket);
	admission_leave(line, &a.ticket);
	admission_leave(line, &a.ticket);
	assert_int_equal(admission_in_use(line), 1);
	/* A ticket that never entered has nothing to give back. */
	admission_leave(line, &c.ticket);
	admission_cancel(line, &c.ticket);
	assert_int_equal(admission_in_use(line), 1);
	assert_int_equal(admission_enter(line, &c.ticket), 1);
	assert_int_equal(admission_in_use(line), 2);
	admission_leave(line, &b.ticket);
	admission_leave(line, &c.ticket);
	assert_int_equal(admission_in_use(line), 0);
	admission_free(line);
	ev_loop_destroy(loop);
}

static void
test_entering_again_never_takes_two_places(void **state)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 1);
	struct work		 a, b, c;
	char			 order[8] = "";

	work_init(&a, line, 'a', order);
	work_init(&b, line, 'b', order);
	work_init(&c, line, 'c', order);
	assert_int_equal(admission_enter(line, &a.ticket), 1);
	/* In already: no second start, no second place. */
	assert_int_equal(admission_enter(line, &a.ticket), 0);
	assert_int_equal(admission_in_use(line), 1);
	assert_int_equal(admission_waiting(line), 0);
	assert_int_equal(admission_enter(line, &b.ticket), 0);
	assert_int_equal(admission_enter(line, &c.ticket), 0);
	/* Waiting already: it keeps its place, ahead of c. */
	assert_int_equal(admission_enter(line, &b.ticket), 0);
	assert_int_equal(admission_waiting(line), 2);
	admission_leave(line, &a.ticket);
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "b");
	admission_leave(line, &b.ticket);
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "bc");
	admission_leave(line, &c.ticket);
	admission_free(line);
	ev_loop_destroy(loop);
}

static void
test_work_failing_at_once_hands_its_place_on_in_one_pass(
    void **state)
{
	enum { N = 1000 };
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 1);
	static struct work	 w[N + 1];
	static char		 order[N + 2];
	int			 i;

	memset(order, 0, sizeof(order));
	for (i = 0; i <= N; i++) {
		work_init(&w[i], line, (char)('a' + i % 26), order);
		w[i].ends_at_once = i > 0 && i < N;
	}
	assert_int_equal(admission_enter(line, &w[0].ticket), 1);
	for (i = 1; i <= N; i++)
		assert_int_equal(admission_enter(line, &w[i].ticket), 0);
	depth = deepest = 0;
	admission_leave(line, &w[0].ticket);
	ev_run(loop, EVRUN_NOWAIT);
	/* Every one ran, in order, one after the other in one pass. */
	assert_int_equal(strlen(order), N);
	for (i = 1; i <= N; i++)
		assert_int_equal(order[i - 1], 'a' + i % 26);
	assert_int_equal(deepest, 1);
	assert_true(admission_ticket_in(&w[N].ticket));
	assert_int_equal(admission_in_use(line), 1);
	assert_int_equal(admission_waiting(line), 0);
	admission_leave(line, &w[N].ticket);
	admission_free(line);
	ev_loop_destroy(loop);
}

static void
test_a_ticket_entering_during_a_turn_waits_its_own(void **state)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 1);
	struct work		 a, b, c;
	char			 order[8] = "";

	work_init(&a, line, 'a', order);
	work_init(&b, line, 'b', order);
	work_init(&c, line, 'c', order);
	b.enters = &c.ticket;
	b.ends_at_once = 1;
	assert_int_equal(admission_enter(line, &a.ticket), 1);
	assert_int_equal(admission_enter(line, &b.ticket), 0);
	admission_leave(line, &a.ticket);
	ev_run(loop, EVRUN_NOWAIT);
	/* c came in line while b held the place, and b left. */
	assert_string_equal(order, "bc");
	assert_true(admission_ticket_in(&c.ticket));
	admission_leave(line, &c.ticket);
	admission_free(line);
	ev_loop_destroy(loop);
}

static void
test_a_raised_limit_lets_waiting_work_in(void **state)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 1);
	struct work		 w[4];
	char			 order[8] = "";
	int			 i;

	for (i = 0; i < 4; i++) {
		work_init(&w[i], line, (char)('a' + i), order);
		admission_enter(line, &w[i].ticket);
	}
	admission_set_limit(line, 3);
	assert_string_equal(order, "");
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "bc");
	assert_int_equal(admission_in_use(line), 3);
	assert_int_equal(admission_waiting(line), 1);
	for (i = 0; i < 3; i++)
		admission_leave(line, &w[i].ticket);
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "bcd");
	admission_leave(line, &w[3].ticket);
	admission_free(line);
	ev_loop_destroy(loop);
}

static void
test_a_lowered_limit_keeps_holders_and_holds_newcomers(void **state)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 3);
	struct work		 w[4];
	char			 order[8] = "";
	int			 i;

	for (i = 0; i < 4; i++)
		work_init(&w[i], line, (char)('a' + i), order);
	for (i = 0; i < 3; i++)
		assert_int_equal(admission_enter(line, &w[i].ticket), 1);
	admission_set_limit(line, 1);
	assert_int_equal(admission_limit(line), 1);
	assert_int_equal(admission_in_use(line), 3);
	assert_int_equal(admission_enter(line, &w[3].ticket), 0);
	admission_leave(line, &w[0].ticket);
	admission_leave(line, &w[1].ticket);
	ev_run(loop, EVRUN_NOWAIT);
	/* Still one in, the limit: d waits. */
	assert_string_equal(order, "");
	admission_leave(line, &w[2].ticket);
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "d");
	admission_leave(line, &w[3].ticket);
	admission_free(line);
	ev_loop_destroy(loop);
}

static void
test_a_zero_limit_still_lets_one_in(void **state)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 0);
	struct work		 a, b;
	char			 order[8] = "";

	work_init(&a, line, 'a', order);
	work_init(&b, line, 'b', order);
	assert_int_equal(admission_limit(line), 1);
	assert_int_equal(admission_enter(line, &a.ticket), 1);
	assert_int_equal(admission_enter(line, &b.ticket), 0);
	admission_set_limit(line, 0);
	admission_leave(line, &a.ticket);
	ev_run(loop, EVRUN_NOWAIT);
	assert_string_equal(order, "b");
	admission_leave(line, &b.ticket);
	admission_free(line);
	ev_loop_destroy(loop);
}

static void
test_an_idle_line_keeps_no_watcher_running(void **state)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct admission	*line = admission_new(loop, 1);
	struct work		 a, b;
	char			 order[8] = "";

	work_init(&a, line, 'a', order);
	work_init(&b, line, 'b', order);
	admission_enter(line, &a.ticket);
	admission_enter(line, &b.ticket);
	admission_leave(line, &a.ticket);
	/*
	 * ev_run returns once nothing is active: a watcher left running
	 * would hang it, and the alarm ends the test as a failure.
	 */
	alarm(60);
	ev_run(loop, 0);
	assert_string_equal(order, "b");
	admission_leave(line, &b.ticket);
	ev_run(loop, 0);
	alarm(0);
	assert_int_equal(admission_in_use(line), 0);
	admission_free(line);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_past_the_limit_work_waits_and_starts_in_order),
		cmocka_unit_test(
		    test_a_turn_comes_from_the_loop_never_from_leave),
		cmocka_unit_test(
		    test_a_newcomer_never_passes_a_waiting_ticket),
		cmocka_unit_test(test_a_cancelled_ticket_never_gets_its_turn),
		cmocka_unit_test(test_leaving_twice_gives_back_one_place),
		cmocka_unit_test(
		    test_entering_again_never_takes_two_places),
		cmocka_unit_test(
		    test_work_failing_at_once_hands_its_place_on_in_one_pass),
		cmocka_unit_test(
		    test_a_ticket_entering_during_a_turn_waits_its_own),
		cmocka_unit_test(test_a_raised_limit_lets_waiting_work_in),
		cmocka_unit_test(
		    test_a_lowered_limit_keeps_holders_and_holds_newcomers),
		cmocka_unit_test(test_a_zero_limit_still_lets_one_in),
		cmocka_unit_test(test_an_idle_line_keeps_no_watcher_running),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
