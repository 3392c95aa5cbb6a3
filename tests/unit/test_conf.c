/*
 * conf: what a person editing failoverd.conf relies on. Every class of
 * mistake is reported as "file:line: full.path: what is wrong", with the
 * file named as the person gave it; defaults are those documented; the
 * shipped example loads; a reload can tell changed services from the rest.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "failoverd/buf.h"
#include "failoverd/conf.h"
#include "failoverd/redact.h"

static char	 errbuf[16384];
static char	 tmpdir[] = "/tmp/test_conf.XXXXXX";

static const char *
srcdir(void)
{
	const char *d = getenv("FOD_SRCDIR");

	return d != NULL ? d : ".";
}

static const char *
fixture(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/tests/data/conf/%s", srcdir(), name);
	return path;
}

/* Writes text to a file in the test's directory; returns its path. */
static const char *
write_conf(const char *name, const char *text, mode_t mode)
{
	static char	 path[4096];
	FILE		*fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

/* Loading path fails with exactly one error line: "path:rest". */
static void
assert_one_error(const char *path, const char *rest)
{
	struct config	*conf;
	char		 want[4096];

	conf = conf_load(path, errbuf, sizeof(errbuf));
	assert_null(conf);
	snprintf(want, sizeof(want), "%s:%s\n", path, rest);
	assert_string_equal(errbuf, want);
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return n;
}

static struct config *
load_ok(const char *path)
{
	struct config *conf = conf_load(path, errbuf, sizeof(errbuf));

	if (conf == NULL)
		fail_msg("%s did not load:\n%s", path, errbuf);
	assert_string_equal(errbuf, "");
	return conf;
}

/* A service with a bit of everything, for the equality tests. */
static const char rich_conf[] =
"services = (\n"
"  {\n"
"    name = \"web\";\n"
"    eip_allocation_id = \"eipalloc-0123456789abcdef0\";\n"
"    volumes = (\n"
"      { id = \"vol-0123456789abcdef0\"; device = \"/dev/sdf\"; },\n"
"      { id = \"vol-0123456789abcdef1\"; device = \"/dev/sdg\"; } );\n"
"    launch = {\n"
"      ami = \"ami-0123456789abcdef0\";\n"
"      instance_type = \"t3.micro\";\n"
"      subnet = \"subnet-0123456789abcdef0\";\n"
"      security_groups = [ \"sg-0123456789abcdef0\" ];\n"
"      tags = { Name = \"web\"; team = \"ops\"; };\n"
"    };\n"
"    probes = (\n"
"      { name = \"site\"; type = \"http\"; path = \"/health\";\n"
"        expect_status = \"200,204\"; headers = [ \"X-A: 1\" ]; },\n"
"      { name = \"shell\"; type = \"ssh\"; user = \"ec2-user\";\n"
"        interval = 10; timeout = 4.5; }\n"
"    );\n"
"    policy = { failover_when = [ \"site\" ]; cooldown = 600;\n"
"      fence = \"skip_os_shutdown\"; };\n"
"    snapshot = { interval = 3600; window = \"02:00-04:00\"; };\n"
"  },\n"
"  {\n"
"    name = \"db\";\n"
"    eip_allocation_id = \"eipalloc-0123456789abcdef1\";\n"
"    launch = { ami = \"ami-0123456789abcdef0\"; "
"instance_type = \"t3.micro\"; };\n"
"    probes = ( { type = \"ssh\"; } );\n"
"  }\n"
");\n";

static void
test_syntax_error_names_file_and_line(void **state)
{
	assert_one_error(fixture("syntax.conf"), "3: syntax error");
}

static void
test_unreadable_file_names_it(void **state)
{
	assert_null(conf_load("/nonexistent/failoverd.conf", errbuf,
	    sizeof(errbuf)));
	assert_string_equal(errbuf, "/nonexistent/failoverd.conf: "
	    "No such file or directory\n");
}

static void
test_unknown_top_level_setting(void **state)
{
	assert_one_error(fixture("unknown-top.conf"),
	    "2: stat_dir: unknown setting");
}

static void
test_unknown_service_setting(void **state)
{
	assert_one_error(fixture("unknown-service.conf"),
	    "6: services.[0].eip_alocation: unknown setting");
}

static void
test_unknown_probe_setting(void **state)
{
	assert_one_error(fixture("unknown-probe.conf"),
	    "13: services.[0].probes.[1].intervall: unknown setting");
}

static void
test_http_setting_in_ssh_probe_rejected(void **state)
{
	assert_one_error(fixture("probe-wrong-type-setting.conf"),
	    "13: services.[0].probes.[1].path: is a setting of http probes "
	    "only");
}

static void
test_wrong_type(void **state)
{
	assert_one_error(fixture("wrong-type.conf"),
	    "12: services.[0].probes.[1].fall: must be an integer");
}

static void
test_out_of_range(void **state)
{
	assert_one_error(fixture("out-of-range.conf"),
	    "13: services.[0].probes.[1].port: must be at most 65535 "
	    "(got 70000)");
}

static void
test_timeout_must_be_less_than_interval(void **state)
{
	assert_one_error(fixture("timeout-interval.conf"),
	    "13: services.[0].probes.[1].timeout: must be less than "
	    "interval (5.0)");
}

static void
test_missing_required_setting(void **state)
{
	assert_one_error(fixture("missing-required.conf"),
	    "3: services.[0].eip_allocation_id: missing (required)");
}

static void
test_duplicate_probe_names(void **state)
{
	assert_one_error(fixture("duplicate-probe.conf"),
	    "12: services.[0].probes.[1].name: \"site\" is already the name "
	    "of probes.[0]");
}

static void
test_duplicate_service_names(void **state)
{
	assert_one_error(fixture("duplicate-service.conf"),
	    "10: services.[1].name: \"web\" is already the name of "
	    "services.[0]");
}

static void
test_bad_id_shape(void **state)
{
	assert_one_error(fixture("bad-id.conf"),
	    "6: services.[0].volumes.[0].id: \"vol-xyz\" is not a volume id "
	    "(vol- followed by 8 or 17 hex digits)");
}

static void
test_bad_expect_status(void **state)
{
	assert_one_error(fixture("bad-expect-status.conf"),
	    "13: services.[0].probes.[1].expect_status: \"200-3xx\" is not "
	    "a list of status codes and ranges (such as \"200-399\" or "
	    "\"200,204,301-302\")");
}

static void
test_bad_regex(void **state)
{
	const char	*path = fixture("bad-regex.conf");
	char		 want[8192];

	assert_null(conf_load(path, errbuf, sizeof(errbuf)));
	/* regerror's wording is the C library's; the place is ours. */
	assert_true(strlen(path) < 4096);
	snprintf(want, sizeof(want), "%.4096s:13: services.[0].probes.[1]."
	    "expect_body_regex: does not compile: ", path);
	assert_int_equal(strncmp(errbuf, want, strlen(want)), 0);
	assert_int_equal(count_lines(errbuf), 1);
}

static void
test_failover_when_names_missing_probe(void **state)
{
	assert_one_error(fixture("failover-when-missing.conf"),
	    "6: services.[0].policy.failover_when: \"shel\" is not the name "
	    "of a probe of this service");
}

static void
test_bad_syslog_facility(void **state)
{
	assert_one_error(fixture("bad-facility.conf"),
	    "2: syslog_facility: \"local9\" is not a syslog facility "
	    "(daemon, user, local0..local7, auth, authpriv)");
}

static void
test_missing_key_file_is_named(void **state)
{
	assert_one_error(fixture("missing-file.conf"),
	    "13: services.[0].probes.[1].key_file: "
	    "/nonexistent/failoverd-test/id_ed25519: No such file or "
	    "directory");
}

static void
test_key_file_readable_by_others_refused(void **state)
{
	char		 key[256], text[4096];
	const char	*path;
	FILE		*fp;

	snprintf(key, sizeof(key), "%.200s/id_ed25519", tmpdir);
	fp = fopen(key, "w");
	assert_non_null(fp);
	fputs("not really a key\n", fp);
	fclose(fp);
	assert_int_equal(chmod(key, 0644), 0);
	snprintf(text, sizeof(text),
	    "services = ( { name = \"web\";\n"
	    "  eip_allocation_id = \"eipalloc-0123456789abcdef0\";\n"
	    "  launch = { ami = \"ami-01234567\"; instance_type = \"t3.micro\";"
	    " };\n"
	    "  probes = ( { type = \"ssh\"; user = \"u\";\n"
	    "    key_file = \"%s\"; } ); } );\n", key);
	path = write_conf("key.conf", text, 0644);
	{
		char rest[1024];

		snprintf(rest, sizeof(rest), "5: services.[0].probes.[0]."
		    "key_file: %s: mode 0644 lets others read it; chmod o-rwx",
		    key);
		assert_one_error(path, rest);
	}
	/* The same key kept private is fine. */
	assert_int_equal(chmod(key, 0600), 0);
	conf_free(load_ok(path));
	unlink(key);
}

static void
test_config_writable_by_others_refused(void **state)
{
	const char	*path;
	char		 want[4096];
	FILE		*fp;
	char		 text[8192];
	size_t		 n;

	fp = fopen(fixture("minimal.conf"), "r");
	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	path = write_conf("open.conf", text, 0666);
	assert_null(conf_load(path, errbuf, sizeof(errbuf)));
	snprintf(want, sizeof(want), "%s: mode 0666 lets others write it; "
	    "chmod o-w\n", path);
	assert_string_equal(errbuf, want);
}

/* libconfig reads 0660 as the decimal 660: never accept that silently. */
static void
test_control_mode_as_bare_number_rejected(void **state)
{
	const char *path = write_conf("mode.conf",
	    "control_mode = 0660;\n"
	    "services = ( { name = \"web\";\n"
	    "  eip_allocation_id = \"eipalloc-0123456789abcdef0\";\n"
	    "  launch = { ami = \"ami-01234567\"; instance_type = \"t3.micro\";"
	    " };\n"
	    "  probes = ( { type = \"http\"; } ); } );\n", 0644);

	assert_one_error(path, "1: control_mode: must be a string of octal "
	    "digits such as \"0660\" (libconfig reads 0660 as decimal 660)");
}

static void
test_every_error_is_reported(void **state)
{
	const char *path = write_conf("many.conf",
	    "syslog_facility = \"nope\";\n"
	    "services = ( { name = \"web\";\n"
	    "  eip_allocation_id = \"eipalloc-0123456789abcdef0\";\n"
	    "  launch = { ami = \"ami-01234567\"; instance_type = \"t3\"; };\n"
	    "  probes = ( { type = \"http\"; fall = 0; } ); } );\n", 0644);
	char want[4096];

	assert_null(conf_load(path, errbuf, sizeof(errbuf)));
	snprintf(want, sizeof(want),
	    "%s:1: syslog_facility: \"nope\" is not a syslog facility "
	    "(daemon, user, local0..local7, auth, authpriv)\n"
	    "%s:4: services.[0].launch.instance_type: \"t3\" is not an "
	    "instance type (such as t3.micro)\n"
	    "%s:5: services.[0].probes.[0].fall: must be at least 1 "
	    "(got 0)\n",
	    path, path, path);
	assert_string_equal(errbuf, want);
}

static void
test_errors_are_capped(void **state)
{
	char		 text[8192], want[4096];
	size_t		 used = 0;
	int		 i;
	const char	*path;

	for (i = 0; i < 60; i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used,
		    "typo%d = 1;\n", i);
	path = write_conf("typos.conf", text, 0644);
	assert_null(conf_load(path, errbuf, sizeof(errbuf)));
	/* 50 shown, then a count of the rest (services is missing too). */
	assert_int_equal(count_lines(errbuf), 51);
	snprintf(want, sizeof(want), "%s: 11 more errors not shown\n", path);
	assert_non_null(strstr(errbuf, want));
}

static void
test_small_error_buffer_is_terminated(void **state)
{
	char small[40];

	memset(small, 'x', sizeof(small));
	assert_null(conf_load(fixture("bad-facility.conf"), small,
	    sizeof(small)));
	assert_true(memchr(small, '\0', sizeof(small)) != NULL);
}

/* An error in an @include'd file names that file, not the main one. */
static void
test_error_in_included_file_names_it(void **state)
{
	const char	*path;
	char		 inc[4096], want[8192];

	path = write_conf("svc.inc",
	    "launch = { ami = \"ami-01234567\"; instance_type = \"t3.micro\";"
	    " };\n"
	    "probes = ( { type = \"http\"; bogus = 1; } );\n", 0644);
	snprintf(inc, sizeof(inc), "%s", path);
	path = write_conf("main.conf",
	    "services = ( { name = \"web\";\n"
	    "  eip_allocation_id = \"eipalloc-0123456789abcdef0\";\n"
	    "@include \"svc.inc\"\n"
	    "} );\n", 0644);
	assert_null(conf_load(path, errbuf, sizeof(errbuf)));
	snprintf(want, sizeof(want), "%s:2: services.[0].probes.[0].bogus: "
	    "unknown setting\n", inc);
	assert_string_equal(errbuf, want);
}

static void
test_defaults_filled(void **state)
{
	struct config			*c = load_ok(fixture("minimal.conf"));
	const struct service_conf	*s;
	const struct probe_conf		*h, *ssh;

	assert_string_equal(c->path, fixture("minimal.conf"));
	assert_string_equal(c->state_dir, "/var/lib/failoverd");
	assert_string_equal(c->control_socket, "/run/failoverd/control.sock");
	assert_null(c->control_group);
	assert_int_equal(c->control_mode, 0660);
	assert_int_equal(c->syslog_facility, LOG_DAEMON);
	assert_false(c->debug);
	assert_true(c->watchdog_interval == 0);
	assert_null(c->aws.region);
	assert_null(c->aws.endpoint);
	assert_null(c->aws.profile);
	assert_true(c->aws.calls_per_second == 5);
	assert_int_equal(c->aws.burst, 10);
	assert_true(c->aws.call_timeout == 30);
	assert_true(c->alerts.rate_limit == 60);
	assert_null(c->alerts.exec);
	assert_null(c->alerts.webhook);
	assert_string_equal(c->alerts.min_severity, "warning");

	assert_int_equal(c->nservices, 1);
	s = &c->services[0];
	assert_string_equal(s->name, "web");
	assert_int_equal(s->nvolumes, 0);
	assert_null(s->launch.subnet);
	assert_int_equal(s->launch.ntags, 0);
	assert_int_equal(s->nprobes, 2);

	h = &s->probes[0];
	assert_int_equal(h->type, PROBE_HTTP);
	assert_null(h->address);
	assert_true(h->interval == 5);
	assert_true(h->timeout == 2);
	assert_int_equal(h->fall, 3);
	assert_int_equal(h->rise, 2);
	assert_string_equal(h->http.method, "GET");
	assert_string_equal(h->http.scheme, "http");
	assert_int_equal(h->http.port, 0);
	assert_string_equal(h->http.path, "/health");
	assert_int_equal(h->http.nexpect_status, 1);
	assert_int_equal(h->http.expect_status[0].lo, 200);
	assert_int_equal(h->http.expect_status[0].hi, 399);
	assert_true(h->http.tls_verify);
	assert_false(h->http.reuse_connection);
	assert_true(h->http.connect_timeout == h->timeout);

	ssh = &s->probes[1];
	assert_int_equal(ssh->type, PROBE_SSH);
	assert_int_equal(ssh->ssh.port, 22);
	assert_string_equal(ssh->ssh.user, "ec2-user");
	assert_null(ssh->ssh.key_file);
	assert_null(ssh->ssh.command);

	assert_true(s->policy.auto_failover);
	assert_int_equal(s->policy.when, POLICY_WHEN_ALL);
	assert_false(s->policy.failover_on_degraded);
	assert_true(s->policy.corroborate);
	assert_true(s->policy.cooldown == 900);
	assert_int_equal(s->policy.max_failovers, 3);
	assert_true(s->policy.window == 86400);
	assert_int_equal(s->policy.old_instance, POLICY_OLD_STOP);
	assert_true(s->policy.restart_in_place);
	assert_int_equal(s->policy.fence, POLICY_FENCE_GRACEFUL);
	assert_true(s->policy.fence_timeout == 300);
	assert_true(s->policy.launch_timeout == 300);
	assert_true(s->policy.detach_timeout == 60);
	assert_true(s->policy.attach_timeout == 60);
	assert_true(s->policy.associate_timeout == 30);
	assert_true(s->policy.verify_timeout == 120);
	assert_false(s->policy.evacuate);

	assert_true(s->snapshot.interval == 0);
	assert_int_equal(s->snapshot.window_start, -1);
	assert_int_equal(s->snapshot.keep, 7);
	conf_free(c);
}

static void
test_probe_name_defaults_to_type(void **state)
{
	struct config *c = load_ok(write_conf("names.conf",
	    "services = ( { name = \"web\";\n"
	    "  eip_allocation_id = \"eipalloc-0123456789abcdef0\";\n"
	    "  launch = { ami = \"ami-01234567\"; instance_type = \"t3.micro\";"
	    " };\n"
	    "  probes = ( { type = \"http\"; }, { type = \"ssh\"; } ); } );\n",
	    0644));

	assert_string_equal(c->services[0].probes[0].name, "http");
	assert_string_equal(c->services[0].probes[1].name, "ssh");
	conf_free(c);
}

static void
test_rich_settings_parsed(void **state)
{
	struct config			*c;
	const struct service_conf	*s;
	const struct probe_conf		*p;

	c = load_ok(write_conf("rich.conf", rich_conf, 0644));
	s = conf_find_service(c, "web");
	assert_non_null(s);
	assert_ptr_equal(conf_find_service(c, "db"), &c->services[1]);
	assert_null(conf_find_service(c, "nope"));
	assert_int_equal(s->nvolumes, 2);
	assert_string_equal(s->volumes[1].device, "/dev/sdg");
	assert_int_equal(s->launch.nsecurity_groups, 1);
	assert_int_equal(s->launch.ntags, 2);
	assert_string_equal(s->launch.tags[0].key, "Name");
	assert_string_equal(s->launch.tags[0].value, "web");
	assert_string_equal(s->launch.tags[1].key, "team");
	p = &s->probes[0];
	assert_int_equal(p->http.nexpect_status, 2);
	assert_int_equal(p->http.expect_status[1].lo, 204);
	assert_int_equal(p->http.expect_status[1].hi, 204);
	assert_int_equal(p->http.nheaders, 1);
	assert_string_equal(p->http.headers[0], "X-A: 1");
	assert_true(s->probes[1].timeout == 4.5);
	assert_true(s->probes[1].interval == 10);
	assert_int_equal(s->policy.when, POLICY_WHEN_LIST);
	assert_int_equal(s->policy.nfailover_probes, 1);
	assert_string_equal(s->policy.failover_probes[0], "site");
	assert_int_equal(s->policy.fence, POLICY_FENCE_SKIP_OS);
	assert_int_equal(s->snapshot.window_start, 120);
	assert_int_equal(s->snapshot.window_end, 240);
	assert_string_equal(probe_type_str(PROBE_HTTP), "http");
	assert_string_equal(probe_type_str(PROBE_SSH), "ssh");
	conf_free(c);
}

static void
test_example_config_loads(void **state)
{
	char		 path[4096];
	struct config	*c;
	FILE		*fp;
	char		*out = NULL;
	size_t		 outlen = 0;

	snprintf(path, sizeof(path), "%s/conf/failoverd.conf", srcdir());
	c = load_ok(path);
	assert_true(c->nservices >= 1);
	fp = open_memstream(&out, &outlen);
	assert_non_null(fp);
	conf_print_summary(c, fp);
	fclose(fp);
	assert_non_null(strstr(out, c->services[0].name));
	assert_non_null(strstr(out, c->services[0].eip_allocation_id));
	free(out);
	conf_free(c);
}

static void
test_service_equal_when_identical(void **state)
{
	struct config	*a, *b;
	size_t		 i, j;

	a = load_ok(write_conf("a.conf", rich_conf, 0644));
	b = load_ok(write_conf("b.conf", rich_conf, 0644));
	for (i = 0; i < a->nservices; i++) {
		assert_true(conf_service_equal(&a->services[i],
		    &b->services[i]));
		for (j = 0; j < a->services[i].nprobes; j++)
			assert_true(conf_probe_equal(&a->services[i].probes[j],
			    &b->services[i].probes[j]));
	}
	assert_false(conf_service_equal(&a->services[0], &b->services[1]));
	conf_free(a);
	conf_free(b);
}

/* A reload after only adding comments keeps every service as it was. */
static void
test_service_equal_ignores_line_moves(void **state)
{
	struct config	*a, *b;
	char		 text[8192];

	snprintf(text, sizeof(text), "# a comment\n\n# another\n%s",
	    rich_conf);
	a = load_ok(write_conf("a.conf", rich_conf, 0644));
	b = load_ok(write_conf("b.conf", text, 0644));
	assert_true(conf_service_equal(&a->services[0], &b->services[0]));
	assert_true(conf_probe_equal(&a->services[0].probes[1],
	    &b->services[0].probes[1]));
	conf_free(a);
	conf_free(b);
}

static char *
replace_once(const char *text, const char *from, const char *to)
{
	const char	*at = strstr(text, from);
	char		*out;
	size_t		 n;

	assert_non_null(at);
	n = strlen(text) - strlen(from) + strlen(to) + 1;
	out = malloc(n);
	assert_non_null(out);
	snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to,
	    at + strlen(from));
	return out;
}

