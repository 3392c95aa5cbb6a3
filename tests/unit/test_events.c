/*
 * What `failoverctl events` shows: the last event lines, oldest first,
 * each on one line with its time, and what a follower is handed; and the
 * command table failoverctl and the control server share.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <cmocka.h>

#include "failoverd/alert.h"
#include "failoverd/buf.h"
#include "failoverd/commands.h"
#include "failoverd/events.h"
#include "failoverd/log.h"

static struct buf	followed;

static int
setup(void **state)
{
	log_init("test_events", LOG_USER, 1);
	log_set_stream(fopen("/dev/null", "w"));
	alert_set_rate_limit(0);
	return 0;
}

static void
on_line(const char *line, void *arg)
{
	buf_printf(&followed, "%s|", line);
}

static int
lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static void
test_events_keeps_the_last_lines_oldest_first(void **state)
{
	struct events	*ev = events_new(3, NULL, NULL);
	struct buf	 out;
	const char	*a, *b, *c;

	assert_non_null(ev);
	alert_emit(ALERT_PROBE_DOWN, "s1", NULL);
	alert_emit(ALERT_PROBE_DOWN, "s2", NULL);
	alert_emit(ALERT_PROBE_DOWN, "s3", NULL);
	alert_emit(ALERT_PROBE_DOWN, "s4", NULL);
	alert_emit(ALERT_PROBE_DOWN, "s5", NULL);
	buf_init(&out);
	events_render(ev, &out, 0);
	assert_int_equal(lines(buf_str(&out)), 3);
	assert_null(strstr(buf_str(&out), "service=s2"));
	a = strstr(buf_str(&out), "service=s3");
	b = strstr(buf_str(&out), "service=s4");
	c = strstr(buf_str(&out), "service=s5");
	assert_true(a != NULL && b != NULL && c != NULL && a < b && b < c);
	buf_free(&out);
	events_free(ev);
}

static void
test_events_line_has_its_utc_time_and_the_logged_text(void **state)
{
	struct events	*ev = events_new(10, NULL, NULL);
	struct buf	 out;
	regex_t		 re;

	alert_emit(ALERT_PROBE_DOWN, "web", "probe", "ssh", NULL);
	buf_init(&out);
	events_render(ev, &out, 0);
	assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:"
	    "[0-9]{2}:[0-9]{2}Z event=probe_down service=web probe=ssh\n$",
	    REG_EXTENDED), 0);
	assert_int_equal(regexec(&re, buf_str(&out), 0, NULL, 0), 0);
	regfree(&re);
	buf_free(&out);
	events_free(ev);
}

static void
test_a_newline_in_a_value_cannot_forge_a_line(void **state)
{
	struct events	*ev = events_new(10, NULL, NULL);
	struct buf	 out;

	alert_emit(ALERT_PROBE_DOWN, "web", "reason",
	    "x\n2026-01-01T00:00:00Z event=failover_completed", NULL);
	buf_init(&out);
	events_render(ev, &out, 0);
	assert_int_equal(lines(buf_str(&out)), 1);
	assert_non_null(strstr(buf_str(&out), "x\\x0a2026"));
	buf_free(&out);
	events_free(ev);
}

static void
test_followers_get_each_line_as_it_happens(void **state)
{
	struct events *ev = events_new(2, on_line, NULL);

	buf_init(&followed);
	alert_emit(ALERT_PROBE_DOWN, "a", NULL);
	alert_emit(ALERT_PROBE_DOWN, "b", NULL);
	alert_emit(ALERT_PROBE_DOWN, "c", NULL);
	assert_int_equal(lines(buf_str(&followed)), 0);
	assert_non_null(strstr(buf_str(&followed),
	    "event=probe_down service=c|"));
	assert_non_null(strstr(buf_str(&followed),
	    "event=probe_down service=a|"));
	buf_free(&followed);
	events_free(ev);
	/* Freed: no longer an observer. */
	alert_emit(ALERT_PROBE_DOWN, "d", NULL);
}

static void
test_events_as_json(void **state)
{
	struct events	*ev = events_new(10, NULL, NULL);
	struct buf	 out;

	alert_emit(ALERT_PROBE_DOWN, "web", "why", "say \"no\"", NULL);
	buf_init(&out);
	events_render(ev, &out, 1);
	assert_non_null(strstr(buf_str(&out), "{\"events\":[\""));
	assert_non_null(strstr(buf_str(&out),
	    "event=probe_down service=web why=\\\"say \\\\\\\"no\\\\\\\"\\\""
	    "\"]}\n"));
	buf_free(&out);
	events_free(ev);
}

static void
test_command_table_says_what_acts(void **state)
{
	char *status[] = { "status", "web" };
	char *pre[] = { "preflight", "web" };
	char *res[] = { "preflight", "web", "--result" };
	char *ev[] = { "events", "--follow" };
	const struct command *c;

	assert_null(command_find("frobnicate"));
	c = command_find("status");
	assert_false(command_changes(c, 2, status));
	c = command_find("preflight");
	assert_true(command_changes(c, 2, pre));
	assert_false(command_changes(c, 3, res));
	c = command_find("events");
	assert_false(command_changes(c, 2, ev));
	assert_true(command_follows(c, 2, ev));
	assert_false(command_follows(c, 1, ev));
	assert_non_null(command_find("failover")->confirm);
	assert_null(command_find("pause")->confirm);
}

static void
test_usage_lists_every_command_the_daemon_serves(void **state)
{
	struct buf	 out;
	int		 id;
	char		 want[64];

	buf_init(&out);
	command_usage(&out);
	for (id = 0; id < COMMAND_MAX; id++) {
		assert_int_equal(command_get(id)->id, id);
		snprintf(want, sizeof(want), "\n  %s", command_get(id)->name);
		assert_true(strncmp(buf_str(&out), want + 1,
		    strlen(want + 1)) == 0 || strstr(buf_str(&out), want));
		assert_ptr_equal(command_find(command_get(id)->name),
		    command_get(id));
	}
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_keeps_the_last_lines_oldest_first),
		cmocka_unit_test(
		    test_events_line_has_its_utc_time_and_the_logged_text),
		cmocka_unit_test(test_a_newline_in_a_value_cannot_forge_a_line),
		cmocka_unit_test(test_followers_get_each_line_as_it_happens),
		cmocka_unit_test(test_events_as_json),
		cmocka_unit_test(test_command_table_says_what_acts),
		cmocka_unit_test(
		    test_usage_lists_every_command_the_daemon_serves),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
