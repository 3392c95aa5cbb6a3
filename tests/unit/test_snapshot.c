/*
 * The snapshot schedule (interval, UTC window, missed runs) and the
 * retention choice (count, age, only failoverd's own, never the last).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "failoverd/ec2.h"
#include "failoverd/snapshot.h"

#define HOUR	3600
#define DAY	86400
/* 2026-11-26 00:00:00 UTC */
#define MIDNIGHT	((time_t)1795651200)

static time_t
at(int day, int hh, int mm)
{
	return MIDNIGHT + (time_t)day * DAY + hh * HOUR + mm * 60;
}

static struct snapshot_conf
sconf(double interval, int ws, int we)
{
	struct snapshot_conf c;

	memset(&c, 0, sizeof(c));
	c.interval = interval;
	c.window_start = ws;
	c.window_end = we;
	c.keep = 7;
	return c;
}

static void
test_iso_time_parses_as_utc(void **state)
{
	time_t t;

	assert_int_equal(snapshot_parse_time("2026-11-26T00:00:00.000Z", &t),
	    0);
	assert_int_equal(t, MIDNIGHT);
	assert_int_equal(snapshot_parse_time("2026-11-26T01:02:03Z", &t), 0);
	assert_int_equal(t, at(0, 1, 2) + 3);
	assert_int_equal(snapshot_parse_time("2026-11-26 01:02:03", &t), -1);
	assert_int_equal(snapshot_parse_time("yesterday", &t), -1);
	assert_int_equal(snapshot_parse_time(NULL, &t), -1);
}

static void
test_window_contains_and_wraps_past_midnight(void **state)
{
	/* 02:00-05:00 */
	assert_true(snapshot_window_contains(120, 300, 120));
	assert_true(snapshot_window_contains(120, 300, 299));
	assert_false(snapshot_window_contains(120, 300, 300));
	assert_false(snapshot_window_contains(120, 300, 60));
	/* 22:00-02:00 */
	assert_true(snapshot_window_contains(1320, 120, 1380));
	assert_true(snapshot_window_contains(1320, 120, 0));
	assert_true(snapshot_window_contains(1320, 120, 119));
	assert_false(snapshot_window_contains(1320, 120, 120));
	assert_false(snapshot_window_contains(1320, 120, 720));
	/* No window: any time. */
	assert_true(snapshot_window_contains(-1, -1, 720));
}

static void
test_first_run_is_due_at_once(void **state)
{
	struct snapshot_conf c = sconf(DAY, -1, -1);

	assert_int_equal(snapshot_next_due(&c, 0, at(0, 13, 0)), at(0, 13, 0));
}

static void
test_next_run_is_an_interval_after_the_last_good_one(void **state)
{
	struct snapshot_conf c = sconf(HOUR, -1, -1);

	assert_int_equal(snapshot_next_due(&c, at(0, 10, 0), at(0, 10, 20)),
	    at(0, 11, 0));
}

static void
test_run_missed_while_down_is_taken_at_start(void **state)
{
	struct snapshot_conf c = sconf(HOUR, -1, -1);

	/* Last good run yesterday, daemon down since: due now. */
	assert_int_equal(snapshot_next_due(&c, at(-1, 10, 0), at(0, 9, 0)),
	    at(0, 9, 0));
}

static void
test_due_outside_window_waits_for_its_opening(void **state)
{
	struct snapshot_conf c = sconf(DAY, 120, 300);	/* 02:00-05:00 */

	/* Last at 02:10 yesterday, now 13:00: missed, but the window is
	 * closed, so tomorrow 02:00. */
	assert_int_equal(snapshot_next_due(&c, at(-1, 2, 10), at(0, 13, 0)),
	    at(1, 2, 0));
	/* Due at 02:10 today, inside: unchanged. */
	assert_int_equal(snapshot_next_due(&c, at(-1, 2, 10), at(0, 1, 0)),
	    at(0, 2, 10));
	/* Never run, now 01:00: today's opening. */
	assert_int_equal(snapshot_next_due(&c, 0, at(0, 1, 0)), at(0, 2, 0));
}

static void
test_wrapping_window_opens_the_same_evening(void **state)
{
	struct snapshot_conf c = sconf(DAY, 1320, 120);	/* 22:00-02:00 */

	assert_int_equal(snapshot_next_due(&c, 0, at(0, 12, 0)),
	    at(0, 22, 0));
	assert_int_equal(snapshot_next_due(&c, 0, at(0, 1, 30)),
	    at(0, 1, 30));
}

static void
test_no_interval_schedules_nothing(void **state)
{
	struct snapshot_conf c = sconf(0, -1, -1);

	assert_int_equal(snapshot_next_due(&c, 0, at(0, 12, 0)), 0);
}

static struct snapshot_item
item(const char *id, const char *vol, time_t taken, int completed,
    int ours)
{
	struct snapshot_item it;

	it.id = id;
	it.volume = vol;
	it.taken = taken;
	it.completed = completed;
	it.ours = ours;
	return it;
}