static void
test_service_unequal_when_one_field_changes(void **state)
{
	static const char *const edits[][2] = {
		{ "eip_allocation_id = \"eipalloc-0123456789abcdef0\"",
		  "eip_allocation_id = \"eipalloc-0123456789abcdef2\"" },
		{ "device = \"/dev/sdg\"", "device = \"/dev/sdh\"" },
		{ "instance_type = \"t3.micro\"", "instance_type = \"t3.small\"" },
		{ "team = \"ops\"", "team = \"dev\"" },
		{ "[ \"sg-0123456789abcdef0\" ]",
		  "[ \"sg-0123456789abcdef0\", \"sg-01234567\" ]" },
		{ "expect_status = \"200,204\"", "expect_status = \"200,205\"" },
		{ "\"X-A: 1\"", "\"X-A: 2\"" },
		{ "timeout = 4.5", "timeout = 4.0" },
		{ "user = \"ec2-user\";", "user = \"ec2-user\"; port = 2222;" },
		{ "[ \"site\" ]", "[ \"site\", \"shell\" ]" },
		{ "cooldown = 600", "cooldown = 601" },
		{ "window = \"02:00-04:00\"", "window = \"02:00-04:30\"" },
	};
	struct config	*a, *b;
	char		*text;
	size_t		 i;

	a = load_ok(write_conf("a.conf", rich_conf, 0644));
	for (i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		text = replace_once(rich_conf, edits[i][0], edits[i][1]);
		b = load_ok(write_conf("b.conf", text, 0644));
		if (conf_service_equal(&a->services[0], &b->services[0]))
			fail_msg("still equal after %s -> %s", edits[i][0],
			    edits[i][1]);
		/* The other service is untouched. */
		assert_true(conf_service_equal(&a->services[1],
		    &b->services[1]));
		free(text);
		conf_free(b);
	}
	text = replace_once(rich_conf, "interval = 10", "interval = 11");
	b = load_ok(write_conf("b.conf", text, 0644));
	assert_false(conf_probe_equal(&a->services[0].probes[1],
	    &b->services[0].probes[1]));
	assert_true(conf_probe_equal(&a->services[0].probes[0],
	    &b->services[0].probes[0]));
	free(text);
	conf_free(b);
	conf_free(a);
}

