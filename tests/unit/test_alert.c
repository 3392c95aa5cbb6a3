/*
 * The event line a person greps for: its shape, its quoting, and the
 * folding of repeats that keeps a flapping probe from flooding syslog.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "failoverd/alert.h"
#include "failoverd/log.h"
#include "failoverd/selfcheck.h"

static FILE	*capture;

static int
setup(void **state)
{
	capture = tmpfile();
	assert_non_null(capture);
	log_init("test_alert", LOG_USER, 1);
	log_set_stream(capture);
	alert_set_rate_limit(60);
	return 0;
}

/* Everything logged since the last call. */
static char *
captured(void)
{
	static long	 done;
	long		 end;
	char		*s;

	fflush(capture);
	end = ftell(capture);
	s = calloc(1, end - done + 1);
	fseek(capture, done, SEEK_SET);
	assert_int_equal(fread(s, 1, end - done, capture),
	    (size_t)(end - done));
	fseek(capture, end, SEEK_SET);
	done = end;
	return s;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

static void
test_event_line_has_name_service_and_fields(void **state)
{
	char *out;

	alert_emit(ALERT_SERVICE_DOWN, "web", "instance", "i-0abc",
	    "reason", "http: connect refused", NULL);
	out = captured();
	assert_non_null(strstr(out, "event=service_down service=web "
	    "instance=i-0abc reason=\"http: connect refused\"\n"));
	assert_non_null(strstr(out, " err: "));
	free(out);
}

static void
test_values_are_quoted_and_escaped_on_one_line(void **state)
{
	char *out;

	alert_emit(ALERT_PROBE_DOWN, "web", "reason",
	    "body said \"no\"\nsecond line", "empty", "", NULL);
	out = captured();
	/* The newline is shown as \n (log.c), not taken as a line end. */
	assert_non_null(strstr(out, "reason=\"body said \\\"no\\\"\\nsecond "
	    "line\" empty=\"\"\n"));
	assert_int_equal(count(out, "\n"), 1);
	free(out);
}

static void
test_repeats_are_folded_and_counted(void **state)
{
	char	*out;
	int	 i;

	for (i = 0; i < 20; i++)
		alert_emit(ALERT_AWS_ERROR, "db", "code", "Throttling", NULL);
	out = captured();
	assert_int_equal(count(out, "event=aws_error"), 5);
	free(out);
	/* A new window reports what was folded. */
	alert_set_rate_limit(0.000001);
	usleep(1000);
	alert_emit(ALERT_AWS_ERROR, "db", "code", "Throttling", NULL);
	out = captured();
	assert_non_null(strstr(out, "repeats_folded=15"));
	free(out);
	alert_set_rate_limit(60);
}

struct seen {
	int	 n;
	int	 ev;
	char	 service[16];
	char	 kv[64];
};

static void
on_event(enum alert_event ev, const char *service, const char *const *kv,
    size_t nkv, const char *line, void *arg)
{
	struct seen	*s = arg;
	size_t		 i, off = 0;

	(void)line;
	s->n++;
	s->ev = ev;
	snprintf(s->service, sizeof(s->service), "%s", service ? service : "");
	s->kv[0] = '\0';
	for (i = 0; i < 2 * nkv && off < sizeof(s->kv); i++)
		off += snprintf(s->kv + off, sizeof(s->kv) - off, "%s;", kv[i]);
}

/* A counter fed by an observer counts the repeats the log folds. */
static void
test_observers_see_every_event_with_its_fields(void **state)
{
	struct seen	 s = { 0 };
	int		 i;

	assert_int_equal(alert_observe(on_event, &s), 0);
	for (i = 0; i < 20; i++)
		alert_emit(ALERT_AWS_ERROR, "obs", "code", "Throttling",
		    "action", NULL, NULL);
	free(captured());
	assert_int_equal(s.n, 20);
	assert_int_equal(s.ev, ALERT_AWS_ERROR);
	assert_string_equal(s.service, "obs");
	assert_string_equal(s.kv, "code;Throttling;action;;");
	alert_unobserve(on_event, &s);
	alert_emit(ALERT_AWS_ERROR, "obs", NULL);
	free(captured());
	assert_int_equal(s.n, 20);
}

static void
test_different_probes_are_not_folded_together(void **state)
{
	char	 name[16];
	char	*out;
	int	 i;

	for (i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		alert_emit(ALERT_PROBE_DOWN, "api", "probe", name, NULL);
	}
	out = captured();
	assert_int_equal(count(out, "event=probe_down service=api"), 12);
	free(out);
}

static void
test_control_bytes_are_escaped_in_every_message(void **state)
{
	char	 small[8];
	char	*out;

	/* A plain log line, not an event: the escaping is in log.c. */
	log_warnx("service %s", "web\r\nevent=failover_completed\x1b[2J\x7f");
	alert_emit(ALERT_CONTROL_COMMAND, "a\rb", "tab", "x\ty", NULL);
	out = captured();
	assert_int_equal(count(out, "\n"), 2);
	assert_null(strchr(out, '\r'));
	assert_null(strchr(out, '\x1b'));
	assert_null(strchr(out, '\x7f'));
	assert_non_null(strstr(out, "service web\\r\\nevent=failover_completed"
	    "\\x1b[2J\\x7f\n"));
	assert_non_null(strstr(out, "service=\"a\\rb\" tab=\"x\\ty\"\n"));
	free(out);
	/* Never half an escape at the end of a short buffer. */
	log_escape(small, sizeof(small), "abcd\n");
	assert_string_equal(small, "abcd");
	log_escape(small, sizeof(small), "ab\ncdef");
	assert_string_equal(small, "ab\\ncde");
}

/*
 * The watchdog's own faults: one event for a burst, not one per failed
 * check, and no "healthy" from one lucky check in the middle of it.
 */
static void
test_watchdog_faults_are_one_event_not_a_flood(void **state)
{
	char	*out;
	int	 i;

	assert_true(selfcheck_errno_is_local(EMFILE));
	assert_true(selfcheck_errno_is_local(EADDRNOTAVAIL));
	assert_false(selfcheck_errno_is_local(ECONNREFUSED));
	assert_false(selfcheck_errno_is_local(EHOSTUNREACH));
	assert_false(selfcheck_unhealthy());
	for (i = 0; i < 1000; i++) {
		selfcheck_fault(SELFCHECK_PROBES, "probe web/site",
		    "socket: Too many open files");
		if (i == 500)
			selfcheck_ok(SELFCHECK_PROBES);
	}
	out = captured();
	assert_int_equal(count(out, "event=watchdog_unhealthy"), 1);
	assert_int_equal(count(out, "event=watchdog_healthy"), 0);
	assert_non_null(strstr(out, " crit: event=watchdog_unhealthy "
	    "source=probes reason=\"probe web/site: socket: Too many open "
	    "files\" faults=1 "));
	assert_true(selfcheck_unhealthy());
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event_line_has_name_service_and_fields),
		cmocka_unit_test(test_values_are_quoted_and_escaped_on_one_line),
		cmocka_unit_test(test_repeats_are_folded_and_counted),
		cmocka_unit_test(test_observers_see_every_event_with_its_fields),
		cmocka_unit_test(test_different_probes_are_not_folded_together),
		cmocka_unit_test(test_control_bytes_are_escaped_in_every_message),
		cmocka_unit_test(test_watchdog_faults_are_one_event_not_a_flood),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
