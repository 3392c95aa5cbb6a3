/*
 * The journal: what a restart after a crash relies on. A record comes
 * back exactly as saved; a journal cut at any byte or with any byte
 * changed is refused with a message naming the file and line, never
 * read as something shorter; saving fails loudly, naming the place.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "failoverd/buf.h"
#include "failoverd/journal.h"

struct fixture {
	char	dir[64];
	char	path[128];	/* <dir>/web.journal */
	char	tmp[128];	/* <dir>/web.journal.tmp */
};

static void
rm_rf(const char *dir)
{
	DIR *d;
	struct dirent *de;
	char p[512];

	d = opendir(dir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int
setup(void **state)
{
	struct fixture *fx;

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/fod-journal-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/web.journal", fx->dir);
	snprintf(fx->tmp, sizeof(fx->tmp), "%s/web.journal.tmp", fx->dir);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	chmod(fx->dir, 0700);
	rm_rf(fx->dir);
	free(fx);
	return 0;
}

static char *
slurp(const char *path, size_t *lenp)
{
	FILE *f;
	char *buf;
	long len;

	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	*lenp = (size_t)len;
	return buf;
}

static void
spew(const char *path, const void *data, size_t len)
{
	FILE *f;

	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Writes body followed by a correct end line: corrupt but not damaged. */
static void
spew_signed(const char *path, const char *body)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen, i;
	char *all;
	size_t blen = strlen(body);

	assert_int_equal(EVP_Digest(body, blen, md, &mdlen, EVP_sha256(),
	    NULL), 1);
	all = malloc(blen + 100);
	assert_non_null(all);
	memcpy(all, body, blen);
	blen += (size_t)sprintf(all + blen, "end sha256=");
	for (i = 0; i < mdlen; i++)
		blen += (size_t)sprintf(all + blen, "%02x", md[i]);
	all[blen++] = '\n';
	spew(path, all, blen);
	free(all);
}

static const char *awkward[][2] = {
	{ "step", "detach" },
	{ "old_instance", "i-0123456789abcdef0" },
	{ "note", "line one\nline two\r\nline three\n" },
	{ "percent", "100% sure, %41 is not A, %%" },
	{ "equals", "a=b==c=" },
	{ "unicode", "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x94\xa5" },
	{ "controls", "\x01\x02\t\x1f\x7f end" },
	{ "empty", "" },
	{ "spaces", "  leading and trailing  " },
	{ "volume.vol-abc.state", "attached" },
	{ "end", "end sha256=0000" },
};
#define NAWKWARD (sizeof(awkward) / sizeof(awkward[0]))

static struct journal_rec *
awkward_rec(void)
{
	struct journal_rec *rec;
	size_t i;

	rec = journal_rec_new();
	assert_non_null(rec);
	for (i = 0; i < NAWKWARD; i++)
		assert_int_equal(journal_rec_set(rec, awkward[i][0],
		    awkward[i][1]), 0);
	return rec;
}

static void
assert_awkward(const struct journal_rec *rec)
{
	const char *k, *v;
	size_t i;

	assert_int_equal(journal_rec_count(rec), NAWKWARD);
	for (i = 0; i < NAWKWARD; i++) {
		journal_rec_at(rec, i, &k, &v);
		assert_string_equal(k, awkward[i][0]);
		assert_string_equal(v, awkward[i][1]);
	}
}

/* Saves the awkward record once and returns the file's bytes. */
static char *
saved_awkward(struct fixture *fx, size_t *lenp)
{
	struct journal_rec *rec;
	char err[512];

	rec = awkward_rec();
	assert_int_equal(journal_save(fx->dir, "web", rec, err, sizeof(err)),
	    0);
	journal_rec_free(rec);
	return slurp(fx->path, lenp);
}

static void
test_round_trip_keeps_awkward_values_and_order(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec, *back;
	char err[512];

	rec = awkward_rec();
	assert_int_equal(journal_save(fx->dir, "web", rec, err, sizeof(err)),
	    0);
	assert_int_equal(journal_load(fx->dir, "web", &back, err,
	    sizeof(err)), 0);
	assert_awkward(back);
	assert_int_equal(journal_rec_seq(back), 1);
	journal_rec_free(back);
	journal_rec_free(rec);
}

static void
test_file_is_readable_text_with_escapes(void **state)
{
	struct fixture *fx = *state;
	char *data;
	size_t len;

	data = saved_awkward(fx, &len);
	assert_int_equal(strlen(data), len);
	assert_memory_equal(data, "failoverd-journal 1\nseq=1\nstep=detach\n",
	    strlen("failoverd-journal 1\nseq=1\nstep=detach\n"));
	assert_non_null(strstr(data,
	    "\nnote=line one%0Aline two%0D%0Aline three%0A\n"));
	assert_non_null(strstr(data,
	    "\npercent=100%25 sure, %2541 is not A, %25%25\n"));
	assert_non_null(strstr(data, "\nequals=a=b==c=\n"));
	assert_non_null(strstr(data, "\n" "end sha256="));
	free(data);
}

static void
test_missing_journal_means_fresh_service(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec = (struct journal_rec *)1;
	char err[512];

	assert_int_equal(journal_load(fx->dir, "web", &rec, err,
	    sizeof(err)), 1);
	assert_null(rec);
}

static void
test_load_from_missing_directory_is_an_error(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec;
	char err[512], dir[192];

	snprintf(dir, sizeof(dir), "%s/gone", fx->dir);
	assert_int_equal(journal_load(dir, "web", &rec, err, sizeof(err)),
	    -1);
	assert_null(rec);
	assert_non_null(strstr(err, dir));
	assert_non_null(strstr(err, strerror(ENOENT)));
}

static void
test_truncated_at_every_byte_is_refused(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec;
	char *data, err[512], *after;
	size_t len, cut;

	data = saved_awkward(fx, &len);
	for (cut = 0; cut < len; cut++) {
		spew(fx->path, data, cut);
		err[0] = '\0';
		if (journal_load(fx->dir, "web", &rec, err,
		    sizeof(err)) != -1)
			fail_msg("cut at %zu of %zu was accepted", cut, len);
		assert_null(rec);
		/* "<path>:<line>: truncated: ..." */
		assert_memory_equal(err, fx->path, strlen(fx->path));
		assert_int_equal(err[strlen(fx->path)], ':');
		after = strchr(err + strlen(fx->path) + 1, ':');
		assert_non_null(after);
		if (strstr(after, ": truncated: ") != after)
			fail_msg("cut at %zu: %s", cut, err);
	}
	/* And the whole file still loads: the loop did not test nothing. */
	spew(fx->path, data, len);
	assert_int_equal(journal_load(fx->dir, "web", &rec, err,
	    sizeof(err)), 0);
	journal_rec_free(rec);
	free(data);
}

static void
test_truncated_error_names_line(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec;
	char err[512], want[256];

	spew(fx->path, "failoverd-journal 1\nseq=3\nstep=fence\n",
	    strlen("failoverd-journal 1\nseq=3\nstep=fence\n"));
	assert_int_equal(journal_load(fx->dir, "web", &rec, err,
	    sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:4: truncated: no end line",
	    fx->path);
	assert_string_equal(err, want);
}

static void
test_flipped_byte_is_a_checksum_mismatch(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec;
	char *data, err[512];
	size_t len, i, body;

	data = saved_awkward(fx, &len);
	/* The hashed part, short of the '\n' that ends it. */
	body = (size_t)(strstr(data, "\nend sha256=") - data);
	for (i = 0; i < len; i++) {
		data[i] ^= 0x01;
		spew(fx->path, data, len);
		data[i] ^= 0x01;
		err[0] = '\0';
		if (journal_load(fx->dir, "web", &rec, err,
		    sizeof(err)) != -1)
			fail_msg("flip at %zu was accepted", i);
		assert_null(rec);
		assert_non_null(strstr(err, fx->path));
		/* Inside the hashed part, nothing else may be reported. */
		if (i < body && strstr(err, ": checksum mismatch") == NULL)
			fail_msg("flip at %zu: %s", i, err);
		if (i == body && strstr(err, ": bad end line") == NULL)
			fail_msg("flip at %zu: %s", i, err);
	}
	free(data);
}

static void
test_failed_load_leaves_the_file_alone(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec;
	char *data, *after, err[512];
	size_t len, alen;

	data = saved_awkward(fx, &len);
	data[len / 2] ^= 0x20;
	spew(fx->path, data, len);
	assert_int_equal(journal_load(fx->dir, "web", &rec, err,
	    sizeof(err)), -1);
	after = slurp(fx->path, &alen);
	assert_int_equal(alen, len);
	assert_memory_equal(after, data, len);
	free(after);
	free(data);
}

static void
expect_corrupt(struct fixture *fx, const char *body, const char *what)
{
	struct journal_rec *rec;
	char err[512], want[512];

	spew_signed(fx->path, body);
	assert_int_equal(journal_load(fx->dir, "web", &rec, err,
	    sizeof(err)), -1);
	assert_null(rec);
	snprintf(want, sizeof(want), "%s:%s", fx->path, what);
	assert_string_equal(err, want);
}

static void
test_corrupt_content_with_valid_checksum_is_refused(void **state)
{
	struct fixture *fx = *state;

	expect_corrupt(fx, "failoverd-journal 1\nseq=1\nstep=a\nnoequals\n",
	    "4: no '='");
	expect_corrupt(fx, "failoverd-journal 1\nseq=1\nStep=a\n",
	    "3: bad key (must be [a-z0-9_.-]+)");
	expect_corrupt(fx, "failoverd-journal 1\nseq=1\n=a\n",
	    "3: bad key (must be [a-z0-9_.-]+)");
	expect_corrupt(fx, "failoverd-journal 1\nseq=1\nseq=2\n",
	    "3: key 'seq' is reserved");
	expect_corrupt(fx, "failoverd-journal 1\nseq=1\nnote=50%\n",
	    "3: bad escape in value of 'note'");
	expect_corrupt(fx, "failoverd-journal 1\nseq=1\nnote=%4G\n",
	    "3: bad escape in value of 'note'");
	expect_corrupt(fx, "failoverd-journal 1\nseq=1\nnote=a%00b\n",
	    "3: escaped NUL in value of 'note'");
	expect_corrupt(fx, "failoverd-journal 1\nseq=1\nnote=a\tb\n",
	    "3: raw control byte 0x09");
	expect_corrupt(fx, "failoverd-journal 1\nseq=1\na=1\nb=2\na=3\n",
	    "5: duplicate key 'a' (first on line 3)");
	expect_corrupt(fx, "failoverd-journal 2\nseq=1\n",
	    "1: bad header: unsupported version");
	expect_corrupt(fx, "some other file\nseq=1\n", "1: bad header");
	expect_corrupt(fx, "", "1: bad header");
	expect_corrupt(fx, "failoverd-journal 1\n", "2: no seq line");
	expect_corrupt(fx, "failoverd-journal 1\nseq=x\n",
	    "2: bad seq line");
	expect_corrupt(fx, "failoverd-journal 1\nseq=99999999999999999999\n",
	    "2: bad seq line");
	expect_corrupt(fx, "failoverd-journal 1\nstep=a\n",
	    "2: bad seq line");
}

static void
test_data_after_end_line_is_refused(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec;
	char *data, *two, err[512];
	size_t len;

	/* Two journals glued together (a botched copy) are not one. */
	data = saved_awkward(fx, &len);
	two = malloc(2 * len);
	assert_non_null(two);
	memcpy(two, data, len);
	memcpy(two + len, data, len);
	spew(fx->path, two, 2 * len);
	assert_int_equal(journal_load(fx->dir, "web", &rec, err,
	    sizeof(err)), -1);
	free(two);
	free(data);
}

static void
test_stale_tmp_is_ignored_and_removed_by_next_save(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec, *back;
	char err[512];
	struct stat st;

	/* A crash before any rename: only garbage in .tmp, no journal. */
	spew(fx->tmp, "failoverd-journal 1\nseq=9\nstep=ha", 34);
	assert_int_equal(journal_load(fx->dir, "web", &back, err,
	    sizeof(err)), 1);

	rec = awkward_rec();
	assert_int_equal(journal_save(fx->dir, "web", rec, err, sizeof(err)),
	    0);
	assert_int_equal(stat(fx->tmp, &st), -1);

	/* A crash after a good save, mid-way through the next one. */
	spew(fx->tmp, "failoverd-journal 1\nseq=2\nstep=zz\n", 34);
	assert_int_equal(journal_load(fx->dir, "web", &back, err,
	    sizeof(err)), 0);
	assert_awkward(back);
	assert_int_equal(journal_rec_seq(back), 1);
	journal_rec_free(back);

	assert_int_equal(journal_save(fx->dir, "web", rec, err, sizeof(err)),
	    0);
	assert_int_equal(stat(fx->tmp, &st), -1);
	assert_int_equal(errno, ENOENT);
	journal_rec_free(rec);
}

static void
test_sequence_numbers_increase(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec, *back;
	char err[512], other[192];
	unsigned long long want;

	rec = journal_rec_new();
	assert_non_null(rec);
	for (want = 1; want <= 5; want++) {
		assert_int_equal(journal_rec_set_int(rec, "n",
		    (long long)want), 0);
		assert_int_equal(journal_save(fx->dir, "web", rec, err,
		    sizeof(err)), 0);
		assert_int_equal(journal_load(fx->dir, "web", &back, err,
		    sizeof(err)), 0);
		assert_int_equal(journal_rec_seq(back), want);
		journal_rec_free(back);
	}
	/* Services count apart. */
	assert_int_equal(journal_save(fx->dir, "db", rec, err, sizeof(err)),
	    0);
	assert_int_equal(journal_load(fx->dir, "db", &back, err,
	    sizeof(err)), 0);
	assert_int_equal(journal_rec_seq(back), 1);

	/* A loaded record carries its seq: a restore elsewhere goes on. */
	journal_rec_free(back);
	snprintf(other, sizeof(other), "%s/db.journal", fx->dir);
	assert_int_equal(unlink(other), 0);
	assert_int_equal(journal_load(fx->dir, "web", &back, err,
	    sizeof(err)), 0);
	assert_int_equal(journal_save(fx->dir, "db", back, err, sizeof(err)),
	    0);
	journal_rec_free(back);
	assert_int_equal(journal_load(fx->dir, "db", &back, err,
	    sizeof(err)), 0);
	assert_int_equal(journal_rec_seq(back), 6);
	journal_rec_free(back);
	journal_rec_free(rec);
}

static void
test_save_into_missing_directory_names_it(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec;
	char err[512], dir[192], want[512];

	snprintf(dir, sizeof(dir), "%s/no-such-dir", fx->dir);
	rec = awkward_rec();
	assert_int_equal(journal_save(dir, "web", rec, err, sizeof(err)),
	    -1);
	snprintf(want, sizeof(want), "%s: open directory: %s", dir,
	    strerror(ENOENT));
	assert_string_equal(err, want);
	journal_rec_free(rec);
}

/*
 * Root writes anywhere, so the save runs in a child that drops to
 * nobody when the test runs as root.
 */
static void
test_save_into_read_only_directory_names_it(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec, *back;
	struct passwd *pw;
	char err[512], want[512];
	int pfd[2], status;
	ssize_t n;
	pid_t pid;

	rec = awkward_rec();
	assert_int_equal(journal_save(fx->dir, "web", rec, err, sizeof(err)),
	    0);
	assert_int_equal(chmod(fx->path, 0644), 0);
	assert_int_equal(chmod(fx->dir, 0555), 0);
	pw = getpwnam("nobody");
	if (geteuid() == 0 && pw == NULL)
		skip();
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		if (geteuid() == 0 && (setgid(pw->pw_gid) == -1 ||
		    setuid(pw->pw_uid) == -1))
			_exit(2);
		memset(err, 0, sizeof(err));
		if (journal_save(fx->dir, "web", rec, err, sizeof(err)) != -1)
			_exit(3);
		if (write(pfd[1], err, strlen(err)) < 0)
			_exit(4);
		_exit(0);
	}
	close(pfd[1]);
	memset(err, 0, sizeof(err));
	n = read(pfd[0], err, sizeof(err) - 1);
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(n > 0);
	snprintf(want, sizeof(want), "%s/web.journal.tmp: create: %s",
	    fx->dir, strerror(EACCES));
	assert_string_equal(err, want);

	/* The previous journal is still there, intact. */
	assert_int_equal(journal_load(fx->dir, "web", &back, err,
	    sizeof(err)), 0);
	assert_awkward(back);
	journal_rec_free(back);
	journal_rec_free(rec);
}

static void
test_bad_service_names_are_refused(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *rec, *back;
	char err[512], name[300];

	rec = awkward_rec();
	assert_int_equal(journal_save(fx->dir, "../web", rec, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "service name '../web'"));
	assert_int_equal(journal_load(fx->dir, "a/b", &back, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "service name 'a/b'"));
	assert_int_equal(journal_save(fx->dir, "..", rec, err, sizeof(err)),
	    -1);
	assert_int_equal(journal_save(fx->dir, "", rec, err, sizeof(err)),
	    -1);
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(journal_save(fx->dir, name, rec, err, sizeof(err)),
	    -1);
	assert_int_equal(journal_save(fx->dir, "Web_1.prod-2", rec, err,
	    sizeof(err)), 0);
	journal_rec_free(rec);
}

static void
test_record_set_replaces_in_place_and_del_removes(void **state)
{
	struct journal_rec *rec;
	const char *k, *v;

	rec = journal_rec_new();
	assert_non_null(rec);
	assert_int_equal(journal_rec_set(rec, "a", "1"), 0);
	assert_int_equal(journal_rec_set(rec, "b", "2"), 0);
	assert_int_equal(journal_rec_set(rec, "c", "3"), 0);
	assert_int_equal(journal_rec_set(rec, "a", "one"), 0);
	assert_int_equal(journal_rec_count(rec), 3);
	journal_rec_at(rec, 0, &k, &v);
	assert_string_equal(k, "a");
	assert_string_equal(v, "one");
	journal_rec_del(rec, "b");
	journal_rec_del(rec, "absent");
	assert_int_equal(journal_rec_count(rec), 2);
	assert_null(journal_rec_get(rec, "b"));
	journal_rec_at(rec, 1, &k, &v);
	assert_string_equal(k, "c");
	assert_string_equal(journal_rec_get(rec, "c"), "3");
	journal_rec_at(rec, 2, &k, &v);
	assert_null(k);
	journal_rec_free(rec);
}

static void
test_record_refuses_bad_keys(void **state)
{
	struct journal_rec *rec;

	rec = journal_rec_new();
	assert_non_null(rec);
	assert_int_equal(journal_rec_set(rec, "", "x"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(journal_rec_set(rec, "Step", "x"), -1);
	assert_int_equal(journal_rec_set(rec, "a=b", "x"), -1);
	assert_int_equal(journal_rec_set(rec, "a b", "x"), -1);
	assert_int_equal(journal_rec_set(rec, "seq", "x"), -1);
	assert_int_equal(journal_rec_set(rec, "a\n", "x"), -1);
	assert_int_equal(journal_rec_count(rec), 0);
	journal_rec_free(rec);
}

static void
test_record_ints(void **state)
{
	struct journal_rec *rec;
	long long n;
	char err[256];

	rec = journal_rec_new();
	assert_non_null(rec);
	assert_int_equal(journal_rec_set_int(rec, "big", INT64_MAX), 0);
	assert_int_equal(journal_rec_set_int(rec, "neg", -42), 0);
	assert_int_equal(journal_rec_get_int(rec, "big", &n, err,
	    sizeof(err)), 0);
	assert_true(n == INT64_MAX);
	assert_int_equal(journal_rec_get_int(rec, "neg", &n, err,
	    sizeof(err)), 0);
	assert_true(n == -42);
	assert_int_equal(journal_rec_get_int(rec, "absent", &n, err,
	    sizeof(err)), 1);
	assert_int_equal(journal_rec_set(rec, "step", "12x"), 0);
	assert_int_equal(journal_rec_get_int(rec, "step", &n, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "key 'step': bad number '12x'");
	assert_int_equal(journal_rec_set(rec, "step", " 12"), 0);
	assert_int_equal(journal_rec_get_int(rec, "step", &n, err,
	    sizeof(err)), -1);
	assert_int_equal(journal_rec_set(rec, "step", ""), 0);
	assert_int_equal(journal_rec_get_int(rec, "step", &n, err,
	    sizeof(err)), -1);
	assert_int_equal(journal_rec_set(rec, "step",
	    "99999999999999999999"), 0);
	assert_int_equal(journal_rec_get_int(rec, "step", &n, err,
	    sizeof(err)), -1);
	journal_rec_free(rec);
}

static void
test_parse_of_format_is_identity(void **state)
{
	struct journal_rec *rec, *back;
	struct buf b;
	char err[256];

	rec = awkward_rec();
	buf_init(&b);
	assert_int_equal(journal_format(rec, 77, &b), 0);
	assert_int_equal(journal_parse(b.data, b.len, "mem", &back, err,
	    sizeof(err)), 0);
	assert_awkward(back);
	assert_int_equal(journal_rec_seq(back), 77);
	journal_rec_free(back);
	journal_rec_free(rec);
	buf_free(&b);
}

/*
 * The child side of the crash hook test, in a fresh process (exec of
 * this program) so that no save of an earlier test counts.
 */
static int
crash_child(const char *dir)
{
	struct journal_rec *rec;
	struct rlimit rl = { 0, 0 };
	char err[512];

	/* Keep the expected abort from leaving a core file. */
	setrlimit(RLIMIT_CORE, &rl);
	rec = awkward_rec();
	if (journal_save(dir, "web", rec, err, sizeof(err)) ||
	    journal_save(dir, "db", rec, err, sizeof(err)))
		return 2;
	journal_save(dir, "web", rec, err, sizeof(err));
	journal_rec_free(rec);
	return 0;
}

/* The issue 9 hook: abort right after the k-th save, counted globally. */
static void
test_crash_hook_aborts_after_kth_save(void **state)
{
	struct fixture *fx = *state;
	struct journal_rec *back;
	char err[512];
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv(JOURNAL_CRASH_ENV, "3", 1);
		execl("/proc/self/exe", "test_journal", "--crash-child",
		    fx->dir, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status))
		fail_msg("child exited %d instead of aborting",
		    WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	/* The third write (web's second) was complete before the abort. */
	assert_int_equal(journal_load(fx->dir, "web", &back, err,
	    sizeof(err)), 0);
	assert_int_equal(journal_rec_seq(back), 2);
	journal_rec_free(back);
	assert_int_equal(journal_load(fx->dir, "db", &back, err,
	    sizeof(err)), 0);
	assert_int_equal(journal_rec_seq(back), 1);
	journal_rec_free(back);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_round_trip_keeps_awkward_values_and_order),
		T(test_file_is_readable_text_with_escapes),
		T(test_missing_journal_means_fresh_service),
		T(test_load_from_missing_directory_is_an_error),
		T(test_truncated_at_every_byte_is_refused),
		T(test_truncated_error_names_line),
		T(test_flipped_byte_is_a_checksum_mismatch),
		T(test_failed_load_leaves_the_file_alone),
		T(test_corrupt_content_with_valid_checksum_is_refused),
		T(test_data_after_end_line_is_refused),
		T(test_stale_tmp_is_ignored_and_removed_by_next_save),
		T(test_sequence_numbers_increase),
		T(test_save_into_missing_directory_names_it),
		T(test_save_into_read_only_directory_names_it),
		T(test_bad_service_names_are_refused),
		T(test_record_set_replaces_in_place_and_del_removes),
		T(test_record_refuses_bad_keys),
		T(test_record_ints),
		T(test_parse_of_format_is_identity),
		T(test_crash_hook_aborts_after_kth_save),
#undef T
	};

	if (argc == 3 && strcmp(argv[1], "--crash-child") == 0)
		return crash_child(argv[2]);
	/* The hook must never fire in the other tests. */
	unsetenv(JOURNAL_CRASH_ENV);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