static void
test_retention_keeps_the_newest_per_volume(void **state)
{
	struct snapshot_item	items[6];
	int			del[6];
	time_t			now = at(0, 12, 0);

	items[0] = item("snap-a1", "vol-a", now - 4 * HOUR, 1, 1);
	items[1] = item("snap-a2", "vol-a", now - 3 * HOUR, 1, 1);
	items[2] = item("snap-a3", "vol-a", now - 2 * HOUR, 1, 1);
	items[3] = item("snap-a4", "vol-a", now - 1 * HOUR, 1, 1);
	items[4] = item("snap-b1", "vol-b", now - 4 * HOUR, 1, 1);
	items[5] = item("snap-b2", "vol-b", now - 1 * HOUR, 1, 1);
	assert_int_equal(snapshot_retention(items, 6, 2, 0, now, del), 2);
	assert_int_equal(del[0], 1);
	assert_int_equal(del[1], 1);
	assert_int_equal(del[2], 0);
	assert_int_equal(del[3], 0);
	assert_int_equal(del[4], 0);
	assert_int_equal(del[5], 0);
}

static void
test_retention_never_touches_snapshots_it_did_not_take(void **state)
{
	struct snapshot_item	items[4];
	int			del[4];
	time_t			now = at(0, 12, 0);

	/* A person's snapshot of the same volume, a year old. */
	items[0] = item("snap-person", "vol-a", now - 365 * DAY, 1, 0);
	items[1] = item("snap-a1", "vol-a", now - 3 * HOUR, 1, 1);
	items[2] = item("snap-a2", "vol-a", now - 2 * HOUR, 1, 1);
	items[3] = item("snap-a3", "vol-a", now - 1 * HOUR, 1, 1);
	assert_int_equal(snapshot_retention(items, 4, 1, DAY, now, del), 2);
	assert_int_equal(del[0], 0);
	assert_int_equal(del[1], 1);
	assert_int_equal(del[2], 1);
	assert_int_equal(del[3], 0);
}

static void
test_retention_by_age_spares_the_last_completed_one(void **state)
{
	struct snapshot_item	items[3];
	int			del[3];
	time_t			now = at(0, 12, 0);

	/* The schedule broke a week ago: everything is old. */
	items[0] = item("snap-a1", "vol-a", now - 9 * DAY, 1, 1);
	items[1] = item("snap-a2", "vol-a", now - 8 * DAY, 1, 1);
	items[2] = item("snap-a3", "vol-a", now - 7 * DAY, 1, 1);
	assert_int_equal(snapshot_retention(items, 3, 0, 2 * DAY, now, del),
	    2);
	assert_int_equal(del[2], 0);
}

static void
test_retention_ignores_pending_snapshots(void **state)
{
	struct snapshot_item	items[3];
	int			del[3];
	time_t			now = at(0, 12, 0);

	items[0] = item("snap-a1", "vol-a", now - 2 * HOUR, 1, 1);
	items[1] = item("snap-a2", "vol-a", now - 1 * HOUR, 1, 1);
	/* Not complete yet: neither counted nor deleted. */
	items[2] = item("snap-a3", "vol-a", now, 0, 1);
	assert_int_equal(snapshot_retention(items, 3, 1, 0, now, del), 1);
	assert_int_equal(del[0], 1);
	assert_int_equal(del[1], 0);
	assert_int_equal(del[2], 0);
}

static void
test_retention_without_limits_deletes_nothing(void **state)
{
	struct snapshot_item	items[2];
	int			del[2];
	time_t			now = at(0, 12, 0);

	items[0] = item("snap-a1", "vol-a", now - 300 * DAY, 1, 1);
	items[1] = item("snap-a2", "vol-a", now - 1 * HOUR, 1, 1);
	assert_int_equal(snapshot_retention(items, 2, 0, 0, now, del), 0);
}

static void
test_ours_needs_both_taken_by_and_service(void **state)
{
	struct ec2_tag both[2] = {
		{ "failoverd:service", "web" },
		{ "failoverd:taken-by", "failoverd" }
	};
	struct ec2_tag service_only[1] = { { "failoverd:service", "web" } };
	struct ec2_snapshot s;

	memset(&s, 0, sizeof(s));
	s.snapshot_id = "snap-1";
	s.tags = both;
	s.ntags = 2;
	assert_true(snapshot_is_ours(&s, "web"));
	assert_false(snapshot_is_ours(&s, "api"));
	s.tags = service_only;
	s.ntags = 1;
	assert_false(snapshot_is_ours(&s, "web"));
	s.tags = NULL;
	s.ntags = 0;
	assert_false(snapshot_is_ours(&s, "web"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iso_time_parses_as_utc),
		cmocka_unit_test(test_window_contains_and_wraps_past_midnight),
		cmocka_unit_test(test_first_run_is_due_at_once),
		cmocka_unit_test(
		    test_next_run_is_an_interval_after_the_last_good_one),
		cmocka_unit_test(test_run_missed_while_down_is_taken_at_start),
		cmocka_unit_test(
		    test_due_outside_window_waits_for_its_opening),
		cmocka_unit_test(test_wrapping_window_opens_the_same_evening),
		cmocka_unit_test(test_no_interval_schedules_nothing),
		cmocka_unit_test(test_retention_keeps_the_newest_per_volume),
		cmocka_unit_test(
		    test_retention_never_touches_snapshots_it_did_not_take),
		cmocka_unit_test(
		    test_retention_by_age_spares_the_last_completed_one),
		cmocka_unit_test(test_retention_ignores_pending_snapshots),
		cmocka_unit_test(
		    test_retention_without_limits_deletes_nothing),
		cmocka_unit_test(test_ours_needs_both_taken_by_and_service),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
