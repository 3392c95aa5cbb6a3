/*
 * bench_target: the benchmarks' HTTP targets, one epoll process listening
 * on many loopback addresses (bind() takes any 127/8 address on Linux).
 * A Python server would compete with failoverd for the 2 cores at 10,000
 * requests a second and blur the figures; this one costs a few µs each.
 *
 * Each address has a mode: "ok" answers every request with 200 and
 * closes; "hang" accepts and never answers (a blackholed service: the
 * client's timeout has to end it); "refuse" closes the listener.
 *
 * Commands on stdin, one a line; replies on stdout:
 *   L ADDR MODE   listen on ADDR:PORT (no reply)
 *   M ADDR MODE   change a mode; replies "T <CLOCK_REALTIME seconds>"
 *                 taken when the change took effect
 *   Y             replies "ready" (after the L lines before it)
 *   S             replies "served <n> hung <n>"
 * EOF on stdin ends it.
 *
 * usage: bench_target PORT
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTEN	65536

enum mode { MODE_OK, MODE_HANG, MODE_REFUSE };

struct listener {
	struct in_addr	 addr;
	int		 fd;
	enum mode	 mode;
};

static struct listener	 lst[MAX_LISTEN];
static int		 nlst;
static int		 port;
static int		 ep;
static unsigned long	 served, hung;

/* epoll data: listeners are tagged, connections are their fd. */
#define TAG_LISTENER	(1ULL << 40)
#define TAG_STDIN	(1ULL << 41)

static const char reply[] =
    "HTTP/1.0 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 3\r\n"
    "Connection: close\r\n"
    "\r\n"
    "ok\n";

static int
target_listen(struct listener *l)
{
	struct sockaddr_in	sin;
	struct epoll_event	ev;
	int			one = 1;

	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (l->fd == -1)
		return -1;
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr = l->addr;
	if (bind(l->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(l->fd, 512) == -1) {
		fprintf(stderr, "bench_target: %s:%d: %s\n",
		    inet_ntoa(l->addr), port, strerror(errno));
		close(l->fd);
		l->fd = -1;
		return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = TAG_LISTENER | (uint64_t)(l - lst);
	epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &ev);
	return 0;
}

static struct listener *
target_find(struct in_addr a)
{
	int i;

	for (i = 0; i < nlst; i++)
		if (lst[i].addr.s_addr == a.s_addr)
			return &lst[i];
	return NULL;
}

static enum mode
target_mode(const char *s)
{
	if (strcmp(s, "hang") == 0)
		return MODE_HANG;
	if (strcmp(s, "refuse") == 0)
		return MODE_REFUSE;
	return MODE_OK;
}

static void
target_accept(struct listener *l)
{
	struct epoll_event	ev;
	int			fd;

	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1)
			return;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		/* A hung connection is only watched for its client's close. */
		ev.data.u64 = (uint64_t)fd | (l->mode == MODE_HANG ?
		    (1ULL << 32) : 0);
		if (l->mode == MODE_HANG)
			hung++;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
}

static void
target_conn(uint64_t data)
{
	int	fd = (int)(data & 0xffffffffu);
	int	hanging = (data >> 32) & 1;
	char	buf[4096];
	ssize_t	n;

	n = recv(fd, buf, sizeof(buf), 0);
	if (n == -1 && errno == EAGAIN)
		return;
	if (n <= 0 || hanging) {
		if (n <= 0)
			close(fd);
		return;
	}
	/* One segment carries the whole request on loopback. */
	if (send(fd, reply, sizeof(reply) - 1, MSG_NOSIGNAL) > 0)
		served++;
	close(fd);
}

static void
target_command(char *line)
{
	char		 op, addr[64], mode[16];
	struct in_addr	 a;
	struct listener	*l;
	struct timespec	 ts;

	mode[0] = '\0';
	if (sscanf(line, " %c %63s %15s", &op, addr, mode) < 1)
		return;
	switch (op) {
	case 'L':
		if (nlst == MAX_LISTEN || inet_pton(AF_INET, addr, &a) != 1)
			break;
		l = &lst[nlst++];
		l->addr = a;
		l->mode = target_mode(mode);
		if (l->mode != MODE_REFUSE && target_listen(l) == -1)
			exit(1);
		break;
	case 'M':
		if (inet_pton(AF_INET, addr, &a) != 1)
			break;
		l = target_find(a);
		if (l == NULL)
			break;
		if (l->mode == MODE_REFUSE && target_mode(mode) != MODE_REFUSE)
			target_listen(l);
		else if (target_mode(mode) == MODE_REFUSE && l->fd != -1) {
			close(l->fd);
			l->fd = -1;
		}
		l->mode = target_mode(mode);
		clock_gettime(CLOCK_REALTIME, &ts);
		printf("T %lld.%09ld\n", (long long)ts.tv_sec, ts.tv_nsec);
		break;
	case 'Y':
		printf("ready\n");
		break;
	case 'S':
		printf("served %lu hung %lu\n", served, hung);
		break;
	}
	fflush(stdout);
}

static void
target_stdin(void)
{
	static char	buf[1 << 16];
	static size_t	len;
	ssize_t		n;
	char		*nl, *start;

	n = read(0, buf + len, sizeof(buf) - 1 - len);
	if (n <= 0)
		exit(0);
	len += n;
	buf[len] = '\0';
	start = buf;
	for (;;) {
		nl = strchr(start, '\n');
		if (nl == NULL)
			break;
		*nl = '\0';
		target_command(start);
		start = nl + 1;
	}
	len -= start - buf;
	memmove(buf, start, len);
}

int
main(int argc, char **argv)
{
	struct epoll_event	evs[256], ev;
	struct rlimit		rl = { 200000, 200000 };
	int			n, i;

	if (argc != 2) {
		fprintf(stderr, "usage: bench_target PORT\n");
		return 2;
	}
	port = atoi(argv[1]);
	/* One fd per address, plus the connections in flight. */
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = TAG_STDIN;
	epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
	for (;;) {
		n = epoll_wait(ep, evs, 256, -1);
		for (i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64;

			if (d == TAG_STDIN)
				target_stdin();
			else if (d & TAG_LISTENER)
				target_accept(&lst[d & 0xffffffffu]);
			else
				target_conn(d);
		}
	}
}
