/*
 * How a preflight counts EC2's answers: a dry run that would have
 * worked is OK, IAM's refusal is DENIED, anything else INVALID, and a
 * "dry run" that really ran is never OK.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "failoverd/preflight.h"

static void
test_dry_run_operation_is_ok(void **state)
{
	assert_int_equal(preflight_classify(1, EC2_DRY_RUN_OK, NULL),
	    PREFLIGHT_OK);
}

static void
test_unauthorized_is_denied(void **state)
{
	assert_int_equal(preflight_classify(1, EC2_ERR_AWS,
	    "UnauthorizedOperation"), PREFLIGHT_DENIED);
	assert_int_equal(preflight_classify(0, EC2_ERR_AWS,
	    "UnauthorizedOperation"), PREFLIGHT_DENIED);
	assert_int_equal(preflight_classify(1, EC2_ERR_AWS,
	    "Client.UnauthorizedOperation"), PREFLIGHT_DENIED);
}

static void
test_other_errors_are_invalid(void **state)
{
	assert_int_equal(preflight_classify(1, EC2_ERR_AWS,
	    "InvalidAMIID.NotFound"), PREFLIGHT_INVALID);
	assert_int_equal(preflight_classify(1, EC2_ERR_AWS, NULL),
	    PREFLIGHT_INVALID);
	assert_int_equal(preflight_classify(1, EC2_ERR_TIMEOUT, NULL),
	    PREFLIGHT_INVALID);
	assert_int_equal(preflight_classify(1, EC2_ERR_NETWORK, NULL),
	    PREFLIGHT_INVALID);
}

static void
test_a_dry_run_that_really_ran_is_invalid(void **state)
{
	assert_int_equal(preflight_classify(1, EC2_OK, NULL),
	    PREFLIGHT_INVALID);
	/* A read is expected to succeed. */
	assert_int_equal(preflight_classify(0, EC2_OK, NULL), PREFLIGHT_OK);
}

static void
test_result_names(void **state)
{
	assert_string_equal(preflight_result_str(PREFLIGHT_OK), "OK");
	assert_string_equal(preflight_result_str(PREFLIGHT_DENIED), "DENIED");
	assert_string_equal(preflight_result_str(PREFLIGHT_INVALID),
	    "INVALID");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dry_run_operation_is_ok),
		cmocka_unit_test(test_unauthorized_is_denied),
		cmocka_unit_test(test_other_errors_are_invalid),
		cmocka_unit_test(test_a_dry_run_that_really_ran_is_invalid),
		cmocka_unit_test(test_result_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
