/*
 * ec2call: a test driver for the AWS client. Runs EC2 actions (or the
 * credential chain) on a libev loop, the way the daemon does, and prints
 * each typed result as one JSON line for tests/e2e/test_aws.py.
 *
 *   ec2call [options] Action [Key=Value ...]
 *   ec2call [options] creds
 *
 *   --deadline S       the call's deadline (default 30)
 *   --dry-run          send DryRun=true
 *   --after-mutation   treat *.NotFound as eventual consistency
 *   --repeat N         run the call N times, one after the other
 *   --parallel N       start N calls at once; each result line carries
 *                      "seq", the call's place in the order of starting
 *   --interval S       pause between repeats (an ev_timer)
 *   --tick S           run an S-second ev_timer beside the calls and
 *                      report how many ticks fired and the worst delay
 *   --region R, --endpoint URL, --profile P, --ca-file F,
 *   --imds-endpoint URL, --rate R, --burst N: the aws.* settings
 *
 * Exit status: 0 when every call ended EC2_OK/EC2_DRY_RUN_OK, 1 if one
 * did not, 2 on usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <ev.h>

#include "failoverd/buf.h"
#include "failoverd/conf.h"
#include "failoverd/creds.h"
#include "failoverd/curlev.h"
#include "failoverd/ec2.h"
#include "failoverd/log.h"

struct run;

/* One call in flight: the callback's argument. */
struct slot {
	struct run		*r;
	int			 seq;
};

struct run {
	struct ev_loop		*loop;
	struct ec2_client	*ec2;
	struct creds_provider	*creds;
	int			 action;	/* -1: creds */
	char			**params;
	int			 nparams;
	int			 dry_run;
	int			 after_mutation;
	double			 deadline;
	int			 repeat;
	int			 parallel;
	struct slot		*slots;
	int			 done;
	double			 interval;
	int			 failed;
	ev_timer		 next;
	ev_tstamp		 started;

	double			 tick;
	ev_timer		 tick_w;
	ev_tstamp		 tick_due;
	unsigned int		 ticks;
	double			 tick_late;	/* worst delay past due */
};

static void	run_next(struct run *r);

static void
jstr(struct buf *b, const char *key, const char *v)
{
	buf_printf(b, "\"%s\":", key);
	if (v == NULL)
		buf_puts(b, "null");
	else
		buf_json_str(b, v);
}

static void
jtags(struct buf *b, const struct ec2_tag *t, size_t n)
{
	size_t i;

	buf_puts(b, ",\"tags\":{");
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_puts(b, ",");
		buf_json_str(b, t[i].key ? t[i].key : "");
		buf_puts(b, ":");
		buf_json_str(b, t[i].value ? t[i].value : "");
	}
	buf_puts(b, "}");
}

static void
jbdm(struct buf *b, const struct ec2_block_device *d, size_t n)
{
	size_t i;

	buf_puts(b, ",\"block_devices\":[");
	for (i = 0; i < n; i++) {
		buf_puts(b, i ? ",{" : "{");
		jstr(b, "device", d[i].device_name);
		buf_puts(b, ",");
		jstr(b, "id", d[i].volume_id);
		buf_puts(b, ",");
		jstr(b, "status", d[i].status);
		buf_printf(b, ",\"delete_on_termination\":%s}",
		    d[i].delete_on_termination ? "true" : "false");
	}
	buf_puts(b, "]");
}

static void
jattach(struct buf *b, const struct ec2_attachment *a)
{
	buf_puts(b, "{");
	jstr(b, "volume_id", a->volume_id);
	buf_puts(b, ",");
	jstr(b, "instance_id", a->instance_id);
	buf_puts(b, ",");
	jstr(b, "device", a->device);
	buf_puts(b, ",");
	jstr(b, "state", a->state);
	buf_puts(b, "}");
}

