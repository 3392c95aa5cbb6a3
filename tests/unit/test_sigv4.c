/*
 * The AWS SigV4 suite (tests/data/sigv4/v4, from aws-c-auth), walked at
 * run time: every case folder becomes one test, so a case dropped into
 * the folder is tested without touching this file. For each case the
 * canonical request, string to sign, signature and Authorization header
 * must match the expected files byte for byte.
 *
 * The folder is argv[1], else $FOD_SRCDIR/tests/data/sigv4/v4.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "failoverd/sigv4.h"

#define MAXHDR	32

struct sigcase {
	char	 dir[1400];
	char	 name[256];
};

static char *
slurp(const char *dir, const char *file, size_t *lenp)
{
	char path[1600];
	FILE *f;
	char *buf;
	long len;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	if (lenp != NULL)
		*lenp = (size_t)len;
	return buf;
}

/*
 * context.json is a fixed, tiny document; the test only needs the value
 * after a given key (string, true/false). Keys are unique in it.
 */
static char *
json_value(const char *json, const char *key)
{
	char pat[128];
	const char *p, *e;
	char *v;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(json, pat);
	if (p == NULL)
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	if (*p == '"') {
		p++;
		e = strchr(p, '"');
	} else {
		e = p + strcspn(p, ",\n}");
	}
	assert_non_null(e);
	v = strndup(p, (size_t)(e - p));
	assert_non_null(v);
	return v;
}

static int
json_true(const char *json, const char *key)
{
	char *v = json_value(json, key);
	int t = v != NULL && strcmp(v, "true") == 0;

	free(v);
	return t;
}

static time_t
parse_iso8601(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return timegm(&tm);
}

