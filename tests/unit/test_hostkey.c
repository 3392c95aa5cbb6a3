/*
 * The host key failoverd hands a replacement: the private key file is
 * written by hand in OpenSSH's format, so the test that counts is
 * OpenSSH's own ssh-keygen reading it back (-y) and finding the public
 * key failoverd trusts. A file sshd cannot read means a replacement
 * without the key and a failover that fails at VERIFY.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
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

/* RFC 8032, 7.1, test 1. */
static const unsigned char rfc8032_seed[32] = {
	0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60,
	0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
	0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19,
	0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60
};
static const char rfc8032_pub[] = "ssh-ed25519 "
    "AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea";

static char tmpdir[] = "/tmp/test_hostkey.XXXXXX";

/* ssh-keygen -y on the private key: its first line, or "" */
static void
keygen_y(const struct hostkey *hk, char *out, size_t len)
{
	char	 path[256], cmd[600];
	FILE	*f, *p;

	snprintf(path, sizeof(path), "%s/key", tmpdir);
	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(chmod(path, 0600), 0);
	fputs(hostkey_private_pem(hk), f);
	assert_int_equal(fclose(f), 0);
	snprintf(cmd, sizeof(cmd), "ssh-keygen -y -f %s 2>&1", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	out[0] = '\0';
	if (fgets(out, (int)len, p) == NULL)
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	pclose(p);
	unlink(path);
}

static void
test_known_answer(void **state)
{
	struct hostkey *hk;

	(void)state;
	hk = hostkey_from_seed(rfc8032_seed, "failoverd@web");
	assert_non_null(hk);
	assert_string_equal(hostkey_public_key(hk), rfc8032_pub);
	assert_string_equal(hostkey_public(hk),
	    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz"
	    "2qYjJa8CGmj3B1Ea failoverd@web");
	assert_true(strncmp(hostkey_private_pem(hk),
	    "-----BEGIN OPENSSH PRIVATE KEY-----\n", 36) == 0);
	hostkey_free(hk);
}

static void
test_ssh_keygen_reads_it_back(void **state)
{
	struct hostkey	*hk;
	char		 line[1024];

	(void)state;
	hk = hostkey_from_seed(rfc8032_seed, "failoverd@web");
	assert_non_null(hk);
	keygen_y(hk, line, sizeof(line));
	/* ssh-keygen -y prints the comment of the file too (9.x). */
	assert_true(strncmp(line, rfc8032_pub, strlen(rfc8032_pub)) == 0);
	hostkey_free(hk);
}

static void
test_every_padding_length_reads_back(void **state)
{
	struct hostkey	*hk;
	unsigned char	 seed[32];
	char		 comment[32], line[1024];
	size_t		 n;

	(void)state;
	/* The private section is padded to 8: each remainder once. */
	for (n = 0; n < 8; n++) {
		memset(seed, (int)(0x11 * (n + 1)), sizeof(seed));
		memset(comment, 'c', n);
		comment[n] = '\0';
		hk = hostkey_from_seed(seed, comment);
		assert_non_null(hk);
		keygen_y(hk, line, sizeof(line));
		assert_true(strncmp(line, hostkey_public_key(hk),
		    strlen(hostkey_public_key(hk))) == 0);
		hostkey_free(hk);
	}
}

static void
test_same_seed_same_file(void **state)
{
	struct hostkey *a, *b;

	(void)state;
	a = hostkey_from_seed(rfc8032_seed, "x");
	b = hostkey_from_seed(rfc8032_seed, "x");
	assert_non_null(a);
	assert_non_null(b);
	/* A resumed launch must send the same user data. */
	assert_string_equal(hostkey_private_pem(a), hostkey_private_pem(b));
	hostkey_free(a);
	hostkey_free(b);
}

static void
test_launch_keys_follow_the_id(void **state)
{
	struct hostkey	*a, *b, *c;
	struct stat	 st;
	char		 path[256], err[256], pub[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/hostkey.secret", tmpdir);
	a = hostkey_for_launch(path, "failover-web-1", "c", err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, HOSTKEY_SEED_LEN);
	b = hostkey_for_launch(path, "failover-web-1", "c", err, sizeof(err));
	c = hostkey_for_launch(path, "failover-web-2", "c", err, sizeof(err));
	assert_non_null(b);
	assert_non_null(c);
	assert_string_equal(hostkey_public(a), hostkey_public(b));
	assert_string_not_equal(hostkey_public(a), hostkey_public(c));
	snprintf(pub, sizeof(pub), "%s", hostkey_public(a));
	hostkey_free(a);
	hostkey_free(b);
	hostkey_free(c);
	/* A new secret (a new state directory): other keys. */
	unlink(path);
	a = hostkey_for_launch(path, "failover-web-1", "c", err, sizeof(err));
	assert_non_null(a);
	assert_string_not_equal(hostkey_public(a), pub);
	hostkey_free(a);
	unlink(path);
}

static void
test_bad_secret_is_an_error(void **state)
{
	struct hostkey	*hk;
	char		 path[256], err[256];
	FILE		*f;

	(void)state;
	snprintf(path, sizeof(path), "%s/short.secret", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("short", f);
	fclose(f);
	hk = hostkey_for_launch(path, "id", "c", err, sizeof(err));
	assert_null(hk);
	assert_non_null(strstr(err, path));
	unlink(path);
}

/* Writes n bytes of c to dir/name (its path in path), mode 0600. */
static void
write_secret(char *path, size_t len, const char *dir, const char *name,
    int c, size_t n)
{
	FILE	*f;
	size_t	 i;

	snprintf(path, len, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	for (i = 0; i < n; i++)
		fputc(c, f);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
}

/*
 * cluster.host_key_secret: two members, each with its own copy of the
 * one file, give a failover's replacement the same key, so that one
 * resuming another's launch sends the same user data and trusts the key
 * the replacement got; another failover id, another key.
 */
static void
test_members_sharing_a_secret_agree(void **state)
{
	struct hostkey	*a, *b, *c;
	char		 pa[256], pb[256], err[256];

	(void)state;
	write_secret(pa, sizeof(pa), tmpdir, "member-a.secret", 0x5a,
	    HOSTKEY_SEED_LEN);
	write_secret(pb, sizeof(pb), tmpdir, "member-b.secret", 0x5a,
	    HOSTKEY_SEED_LEN);
	a = hostkey_for_launch_shared(pa, "failover-web-1", "c", err,
	    sizeof(err));
	b = hostkey_for_launch_shared(pb, "failover-web-1", "c", err,
	    sizeof(err));
	c = hostkey_for_launch_shared(pb, "failover-web-2", "c", err,
	    sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_string_equal(hostkey_private_pem(a), hostkey_private_pem(b));
	assert_string_equal(hostkey_public(a), hostkey_public(b));
	assert_string_not_equal(hostkey_public(a), hostkey_public(c));
	hostkey_free(a);
	hostkey_free(b);
	hostkey_free(c);
	unlink(pa);
	unlink(pb);
}

/* The shared secret is never made: a member with its own would hand out
 * keys the others do not know. Nor is one of the wrong size used. */
static void
test_shared_secret_never_made(void **state)
{
	struct hostkey	*hk;
	struct stat	 st;
	char		 path[256], err[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/missing.secret", tmpdir);
	hk = hostkey_for_launch_shared(path, "id", "c", err, sizeof(err));
	assert_null(hk);
	assert_non_null(strstr(err, path));
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(errno, ENOENT);

	write_secret(path, sizeof(path), tmpdir, "long.secret", 0x5a,
	    HOSTKEY_SEED_LEN + 1);
	hk = hostkey_for_launch_shared(path, "id", "c", err, sizeof(err));
	assert_null(hk);
	assert_non_null(strstr(err, path));
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answer),
		cmocka_unit_test(test_ssh_keygen_reads_it_back),
		cmocka_unit_test(test_every_padding_length_reads_back),
		cmocka_unit_test(test_same_seed_same_file),
		cmocka_unit_test(test_launch_keys_follow_the_id),
		cmocka_unit_test(test_bad_secret_is_an_error),
		cmocka_unit_test(test_members_sharing_a_secret_agree),
		cmocka_unit_test(test_shared_secret_never_made),
	};
	int rc;

	if (mkdtemp(tmpdir) == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(tmpdir);
	return rc;
}