static void
print_items(struct buf *b, const struct ec2_result *res)
{
	const struct ec2_instance *in;
	const struct ec2_instance_status *st;
	const struct ec2_volume *v;
	const struct ec2_address *a;
	const struct ec2_snapshot *s;
	const struct ec2_image *im;
	const struct ec2_zone *z;
	const struct ec2_state_change *c;
	const struct ec2_attachment *at;
	size_t n, i, j;

	n = ec2_result_instances(res, &in);
	buf_puts(b, ",\"instances\":[");
	for (i = 0; i < n; i++) {
		buf_puts(b, i ? ",{" : "{");
		jstr(b, "id", in[i].instance_id); buf_puts(b, ",");
		jstr(b, "state", in[i].state); buf_puts(b, ",");
		jstr(b, "az", in[i].az); buf_puts(b, ",");
		jstr(b, "subnet", in[i].subnet_id); buf_puts(b, ",");
		jstr(b, "private_ip", in[i].private_ip); buf_puts(b, ",");
		jstr(b, "public_ip", in[i].public_ip); buf_puts(b, ",");
		jstr(b, "image", in[i].image_id); buf_puts(b, ",");
		jstr(b, "type", in[i].instance_type); buf_puts(b, ",");
		jstr(b, "launch_time", in[i].launch_time);
		jtags(b, in[i].tags, in[i].ntags);
		jbdm(b, in[i].bdm, in[i].nbdm);
		buf_puts(b, "}");
	}
	n = ec2_result_instance_statuses(res, &st);
	buf_puts(b, "],\"statuses\":[");
	for (i = 0; i < n; i++) {
		buf_puts(b, i ? ",{" : "{");
		jstr(b, "id", st[i].instance_id); buf_puts(b, ",");
		jstr(b, "az", st[i].az); buf_puts(b, ",");
		jstr(b, "state", st[i].state); buf_puts(b, ",");
		jstr(b, "instance", st[i].instance_status); buf_puts(b, ",");
		jstr(b, "system", st[i].system_status);
		buf_puts(b, "}");
	}
	n = ec2_result_volumes(res, &v);
	buf_puts(b, "],\"volumes\":[");
	for (i = 0; i < n; i++) {
		buf_puts(b, i ? ",{" : "{");
		jstr(b, "id", v[i].volume_id); buf_puts(b, ",");
		jstr(b, "state", v[i].state); buf_puts(b, ",");
		jstr(b, "az", v[i].az); buf_puts(b, ",");
		jstr(b, "snapshot", v[i].snapshot_id); buf_puts(b, ",");
		jstr(b, "type", v[i].volume_type);
		buf_printf(b, ",\"size\":%d", v[i].size_gib);
		jtags(b, v[i].tags, v[i].ntags);
		buf_puts(b, ",\"attachments\":[");
		for (j = 0; j < v[i].nattachments; j++) {
			if (j > 0)
				buf_puts(b, ",");
			jattach(b, &v[i].attachments[j]);
		}
		buf_puts(b, "]}");
	}
	n = ec2_result_addresses(res, &a);
	buf_puts(b, "],\"addresses\":[");
	for (i = 0; i < n; i++) {
		buf_puts(b, i ? ",{" : "{");
		jstr(b, "public_ip", a[i].public_ip); buf_puts(b, ",");
		jstr(b, "allocation_id", a[i].allocation_id);
		buf_puts(b, ",");
		jstr(b, "association_id", a[i].association_id);
		buf_puts(b, ",");
		jstr(b, "instance_id", a[i].instance_id); buf_puts(b, ",");
		jstr(b, "private_ip", a[i].private_ip);
		jtags(b, a[i].tags, a[i].ntags);
		buf_puts(b, "}");
	}
	n = ec2_result_snapshots(res, &s);
	buf_puts(b, "],\"snapshots\":[");
	for (i = 0; i < n; i++) {
		buf_puts(b, i ? ",{" : "{");
		jstr(b, "id", s[i].snapshot_id); buf_puts(b, ",");
		jstr(b, "volume_id", s[i].volume_id); buf_puts(b, ",");
		jstr(b, "state", s[i].state); buf_puts(b, ",");
		jstr(b, "start_time", s[i].start_time);
		buf_printf(b, ",\"size\":%d", s[i].volume_size);
		jtags(b, s[i].tags, s[i].ntags);
		buf_puts(b, "}");
	}
	n = ec2_result_images(res, &im);
	buf_puts(b, "],\"images\":[");
	for (i = 0; i < n; i++) {
		buf_puts(b, i ? ",{" : "{");
		jstr(b, "id", im[i].image_id); buf_puts(b, ",");
		jstr(b, "name", im[i].name); buf_puts(b, ",");
		jstr(b, "state", im[i].state);
		jbdm(b, im[i].bdm, im[i].nbdm);
		jtags(b, im[i].tags, im[i].ntags);
		buf_puts(b, "}");
	}
	n = ec2_result_zones(res, &z);
	buf_puts(b, "],\"zones\":[");
	for (i = 0; i < n; i++) {
		buf_puts(b, i ? ",{" : "{");
		jstr(b, "name", z[i].zone_name); buf_puts(b, ",");
		jstr(b, "id", z[i].zone_id); buf_puts(b, ",");
		jstr(b, "state", z[i].state);
		buf_puts(b, "}");
	}
	n = ec2_result_state_changes(res, &c);
	buf_puts(b, "],\"changes\":[");
	for (i = 0; i < n; i++) {
		buf_puts(b, i ? ",{" : "{");
		jstr(b, "id", c[i].instance_id); buf_puts(b, ",");
		jstr(b, "current", c[i].current_state); buf_puts(b, ",");
		jstr(b, "previous", c[i].previous_state);
		buf_puts(b, "}");
	}
	buf_puts(b, "],\"attachment\":");
	at = ec2_result_attachment(res);
	if (at != NULL)
		jattach(b, at);
	else
		buf_puts(b, "null");
	buf_puts(b, ",");
	jstr(b, "id", ec2_result_id(res));
	buf_puts(b, ",");
	jstr(b, "console", ec2_result_console_output(res));
}