/* Extracts "Name:value" from the signed request, or NULL. */
static char *
header_line(const char *req, const char *name)
{
	const char *p = req, *e;
	size_t n = strlen(name);

	while (p != NULL && *p != '\0') {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			e = strchr(p, '\n');
			return strndup(p + n + 1,
			    e ? (size_t)(e - p - n - 1) : strlen(p + n + 1));
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NULL;
}

static void
test_sigv4_case(void **state)
{
	const struct sigcase *c = *state;
	struct sigv4_header hdr[MAXHDR];
	char *names[MAXHDR], *values[MAXHDR];
	struct sigv4_input in;
	struct sigv4_result res;
	char *ctx, *req, *line, *next, *path, *query, *sp;
	char *ak, *sk, *tok, *region, *service, *ts;
	char *creq, *sts, *sig, *signedreq, *authz;
	const char *body = NULL;
	char err[256];
	size_t nh = 0, reqlen, i;

	ctx = slurp(c->dir, "context.json", NULL);
	req = slurp(c->dir, "request.txt", &reqlen);
	assert_non_null(ctx);
	assert_non_null(req);

	/* Request line: METHOD SP raw-target SP HTTP/1.1 */
	next = strchr(req, '\n');
	assert_non_null(next);
	*next++ = '\0';
	sp = strchr(req, ' ');
	assert_non_null(sp);
	*sp = '\0';
	path = sp + 1;
	sp = strrchr(path, ' ');
	assert_non_null(sp);
	*sp = '\0';
	query = strchr(path, '?');
	if (query != NULL)
		*query++ = '\0';

	/* Headers up to a blank line; indented lines continue a value. */
	for (line = next; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (*line == '\0') {
			body = next;
			break;
		}
		if (*line == ' ' || *line == '\t') {
			assert_true(nh > 0);
			sp = values[nh - 1];
			values[nh - 1] = malloc(strlen(sp) + strlen(line) + 2);
			assert_non_null(values[nh - 1]);
			sprintf(values[nh - 1], "%s %s", sp, line);
			free(sp);
			continue;
		}
		sp = strchr(line, ':');
		assert_non_null(sp);
		assert_true(nh < MAXHDR);
		names[nh] = strndup(line, (size_t)(sp - line));
		values[nh] = strdup(sp + 1);
		nh++;
	}
	for (i = 0; i < nh; i++) {
		hdr[i].name = names[i];
		hdr[i].value = values[i];
	}

	ak = json_value(ctx, "access_key_id");
	sk = json_value(ctx, "secret_access_key");
	tok = json_value(ctx, "token");
	region = json_value(ctx, "region");
	service = json_value(ctx, "service");
	ts = json_value(ctx, "timestamp");
	assert_non_null(ak);
	assert_non_null(sk);
	assert_non_null(region);
	assert_non_null(service);
	assert_non_null(ts);

	memset(&in, 0, sizeof(in));
	in.method = req;
	in.path = path;
	in.query = query;
	in.headers = hdr;
	in.nheaders = nh;
	in.payload = body;
	in.payload_len = body ? reqlen - (size_t)(body - req) : 0;
	in.region = region;
	in.service = service;
	in.when = parse_iso8601(ts);
	in.access_key_id = ak;
	in.secret_access_key = sk;
	in.session_token = tok;
	if (json_true(ctx, "normalize"))
		in.flags |= SIGV4_NORMALIZE_PATH;
	if (json_true(ctx, "sign_body"))
		in.flags |= SIGV4_SIGN_BODY;
	if (json_true(ctx, "omit_session_token"))
		in.flags |= SIGV4_OMIT_TOKEN;

	if (sigv4_sign(&in, &res, err, sizeof(err)) != 0)
		fail_msg("%s: %s", c->name, err);

	creq = slurp(c->dir, "header-canonical-request.txt", NULL);
	sts = slurp(c->dir, "header-string-to-sign.txt", NULL);
	sig = slurp(c->dir, "header-signature.txt", NULL);
	signedreq = slurp(c->dir, "header-signed-request.txt", NULL);
	assert_non_null(creq);
	assert_non_null(sts);
	assert_non_null(sig);
	assert_non_null(signedreq);
	authz = header_line(signedreq, "Authorization");
	assert_non_null(authz);

	assert_string_equal(res.canonical_request, creq);
	assert_string_equal(res.string_to_sign, sts);
	assert_string_equal(res.signature, sig);
	assert_string_equal(res.authorization, authz);
	assert_string_equal(res.amz_date, "20150830T123600Z");

	sigv4_result_free(&res);
	for (i = 0; i < nh; i++) {
		free(names[i]);
		free(values[i]);
	}
	free(ctx);
	free(req);
	free(ak);
	free(sk);
	free(tok);
	free(region);
	free(service);
	free(ts);
	free(creq);
	free(sts);
	free(sig);
	free(signedreq);
	free(authz);
}

/* A request without Host cannot be signed: Host is always signed. */
static void
test_sigv4_without_host_is_an_error(void **state)
{
	struct sigv4_input in;
	struct sigv4_result res;
	char err[256] = "";

	memset(&in, 0, sizeof(in));
	in.method = "POST";
	in.path = "/";
	in.region = "us-east-1";
	in.service = "ec2";
	in.access_key_id = "AKID";
	in.secret_access_key = "secret";
	assert_int_equal(sigv4_sign(&in, &res, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Host"));
	assert_null(res.authorization);
}

static int
case_cmp(const void *a, const void *b)
{
	const struct CMUnitTest *x = a, *y = b;

	return strcmp(x->name, y->name);
}

int
main(int argc, char **argv)
{
	char root[1024];
	const char *src;
	struct CMUnitTest *tests;
	struct sigcase *cases;
	struct dirent *de;
	size_t n = 0, cap = 256;
	char probe[1400];
	FILE *f;
	DIR *d;
	int rc;

	if (argc > 1) {
		snprintf(root, sizeof(root), "%s", argv[1]);
	} else {
		src = getenv("FOD_SRCDIR");
		snprintf(root, sizeof(root), "%s/tests/data/sigv4/v4",
		    src ? src : ".");
	}
	d = opendir(root);
	if (d == NULL) {
		fprintf(stderr, "test_sigv4: cannot open %s\n", root);
		return 1;
	}
	tests = calloc(cap + 1, sizeof(*tests));
	cases = calloc(cap, sizeof(*cases));
	if (tests == NULL || cases == NULL)
		return 1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(probe, sizeof(probe), "%s/%s/request.txt", root,
		    de->d_name);
		f = fopen(probe, "r");
		if (f == NULL)
			continue;
		fclose(f);
		if (n == cap) {
			/* Reallocating would move initial_state targets. */
			fprintf(stderr, "test_sigv4: more than %zu cases\n",
			    cap);
			return 1;
		}
		snprintf(cases[n].dir, sizeof(cases[n].dir), "%s/%s", root,
		    de->d_name);
		snprintf(cases[n].name, sizeof(cases[n].name), "%s",
		    de->d_name);
		tests[n].name = cases[n].name;
		tests[n].test_func = test_sigv4_case;
		tests[n].initial_state = &cases[n];
		n++;
	}
	closedir(d);
	if (n == 0) {
		fprintf(stderr, "test_sigv4: no cases in %s\n", root);
		return 1;
	}
	qsort(tests, n, sizeof(*tests), case_cmp);
	tests[n].name = "sigv4_without_host_is_an_error";
	tests[n].test_func = test_sigv4_without_host_is_an_error;
	n++;
	rc = _cmocka_run_group_tests("sigv4", tests, n, NULL, NULL);
	free(tests);
	free(cases);
	return rc;
}
