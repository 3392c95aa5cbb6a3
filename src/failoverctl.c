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
#include "failoverd/control.h"
#include "failoverd/paths.h"

#define CTL_DEFAULT_SOCKET	FOD_PATH_CONTROL_SOCKET
#define CTL_TIMEOUT_SEC		60

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: failoverctl [-s socket] [--json] command [args]\n"
	    "commands:\n"
	    "  status [SERVICE]   services, probes, current instance and AZ,\n"
	    "                     failovers in progress with their step\n"
	    "  history [SERVICE]  past failovers with their timings\n"
	    "  failover SERVICE   replace SERVICE's instance now (asks for\n"
	    "                     confirmation on a terminal unless --yes)\n"
	    "  pause SERVICE      maintenance: probes run and alert, no\n"
	    "                     automatic failover\n"
	    "  resume SERVICE     automatic failover again; also releases a\n"
	    "                     held or failed service\n"
	    "  switch SERVICE --ami AMI\n"
	    "                     release switch: a new instance from AMI,\n"
	    "                     checked on its private address, then\n"
	    "                     volumes and EIP move; the old one is\n"
	    "                     stopped and kept (asks unless --yes)\n"
	    "  switch SERVICE --finish\n"
	    "                     terminate the instance the switch kept\n"
	    "  rollback SERVICE   move back to the kept instance\n"
	    "  snapshot SERVICE   snapshot SERVICE's data volumes now\n"
	    "  snapshots SERVICE  its snapshots, the last and next run\n"
	    "  preflight SERVICE [--result]\n"
	    "                     prove a failover would work (dry runs);\n"
	    "                     --result shows the last finished one\n"
	    "  bake SERVICE [--no-reboot] [--use]\n"
	    "                     AMI of the current instance; --use makes\n"
	    "                     it the replacement AMI\n"
	    "  reload             re-read failoverd.conf (like SIGHUP)\n"
	    "  ping               check that the daemon answers\n"
	    "options:\n"
	    "  -s, --socket PATH  control socket (default %s,\n"
	    "                     or $FAILOVERD_SOCKET)\n"
	    "  -j, --json         machine-readable output\n"
	    "  -y, --yes          do not ask for confirmation\n"
	    "  -V, --version      print the version and exit\n",
	    CTL_DEFAULT_SOCKET);
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

/* Sends one request and reads the whole reply; -1 after saying why. */
static int
ctl_exchange(const char *path, const struct buf *req, struct buf *reply)
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
ctl_confirm(const char *cmd, const char *service)
{
	char line[64];

	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "failoverctl: %s %s needs --yes when "
		    "not asked on a terminal\n", cmd, service);
		return 0;
	}
	if (strcmp(cmd, "failover") == 0)
		printf("Fail over service %s now? Its instance is stopped "
		    "and replaced.\n", service);
	else
		printf("%s service %s now? Its production instance is "
		    "stopped and its volumes and Elastic IP move.\n",
		    strcmp(cmd, "switch") == 0 ? "Switch" : "Roll back",
		    service);
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
	struct buf	 req, reply;
	const char	*path, *body;
	int		 ch, i, rc, json = 0, yes = 0;

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
	/* switch --finish terminates an instance: confirmed as well. */
	if ((strcmp(argv[optind], "failover") == 0 ||
	    strcmp(argv[optind], "rollback") == 0 ||
	    strcmp(argv[optind], "switch") == 0) &&
	    optind + 1 < argc && !yes &&
	    !ctl_confirm(argv[optind], argv[optind + 1])) {
		fprintf(stderr, "failoverctl: not confirmed; nothing done\n");
		return 1;
	}
	buf_init(&req);
	buf_init(&reply);
	rc = 2;
	for (i = optind; i < argc; i++) {
		if (argv[i][0] == '\0' || strpbrk(argv[i], " \t\n") != NULL) {
			fprintf(stderr, "failoverctl: argument '%s' may not be "
			    "empty or contain spaces\n", argv[i]);
			goto done;
		}
		buf_printf(&req, "%s%s", i > optind ? " " : "", argv[i]);
	}
	if (json)
		buf_puts(&req, " --json");
	buf_puts(&req, "\n");
	if (req.len > CONTROL_MAX_REQUEST - 1) {
		fprintf(stderr, "failoverctl: request too long\n");
		goto done;
	}
	rc = 3;
	if (ctl_exchange(path, &req, &reply) == -1)
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