static void
call_done(struct ec2_result *res, void *arg)
{
	struct slot *sl = arg;
	struct run *r = sl->r;
	enum ec2_status st = ec2_result_status(res);
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "{\"seq\":%d,", sl->seq);
	jstr(&b, "action", ec2_action_str(ec2_result_action(res)));
	buf_puts(&b, ",");
	jstr(&b, "status", ec2_status_str(st));
	buf_puts(&b, ",");
	jstr(&b, "code", ec2_result_code(res));
	buf_puts(&b, ",");
	jstr(&b, "message", ec2_result_message(res));
	buf_puts(&b, ",");
	jstr(&b, "request_id", ec2_result_request_id(res));
	buf_puts(&b, ",");
	jstr(&b, "error", ec2_result_error(res));
	buf_printf(&b, ",\"http_status\":%ld,\"attempts\":%u,"
	    "\"retryable\":%s,\"elapsed\":%.3f",
	    ec2_result_http_status(res), ec2_result_attempts(res),
	    ec2_result_retryable(res) ? "true" : "false",
	    ev_now(r->loop) - r->started);
	print_items(&b, res);
	buf_puts(&b, "}\n");
	fputs(buf_str(&b), stdout);
	fflush(stdout);
	buf_free(&b);
	if (st != EC2_OK && st != EC2_DRY_RUN_OK)
		r->failed = 1;
	ec2_result_free(res);
	r->done++;
	if (r->parallel > 0) {
		if (r->done == r->parallel)
			ev_break(r->loop, EVBREAK_ALL);
		return;
	}
	if (r->done < r->repeat) {
		ev_timer_set(&r->next, r->interval, 0.0);
		ev_timer_start(r->loop, &r->next);
		return;
	}
	ev_break(r->loop, EVBREAK_ALL);
}

static void
creds_done(const char *err, void *arg)
{
	struct run *r = arg;
	const struct creds *c = creds_current(r->creds);
	struct buf b;

	buf_init(&b);
	buf_puts(&b, "{");
	jstr(&b, "error", err);
	if (err == NULL && c != NULL) {
		buf_puts(&b, ",");
		jstr(&b, "source", creds_source_str(creds_source(c)));
		buf_puts(&b, ",");
		jstr(&b, "access_key_id", creds_access_key_id(c));
		buf_printf(&b, ",\"has_token\":%s,\"expiration\":%lld",
		    creds_session_token(c) ? "true" : "false",
		    (long long)creds_expiration(c));
	} else {
		r->failed = 1;
	}
	buf_puts(&b, "}\n");
	fputs(buf_str(&b), stdout);
	fflush(stdout);
	buf_free(&b);
	r->done++;
	if (r->done < r->repeat) {
		ev_timer_set(&r->next, r->interval, 0.0);
		ev_timer_start(r->loop, &r->next);
		return;
	}
	ev_break(r->loop, EVBREAK_ALL);
}

