/*
 * failoverctl: the on-call person's handle on failoverd. It sends one
 * request over the control socket and prints the reply; the daemon does
 * the formatting (text or --json), so the two never disagree.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failoverd/buf.h"
#include "failoverd/commands.h"
#include "failoverd/control.h"
#include "failoverd/paths.h"

#define CTL_DEFAULT_SOCKET	FOD_PATH_CONTROL_SOCKET
#define CTL_TIMEOUT_SEC		60

static void
usage(FILE *fp)
{
	struct buf cmds;

	buf_init(&cmds);
	command_usage(&cmds);
	fprintf(fp,
	    "usage: failoverctl [-s socket] [--json] command [args]\n"
	    "commands:\n"
	    "%s"
	    "options:\n"
	    "  -s, --socket PATH  control socket (default %s,\n"
	    "                     or $FAILOVERD_SOCKET)\n"
	    "  -j, --json         machine-readable output\n"
	    "  -y, --yes          do not ask for confirmation\n"
	    "  -V, --version      print the version and exit\n",
	    buf_str(&cmds), CTL_DEFAULT_SOCKET);
	buf_free(&cmds);
}

static int
ctl_connect(const char *path)
{
	struct sockaddr_un	sun;
	struct timeval		tv = { CTL_TIMEOUT_SEC, 0 };
	int			fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int
ctl_write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * A follower's reply never ends: past the status line, each chunk is
 * printed as it comes, with no timeout, until the daemon closes or the
 * person interrupts. 0 once the status line was handled.
 */
static int
ctl_stream(int fd, struct buf *reply, const char *chunk, size_t n)
{
	const char *nl;

	if (reply->len > 0 && strncmp(reply->data, "OK\n", 3) == 0) {
		fwrite(chunk, 1, n, stdout);
		fflush(stdout);
		return 0;
	}
	buf_append(reply, chunk, n);
	nl = memchr(reply->data, '\n', reply->len);
	if (nl == NULL || strncmp(reply->data, "OK\n", 3) != 0)
		return 0;
	/* Status line in: no timeout from here on. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ 0, 0 },
	    sizeof(struct timeval));
	fwrite(reply->data + 3, 1, reply->len - 3, stdout);
	fflush(stdout);
	reply->len = 3;
	reply->data[3] = '\0';
	return 0;
}

/*
 * Sends one request and reads the whole reply (or, to follow, prints it
 * as it comes); -1 after saying why.
 */
static int
ctl_exchange(const char *path, const struct buf *req, struct buf *reply,
    int follow)
{
	char	chunk[4096];
	ssize_t	n;
	int	fd;

	fd = ctl_connect(path);
	if (fd == -1) {
		fprintf(stderr, "failoverctl: cannot reach the daemon at %s: "
		    "%s\n(is failoverd running? try: systemctl status "
		    "failoverd; another socket: -s PATH)\n", path,
		    strerror(errno));
		return -1;
	}
	if (ctl_write_all(fd, req->data, req->len) == -1) {
		fprintf(stderr, "failoverctl: sending to %s: %s\n", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fprintf(stderr, "failoverctl: reading from %s: %s\n",
			    path, errno == EAGAIN ? "no reply in time" :
			    strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		if (follow)
			ctl_stream(fd, reply, chunk, (size_t)n);
		else
			buf_append(reply, chunk, (size_t)n);
	}
	close(fd);
	return 0;
}

/*
 * A failover stops the production instance: on a terminal, a person
 * confirms it; scripts pass --yes (without a terminal it is refused, so
 * a forgotten flag never acts silently).
 */
static int
ctl_confirm(const struct command *cmd, const char *service)
{
	char line[64];

	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "failoverctl: %s %s needs --yes when "
		    "not asked on a terminal\n", cmd->name, service);
		return 0;
	}
	printf("%s service %s now? %s\n", cmd->confirm, service,
	    cmd->consequence);
	printf("Type 'yes' to go on: ");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	line[strcspn(line, "\r\n")] = '\0';
	return strcmp(line, "yes") == 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket",	required_argument,	NULL, 's' },
		{ "json",	no_argument,		NULL, 'j' },
		{ "yes",	no_argument,		NULL, 'y' },
		{ "version",	no_argument,		NULL, 'V' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	const struct command	*cmd;
	struct buf		 req, reply;
	const char		*path, *body;
	int			 ch, i, rc, json = 0, yes = 0, follow;

	path = getenv("FAILOVERD_SOCKET");
	if (path == NULL || *path == '\0')
		path = CTL_DEFAULT_SOCKET;
	for (;;) {
		ch = getopt_long(argc, argv, "+s:jyVh", longopts, NULL);
		if (ch == -1)
			break;
		switch (ch) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'y':
			yes = 1;
			break;
		case 'V':
			printf("failoverctl %s\n", FOD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind == argc) {
		usage(stderr);
		return 2;
	}
	/*
	 * A command this table lacks still goes to the daemon, which has
	 * the last word (and says what it serves).
	 */
	/*
	 * --yes after the command is what people type too (the man page's
	 * examples did): it is failoverctl's, never sent to the daemon.
	 */
	for (i = optind + 1; i < argc; i++)
		if (strcmp(argv[i], "--yes") == 0 || strcmp(argv[i], "-y") == 0)
			yes = 1;
	cmd = command_find(argv[optind]);
	follow = cmd != NULL && command_follows(cmd, argc - optind,
	    argv + optind);
	/* switch --finish terminates an instance: confirmed as well. */
	if (cmd != NULL && cmd->confirm != NULL && optind + 1 < argc &&
	    !yes && !ctl_confirm(cmd, argv[optind + 1])) {
		fprintf(stderr, "failoverctl: not confirmed; nothing done\n");
		return 1;
	}
	buf_init(&req);
	buf_init(&reply);
	rc = 2;
	for (i = optind; i < argc; i++) {
		if (i > optind && (strcmp(argv[i], "--yes") == 0 ||
		    strcmp(argv[i], "-y") == 0))
			continue;
		if (argv[i][0] == '\0' || strpbrk(argv[i], " \t\n") != NULL) {
			fprintf(stderr, "failoverctl: argument '%s' may not be "
			    "empty or contain spaces\n", argv[i]);
			goto done;
		}
		buf_printf(&req, "%s%s", req.len > 0 ? " " : "", argv[i]);
	}
	if (json)
		buf_puts(&req, " --json");
	buf_puts(&req, "\n");
	if (req.len > CONTROL_MAX_REQUEST - 1) {
		fprintf(stderr, "failoverctl: request too long\n");
		goto done;
	}
	rc = 3;
	if (ctl_exchange(path, &req, &reply, follow) == -1)
		goto done;
	body = buf_str(&reply);
	if (strncmp(body, "OK\n", 3) == 0) {
		fputs(body + 3, stdout);
		rc = 0;
	} else if (strncmp(body, "ERR ", 4) == 0) {
		fprintf(stderr, "failoverctl: %s", body + 4);
		rc = 1;
	} else
		fprintf(stderr, "failoverctl: the daemon closed the "
		    "connection without a reply\n");
done:
	buf_free(&req);
	buf_free(&reply);
	return rc;
}