/* Replaces every occurrence of from in s (in place, s of size len). */
static void
replace_all(char *s, size_t len, const char *from, const char *to)
{
	char	*out, *p, *q;
	size_t	 flen = strlen(from), off = 0;

	out = calloc(1, len);
	assert_non_null(out);
	for (p = s; (q = strstr(p, from)) != NULL; p = q + flen) {
		buf_fmt_at(out, len, &off, "%.*s%s", (int)(q - p), p, to);
	}
	buf_fmt_at(out, len, &off, "%s", p);
	memcpy(s, out, len);
	free(out);
}

/*
 * The corpus of bad configurations: every tests/data/conf/bad/NAME.conf
 * is refused with exactly the message in NAME.err, where FILE stands for
 * the file's path and DIR for its directory.
 */
static void
test_bad_corpus(void **state)
{
	char		 dir[4096], path[8192], errpath[8192], want[16384];
	struct dirent	*de;
	DIR		*dp;
	FILE		*fp;
	size_t		 n, len, count = 0;

	snprintf(dir, sizeof(dir), "%s/tests/data/conf/bad", srcdir());
	dp = opendir(dir);
	assert_non_null(dp);
	while ((de = readdir(dp)) != NULL) {
		len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		snprintf(errpath, sizeof(errpath), "%s/%.*s.err", dir,
		    (int)(len - 5), de->d_name);
		fp = fopen(errpath, "r");
		if (fp == NULL)
			fail_msg("%s has no %s", path, errpath);
		n = fread(want, 1, sizeof(want) - 1, fp);
		want[n] = '\0';
		fclose(fp);
		if (conf_load(path, errbuf, sizeof(errbuf)) != NULL)
			fail_msg("%s loaded", path);
		replace_all(errbuf, sizeof(errbuf), path, "FILE");
		replace_all(errbuf, sizeof(errbuf), dir, "DIR");
		if (strcmp(errbuf, want) != 0)
			fail_msg("%s:\n got: %s want: %s", de->d_name, errbuf,
			    want);
		count++;
	}
	closedir(dp);
	assert_true(count >= 20);
}

