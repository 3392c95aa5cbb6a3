/*
 * The readers of credential replies (IMDS, container, credential_process
 * JSON through jansson; STS XML): the fields AWS sends come out right,
 * anything else is an error, never a crash.
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
#include <curl/curl.h>

#include "failoverd/creds.h"
#include "failoverd/sts.h"

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
		"{\"a\":\"b\"} trailing", "{\"a\":\"\\u0000\"}",
		"{\"a\":\"b\",\"a\":\"c\"}",
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

/* A credential_process's output, as the CLI documents Version 1. */
static void
test_process_output(void **state)
{
	static const char full[] = "{\"Version\": 1, \"AccessKeyId\": "
	    "\"ASIAPROC\", \"SecretAccessKey\": \"s3cr3t\", "
	    "\"SessionToken\": \"tok\", \"Expiration\": "
	    "\"2030-01-02T03:04:05Z\"}";
	static const char bare[] = "{\"Version\": 1, \"AccessKeyId\": "
	    "\"AKIAPROC\", \"SecretAccessKey\": \"s3cr3t\"}";
	static const char *const bad[] = {
		"", "not json", "{\"Version\": 2, \"AccessKeyId\": \"a\", "
		"\"SecretAccessKey\": \"b\"}",
		"{\"Version\": \"1\", \"AccessKeyId\": \"a\", "
		"\"SecretAccessKey\": \"b\"}",
		"{\"Version\": 1, \"AccessKeyId\": \"a\"}",
		"{\"Version\": 1, \"AccessKeyId\": \"a\", "
		"\"SecretAccessKey\": \"b\", \"Expiration\": \"tomorrow\"}",
		"{\"Version\": 1, \"AccessKeyId\": \"a\", "
		"\"SecretAccessKey\": 7}",
	};
	struct creds *c;
	char err[256];
	size_t i;

	c = creds_parse_json(CREDS_SRC_PROCESS, full, strlen(full), err,
	    sizeof(err));
	assert_non_null(c);
	assert_string_equal(creds_access_key_id(c), "ASIAPROC");
	assert_string_equal(creds_secret_access_key(c), "s3cr3t");
	assert_string_equal(creds_session_token(c), "tok");
	assert_int_equal(creds_expiration(c), 1893553445);
	creds_free(c);
	/* No Expiration: they never expire; no SessionToken: none sent. */
	c = creds_parse_json(CREDS_SRC_PROCESS, bare, strlen(bare), err,
	    sizeof(err));
	assert_non_null(c);
	assert_null(creds_session_token(c));
	assert_int_equal(creds_expiration(c), 0);
	creds_free(c);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_null(creds_parse_json(CREDS_SRC_PROCESS, bad[i],
		    strlen(bad[i]), err, sizeof(err)));
		assert_true(err[0] != '\0');
		/* The error never quotes the secret. */
		assert_null(strstr(err, "s3cr3t"));
	}
	/* The container's reply needs Token and Expiration. */
	assert_null(creds_parse_json(CREDS_SRC_CONTAINER, bare, strlen(bare),
	    err, sizeof(err)));
	c = creds_parse_json(CREDS_SRC_CONTAINER, imds_reply,
	    strlen(imds_reply), err, sizeof(err));
	assert_non_null(c);
	assert_string_equal(creds_session_token(c), "IQoJAb3");
	creds_free(c);
}

/* AWS_CONTAINER_CREDENTIALS_FULL_URI hosts, as botocore allows them. */
static void
test_container_full_uri_hosts(void **state)
{
	assert_true(creds_container_host_allowed("http://127.0.0.1:80/x"));
	assert_true(creds_container_host_allowed("http://127.9.8.7/x"));
	assert_true(creds_container_host_allowed("http://localhost:9/x"));
	assert_true(creds_container_host_allowed("http://[::1]:9/x"));
	assert_true(creds_container_host_allowed("http://169.254.170.2/v2"));
	assert_true(creds_container_host_allowed("http://169.254.170.23/v1"));
	assert_true(creds_container_host_allowed("http://[fd00:ec2::23]/v1"));
	assert_false(creds_container_host_allowed("http://169.254.169.254/"));
	assert_false(creds_container_host_allowed("http://10.0.0.1/creds"));
	assert_false(creds_container_host_allowed("https://evil.example/"));
	assert_false(creds_container_host_allowed("http://127.0.0.1.evil/"));
	assert_false(creds_container_host_allowed("not a url"));
}

