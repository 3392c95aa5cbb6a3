/*
 * The flat JSON scanner that reads IMDS credential replies: the fields
 * AWS sends come out right, anything else is an error, never a crash.
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

#include "failoverd/creds.h"

static const char imds_reply[] =
"{\n"
"  \"Code\" : \"Success\",\n"
"  \"LastUpdated\" : \"2024-05-01T12:00:00Z\",\n"
"  \"Type\" : \"AWS-HMAC\",\n"
"  \"AccessKeyId\" : \"ASIAEXAMPLE\",\n"
"  \"SecretAccessKey\" : \"wJalr\\/K7MDENG+bPx\",\n"
"  \"Token\" : \"IQoJ\\u0041b3\",\n"
"  \"Expiration\" : \"2024-05-01T18:00:00Z\",\n"
"  \"Ttl\" : 21600, \"Ok\": true, \"Nothing\": null\n"
"}\n";

static char *
get(const char *json, const char *key, char *err)
{
	return creds_json_get(json, strlen(json), key, err, 128);
}

static void
test_imds_credentials_reply_fields(void **state)
{
	char err[128], *v;

	v = get(imds_reply, "AccessKeyId", err);
	assert_string_equal(v, "ASIAEXAMPLE");
	free(v);
	v = get(imds_reply, "SecretAccessKey", err);
	assert_string_equal(v, "wJalr/K7MDENG+bPx");
	free(v);
	v = get(imds_reply, "Token", err);
	assert_string_equal(v, "IQoJAb3");
	free(v);
	v = get(imds_reply, "Expiration", err);
	assert_string_equal(v, "2024-05-01T18:00:00Z");
	free(v);
}

static void
test_missing_or_non_string_field_is_an_error(void **state)
{
	char err[128];

	assert_null(get(imds_reply, "RoleArn", err));
	assert_non_null(strstr(err, "RoleArn"));
	assert_null(get(imds_reply, "Ttl", err));
	assert_non_null(strstr(err, "not a string"));
}

static void
test_malformed_json_is_an_error_never_a_crash(void **state)
{
	static const char *const bad[] = {
		"", "{", "[]", "{\"a\":\"b\"", "{\"a\" \"b\"}",
		"{\"a\":\"b\",}", "{\"a\":{\"b\":\"c\"}}", "{\"a\":\"\\x\"}",
		"{\"a\":\"b\"} trailing", "{\"a\":\"\\u00e9\"}",
		"{\"a\":\"line\nbreak\"}",
	};
	char err[128];
	size_t i, cut;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_null(get(bad[i], "a", err));
		assert_true(err[0] != '\0');
	}
	/* Every truncation of a real reply. */
	for (cut = 0; cut < sizeof(imds_reply) - 3; cut++)
		assert_null(creds_json_get(imds_reply, cut, "Expiration", err,
		    sizeof(err)));
}

static void
write_config(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* The shared config file's endpoint settings, per profile. */
static void
test_config_endpoint_flags(void **state)
{
	char path[] = "/tmp/test_creds.XXXXXX", err[512];
	int fd, fips, dual;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	write_config(path, "[default]\nregion = us-east-1\n"
	    "use_fips_endpoint = true\n\n[profile ops]\n"
	    "s3 =\n  max_concurrent_requests = 2\n"
	    "use_dualstack_endpoint = TRUE\nuse_fips_endpoint = false\n");
	setenv("AWS_CONFIG_FILE", path, 1);
	unsetenv("AWS_PROFILE");
	assert_int_equal(creds_config_endpoint_flags(NULL, &fips, &dual, err,
	    sizeof(err)), 0);
	assert_int_equal(fips, 1);
	assert_int_equal(dual, 0);
	assert_int_equal(creds_config_endpoint_flags("ops", &fips, &dual, err,
	    sizeof(err)), 0);
	assert_int_equal(fips, 0);
	assert_int_equal(dual, 1);
	assert_int_equal(creds_config_endpoint_flags("none", &fips, &dual,
	    err, sizeof(err)), 0);
	assert_int_equal(fips + dual, 0);
	write_config(path, "[default]\nuse_fips_endpoint = yes\n");
	assert_int_equal(creds_config_endpoint_flags(NULL, &fips, &dual, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "use_fips_endpoint"));
	assert_non_null(strstr(err, path));
	unlink(path);
	/* No file: nothing set, no error. */
	assert_int_equal(creds_config_endpoint_flags(NULL, &fips, &dual, err,
	    sizeof(err)), 0);
	assert_int_equal(fips + dual, 0);
	unsetenv("AWS_CONFIG_FILE");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_imds_credentials_reply_fields),
		cmocka_unit_test(test_missing_or_non_string_field_is_an_error),
		cmocka_unit_test(
		    test_malformed_json_is_an_error_never_a_crash),
		cmocka_unit_test(test_config_endpoint_flags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