static const char one_service[] =
"services = ( { name = \"web\";\n"
"  eip_allocation_id = \"eipalloc-0123456789abcdef0\";\n"
"  launch = { ami = \"ami-0123456789abcdef0\"; instance_type = \"t3.micro\";"
" %s };\n"
"  probes = ( { type = \"http\"; address = \"127.0.0.1\"; } ); } );\n";

/* user_data_file: 16384 bytes (the raw form EC2 limits) pass, one more
 * does not. */
static void
test_user_data_limit(void **state)
{
	char		 ud[4096], extra[8192], text[16384], want[8192];
	const char	*path;
	FILE		*fp;
	int		 size;

	for (size = 16384; size <= 16385; size++) {
		snprintf(ud, sizeof(ud), "%s/ud-%d", tmpdir, size);
		fp = fopen(ud, "w");
		assert_non_null(fp);
		assert_int_equal(fseek(fp, size - 1, SEEK_SET), 0);
		fputc('x', fp);
		fclose(fp);
		assert_int_equal(chmod(ud, 0644), 0);
		snprintf(extra, sizeof(extra), "user_data_file = \"%s\";", ud);
		snprintf(text, sizeof(text), one_service, extra);
		path = write_conf("ud.conf", text, 0644);
		if (size == 16384) {
			conf_free(load_ok(path));
			continue;
		}
		assert_null(conf_load(path, errbuf, sizeof(errbuf)));
		snprintf(want, sizeof(want), "%s:3: services.[0].launch."
		    "user_data_file: %s is 16385 bytes; EC2 takes at most "
		    "16384 bytes of user data (before base64)\n", path, ud);
		assert_string_equal(errbuf, want);
	}
}

/* An absolute @include is opened as written, and an error in it names
 * it (libconfig 1.5 alone opened "<dir>//abs/path"). */
static void
test_absolute_include(void **state)
{
	char		 inc[4096], text[8192], want[8192];
	const char	*path;

	path = write_conf("abs.inc", "debug = 7;\n", 0644);
	snprintf(inc, sizeof(inc), "%s", path);
	snprintf(text, sizeof(text), "@include \"%s\"\n", inc);
	strncat(text, one_service, sizeof(text) - strlen(text) - 1);
	/* one_service's %s: nothing extra in launch. */
	replace_all(text, sizeof(text), "%s", "");
	path = write_conf("abs.conf", text, 0644);
	assert_null(conf_load(path, errbuf, sizeof(errbuf)));
	snprintf(want, sizeof(want), "%s:1: debug: must be true or false\n",
	    inc);
	assert_string_equal(errbuf, want);
}

/* Includes nest at most 10 deep (libconfig's own limit), and a file that
 * includes itself is that case, not a hang. */
static void
test_include_loop_refused(void **state)
{
	const char *path;

	path = write_conf("loop.conf", "@include \"loop.conf\"\n", 0644);
	assert_null(conf_load(path, errbuf, sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "included files nest deeper than 10"));
}

/* A FIFO at the config path is refused at once, never waited on. */
static void
test_fifo_refused(void **state)
{
	char path[4096], want[8192];

	snprintf(path, sizeof(path), "%s/fifo.conf", tmpdir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_null(conf_load(path, errbuf, sizeof(errbuf)));
	snprintf(want, sizeof(want), "%s: a FIFO, not a regular file\n",
	    path);
	assert_string_equal(errbuf, want);
	unlink(path);
}

/* A file over the size bound is refused before libconfig parses it. */
static void
test_huge_file_refused(void **state)
{
	char		*text;
	const char	*path;
	size_t		 n = 16 * 1024 * 1024 + 1;

	text = malloc(n + 1);
	assert_non_null(text);
	memset(text, '#', n);
	text[n] = '\0';
	path = write_conf("huge.conf", text, 0644);
	free(text);
	assert_null(conf_load(path, errbuf, sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "is larger than 16777216 bytes"));
}

/* One group of many settings costs libconfig n * n: refused unparsed. */
static void
test_many_settings_refused(void **state)
{
	struct buf	 b;
	const char	*path;
	int		 i;

	buf_init(&b);
	for (i = 0; i < 300; i++)
		buf_printf(&b, "a%d=1;", i);
	path = write_conf("many-settings.conf", buf_str(&b), 0644);
	buf_free(&b);
	assert_null(conf_load(path, errbuf, sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "a group of more than 256 settings"));
}

static void
test_switch_ami_validated(void **state)
{
	char	 why[256], *longami;

	assert_int_equal(conf_valid_ami("ami-0123456789abcdef0", why,
	    sizeof(why)), 0);
	assert_int_equal(conf_valid_ami("ami-01234567", why, sizeof(why)),
	    0);
	assert_int_equal(conf_valid_ami("ami-0123456789ABCDEF0", why,
	    sizeof(why)), -1);
	assert_int_equal(conf_valid_ami("ami-", why, sizeof(why)), -1);
	longami = malloc(3105);
	assert_non_null(longami);
	memcpy(longami, "ami-", 4);
	memset(longami + 4, 'a', 3100);
	longami[3104] = '\0';
	assert_int_equal(conf_valid_ami(longami, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "(3104 characters) is not an AMI id"));
	free(longami);
}

static void
test_redact_url(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/"
		  "aBcDeFgHiJkLmNoPqRsTuVwX",
		  "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/***" },
		{ "https://discord.com/api/webhooks/123456789012345678/"
		  "Ab1_cD2-eF3gH4iJ5kL6mN7oP8qR9sT0uV1wX2yZ3aB4cD5eF6gH7iJ8kL9"
		  "mN0oP1qR2",
		  "https://discord.com/api/webhooks/***/***" },
		{ "http://127.0.0.1/very-long-health-check-path",
		  "http://127.0.0.1/very-long-health-check-path" },
		{ "https://alerts.example.com/hook?token=s3cr3t&team=ops",
		  "https://alerts.example.com/hook?token=***&team=***" },
		{ "http://admin:pa@ss@10.0.0.1:8080/health",
		  "http://***@10.0.0.1:8080/health" },
		{ "https://user@ec2.example.com",
		  "https://***@ec2.example.com" },
		{ "http://127.0.0.1/health#frag",
		  "http://127.0.0.1/health#***" },
		{ "http://127.0.0.1/api/v1/status",
		  "http://127.0.0.1/api/v1/status" },
		{ "no scheme at all", "***" },
	};
	char	 out[256], small[16];
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(redact_url(cases[i].in, out, sizeof(out)),
		    cases[i].out);
	/* Truncated, never unterminated, never past the buffer. */
	redact_url(cases[0].in, small, sizeof(small));
	assert_string_equal(small, "https://hooks.s");
}

/* The clamp every appending snprintf goes through. */
static void
test_fmt_at_clamps(void **state)
{
	char	 b[8];
	size_t	 off = 0;

	buf_fmt_at(b, sizeof(b), &off, "%s", "abcdefghijkl");
	assert_int_equal(off, 7);
	assert_string_equal(b, "abcdefg");
	buf_fmt_at(b, sizeof(b), &off, "%s", "more");
	assert_int_equal(off, 7);
	assert_string_equal(b, "abcdefg");
}

/* -t and start make the same machine checks. */
static void
test_check_start(void **state)
{
	char		 text[8192], extra[8192], err[1024], file[4096];
	struct config	*c;
	FILE		*fp;

	snprintf(extra, sizeof(extra), "state_dir = \"%s/nope\";\n", tmpdir);
	snprintf(text, sizeof(text), "%s", extra);
	strncat(text, one_service, sizeof(text) - strlen(text) - 1);
	replace_all(text, sizeof(text), "%s", "");
	c = load_ok(write_conf("start.conf", text, 0644));
	assert_int_equal(conf_check_start(c, err, sizeof(err)), -1);
	snprintf(extra, sizeof(extra), "state_dir %s/nope: No such file or "
	    "directory", tmpdir);
	assert_string_equal(err, extra);
	conf_free(c);

	snprintf(file, sizeof(file), "%s/afile", tmpdir);
	fp = fopen(file, "w");
	assert_non_null(fp);
	fclose(fp);
	snprintf(text, sizeof(text), "state_dir = \"%s\";\n", file);
	strncat(text, one_service, sizeof(text) - strlen(text) - 1);
	replace_all(text, sizeof(text), "%s", "");
	c = load_ok(write_conf("start.conf", text, 0644));
	assert_int_equal(conf_check_start(c, err, sizeof(err)), -1);
	snprintf(extra, sizeof(extra), "state_dir %s: not a directory", file);
	assert_string_equal(err, extra);
	conf_free(c);

	snprintf(text, sizeof(text), "state_dir = \"%s\";\ncontrol_socket = "
	    "\"%s/c.sock\";\n", tmpdir, tmpdir);
	strncat(text, one_service, sizeof(text) - strlen(text) - 1);
	replace_all(text, sizeof(text), "%s", "");
	c = load_ok(write_conf("start.conf", text, 0644));
	assert_int_equal(conf_check_start(c, err, sizeof(err)), 0);
	conf_free(c);
}

