/*
 * The user data a replacement gets: cloud-init must find failoverd's
 * ssh_keys part and the user's own part intact. The parts are read
 * back with Python's email package (cloud-init's own MIME parser) in
 * the e2e tests through ec2sim; here the shape and the limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "failoverd/hostkey.h"
#include "failoverd/userdata.h"

static const unsigned char seed[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

static void
test_key_alone_is_a_cloud_config(void **state)
{
	struct hostkey	*hk = hostkey_from_seed(seed, "failoverd@web");
	char		*doc, err[256];
	size_t		 len;

	(void)state;
	assert_int_equal(userdata_compose(NULL, 0, hk, "B", &doc, &len, err,
	    sizeof(err)), 0);
	assert_int_equal(strlen(doc), len);
	assert_true(strncmp(doc, "#cloud-config\n", 14) == 0);
	assert_non_null(strstr(doc, "ssh_keys:\n  ed25519_private: |\n"
	    "    -----BEGIN OPENSSH PRIVATE KEY-----\n"));
	assert_non_null(strstr(doc, "    -----END OPENSSH PRIVATE KEY-----\n"
	    "  ed25519_public: ssh-ed25519 "));
	assert_non_null(strstr(doc, hostkey_public(hk)));
	userdata_free(doc);
	hostkey_free(hk);
}

static void
test_nothing_to_send(void **state)
{
	char	*doc = (char *)1, err[256];
	size_t	 len;

	(void)state;
	assert_int_equal(userdata_compose(NULL, 0, NULL, "B", &doc, &len, err,
	    sizeof(err)), 0);
	assert_null(doc);
}

static void
test_user_data_alone_goes_as_it_is(void **state)
{
	static const char user[] = "#!/bin/sh\necho hi\n";
	char	*doc, err[256];
	size_t	 len;

	(void)state;
	assert_int_equal(userdata_compose((const unsigned char *)user,
	    strlen(user), NULL, "B", &doc, &len, err, sizeof(err)), 0);
	assert_string_equal(doc, user);
	userdata_free(doc);
}

static void
test_both_make_a_multipart(void **state)
{
	static const char user[] = "#!/bin/sh\necho hi\n";
	struct hostkey	*hk = hostkey_from_seed(seed, "failoverd@web");
	char		*doc, *key, *mine, err[256];
	size_t		 len;

	(void)state;
	assert_int_equal(userdata_compose((const unsigned char *)user,
	    strlen(user), hk, "==b==", &doc, &len, err, sizeof(err)), 0);
	/* cloud-init looks for MIME-Version in the first 4096 bytes. */
	assert_true(strncmp(doc, "Content-Type: multipart/mixed; "
	    "boundary=\"==b==\"\nMIME-Version: 1.0\n\n--==b==\n", 60) == 0);
	key = strstr(doc, "Content-Type: text/cloud-config");
	mine = strstr(doc, "Content-Type: text/x-not-multipart");
	assert_non_null(key);
	assert_non_null(mine);
	/* failoverd's part last: cloud-init's dict(replace) keeps it. */
	assert_true(mine < key);
	/* base64 of "#!/bin/sh\necho hi\n" */
	assert_non_null(strstr(mine, "\n\nIyEvYmluL3NoCmVjaG8gaGkK\n"));
	assert_true(strcmp(doc + len - 10, "--==b==--\n") == 0);
	userdata_free(doc);
	hostkey_free(hk);
}

static void
test_boundary_in_user_data_refused(void **state)
{
	static const char user[] = "#!/bin/sh\necho ==b==\n";
	struct hostkey	*hk = hostkey_from_seed(seed, "x");
	char		*doc, err[256];
	size_t		 len;

	(void)state;
	assert_int_equal(userdata_compose((const unsigned char *)user,
	    strlen(user), hk, "==b==", &doc, &len, err, sizeof(err)), -1);
	assert_null(doc);
	hostkey_free(hk);
}

static void
test_over_16k_refused_naming_the_file(void **state)
{
	struct hostkey	*hk = hostkey_from_seed(seed, "x");
	char		 path[] = "/tmp/test_userdata.XXXXXX";
	char		*b64, err[512];
	char		 line[100];
	int		 fd, i;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	/* 16000 bytes: fits alone, not with the key part. */
	assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
	for (i = 0; i < 120; i++)
		assert_int_equal(write(fd, line, sizeof(line)), sizeof(line));
	close(fd);
	assert_int_equal(userdata_build(path, NULL, &b64, err, sizeof(err)),
	    0);
	assert_non_null(b64);
	userdata_free(b64);
	assert_int_equal(userdata_build(path, hk, &b64, err, sizeof(err)),
	    -1);
	assert_null(b64);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "16384"));
	unlink(path);
	hostkey_free(hk);
}

static void
test_same_inputs_same_user_data(void **state)
{
	struct hostkey	*hk = hostkey_from_seed(seed, "x");
	char		 path[] = "/tmp/test_userdata.XXXXXX";
	char		*a, *b, err[512];
	int		 fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	/* A resumed launch: same ClientToken, so the very same bytes. */
	assert_int_equal(userdata_build(path, hk, &a, err, sizeof(err)), 0);
	assert_int_equal(userdata_build(path, hk, &b, err, sizeof(err)), 0);
	assert_string_equal(a, b);
	userdata_free(a);
	userdata_free(b);
	unlink(path);
	hostkey_free(hk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_alone_is_a_cloud_config),
		cmocka_unit_test(test_nothing_to_send),
		cmocka_unit_test(test_user_data_alone_goes_as_it_is),
		cmocka_unit_test(test_both_make_a_multipart),
		cmocka_unit_test(test_boundary_in_user_data_refused),
		cmocka_unit_test(test_over_16k_refused_naming_the_file),
		cmocka_unit_test(test_same_inputs_same_user_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
