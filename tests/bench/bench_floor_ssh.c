/*
 * bench_floor_ssh: the floor of an SSH check, a minimal blocking libssh2
 * client doing the steps failoverd's SSH probe does: connect, handshake,
 * host key checked against known_hosts, public key auth, exec a command,
 * read to EOF, exit status, disconnect. Benchmark 2 puts failoverd's CPU
 * per SSH probe beside this one's, against the same sshd in the same run.
 *
 * usage: bench_floor_ssh ADDR PORT USER KEYFILE KNOWN_HOSTS COMMAND COUNT
 * Prints "checks <n> cpu_us <total> user_us <u> sys_us <s> wall_s <w>
 * failures <f>".
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libssh2.h>

struct floor_args {
	const char		*user, *key, *known_hosts, *command;
	struct sockaddr_in	 sin;
	int			 port;
	const char		*host;
};

static double
tv_us(struct timeval tv)
{
	return tv.tv_sec * 1e6 + tv.tv_usec;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One check; 0 when it passed. */
static int
floor_check(const struct floor_args *a)
{
	LIBSSH2_SESSION		*s = NULL;
	LIBSSH2_CHANNEL		*ch = NULL;
	LIBSSH2_KNOWNHOSTS	*kh = NULL;
	const char		*key;
	size_t			 keylen;
	int			 fd, type, rc = -1;
	char			 buf[4096];
	ssize_t			 n;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (connect(fd, (const struct sockaddr *)&a->sin,
	    sizeof(a->sin)) == -1)
		goto fail;
	s = libssh2_session_init();
	if (s == NULL || libssh2_session_handshake(s, fd) != 0)
		goto fail;
	key = libssh2_session_hostkey(s, &keylen, &type);
	kh = libssh2_knownhost_init(s);
	if (key == NULL || kh == NULL ||
	    libssh2_knownhost_readfile(kh, a->known_hosts,
	    LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0)
		goto fail;
	if (libssh2_knownhost_checkp(kh, a->host, a->port, key, keylen,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
	    LIBSSH2_KNOWNHOST_KEY_ED25519, NULL) !=
	    LIBSSH2_KNOWNHOST_CHECK_MATCH)
		goto fail;
	if (libssh2_userauth_publickey_fromfile_ex(s, a->user,
	    strlen(a->user), NULL, a->key, NULL) != 0)
		goto fail;
	ch = libssh2_channel_open_session(s);
	if (ch == NULL || libssh2_channel_exec(ch, a->command) != 0)
		goto fail;
	do
		n = libssh2_channel_read(ch, buf, sizeof(buf));
	while (n > 0);
	libssh2_channel_close(ch);
	libssh2_channel_wait_closed(ch);
	if (libssh2_channel_get_exit_status(ch) == 0)
		rc = 0;
fail:
	if (kh != NULL)
		libssh2_knownhost_free(kh);
	if (ch != NULL)
		libssh2_channel_free(ch);
	if (s != NULL) {
		libssh2_session_disconnect(s, "bench done");
		libssh2_session_free(s);
	}
	close(fd);
	return rc;
}

int
main(int argc, char **argv)
{
	struct floor_args	a;
	struct rusage		r0, r1;
	long			count, i, failures = 0;
	double			t0, t1, user, sys;

	if (argc != 8) {
		fprintf(stderr, "usage: bench_floor_ssh ADDR PORT USER "
		    "KEYFILE KNOWN_HOSTS COMMAND COUNT\n");
		return 2;
	}
	memset(&a, 0, sizeof(a));
	a.host = argv[1];
	a.port = atoi(argv[2]);
	a.user = argv[3];
	a.key = argv[4];
	a.known_hosts = argv[5];
	a.command = argv[6];
	count = atol(argv[7]);
	a.sin.sin_family = AF_INET;
	a.sin.sin_port = htons(a.port);
	if (inet_pton(AF_INET, a.host, &a.sin.sin_addr) != 1)
		return 2;
	libssh2_init(0);
	getrusage(RUSAGE_SELF, &r0);
	t0 = now_s();
	for (i = 0; i < count; i++)
		if (floor_check(&a) != 0)
			failures++;
	t1 = now_s();
	getrusage(RUSAGE_SELF, &r1);
	user = tv_us(r1.ru_utime) - tv_us(r0.ru_utime);
	sys = tv_us(r1.ru_stime) - tv_us(r0.ru_stime);
	printf("checks %ld cpu_us %.0f user_us %.0f sys_us %.0f wall_s %.3f "
	    "failures %ld\n", count, user + sys, user, sys, t1 - t0,
	    failures);
	libssh2_exit();
	return failures == count ? 1 : 0;
}