/*
 * one_service with more launch settings and its probe's settings
 * replaced: it loads (rest NULL), or fails with "line: rest" alone.
 */
static void
assert_variant(const char *launch, const char *probe, int line,
    const char *rest)
{
	char		 text[8192], want[1024];
	const char	*path;

	snprintf(text, sizeof(text), "%s", one_service);
	replace_all(text, sizeof(text), "%s", launch);
	replace_all(text, sizeof(text),
	    "type = \"http\"; address = \"127.0.0.1\";", probe);
	path = write_conf("variant.conf", text, 0644);
	if (rest == NULL) {
		conf_free(load_ok(path));
		return;
	}
	snprintf(want, sizeof(want), "%d: %s", line, rest);
	assert_one_error(path, want);
}

/*
 * address and source_address refuse different kinds of literal: a probe
 * may not target "this host" or 240/4; it may come from any unicast
 * address, though not from "any". Each kind, with its message.
 */
static void
test_address_kinds(void **state)
{
	static const struct {
		const char	*setting;
		const char	*value;
		const char	*why;	/* NULL: accepted */
	} t[] = {
		{ "address", "10.0.0.1", NULL },
		{ "address", "0.0.0.0", "is not a unicast address: 0.0.0.0/8 "
		  "is \"this host\": the probe would reach the watchdog's own "
		  "machine" },
		{ "address", "0.1.2.3", "is not a unicast address: 0.0.0.0/8 "
		  "is \"this host\": the probe would reach the watchdog's own "
		  "machine" },
		{ "address", "255.255.255.255", "is not a unicast address: it "
		  "is the broadcast address" },
		{ "address", "239.1.2.3", "is not a unicast address: it is a "
		  "multicast address (224.0.0.0/4)" },
		{ "address", "240.0.0.1", "is not a unicast address: it is "
		  "reserved (240.0.0.0/4)" },
		{ "address", "::", "is not a unicast address: :: is \"this "
		  "host\": the probe would reach the watchdog's own machine" },
		{ "address", "ff02::1", "is not a unicast address: it is a "
		  "multicast address (ff00::/8)" },
		{ "address", "web.example.com", "is not an IPv4 or IPv6 "
		  "address (names are not resolved; use host to send a name)" },
		{ "source_address", "10.0.0.1", NULL },
		{ "source_address", "0.1.2.3", NULL },
		{ "source_address", "240.0.0.1", NULL },
		{ "source_address", "0.0.0.0", "cannot be a source address: "
		  "0.0.0.0 is any address: leave the setting out to let the "
		  "kernel pick" },
		{ "source_address", "255.255.255.255", "cannot be a source "
		  "address: it is the broadcast address" },
		{ "source_address", "224.0.0.1", "cannot be a source address: "
		  "it is a multicast address (224.0.0.0/4)" },
		{ "source_address", "::", "cannot be a source address: :: is "
		  "any address: leave the setting out to let the kernel pick" },
		{ "source_address", "ff02::1", "cannot be a source address: it "
		  "is a multicast address (ff00::/8)" },
		{ "source_address", "eth1", "is not an IPv4 or IPv6 address "
		  "(names and interface names are not accepted: give the "
		  "address the probes are to come from)" },
	};
	char	 probe[256], rest[512];
	size_t	 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		/* The v6 kinds need a v6 target to come from. */
		snprintf(probe, sizeof(probe), "type = \"http\"; address = "
		    "\"%s\"; %s = \"%s\";", strchr(t[i].value, ':') != NULL ?
		    "::1" : "127.0.0.1", t[i].setting, t[i].value);
		if (strcmp(t[i].setting, "address") == 0)
			snprintf(probe, sizeof(probe), "type = \"http\"; "
			    "address = \"%s\";", t[i].value);
		if (t[i].why != NULL)
			snprintf(rest, sizeof(rest), "services.[0].probes.[0]."
			    "%s: \"%s\" %s", t[i].setting, t[i].value,
			    t[i].why);
		assert_variant("", probe, 4, t[i].why != NULL ? rest : NULL);
	}
}

/* The word-shaped string settings: what each accepts, what it says. */
static void
test_word_settings(void **state)
{
	static const struct {
		const char	*probe;		/* the probe's settings */
		const char	*launch;	/* more launch settings */
		const char	*rest;		/* NULL: accepted */
	} t[] = {
		{ "type = \"http\"; host = \"[::1]\";", "", NULL },
		{ "type = \"http\"; host = \"a_b.example-1.com:8\";", "",
		  NULL },
		{ "type = \"http\"; host = \"a b\";", "",
		  "services.[0].probes.[0].host: \"a b\" is not a host name" },
		{ "type = \"http\"; host = \"a/b\";", "",
		  "services.[0].probes.[0].host: \"a/b\" is not a host name" },
		{ "type = \"ssh\"; user = \"ec2-user.x_1\";", "", NULL },
		{ "type = \"ssh\"; user = \"ec2 user\";", "",
		  "services.[0].probes.[0].user: \"ec2 user\" is not a user "
		  "name" },
		{ "type = \"ssh\"; user = \"\";", "",
		  "services.[0].probes.[0].user: \"\" is not a user name" },
		{ "type = \"http\"; headers = [ \"X-A_b!: 1\" ];", "", NULL },
		{ "type = \"http\"; headers = [ \"X A: 1\" ];", "",
		  "services.[0].probes.[0].headers.[0]: \"X A: 1\" is not a "
		  "header line (\"Name: value\")" },
		{ "type = \"http\"; headers = [ \": 1\" ];", "",
		  "services.[0].probes.[0].headers.[0]: \": 1\" is not a "
		  "header line (\"Name: value\")" },
		{ "type = \"http\"; headers = [ \"X-A 1\" ];", "",
		  "services.[0].probes.[0].headers.[0]: \"X-A 1\" is not a "
		  "header line (\"Name: value\")" },
		{ "type = \"http\"; scheme = \"https\"; method = \"HEAD\";", "",
		  NULL },
		{ "type = \"http\"; scheme = \"ftp\";", "",
		  "services.[0].probes.[0].scheme: \"ftp\" is not \"http\" or "
		  "\"https\"" },
		{ "type = \"http\"; method = \"POST\";", "",
		  "services.[0].probes.[0].method: \"POST\" is not \"GET\" or "
		  "\"HEAD\"" },
		{ "type = \"http\";", "iam_instance_profile = \"a+=,.@_-1\";",
		  NULL },
		{ "type = \"http\";", "iam_instance_profile = \"a b\";",
		  "services.[0].launch.iam_instance_profile: \"a b\" is not an "
		  "instance profile name (letters, digits and +=,.@_-)" },
	};
	char	 probe[512];
	size_t	 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(probe, sizeof(probe), "%s address = \"127.0.0.1\";",
		    t[i].probe);
		assert_variant(t[i].launch, probe, *t[i].launch != '\0' ? 3 : 4,
		    t[i].rest);
	}
}

/*
 * A list of groups and a list of strings count alike; a group and a list
 * element that are not groups are named.
 */
static void
test_list_counts(void **state)
{
	assert_one_error(write_conf("nogroup.conf", "services = ( 1 );\n",
	    0644), "1: services.[0]: must be a group { ... }");
	{
		char text[8192];

		snprintf(text, sizeof(text), "aws = 1;\n%s", one_service);
		replace_all(text, sizeof(text), "%s", "");
		assert_one_error(write_conf("nogroup.conf", text, 0644),
		    "1: aws: must be a group { ... }");
	}

	assert_one_error(write_conf("empty.conf", "services = ( );\n", 0644),
	    "1: services: must not be empty");
	assert_variant("security_groups = [ \"sg-01234567\", \"sg-01234567\","
	    " \"sg-01234567\", \"sg-01234567\", \"sg-01234567\", "
	    "\"sg-01234567\", \"sg-01234567\", \"sg-01234567\", "
	    "\"sg-01234567\", \"sg-01234567\", \"sg-01234567\", "
	    "\"sg-01234567\", \"sg-01234567\", \"sg-01234567\", "
	    "\"sg-01234567\", \"sg-01234567\", \"sg-01234567\" ];",
	    "type = \"http\";", 3, "services.[0].launch.security_groups: has "
	    "17 elements; at most 16");
}

