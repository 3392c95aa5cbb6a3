/*
 * The file node_exporter reads: label values escaped as the text format
 * wants, the file replaced whole (never half-written, never through a
 * planted link), readable by another user, and every family typed once
 * before its samples.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
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
#include "failoverd/metrics.h"

static char	dir[PATH_MAX];

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_metrics.XXXXXX");
	assert_non_null(mkdtemp(dir));
	log_init("test_metrics_file", LOG_USER, 1);
	log_set_stream(stderr);
	return 0;
}

static int
teardown(void **state)
{
	char	 path[PATH_MAX * 2];
	DIR	*dp = opendir(dir);
	struct dirent *de;

	while (dp != NULL && (de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (dp != NULL)
		closedir(dp);
	rmdir(dir);
	return 0;
}

static char *
slurp(const char *path)
{
	static char	 text[4096];
	FILE		*fp = fopen(path, "r");
	size_t		 n;

	if (fp == NULL)
		return NULL;
	n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	return text;
}

static size_t
entries(void)
{
	DIR		*dp = opendir(dir);
	struct dirent	*de;
	size_t		 n = 0;

	while (dp != NULL && (de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	if (dp != NULL)
		closedir(dp);
	return n;
}

static void
test_label_values_escape_backslash_quote_and_newline(void **state)
{
	struct buf b;

	buf_init(&b);
	metrics_label_value(&b, "a\\b\"c\nd e=f");
	assert_string_equal(buf_str(&b), "a\\\\b\\\"c\\nd e=f");
	buf_free(&b);
}

static void
test_file_is_replaced_whole_and_readable_by_others(void **state)
{
	char	path[PATH_MAX * 2], err[PATH_MAX + 128];
	struct stat st;
	mode_t	old = umask(077);	/* the unit's UMask */

	snprintf(path, sizeof(path), "%s/" METRICS_FILE, dir);
	assert_int_equal(metrics_write_file(dir, "a 1\n", 4, 0, err,
	    sizeof(err)), 0);
	assert_string_equal(slurp(path), "a 1\n");
	assert_int_equal(metrics_write_file(dir, "b 2\n", 4, 1, err,
	    sizeof(err)), 0);
	assert_string_equal(slurp(path), "b 2\n");
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	/* The temporary is gone: only failoverd.prom is left. */
	assert_int_equal(entries(), 1);
}

static void
test_planted_link_at_the_temporary_is_not_followed(void **state)
{
	char	tmp[PATH_MAX * 2], victim[PATH_MAX * 2];
	char	err[PATH_MAX + 128];
	FILE	*fp;

	snprintf(tmp, sizeof(tmp), "%s/" METRICS_TMP_FILE, dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	fp = fopen(victim, "w");
	assert_non_null(fp);
	fputs("keep", fp);
	fclose(fp);
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(metrics_write_file(dir, "c 3\n", 4, 0, err,
	    sizeof(err)), 0);
	assert_string_equal(slurp(victim), "keep");
	unlink(victim);
}

static void
test_missing_directory_names_the_step_and_the_path(void **state)
{
	char	missing[PATH_MAX + 16], err[PATH_MAX + 128];

	snprintf(missing, sizeof(missing), "%s/nope", dir);
	assert_int_equal(metrics_write_file(missing, "x 1\n", 4, 0, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "create"));
	assert_non_null(strstr(err, "/nope/" METRICS_TMP_FILE));
	assert_non_null(strstr(err, strerror(ENOENT)));
}

static int
no_services(void *arg, size_t i, struct metrics_service *out)
{
	return -1;
}

/* Each family's HELP and TYPE once, before any sample of it. */
static void
test_every_family_is_typed_once_before_its_samples(void **state)
{
	struct metrics_conf	 conf = { NULL, 15.0, 0 };
	struct metrics_env	 env = { EV_DEFAULT, NULL, NULL, no_services,
				    NULL };
	struct metrics		*m;
	struct buf		 out;
	char			*text, *line, *save = NULL, name[128];
	char			 type[16];
	char			 typed[64][128];
	size_t			 ntyped = 0, i, len;

	m = metrics_new(&env, &conf);
	assert_non_null(m);
	alert_emit(ALERT_STARTUP, NULL, "version", "x", NULL);
	alert_emit(ALERT_STARTUP, NULL, "version", "x", NULL);
	buf_init(&out);
	metrics_render(m, &out);
	assert_false(out.oom);
	assert_non_null(strstr(buf_str(&out),
	    "\nfailoverd_events_total{event=\"startup\"} 2\n"));
	text = strdup(buf_str(&out));
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (sscanf(line, "# TYPE %127s %15s", name, type) == 2) {
			/* Prometheus's naming: a counter ends in _total. */
			len = strlen(name);
			if (strcmp(type, "counter") == 0)
				assert_true(len > 6 && strcmp(name + len - 6,
				    "_total") == 0);
			else
				assert_string_equal(type, "gauge");
			for (i = 0; i < ntyped; i++)
				assert_string_not_equal(typed[i], name);
			assert_true(ntyped < 64);
			snprintf(typed[ntyped++], sizeof(typed[0]), "%s",
			    name);
			continue;
		}
		assert_true(ntyped > 0);
		len = strlen(typed[ntyped - 1]);
		assert_int_equal(strncmp(line, typed[ntyped - 1], len), 0);
		assert_true(line[len] == '{' || line[len] == ' ');
	}
	free(text);
	buf_free(&out);
	metrics_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_label_values_escape_backslash_quote_and_newline),
		cmocka_unit_test_teardown(
		    test_file_is_replaced_whole_and_readable_by_others,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_planted_link_at_the_temporary_is_not_followed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_missing_directory_names_the_step_and_the_path,
		    setup, teardown),
		cmocka_unit_test(
		    test_every_family_is_typed_once_before_its_samples),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
