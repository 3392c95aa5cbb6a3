/*
 * bench_floor_http: the floor an HTTP check cannot go below, a minimal
 * blocking client doing only socket, connect, send, recv until the
 * server closes, close. Benchmark 1 puts failoverd's CPU per HTTP probe
 * beside this one's CPU per request, against the same targets in the
 * same run.
 *
 * usage: bench_floor_http [-r RATE] PORT REQUESTS ADDR...
 * -r paces the requests at RATE a second (sleeping between them, as a
 * daemon checking at that rate does) instead of back to back.
 * Prints one line: "requests <n> cpu_us <total> user_us <u> sys_us <s>
 * wall_s <w> failures <f>".
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

int
main(int argc, char **argv)
{
	struct sockaddr_in	*sins;
	struct rusage		 r0, r1;
	char			 req[256], buf[4096];
	int			 port, naddr, i, fd, len;
	long			 n, count, failures = 0;
	double			 t0, t1, user, sys, rate = 0, next;
	ssize_t			 got;
	struct timespec		 ts;

	if (argc > 2 && strcmp(argv[1], "-r") == 0) {
		rate = atof(argv[2]);
		argc -= 2;
		argv += 2;
	}
	if (argc < 4) {
		fprintf(stderr, "usage: bench_floor_http [-r RATE] PORT "
		    "REQUESTS ADDR...\n");
		return 2;
	}
	port = atoi(argv[1]);
	count = atol(argv[2]);
	naddr = argc - 3;
	sins = calloc(naddr, sizeof(*sins));
	if (sins == NULL)
		return 1;
	for (i = 0; i < naddr; i++) {
		sins[i].sin_family = AF_INET;
		sins[i].sin_port = htons(port);
		if (inet_pton(AF_INET, argv[3 + i], &sins[i].sin_addr) != 1) {
			fprintf(stderr, "bench_floor_http: bad address %s\n",
			    argv[3 + i]);
			return 2;
		}
	}
	getrusage(RUSAGE_SELF, &r0);
	t0 = now_s();
	next = t0;
	for (n = 0; n < count; n++) {
		struct sockaddr_in *sin = &sins[n % naddr];

		if (rate > 0) {
			next += 1.0 / rate;
			ts.tv_sec = (time_t)next;
			ts.tv_nsec = (long)((next - ts.tv_sec) * 1e9);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
			    NULL);
		}

		/* The request a health check sends, and nothing more. */
		len = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n"
		    "Host: %s\r\nConnection: close\r\n\r\n",
		    argv[3 + n % naddr]);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd == -1 ||
		    connect(fd, (struct sockaddr *)sin, sizeof(*sin)) == -1 ||
		    send(fd, req, len, MSG_NOSIGNAL) != len) {
			failures++;
			if (fd != -1)
				close(fd);
			continue;
		}
		do
			got = recv(fd, buf, sizeof(buf), 0);
		while (got > 0);
		if (got < 0)
			failures++;
		close(fd);
	}
	t1 = now_s();
	getrusage(RUSAGE_SELF, &r1);
	user = tv_us(r1.ru_utime) - tv_us(r0.ru_utime);
	sys = tv_us(r1.ru_stime) - tv_us(r0.ru_stime);
	printf("requests %ld cpu_us %.0f user_us %.0f sys_us %.0f wall_s %.3f "
	    "failures %ld\n", count, user + sys, user, sys, t1 - t0,
	    failures);
	free(sins);
	return 0;
}