/*
 * The cluster group. Its lines, as cluster_conf writes them: 1 "cluster
 * = {", 2 name, 3 members, 4 endpoints, 5 and on: what the test adds.
 */
#define CL_NAME		"  name = \"a\";\n"
#define CL_MEMBERS	"  members = [ \"a\", \"b\", \"c\" ];\n"
#define CL_ENDPOINTS	"  endpoints = [ \"http://127.0.0.1:2379\" ];\n"
#define CL_BASE		CL_NAME CL_MEMBERS CL_ENDPOINTS

static const char *
cluster_conf(const char *body)
{
	char text[8192];

	snprintf(text, sizeof(text), "cluster = {\n%s};\n", body);
	strncat(text, one_service, sizeof(text) - strlen(text) - 1);
	replace_all(text, sizeof(text), "%s", "");
	return write_conf("cluster.conf", text, 0644);
}

/* No cluster group: one watchdog, nothing of etcd to read. */
static void
test_cluster_absent_is_null(void **state)
{
	struct config *c = load_ok(cluster_conf(CL_BASE));

	assert_non_null(c->cluster);
	conf_free(c);
	{
		char text[8192];

		snprintf(text, sizeof(text), "%s", one_service);
		replace_all(text, sizeof(text), "%s", "");
		c = load_ok(write_conf("single.conf", text, 0644));
	}
	assert_null(c->cluster);
	conf_free(c);
}

static void
test_cluster_defaults(void **state)
{
	struct config		*c = load_ok(cluster_conf(CL_BASE));
	struct cluster_conf	*k = c->cluster;

	assert_string_equal(k->name, "a");
	assert_int_equal(k->nmembers, 3);
	assert_string_equal(k->members[2], "c");
	assert_int_equal(k->nendpoints, 1);
	assert_string_equal(k->endpoints[0], "http://127.0.0.1:2379");
	assert_string_equal(k->prefix, "/failoverd");
	assert_int_equal(k->lease_ttl, 10);
	assert_true(k->timeout == 2.0);
	assert_int_equal(k->quorum_rule, CLUSTER_QUORUM_MAJORITY);
	assert_int_equal(k->quorum, 2);
	assert_null(k->ca_file);
	assert_null(k->cert_file);
	assert_null(k->key_file);
	conf_free(c);
}

static void
test_cluster_full(void **state)
{
	char		 ca[256], cert[256], key[256], body[4096];
	const char	*files[] = { ca, cert, key };
	struct config	*c;
	size_t		 i;
	FILE		*fp;

	snprintf(ca, sizeof(ca), "%.200s/ca.pem", tmpdir);
	snprintf(cert, sizeof(cert), "%.200s/member.pem", tmpdir);
	snprintf(key, sizeof(key), "%.200s/member-key.pem", tmpdir);
	for (i = 0; i < 3; i++) {
		fp = fopen(files[i], "w");
		assert_non_null(fp);
		fputs("SECRET-KEY-CONTENTS\n", fp);
		fclose(fp);
		assert_int_equal(chmod(files[i], 0600), 0);
	}
	snprintf(body, sizeof(body),
	    "  name = \"db-2.b\";\n"
	    "  members = [ \"db-1_a\", \"db-2.b\", \"c\", \"d\", \"e\" ];\n"
	    "  endpoints = [ \"https://127.0.0.1:2379\", "
	    "\"https://127.0.0.2:2379/\", \"http://[::1]:2379\" ];\n"
	    "  prefix = \"/prod/failoverd\";\n"
	    "  lease_ttl = 30; quorum = 0.6; timeout = 0.5;\n"
	    "  tls = { ca_file = \"%s\"; cert_file = \"%s\";\n"
	    "    key_file = \"%s\"; };\n", ca, cert, key);
	c = load_ok(cluster_conf(body));
	assert_string_equal(c->cluster->name, "db-2.b");
	assert_int_equal(c->cluster->nmembers, 5);
	assert_int_equal(c->cluster->nendpoints, 3);
	assert_string_equal(c->cluster->prefix, "/prod/failoverd");
	assert_int_equal(c->cluster->lease_ttl, 30);
	assert_true(c->cluster->timeout == 0.5);
	/* 0.6 of 5 is 3, though 0.6 * 5 is a hair over 3 in binary. */
	assert_int_equal(c->cluster->quorum_rule, CLUSTER_QUORUM_FRACTION);
	assert_int_equal(c->cluster->quorum, 3);
	assert_string_equal(c->cluster->ca_file, ca);
	assert_string_equal(c->cluster->cert_file, cert);
	assert_string_equal(c->cluster->key_file, key);

	/* -t shows the paths, the quorum as a count, never a key. */
	{
		char	*out = NULL;
		size_t	 outlen = 0;

		fp = open_memstream(&out, &outlen);
		assert_non_null(fp);
		conf_print_summary(c, fp);
		fclose(fp);
		assert_non_null(strstr(out, "  cluster member db-2.b of "
		    "db-1_a, db-2.b, c, d, e\n"));
		assert_non_null(strstr(out, "    etcd https://127.0.0.1:2379, "
		    "https://127.0.0.2:2379/, http://[::1]:2379, prefix "
		    "/prod/failoverd, lease_ttl 30s, timeout 0.5s\n"));
		assert_non_null(strstr(out, "    quorum 3 of 5 (0.6 of the "
		    "members)\n"));
		assert_non_null(strstr(out, key));
		assert_null(strstr(out, "SECRET-KEY-CONTENTS"));
		free(out);
	}
	conf_free(c);

	/* The key kept where others read it is refused, by name. */
	assert_int_equal(chmod(key, 0604), 0);
	{
		char rest[1024];

		snprintf(rest, sizeof(rest), "8: cluster.tls.key_file: %s: "
		    "mode 0604 lets others read it; chmod o-rwx", key);
		assert_one_error(cluster_conf(body), rest);
	}
	assert_int_equal(chmod(key, 0600), 0);
	/* Read at each connection: one this process cannot read is refused
	 * now, not at the first call (root reads everything). */
	if (geteuid() != 0) {
		char rest[1024];

		assert_int_equal(chmod(cert, 0200), 0);
		snprintf(rest, sizeof(rest), "7: cluster.tls.cert_file: %s: "
		    "not readable: Permission denied", cert);
		assert_one_error(cluster_conf(body), rest);
	}
	for (i = 0; i < 3; i++)
		unlink(files[i]);
	/* A file gone is named. */
	{
		char rest[1024];

		snprintf(rest, sizeof(rest), "7: cluster.tls.ca_file: %s: No "
		    "such file or directory", ca);
		assert_null(conf_load(cluster_conf(body), errbuf,
		    sizeof(errbuf)));
		assert_non_null(strstr(errbuf, rest));
	}
}

/*
 * cluster.host_key_secret. Lines: 1 "cluster = {", 2 name, 3 members,
 * 4 endpoints, 5 the secret if given, then the service; host_keys and
 * the probe as given.
 */
static const char *
secret_conf(const char *secret, const char *host_keys, const char *probe)
{
	char text[8192];

	snprintf(text, sizeof(text), "cluster = {\n" CL_BASE "%s};\n"
	    "services = ( { name = \"web\";\n"
	    "  eip_allocation_id = \"eipalloc-0123456789abcdef0\";\n"
	    "  launch = { ami = \"ami-0123456789abcdef0\"; "
	    "instance_type = \"t3.micro\"; %s };\n"
	    "  probes = ( { type = \"%s\"; address = \"127.0.0.1\"; } ); } );\n",
	    secret, host_keys, probe);
	return write_conf("secret.conf", text, 0644);
}

