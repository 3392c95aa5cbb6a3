/*
 * The control protocol's request reading (control_parse_request): what
 * failoverctl sends becomes words, a partial line waits for the rest, and
 * a request the daemon cannot run is refused with the reason the client
 * sees after "ERR ".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "failoverd/control.h"

struct parsed {
	char		 req[CONTROL_MAX_REQUEST];
	char		*argv[CONTROL_MAX_ARGS];
	const char	*why;
	int		 argc;
	int		 rc;
};

static void
parse(struct parsed *p, const char *bytes, size_t len)
{
	assert_true(len < sizeof(p->req));
	memset(p, 0, sizeof(*p));
	memcpy(p->req, bytes, len);
	p->rc = control_parse_request(p->req, len, &p->argc, p->argv,
	    &p->why);
}

static void
test_a_line_becomes_words(void **state)
{
	struct parsed p;

	parse(&p, "status --json\n", 14);
	assert_int_equal(p.rc, 1);
	assert_null(p.why);
	assert_int_equal(p.argc, 2);
	assert_string_equal(p.argv[0], "status");
	assert_string_equal(p.argv[1], "--json");
}

static void
test_tabs_and_repeated_blanks_separate_words(void **state)
{
	struct parsed p;

	parse(&p, "\t pause \t web  \n", 16);
	assert_int_equal(p.rc, 1);
	assert_int_equal(p.argc, 2);
	assert_string_equal(p.argv[0], "pause");
	assert_string_equal(p.argv[1], "web");
}

static void
test_a_partial_line_waits_for_the_rest(void **state)
{
	struct parsed p;

	parse(&p, "stat", 4);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.argc, 0);
	assert_null(p.why);
}

static void
test_bytes_after_the_newline_are_ignored(void **state)
{
	struct parsed p;

	parse(&p, "ping\nreload\n", 12);
	assert_int_equal(p.rc, 1);
	assert_int_equal(p.argc, 1);
	assert_string_equal(p.argv[0], "ping");
}

static void
test_an_empty_line_is_refused(void **state)
{
	struct parsed p;

	parse(&p, " \t\n", 3);
	assert_int_equal(p.rc, 1);
	assert_int_equal(p.argc, 0);
	assert_string_equal(p.why, "empty request");
}

static void
test_more_words_than_the_limit_are_refused(void **state)
{
	struct parsed	p;
	char		line[256] = "";
	int		i;

	for (i = 0; i <= CONTROL_MAX_ARGS; i++)
		strcat(line, "w ");
	strcat(line, "\n");
	parse(&p, line, strlen(line));
	assert_int_equal(p.rc, 1);
	assert_int_equal(p.argc, 0);
	assert_string_equal(p.why, "too many arguments");

	/* Exactly the limit is fine. */
	line[0] = '\0';
	for (i = 0; i < CONTROL_MAX_ARGS; i++)
		strcat(line, "w ");
	strcat(line, "\n");
	parse(&p, line, strlen(line));
	assert_null(p.why);
	assert_int_equal(p.argc, CONTROL_MAX_ARGS);
}

static void
test_a_full_buffer_without_newline_is_too_long(void **state)
{
	static char	bytes[CONTROL_MAX_REQUEST - 1];
	struct parsed	p;

	memset(bytes, 'a', sizeof(bytes));
	/* One byte short of full: still waiting. */
	parse(&p, bytes, sizeof(bytes) - 1);
	assert_int_equal(p.rc, 0);
	parse(&p, bytes, sizeof(bytes));
	assert_int_equal(p.rc, 1);
	assert_string_equal(p.why, "request too long");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_line_becomes_words),
		cmocka_unit_test(test_tabs_and_repeated_blanks_separate_words),
		cmocka_unit_test(test_a_partial_line_waits_for_the_rest),
		cmocka_unit_test(test_bytes_after_the_newline_are_ignored),
		cmocka_unit_test(test_an_empty_line_is_refused),
		cmocka_unit_test(test_more_words_than_the_limit_are_refused),
		cmocka_unit_test(test_a_full_buffer_without_newline_is_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
