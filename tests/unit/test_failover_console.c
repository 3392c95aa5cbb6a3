/*
 * The part of the failover engine that is pure: reading the SSH host
 * keys of a replacement from its console output. A wrong read here
 * means VERIFY fails with hostkey_mismatch (keys missed) or, worse, a
 * key is trusted that the instance never printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failoverd/buf.h"
#include "failoverd/failover.h"

static const char console[] =
    "[    0.000000] Linux version 6.1.0-18-cloud-amd64\n"
    "Cloud-init v. 22.4.2 running 'modules:final'. Up 5.02 seconds.\n"
    "#############################################################\n"
    "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
    "256 SHA256:abcdefg root@ip-10-0-0-1 (ED25519)\n"
    "-----END SSH HOST KEY FINGERPRINTS-----\n"
    "#############################################################\n"
    "-----BEGIN SSH HOST KEY KEYS-----\n"
    "ecdsa-sha2-nistp256 AAAAE2VjZHNh root@ip-10-0-0-1\n"
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 root@ip-10-0-0-1\r\n"
    "-----END SSH HOST KEY KEYS-----\n"
    "Cloud-init v. 22.4.2 finished. Up 5.31 seconds\n";

static void
test_keys_block_gives_type_and_key_of_each_line(void **state)
{
	struct buf out;

	buf_init(&out);
	assert_int_equal(failover_console_keys(console, &out), 2);
	assert_string_equal(buf_str(&out),
	    "ecdsa-sha2-nistp256 AAAAE2VjZHNh\n"
	    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\n");
	buf_free(&out);
}

static void
test_fingerprints_alone_are_not_keys(void **state)
{
	struct buf	out;
	char		*cut;

	buf_init(&out);
	/* The console is still being written: the block has no end. */
	cut = strdup(console);
	assert_non_null(cut);
	*strstr(cut, "-----END SSH HOST KEY KEYS") = '\0';
	assert_int_equal(failover_console_keys(cut, &out), 0);
	*strstr(cut, "-----BEGIN SSH HOST KEY KEYS") = '\0';
	assert_int_equal(failover_console_keys(cut, &out), 0);
	assert_int_equal(out.len, 0);
	free(cut);
	buf_free(&out);
}

static void
test_no_console_yet(void **state)
{
	struct buf out;

	buf_init(&out);
	assert_int_equal(failover_console_keys(NULL, &out), 0);
	assert_int_equal(failover_console_keys("", &out), 0);
	assert_int_equal(failover_console_keys(
	    "-----BEGIN SSH HOST KEY KEYS-----\n"
	    "-----END SSH HOST KEY KEYS-----\n", &out), 0);
	/* A line without a key part is no key. */
	assert_int_equal(failover_console_keys(
	    "-----BEGIN SSH HOST KEY KEYS-----\n"
	    "garbage\n"
	    "-----END SSH HOST KEY KEYS-----\n", &out), 0);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

static void
test_step_names_are_one_table(void **state)
{
	assert_string_equal(failover_step_str(FAILOVER_FENCE_LAUNCH),
	    "fence+launch");
	assert_string_equal(failover_step_str(FAILOVER_HELD), "held");
	assert_string_equal(failover_step_str(FAILOVER_STEP_MAX), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_keys_block_gives_type_and_key_of_each_line),
		cmocka_unit_test(test_fingerprints_alone_are_not_keys),
		cmocka_unit_test(test_no_console_yet),
		cmocka_unit_test(test_step_names_are_one_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