/* Writes n bytes to tmpdir/name, mode 0600; its path in path. */
static void
write_secret(char *path, size_t len, const char *name, size_t n)
{
	FILE	*fp;
	size_t	 i;

	snprintf(path, len, "%.200s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (i = 0; i < n; i++)
		fputc('K', fp);
	fclose(fp);
	assert_int_equal(chmod(path, 0600), 0);
}

/*
 * Every member must give a replacement the same host key: a cluster that
 * hands keys over in user data and checks them with ssh probes needs the
 * one secret file, of exactly 32 bytes, shown by path only.
 */
static void
test_cluster_host_key_secret(void **state)
{
	char		 key[256], line[512], rest[1024];
	struct config	*c;
	char		*out = NULL;
	size_t		 outlen = 0;
	FILE		*fp;

	(void)state;
	/* Required: user_data is the default. */
	assert_one_error(secret_conf("", "", "ssh"), "1: "
	    "cluster.host_key_secret: is required: service \"web\" launches "
	    "with host_keys = \"user_data\" and has an ssh probe, and every "
	    "member must give a replacement the same host key; make one file "
	    "(head -c 32 /dev/urandom > F; chmod 600 F) and copy it to every "
	    "member");
	assert_one_error(secret_conf("", "host_keys = \"user_data\";", "ssh"),
	    "1: cluster.host_key_secret: is required: service \"web\" "
	    "launches with host_keys = \"user_data\" and has an ssh probe, "
	    "and every member must give a replacement the same host key; "
	    "make one file (head -c 32 /dev/urandom > F; chmod 600 F) and "
	    "copy it to every member");
	/* Not required: no key handed over, or none checked. */
	conf_free(load_ok(secret_conf("", "host_keys = \"console\";",
	    "ssh")));
	conf_free(load_ok(secret_conf("", "", "http")));
	{
		/* known_hosts needs a known_hosts file in the probe. */
		char	kh[256], text[8192];

		snprintf(kh, sizeof(kh), "%.200s/known_hosts", tmpdir);
		fp = fopen(kh, "w");
		assert_non_null(fp);
		fclose(fp);
		assert_int_equal(chmod(kh, 0644), 0);
		snprintf(text, sizeof(text), "cluster = {\n" CL_BASE "};\n"
		    "services = ( { name = \"web\";\n"
		    "  eip_allocation_id = \"eipalloc-0123456789abcdef0\";\n"
		    "  launch = { ami = \"ami-0123456789abcdef0\"; "
		    "instance_type = \"t3.micro\"; "
		    "host_keys = \"known_hosts\"; };\n"
		    "  probes = ( { type = \"ssh\"; known_hosts = \"%s\"; } );"
		    " } );\n", kh);
		conf_free(load_ok(write_conf("kh.conf", text, 0644)));
		unlink(kh);
	}
	/* A single watchdog keeps its own in state_dir. */
	{
		char text[8192];

		snprintf(text, sizeof(text), "%s", one_service);
		replace_all(text, sizeof(text), "%s", "");
		replace_all(text, sizeof(text), "\"http\"", "\"ssh\"");
		conf_free(load_ok(write_conf("single.conf", text, 0644)));
	}

	/* Exactly 32 bytes, named by the file's path. */
	write_secret(key, sizeof(key), "hk-secret", 31);
	snprintf(line, sizeof(line), "  host_key_secret = \"%s\";\n", key);
	snprintf(rest, sizeof(rest), "5: cluster.host_key_secret: %s is 31 "
	    "bytes; it must hold exactly 32 bytes (head -c 32 /dev/urandom)",
	    key);
	assert_one_error(secret_conf(line, "", "ssh"), rest);
	write_secret(key, sizeof(key), "hk-secret", 33);
	snprintf(rest, sizeof(rest), "5: cluster.host_key_secret: %s is 33 "
	    "bytes; it must hold exactly 32 bytes (head -c 32 /dev/urandom)",
	    key);
	assert_one_error(secret_conf(line, "", "ssh"), rest);
	/* A secret: others must not read it. */
	write_secret(key, sizeof(key), "hk-secret", 32);
	assert_int_equal(chmod(key, 0644), 0);
	snprintf(rest, sizeof(rest), "5: cluster.host_key_secret: %s: mode "
	    "0644 lets others read it; chmod o-rwx", key);
	assert_one_error(secret_conf(line, "", "ssh"), rest);
	/* Never made by failoverd: a missing one is an error. */
	unlink(key);
	snprintf(rest, sizeof(rest), "5: cluster.host_key_secret: %s: No "
	    "such file or directory", key);
	assert_one_error(secret_conf(line, "", "ssh"), rest);
	assert_int_equal(access(key, F_OK), -1);

	write_secret(key, sizeof(key), "hk-secret", 32);
	c = load_ok(secret_conf(line, "", "ssh"));
	assert_string_equal(c->cluster->host_key_secret, key);
	fp = open_memstream(&out, &outlen);
	assert_non_null(fp);
	conf_print_summary(c, fp);
	fclose(fp);
	snprintf(rest, sizeof(rest), "    host_key_secret %s\n", key);
	assert_non_null(strstr(out, rest));
	assert_null(strstr(out, "KKKKKKKK"));
	free(out);
	conf_free(c);
	unlink(key);
}

/* quorum: a count as given, a fraction rounded up, majority n / 2 + 1. */
static void
test_cluster_quorum_resolved(void **state)
{
	static const struct {
		const char	*members;
		const char	*quorum;
		int		 want;
		enum cluster_quorum_rule rule;
	} t[] = {
		{ "\"a\"", NULL, 1, CLUSTER_QUORUM_MAJORITY },
		{ "\"a\", \"b\"", NULL, 2, CLUSTER_QUORUM_MAJORITY },
		{ "\"a\", \"b\", \"c\", \"d\"", "\"majority\"", 3,
		  CLUSTER_QUORUM_MAJORITY },
		{ "\"a\", \"b\", \"c\", \"d\", \"e\"", NULL, 3,
		  CLUSTER_QUORUM_MAJORITY },
		{ "\"a\", \"b\", \"c\"", "1", 1, CLUSTER_QUORUM_COUNT },
		{ "\"a\", \"b\", \"c\"", "3", 3, CLUSTER_QUORUM_COUNT },
		{ "\"a\", \"b\", \"c\"", "0.5", 2, CLUSTER_QUORUM_FRACTION },
		{ "\"a\", \"b\", \"c\"", "0.1", 1, CLUSTER_QUORUM_FRACTION },
		{ "\"a\", \"b\", \"c\"", "1.0", 3, CLUSTER_QUORUM_FRACTION },
		{ "\"a\", \"b\", \"c\", \"d\"", "0.5", 2,
		  CLUSTER_QUORUM_FRACTION },
		{ "\"a\", \"b\", \"c\", \"d\"", "0.75", 3,
		  CLUSTER_QUORUM_FRACTION },
	};
	char		 body[1024], q[128];
	struct config	*c;
	size_t		 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		q[0] = '\0';
		if (t[i].quorum != NULL)
			snprintf(q, sizeof(q), "  quorum = %s;\n",
			    t[i].quorum);
		snprintf(body, sizeof(body), CL_NAME "  members = [ %s ];\n"
		    CL_ENDPOINTS "%s", t[i].members, q);
		c = load_ok(cluster_conf(body));
		if (c->cluster->quorum != t[i].want ||
		    c->cluster->quorum_rule != t[i].rule)
			fail_msg("members [%s] quorum %s: got %d (rule %d), "
			    "want %d", t[i].members, t[i].quorum,
			    c->cluster->quorum, c->cluster->quorum_rule,
			    t[i].want);
		conf_free(c);
	}
}