/* STS replies, in the shapes of the STS API Reference's examples. */
static void
test_sts_reply(void **state)
{
	static const char ok[] =
	    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/"
	    "2011-06-15/\"><AssumeRoleResult><AssumedRoleUser><Arn>"
	    "arn:aws:sts::123456789012:assumed-role/demo/s</Arn>"
	    "<AssumedRoleId>ARO123EXAMPLE123:s</AssumedRoleId>"
	    "</AssumedRoleUser><Credentials><AccessKeyId>ASIASTS"
	    "</AccessKeyId><SecretAccessKey>sk</SecretAccessKey>"
	    "<SessionToken>tok</SessionToken><Expiration>"
	    "2030-01-02T03:04:05Z</Expiration></Credentials>"
	    "</AssumeRoleResult><ResponseMetadata><RequestId>r"
	    "</RequestId></ResponseMetadata></AssumeRoleResponse>";
	static const char denied[] =
	    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/"
	    "2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied"
	    "</Code><Message>not authorized to perform sts:AssumeRole"
	    "</Message></Error><RequestId>r</RequestId></ErrorResponse>";
	struct sts_creds sc;
	char err[256];
	size_t cut;

	assert_int_equal(sts_parse_reply(ok, strlen(ok), 200, &sc, err,
	    sizeof(err)), 0);
	assert_string_equal(sc.access_key_id, "ASIASTS");
	assert_string_equal(sc.secret_access_key, "sk");
	assert_string_equal(sc.session_token, "tok");
	assert_string_equal(sc.arn,
	    "arn:aws:sts::123456789012:assumed-role/demo/s");
	assert_int_equal(sc.expiration, 1893553445);
	sts_creds_clear(&sc);
	assert_int_equal(sts_parse_reply(denied, strlen(denied), 403, &sc,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "AccessDenied"));
	assert_non_null(strstr(err, "sts:AssumeRole"));
	for (cut = 0; cut < sizeof(ok) - 30; cut += 7)
		assert_int_equal(sts_parse_reply(ok, cut, 200, &sc, err,
		    sizeof(err)), -1);
}

static int
has_header(const struct curl_slist *h, const char *prefix)
{
	for (; h != NULL; h = h->next)
		if (strncmp(h->data, prefix, strlen(prefix)) == 0)
			return 1;
	return 0;
}

/* The requests: AssumeRole signed for sts, the web identity unsigned. */
static void
test_sts_requests(void **state)
{
	struct sts_params p = {
		.role_arn = "arn:aws:iam::123456789012:role/x",
		.session_name = "s", .external_id = "e&1", .duration = 900,
	};
	struct sts_signer sg = {
		.access_key_id = "AKIDEXAMPLE", .secret_access_key = "sk",
		.session_token = "tok", .region = "eu-west-1",
		.when = 1440938160,
	};
	struct curl_slist *h;
	char err[256], *body, url[128];

	assert_int_equal(sts_request("https://sts.eu-west-1.amazonaws.com",
	    &p, &sg, &body, &h, err, sizeof(err)), 0);
	assert_string_equal(body, "Action=AssumeRole&Version=2011-06-15&"
	    "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fx&"
	    "RoleSessionName=s&ExternalId=e%261&DurationSeconds=900");
	assert_true(has_header(h, "Host: sts.eu-west-1.amazonaws.com"));
	assert_true(has_header(h, "X-Amz-Security-Token: tok"));
	assert_true(has_header(h, "Authorization: AWS4-HMAC-SHA256 "
	    "Credential=AKIDEXAMPLE/20150830/eu-west-1/sts/aws4_request"));
	free(body);
	curl_slist_free_all(h);

	p.external_id = NULL;
	p.duration = 0;
	p.web_token = "eyJ.tok";
	assert_int_equal(sts_request("http://127.0.0.1:8080/", &p, NULL,
	    &body, &h, err, sizeof(err)), 0);
	assert_non_null(strstr(body, "Action=AssumeRoleWithWebIdentity&"));
	assert_non_null(strstr(body, "&WebIdentityToken=eyJ.tok"));
	assert_null(strstr(body, "DurationSeconds"));
	assert_true(has_header(h, "Host: 127.0.0.1:8080"));
	assert_false(has_header(h, "Authorization:"));
	free(body);
	curl_slist_free_all(h);

	assert_int_equal(sts_endpoint_for("cn-north-1", url, sizeof(url)), 0);
	assert_string_equal(url, "https://sts.cn-north-1.amazonaws.com.cn");
	assert_int_equal(sts_endpoint_for("us-east-1", url, sizeof(url)), 0);
	assert_string_equal(url, "https://sts.us-east-1.amazonaws.com");
	assert_int_equal(sts_endpoint_for("Bad/Region", url, sizeof(url)),
	    -1);
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
		cmocka_unit_test(test_process_output),
		cmocka_unit_test(test_container_full_uri_hosts),
		cmocka_unit_test(test_sts_reply),
		cmocka_unit_test(test_sts_requests),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
