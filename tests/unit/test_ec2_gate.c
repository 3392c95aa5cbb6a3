/*
 * ec2_set_gate: a call that changes the account is asked of the gate
 * before it goes, and refused it never reaches the wire; a Describe is
 * not gated (a cluster's followers read EC2 too). The "EC2" is a
 * loopback socket that only counts the connections made to it.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "failoverd/conf.h"
#include "failoverd/creds.h"
#include "failoverd/curlev.h"
#include "failoverd/ec2.h"

struct world {
	struct ev_loop		*loop;
	struct curlev		*cl;
	struct creds_provider	*creds;
	struct ec2_client	*ec2;
	int			 lfd;
	int			 gate_open;
	int			 gate_asked;
	int			 done;
	enum ec2_status		 status;
	char			 error[512];
};

static int
gate(void *arg, char *why, size_t len)
{
	struct world *w = arg;

	w->gate_asked++;
	if (!w->gate_open)
		snprintf(why, len, "this member (b) is not the leader");
	return w->gate_open;
}

static void
on_done(struct ec2_result *res, void *arg)
{
	struct world *w = arg;

	w->done = 1;
	w->status = ec2_result_status(res);
	snprintf(w->error, sizeof(w->error), "%s", ec2_result_error(res) ?
	    ec2_result_error(res) : "");
	ec2_result_free(res);
}

static int
connections(struct world *w)
{
	int fd, n = 0;

	while ((fd = accept(w->lfd, NULL, NULL)) != -1) {
		close(fd);
		n++;
	}
	return n;
}

static void
run(struct world *w, enum ec2_action a)
{
	struct ec2_request *req = ec2_request_new(a);

	assert_non_null(req);
	assert_int_equal(ec2_request_add(req, "InstanceId.1", "i-0abc"), 0);
	w->done = 0;
	assert_non_null(ec2_call(w->ec2, req, 1.5, on_done, w));
	while (!w->done)
		ev_run(w->loop, EVRUN_ONCE);
}

static int
setup(void **state)
{
	static struct world	w;
	struct sockaddr_in	sin;
	socklen_t		slen = sizeof(sin);
	struct aws_conf		ac;
	char			url[64], err[256];

	memset(&w, 0, sizeof(w));
	setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	unsetenv("AWS_SESSION_TOKEN");
	w.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(w.lfd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(w.lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(listen(w.lfd, 16), 0);
	assert_int_equal(getsockname(w.lfd, (struct sockaddr *)&sin, &slen),
	    0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d",
	    ntohs(sin.sin_port));
	memset(&ac, 0, sizeof(ac));
	ac.region = "us-east-1";
	ac.endpoint = url;
	ac.call_timeout = 1.5;
	w.loop = ev_loop_new(EVFLAG_AUTO);
	w.cl = curlev_new(w.loop);
	w.creds = creds_provider_new(w.loop, w.cl, &ac);
	assert_non_null(w.creds);
	w.ec2 = ec2_client_new(w.loop, w.cl, w.creds, &ac, err,
	    sizeof(err));
	assert_non_null(w.ec2);
	ec2_set_gate(w.ec2, gate, &w);
	*state = &w;
	return 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;

	ec2_client_free(w->ec2);
	creds_provider_free(w->creds);
	curlev_free(w->cl);
	ev_loop_destroy(w->loop);
	close(w->lfd);
	return 0;
}

static void
test_gate_refuses_mutating(void **state)
{
	struct world *w = *state;

	w->gate_open = 0;
	w->gate_asked = 0;
	run(w, EC2_STOP_INSTANCES);
	assert_int_equal(w->status, EC2_ERR_GATED);
	assert_non_null(strstr(w->error, "not the cluster's leader: this "
	    "member (b) is not the leader"));
	assert_int_equal(w->gate_asked, 1);
	assert_int_equal(connections(w), 0);	/* never sent */
}

static void
test_gate_passes_reads(void **state)
{
	struct world *w = *state;

	w->gate_open = 0;
	w->gate_asked = 0;
	run(w, EC2_DESCRIBE_INSTANCES);
	assert_int_not_equal(w->status, EC2_ERR_GATED);
	assert_int_equal(w->gate_asked, 0);
	assert_true(connections(w) >= 1);
}

static void
test_gate_open_sends(void **state)
{
	struct world *w = *state;

	w->gate_open = 1;
	w->gate_asked = 0;
	run(w, EC2_STOP_INSTANCES);
	assert_int_not_equal(w->status, EC2_ERR_GATED);
	assert_true(w->gate_asked >= 1);
	assert_true(connections(w) >= 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gate_refuses_mutating),
		cmocka_unit_test(test_gate_passes_reads),
		cmocka_unit_test(test_gate_open_sends),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