/* Every mistake in the group, each at its line. */
static void
test_cluster_errors(void **state)
{
	static const struct {
		const char	*body;
		const char	*rest;
	} t[] = {
		{ "  name = \"z\";\n" CL_MEMBERS CL_ENDPOINTS,
		  "2: cluster.name: \"z\" is not one of members" },
		{ "  name = \"a b\";\n" CL_MEMBERS CL_ENDPOINTS,
		  "2: cluster.name: \"a b\" is not a name (1 to 64 letters, "
		  "digits, '-', '_', '.')" },
		{ CL_MEMBERS CL_ENDPOINTS,
		  "1: cluster.name: missing (required)" },
		{ CL_NAME "  members = [ \"a\", \"b\", \"a\" ];\n"
		  CL_ENDPOINTS,
		  "3: cluster.members.[2]: \"a\" is already members.[0]" },
		{ CL_NAME "  members = [ \"a\", \"b/c\" ];\n" CL_ENDPOINTS,
		  "3: cluster.members.[1]: \"b/c\" is not a name (1 to 64 "
		  "letters, digits, '-', '_', '.')" },
		{ CL_NAME "  members = [ ];\n" CL_ENDPOINTS,
		  "3: cluster.members: must not be empty" },
		{ CL_NAME "  members = [ \"a\", \"b\", \"c\", \"d\", \"e\", "
		  "\"f\", \"g\", \"h\", \"i\", \"j\", \"k\", \"l\", \"m\", "
		  "\"n\", \"o\", \"p\", \"q\" ];\n" CL_ENDPOINTS,
		  "3: cluster.members: has 17 elements; at most 16" },
		{ CL_NAME CL_MEMBERS,
		  "1: cluster.endpoints: missing (required)" },
		{ CL_NAME CL_MEMBERS "  endpoints = [ \"http://127.0.0.1\" ];\n",
		  "4: cluster.endpoints.[0]: \"http://127.0.0.1\" has no port "
		  "(etcd's client port is 2379): give http://host:port or "
		  "https://host:port" },
		{ CL_NAME CL_MEMBERS
		  "  endpoints = [ \"unix:///run/etcd.sock\" ];\n",
		  "4: cluster.endpoints.[0]: \"unix:///run/etcd.sock\" is not "
		  "a URL: give http://host:port or https://host:port" },
		{ CL_NAME CL_MEMBERS
		  "  endpoints = [ \"ftp://127.0.0.1:2379\" ];\n",
		  "4: cluster.endpoints.[0]: \"ftp://127.0.0.1:2379\" must be "
		  "http:// or https://: give http://host:port or "
		  "https://host:port" },
		{ CL_NAME CL_MEMBERS "  endpoints = [ \"127.0.0.1:2379\" ];\n",
		  "4: cluster.endpoints.[0]: \"127.0.0.1:2379\" is not a URL: "
		  "give http://host:port or https://host:port" },
		{ CL_NAME CL_MEMBERS
		  "  endpoints = [ \"http://127.0.0.1:2379/v3\" ];\n",
		  "4: cluster.endpoints.[0]: \"http://127.0.0.1:2379/v3\" must "
		  "not have a path, query or fragment: give http://host:port "
		  "or https://host:port" },
		{ CL_BASE "  prefix = \"failoverd\";\n",
		  "5: cluster.prefix: \"failoverd\" must start with '/' and "
		  "not end with it (such as \"/failoverd\")" },
		{ CL_BASE "  prefix = \"/failoverd/\";\n",
		  "5: cluster.prefix: \"/failoverd/\" must start with '/' and "
		  "not end with it (such as \"/failoverd\")" },
		{ CL_BASE "  prefix = \"/fail overd\";\n",
		  "5: cluster.prefix: must be printable, without spaces" },
		{ CL_BASE "  lease_ttl = 1;\n",
		  "5: cluster.lease_ttl: must be at least 2 (got 1)" },
		{ CL_BASE "  lease_ttl = 301;\n",
		  "5: cluster.lease_ttl: must be at most 300 (got 301)" },
		{ CL_BASE "  lease_ttl = 10.5;\n",
		  "5: cluster.lease_ttl: must be an integer" },
		{ CL_BASE "  quorum = 4;\n",
		  "5: cluster.quorum: 4 is more than the 3 members" },
		{ CL_BASE "  quorum = 0;\n",
		  "5: cluster.quorum: must be at least 1 (got 0)" },
		{ CL_BASE "  quorum = 1.5;\n",
		  "5: cluster.quorum: a fraction of the members must be "
		  "greater than 0 and at most 1 (got 1.5)" },
		{ CL_BASE "  quorum = 0.0;\n",
		  "5: cluster.quorum: a fraction of the members must be "
		  "greater than 0 and at most 1 (got 0)" },
		{ CL_BASE "  quorum = \"most\";\n",
		  "5: cluster.quorum: must be a count (2), a fraction of the "
		  "members (0.5) or \"majority\"" },
		{ CL_BASE "  timeout = 0.05;\n",
		  "5: cluster.timeout: must be at least 0.1 s (got 0.05)" },
		{ CL_BASE "  timeout = 4;\n",
		  "5: cluster.timeout: must be less than a third of lease_ttl "
		  "(10s), so that a keepalive that times out can be sent "
		  "again before the lease expires (got 4 s)" },
		{ CL_BASE "  lease_ttl = 3; timeout = 1;\n",
		  "5: cluster.timeout: must be less than a third of lease_ttl "
		  "(3s), so that a keepalive that times out can be sent "
		  "again before the lease expires (got 1 s)" },
		{ CL_BASE "  tls = { cert_file = \"/etc/hostname\"; };\n",
		  "5: cluster.tls.key_file: missing: cert_file and key_file "
		  "go together" },
		{ CL_BASE "  tls = { ca_file = \"etc/ca.pem\"; };\n",
		  "5: cluster.tls.ca_file: \"etc/ca.pem\" must be an absolute "
		  "path" },
		{ CL_BASE "  members_ = [ \"a\" ];\n",
		  "5: cluster.members_: unknown setting" },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_one_error(cluster_conf(t[i].body), t[i].rest);
}

/* An endpoint's password never reaches a message. */
static void
test_cluster_endpoint_password_not_shown(void **state)
{
	assert_null(conf_load(cluster_conf(CL_NAME CL_MEMBERS
	    "  endpoints = [ \"http://root:hunter2@127.0.0.1:2379\" ];\n"),
	    errbuf, sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "4: cluster.endpoints.[0]: "));
	assert_non_null(strstr(errbuf, "must not hold a user or password"));
	assert_null(strstr(errbuf, "hunter2"));
}

/* cluster = 1; is not a group. */
static void
test_cluster_not_a_group(void **state)
{
	char text[8192];

	snprintf(text, sizeof(text), "cluster = 1;\n%s", one_service);
	replace_all(text, sizeof(text), "%s", "");
	assert_one_error(write_conf("cluster.conf", text, 0644),
	    "1: cluster: must be a group { ... }");
}

static int
setup(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax_error_names_file_and_line),
		cmocka_unit_test(test_unreadable_file_names_it),
		cmocka_unit_test(test_unknown_top_level_setting),
		cmocka_unit_test(test_unknown_service_setting),
		cmocka_unit_test(test_unknown_probe_setting),
		cmocka_unit_test(test_http_setting_in_ssh_probe_rejected),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_timeout_must_be_less_than_interval),
		cmocka_unit_test(test_missing_required_setting),
		cmocka_unit_test(test_duplicate_probe_names),
		cmocka_unit_test(test_duplicate_service_names),
		cmocka_unit_test(test_bad_id_shape),
		cmocka_unit_test(test_bad_expect_status),
		cmocka_unit_test(test_bad_regex),
		cmocka_unit_test(test_failover_when_names_missing_probe),
		cmocka_unit_test(test_bad_syslog_facility),
		cmocka_unit_test(test_missing_key_file_is_named),
		cmocka_unit_test(test_key_file_readable_by_others_refused),
		cmocka_unit_test(test_config_writable_by_others_refused),
		cmocka_unit_test(test_control_mode_as_bare_number_rejected),
		cmocka_unit_test(test_every_error_is_reported),
		cmocka_unit_test(test_errors_are_capped),
		cmocka_unit_test(test_small_error_buffer_is_terminated),
		cmocka_unit_test(test_error_in_included_file_names_it),
		cmocka_unit_test(test_defaults_filled),
		cmocka_unit_test(test_probe_name_defaults_to_type),
		cmocka_unit_test(test_rich_settings_parsed),
		cmocka_unit_test(test_example_config_loads),
		cmocka_unit_test(test_service_equal_when_identical),
		cmocka_unit_test(test_service_equal_ignores_line_moves),
		cmocka_unit_test(test_service_unequal_when_one_field_changes),
		cmocka_unit_test(test_bad_corpus),
		cmocka_unit_test(test_user_data_limit),
		cmocka_unit_test(test_absolute_include),
		cmocka_unit_test(test_include_loop_refused),
		cmocka_unit_test(test_fifo_refused),
		cmocka_unit_test(test_huge_file_refused),
		cmocka_unit_test(test_many_settings_refused),
		cmocka_unit_test(test_switch_ami_validated),
		cmocka_unit_test(test_redact_url),
		cmocka_unit_test(test_fmt_at_clamps),
		cmocka_unit_test(test_check_start),
		cmocka_unit_test(test_address_kinds),
		cmocka_unit_test(test_word_settings),
		cmocka_unit_test(test_list_counts),
		cmocka_unit_test(test_cluster_absent_is_null),
		cmocka_unit_test(test_cluster_defaults),
		cmocka_unit_test(test_cluster_full),
		cmocka_unit_test(test_cluster_quorum_resolved),
		cmocka_unit_test(test_cluster_errors),
		cmocka_unit_test(test_cluster_endpoint_password_not_shown),
		cmocka_unit_test(test_cluster_not_a_group),
		cmocka_unit_test(test_cluster_host_key_secret),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