static int	start_call(struct run *r, struct slot *sl);

static void
run_next(struct run *r)
{
	int i;

	r->started = ev_now(r->loop);
	if (r->action < 0) {
		if (creds_wait(r->creds, creds_done, r) == NULL)
			ev_break(r->loop, EVBREAK_ALL);
		return;
	}
	if (r->parallel > 0) {
		for (i = 0; i < r->parallel; i++)
			if (start_call(r, &r->slots[i]) < 0)
				goto oom;
		return;
	}
	r->slots[0].seq = r->done;
	if (start_call(r, &r->slots[0]) < 0)
		goto oom;
	return;
oom:
	fprintf(stderr, "ec2call: out of memory\n");
	r->failed = 1;
	ev_break(r->loop, EVBREAK_ALL);
}

static int
start_call(struct run *r, struct slot *sl)
{
	struct ec2_request *req;
	char *eq;
	int i;

	req = ec2_request_new((enum ec2_action)r->action);
	if (req == NULL)
		return -1;
	for (i = 0; i < r->nparams; i++) {
		eq = strchr(r->params[i], '=');
		*eq = '\0';
		ec2_request_add(req, r->params[i], eq + 1);
		*eq = '=';
	}
	ec2_request_set_dry_run(req, r->dry_run);
	ec2_request_set_after_mutation(req, r->after_mutation);
	if (ec2_call(r->ec2, req, r->deadline, call_done, sl) == NULL)
		return -1;
	return 0;
}

static void
next_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	run_next(w->data);
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct run *r = w->data;
	double late = ev_time() - r->tick_due;

	if (late > r->tick_late)
		r->tick_late = late;
	r->ticks++;
	r->tick_due += r->tick;
}

