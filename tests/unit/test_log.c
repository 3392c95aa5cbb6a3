/*
 * The log never makes its caller wait: with a syslog reader that reads
 * nothing, every line returns at once; what the socket cannot hold waits
 * in the bounded queue, the rest is dropped and counted; once the reader
 * reads again the loop sends what waited, in order, then the count.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "failoverd/log.h"

#define LINES	3000

static void
test_a_stalled_reader_costs_lines_never_time(void **state)
{
	struct sockaddr_un	 sun;
	struct ev_loop		*loop = ev_default_loop(0);
	char			 dir[] = "/tmp/test_log.XXXXXX";
	char			 buf[8192], prefix[64];
	unsigned long		 dropped = 0;
	long			 last = -1, n;
	int			 fd, i, got = 0, idle = 0;
	ssize_t			 len;
	char			*p;

	assert_non_null(mkdtemp(dir));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/log", dir);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_true(fd != -1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	setenv("FAILOVERD_LOG_SOCKET", sun.sun_path, 1);
	log_init("test_log", LOG_USER, 0);
	log_set_loop(loop);

	/* Nobody reads: none of these may wait (the test would hang). */
	for (i = 0; i < LINES; i++)
		log_info("line %d", i);

	/* RFC 3164 as syslog(3) frames it: <user.info>stamp ident[pid]: */
	snprintf(prefix, sizeof(prefix), " test_log[%ld]: ", (long)getpid());
	while (dropped == 0 && idle < 1000) {
		ev_run(loop, EVRUN_NOWAIT);
		len = recv(fd, buf, sizeof(buf) - 1, 0);
		if (len == -1) {
			assert_int_equal(errno, EAGAIN);
			idle++;
			usleep(1000);
			continue;
		}
		buf[len] = '\0';
		p = strstr(buf, prefix);
		assert_non_null(p);
		p += strlen(prefix);
		if (sscanf(p, "line %ld", &n) == 1) {
			assert_int_equal(strncmp(buf, "<14>", 4), 0);
			/* In order, never one twice. */
			assert_true(n > last);
			last = n;
			got++;
			continue;
		}
		assert_int_equal(strncmp(buf, "<12>", 4), 0);
		assert_int_equal(sscanf(p, "log: %lu lines dropped while the "
		    "log reader was stalled", &dropped), 1);
	}
	assert_true(dropped > 0);
	assert_int_equal(got + dropped, LINES);
	/* The kernel's few datagrams and the queue's 1,000 lines. */
	assert_true(got >= 1000 && got < 1100);
	log_set_loop(NULL);
	close(fd);
	unlink(sun.sun_path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_stalled_reader_costs_lines_never_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