static void
usage(void)
{
	fprintf(stderr, "usage: ec2call [--deadline S] [--dry-run] "
	    "[--after-mutation] [--repeat N] [--parallel N]\n"
	    "               [--interval S] [--tick S]\n"
	    "               [--region R] [--endpoint URL] [--profile P] "
	    "[--ca-file F]\n"
	    "               [--imds-endpoint URL] [--sts-endpoint URL]\n"
	    "               [--container-endpoint URL] [--process-timeout S]"
	    "\n"
	    "               [--rate R] [--burst N] "
	    "Action|creds|endpoint [Key=Value ...]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "deadline", required_argument, NULL, 'd' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "after-mutation", no_argument, NULL, 'm' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "parallel", required_argument, NULL, 'p' },
		{ "interval", required_argument, NULL, 'i' },
		{ "tick", required_argument, NULL, 't' },
		{ "region", required_argument, NULL, 'R' },
		{ "endpoint", required_argument, NULL, 'E' },
		{ "profile", required_argument, NULL, 'P' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "imds-endpoint", required_argument, NULL, 'I' },
		{ "sts-endpoint", required_argument, NULL, 'S' },
		{ "container-endpoint", required_argument, NULL, 'K' },
		{ "process-timeout", required_argument, NULL, 'T' },
		{ "rate", required_argument, NULL, 'a' },
		{ "burst", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct aws_conf conf;
	struct run r;
	struct curlev *cl;
	char err[512];
	int ch, i;

	memset(&conf, 0, sizeof(conf));
	memset(&r, 0, sizeof(r));
	r.deadline = 30.0;
	r.repeat = 1;
	while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': r.deadline = atof(optarg); break;
		case 'n': r.dry_run = 1; break;
		case 'm': r.after_mutation = 1; break;
		case 'r': r.repeat = atoi(optarg); break;
		case 'p': r.parallel = atoi(optarg); break;
		case 'i': r.interval = atof(optarg); break;
		case 't': r.tick = atof(optarg); break;
		case 'R': conf.region = optarg; break;
		case 'E': conf.endpoint = optarg; break;
		case 'P': conf.profile = optarg; break;
		case 'C': conf.ca_file = optarg; break;
		case 'I': conf.imds_endpoint = optarg; break;
		case 'S': conf.sts_endpoint = optarg; break;
		case 'K': conf.container_endpoint = optarg; break;
		case 'T': conf.credential_process_timeout = atof(optarg); break;
		case 'a': conf.calls_per_second = atof(optarg); break;
		case 'b': conf.burst = atoi(optarg); break;
		default: usage();
		}
	}
	if (optind >= argc || r.repeat < 1 || r.parallel < 0)
		usage();
	r.slots = calloc(r.parallel > 0 ? (size_t)r.parallel : 1,
	    sizeof(*r.slots));
	if (r.slots == NULL) {
		fprintf(stderr, "ec2call: out of memory\n");
		return 1;
	}
	for (i = 0; i < (r.parallel > 0 ? r.parallel : 1); i++) {
		r.slots[i].r = &r;
		r.slots[i].seq = i;
	}
	if (strcmp(argv[optind], "creds") == 0) {
		r.action = -1;
	} else if (strcmp(argv[optind], "endpoint") == 0) {
		/* The endpoint the client would use; nothing is sent. */
		r.action = -2;
	} else {
		r.action = ec2_action_from_str(argv[optind]);
		if (r.action < 0) {
			fprintf(stderr, "ec2call: unknown action %s\n",
			    argv[optind]);
			return 2;
		}
	}
	r.params = argv + optind + 1;
	r.nparams = argc - optind - 1;
	for (i = 0; i < r.nparams; i++)
		if (strchr(r.params[i], '=') == NULL)
			usage();

	/*
	 * Tests only ever talk to 127.0.0.0/8: never fall back to the real
	 * IMDS address or to a real AWS endpoint.
	 */
	if (conf.imds_endpoint == NULL &&
	    getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT") == NULL)
		setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	if (r.action >= 0 && conf.endpoint == NULL &&
	    getenv("AWS_ENDPOINT_URL_EC2") == NULL &&
	    getenv("AWS_ENDPOINT_URL") == NULL) {
		fprintf(stderr, "ec2call: no --endpoint, AWS_ENDPOINT_URL_EC2 "
		    "or AWS_ENDPOINT_URL; refusing to reach real AWS\n");
		return 2;
	}

	log_init("ec2call", LOG_USER, 1);
	log_set_debug(getenv("EC2CALL_DEBUG") != NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	r.loop = ev_default_loop(0);
	cl = curlev_new(r.loop);
	r.creds = creds_provider_new(r.loop, cl, &conf);
	if (cl == NULL || r.creds == NULL) {
		fprintf(stderr, "ec2call: out of memory\n");
		return 1;
	}
	if (r.action >= 0 || r.action == -2) {
		r.ec2 = ec2_client_new(r.loop, cl, r.creds, &conf, err,
		    sizeof(err));
		if (r.ec2 == NULL) {
			fprintf(stderr, "ec2call: %s\n", err);
			printf("{\"error\":\"%s\"}\n", err);
			creds_provider_free(r.creds);
			curlev_free(cl);
			curl_global_cleanup();
			free(r.slots);
			return 1;
		}
	}
	if (r.action == -2) {
		printf("{\"endpoint\":\"%s\",\"region\":\"%s\"}\n",
		    ec2_client_endpoint(r.ec2), ec2_client_region(r.ec2));
		ec2_client_free(r.ec2);
		creds_provider_free(r.creds);
		curlev_free(cl);
		curl_global_cleanup();
		free(r.slots);
		return 0;
	}
	ev_timer_init(&r.next, next_cb, 0.0, 0.0);
	r.next.data = &r;
	if (r.tick > 0) {
		ev_timer_init(&r.tick_w, tick_cb, r.tick, r.tick);
		r.tick_w.data = &r;
		r.tick_due = ev_time() + r.tick;
		ev_timer_start(r.loop, &r.tick_w);
	}
	run_next(&r);
	ev_run(r.loop, 0);
	if (r.tick > 0)
		printf("{\"ticks\":%u,\"tick_late\":%.3f}\n", r.ticks,
		    r.tick_late);
	ev_timer_stop(r.loop, &r.tick_w);
	ev_timer_stop(r.loop, &r.next);
	ec2_client_free(r.ec2);
	creds_provider_free(r.creds);
	curlev_free(cl);
	curl_global_cleanup();
	free(r.slots);
	return r.failed ? 1 : 0;
}
