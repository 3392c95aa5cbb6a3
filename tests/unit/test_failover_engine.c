/*
 * The failover engine without EC2: its calls go to a fake
 * (failover_env.send) that the tests answer with EC2's own reply
 * documents, so a step's transitions, a journal round-trip, a restore
 * from every step and an out-of-memory path run in milliseconds. The
 * end-to-end tests (tests/e2e, against ec2sim) stay the proof that the
 * engine works with the real client; these pin the engine's own rules.
 */
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "failoverd/conf.h"
#include "failoverd/curlev.h"
#include "failoverd/journal.h"
#include "failoverd/probe.h"
#include "../../src/ec2_priv.h"
#include "../../src/failover_priv.h"

#define NS "xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\""

/* --- strdup that fails on demand (-Wl,--wrap=strdup) ------------------- */

char	*__real_strdup(const char *s);
char	*__wrap_strdup(const char *s);

static int strdup_fail_in;	/* 0: never; n: the n-th from now fails */

char *
__wrap_strdup(const char *s)
{
	if (strdup_fail_in > 0 && --strdup_fail_in == 0)
		return NULL;
	return __real_strdup(s);
}

/* --- the fake EC2 -------------------------------------------------------- */

struct fake_call {
	int			 used;
	unsigned long		 seq;
	enum ec2_action		 action;
	struct ec2_request	*req;
	void			(*done)(struct ec2_result *, void *);
	void			*arg;
};

static struct fake_call	calls[64];
static unsigned long	seq;

static struct ec2_call *
fake_send(void *send_arg, struct ec2_request *req, double deadline,
    void (*done)(struct ec2_result *, void *), void *arg)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!calls[i].used)
			break;
	assert_true(i < 64);
	calls[i].used = 1;
	calls[i].seq = ++seq;
	calls[i].action = ec2_request_action(req);
	calls[i].req = req;
	calls[i].done = done;
	calls[i].arg = arg;
	return (struct ec2_call *)(void *)&calls[i];
}

static void
fake_cancel(void *send_arg, struct ec2_call *call)
{
	struct fake_call *c = (struct fake_call *)(void *)call;

	ec2_request_free(c->req);
	c->used = 0;
}

static int
pending(enum ec2_action a)
{
	size_t	i;
	int	n = 0;

	for (i = 0; i < 64; i++)
		if (calls[i].used && calls[i].action == a)
			n++;
	return n;
}

static int
pending_all(void)
{
	size_t	i;
	int	n = 0;

	for (i = 0; i < 64; i++)
		n += calls[i].used;
	return n;
}

/* The oldest call of action a gets res. */
static void
reply(enum ec2_action a, struct ec2_result *res)
{
	struct fake_call	*c = NULL;
	size_t			 i;
	void			(*done)(struct ec2_result *, void *);
	void			*arg;

	for (i = 0; i < 64; i++)
		if (calls[i].used && calls[i].action == a &&
		    (c == NULL || calls[i].seq < c->seq))
			c = &calls[i];
	assert_non_null(c);
	done = c->done;
	arg = c->arg;
	ec2_request_free(c->req);
	c->used = 0;
	ec2_result_finish(res);
	done(res, arg);
}

static void
answer(enum ec2_action a, const char *xml)
{
	struct ec2_result *res = ec2_result_new(a);

	assert_non_null(res);
	ec2_result_parse_into(res, xml, strlen(xml), 200);
	assert_int_equal(ec2_result_status(res), EC2_OK);
	reply(a, res);
}

static void
refuse(enum ec2_action a, const char *code)
{
	struct ec2_result *res = ec2_result_new(a);

	assert_non_null(res);
	ec2_result_set_error(res, EC2_ERR_AWS, code, "%s: no", code);
	reply(a, res);
}

static void
fake_reset(void)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (calls[i].used)
			fake_cancel(NULL, (struct ec2_call *)(void *)&calls[i]);
}

/* Reply documents, shaped as EC2's (API reference examples). */
static char xml[4096];

static const char *
instance_xml(const char *id, const char *state)
{
	snprintf(xml, sizeof(xml), "<DescribeInstancesResponse " NS ">"
	    "<requestId>r</requestId><reservationSet><item>"
	    "<reservationId>r-1</reservationId><instancesSet><item>"
	    "<instanceId>%s</instanceId><instanceState><name>%s</name>"
	    "</instanceState><placement><availabilityZone>us-east-1a"
	    "</availabilityZone></placement><privateIpAddress>10.0.0.7"
	    "</privateIpAddress></item></instancesSet></item>"
	    "</reservationSet></DescribeInstancesResponse>", id, state);
	return xml;
}

static const char *
run_xml(const char *id)
{
	snprintf(xml, sizeof(xml), "<RunInstancesResponse " NS ">"
	    "<requestId>r</requestId><reservationId>r-2</reservationId>"
	    "<instancesSet><item><instanceId>%s</instanceId><instanceState>"
	    "<name>pending</name></instanceState><placement>"
	    "<availabilityZone>us-east-1a</availabilityZone></placement>"
	    "</item></instancesSet></RunInstancesResponse>", id);
	return xml;
}

/* Both volumes, attached to `to` (NULL: available). */
static const char *
volumes_xml(const char *to)
{
	char	att[2][300];
	int	i;

	for (i = 0; i < 2; i++)
		snprintf(att[i], sizeof(att[i]), to == NULL ? "" :
		    "<item><volumeId>vol-0000000000000000%d</volumeId>"
		    "<instanceId>%s</instanceId><device>/dev/sd%c</device>"
		    "<status>attached</status></item>", i + 1, to,
		    i == 0 ? 'f' : 'g');
	snprintf(xml, sizeof(xml), "<DescribeVolumesResponse " NS ">"
	    "<requestId>r</requestId><volumeSet>"
	    "<item><volumeId>vol-00000000000000001</volumeId>"
	    "<status>%s</status><availabilityZone>us-east-1a"
	    "</availabilityZone><attachmentSet>%s</attachmentSet></item>"
	    "<item><volumeId>vol-00000000000000002</volumeId>"
	    "<status>%s</status><availabilityZone>us-east-1a"
	    "</availabilityZone><attachmentSet>%s</attachmentSet></item>"
	    "</volumeSet></DescribeVolumesResponse>",
	    to ? "in-use" : "available", att[0],
	    to ? "in-use" : "available", att[1]);
	return xml;
}

static const char *
address_xml(const char *instance)
{
	snprintf(xml, sizeof(xml), "<DescribeAddressesResponse " NS ">"
	    "<requestId>r</requestId><addressesSet><item>"
	    "<publicIp>127.0.0.9</publicIp><allocationId>"
	    "eipalloc-0123456789abcdef0</allocationId><instanceId>%s"
	    "</instanceId><domain>vpc</domain></item></addressesSet>"
	    "</DescribeAddressesResponse>", instance);
	return xml;
}

static const char ok_stop[] = "<StopInstancesResponse " NS ">"
    "<requestId>r</requestId><instancesSet><item><instanceId>i-old"
    "</instanceId><currentState><name>stopping</name></currentState>"
    "</item></instancesSet></StopInstancesResponse>";
static const char ok_attach[] = "<AttachVolumeResponse " NS ">"
    "<requestId>r</requestId><volumeId>vol-00000000000000001</volumeId>"
    "<instanceId>i-new</instanceId><device>/dev/sdf</device>"
    "<status>attaching</status></AttachVolumeResponse>";
static const char ok_detach[] = "<DetachVolumeResponse " NS ">"
    "<requestId>r</requestId><volumeId>vol-00000000000000001</volumeId>"
    "<instanceId>i-old</instanceId><device>/dev/sdf</device>"
    "<status>detaching</status></DetachVolumeResponse>";
static const char ok_associate[] = "<AssociateAddressResponse " NS ">"
    "<requestId>r</requestId><return>true</return><associationId>"
    "eipassoc-1</associationId></AssociateAddressResponse>";

/* --- one service's engine ------------------------------------------------ */

static char			 dir[64];
static struct config		*conf;
static struct ev_loop		*loop;
static struct curlev		*curl;
static struct probe_sched	*sched;
static struct service		*svc;
static struct failover_env	 env;
static struct failover		*fo;

static void
knows_production(struct failover *f)
{
	assert_int_equal(fo_set_str(&f->eip_ip, "127.0.0.9"), 0);
	assert_int_equal(fo_set_str(&f->eip_instance, "i-old"), 0);
	assert_int_equal(fo_set_str(&f->vol_az, "us-east-1a"), 0);
	f->aws_ok = 1;
}

static int
setup(void **state)
{
	struct service_env	senv;
	char			path[128], err[1024];
	FILE			*fp;

	/* Memory-backed when it can be: the journal fsyncs every step. */
	snprintf(dir, sizeof(dir), "%s/fod-engine-XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/failoverd.conf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "state_dir = \"%s\";\n"
	    "services = ( { name = \"web\";\n"
	    "  eip_allocation_id = \"eipalloc-0123456789abcdef0\";\n"
	    "  volumes = ( { id = \"vol-00000000000000001\"; "
	    "device = \"/dev/sdf\"; },\n"
	    "    { id = \"vol-00000000000000002\"; device = \"/dev/sdg\"; } );\n"
	    "  launch = { ami = \"ami-0123456789abcdef0\";\n"
	    "    instance_type = \"t3.micro\";\n"
	    "    subnet = \"subnet-0123456789abcdef0\"; };\n"
	    "  probes = ( { name = \"site\"; type = \"http\"; "
	    "path = \"/health\"; } );\n} );\n", dir);
	fclose(fp);
	conf = conf_load(path, err, sizeof(err));
	if (conf == NULL)
		fail_msg("%s", err);
	loop = ev_loop_new(EVFLAG_AUTO);
	curl = curlev_new(loop);
	sched = probe_sched_new(loop, 16);
	assert_non_null(sched);
	memset(&senv, 0, sizeof(senv));
	senv.loop = loop;
	senv.curl = curl;
	senv.probes = sched;
	svc = service_new(&senv, &conf->services[0]);
	assert_non_null(svc);
	memset(&env, 0, sizeof(env));
	env.loop = loop;
	env.state_dir = conf->state_dir;
	env.send = fake_send;
	env.cancel = fake_cancel;
	fo = failover_new(&env, svc);
	assert_non_null(fo);
	knows_production(fo);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	failover_free(fo);
	fake_reset();
	service_free(svc);
	probe_sched_free(sched);
	curlev_free(curl);
	ev_loop_destroy(loop);
	conf_free(conf);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	strdup_fail_in = 0;
	return 0;
}

/* What the journal on disk says for key. */
static const char *
on_disk(const char *key)
{
	static char		 val[256];
	struct journal_rec	*rec;
	char			 err[512];
	const char		*v;

	assert_int_equal(journal_load(dir, "web", &rec, err, sizeof(err)),
	    0);
	v = journal_rec_get(rec, key);
	snprintf(val, sizeof(val), "%s", v ? v : "(none)");
	journal_rec_free(rec);
	return val;
}

/*
 * A later turn of the loop: what a reply showed in an earlier one is
 * looked at again (a step acts at once only on what it saw this turn).
 */
static void
next_turn(void)
{
	ev_sleep(0.001);
	ev_now_update(loop);
}

/* Drives a failover from DOWN to FENCE+LAUNCH to DETACH. */
static void
to_detach(void)
{
	struct buf out;

	buf_init(&out);
	assert_int_equal(failover_manual(fo, &out), 0);
	buf_free(&out);
	assert_int_equal(failover_step(fo), FAILOVER_FENCE_LAUNCH);
	/* The fence and the launch at once, both journaled first. */
	assert_int_equal(pending(EC2_STOP_INSTANCES), 1);
	assert_int_equal(pending(EC2_RUN_INSTANCES), 1);
	assert_string_equal(on_disk("step"), "fence+launch");
	assert_string_equal(on_disk("failover_id"), fo->id);
	answer(EC2_STOP_INSTANCES, ok_stop);
	answer(EC2_RUN_INSTANCES, run_xml("i-new"));
	assert_string_equal(fo->new, "i-new");
	assert_int_equal(fo->launch, LAUNCH_SENT);
	fo_poll(fo);
	/* The fence's look first (the main branch), then the launch's. */
	assert_int_equal(pending(EC2_DESCRIBE_INSTANCES), 2);
	answer(EC2_DESCRIBE_INSTANCES, instance_xml("i-old", "stopped"));
	assert_int_equal(failover_step(fo), FAILOVER_DETACH);
	assert_int_equal(fo->fence, FENCE_DONE);
	answer(EC2_DESCRIBE_INSTANCES, instance_xml("i-new", "running"));
	/* No ssh probe: no host keys to wait for. */
	assert_int_equal(fo->launch, LAUNCH_READY);
	assert_int_equal(failover_step(fo), FAILOVER_DETACH);
}

static void
test_failover_steps(void **state)
{
	to_detach();
	assert_int_equal(pending(EC2_DESCRIBE_VOLUMES), 1);
	answer(EC2_DESCRIBE_VOLUMES, volumes_xml(NULL));
	/* Every volume free, the replacement ready: attach at once. */
	assert_int_equal(failover_step(fo), FAILOVER_ATTACH);
	assert_int_equal(pending(EC2_ATTACH_VOLUME), 2);
	answer(EC2_ATTACH_VOLUME, ok_attach);
	answer(EC2_ATTACH_VOLUME, ok_attach);
	next_turn();
	fo_poll(fo);
	answer(EC2_DESCRIBE_VOLUMES, volumes_xml("i-new"));
	assert_int_equal(failover_step(fo), FAILOVER_ASSOCIATE);
	/* Describe before associating: a resumed one may have done it. */
	answer(EC2_DESCRIBE_ADDRESSES, address_xml("i-old"));
	answer(EC2_ASSOCIATE_ADDRESS, ok_associate);
	assert_int_equal(failover_step(fo), FAILOVER_VERIFY);
	assert_string_equal(fo->eip_instance, "i-new");
	failover_on_verdict(fo, SERVICE_UNKNOWN, SERVICE_HEALTHY);
	assert_int_equal(failover_step(fo), FAILOVER_DONE);
	assert_string_equal(on_disk("step"), "done");
	assert_string_equal(on_disk("h.0.result"), "completed");
	assert_string_equal(on_disk("h.0.new"), "i-new");
	/* The move's fields went with it. */
	assert_string_equal(on_disk("failover_id"), "(none)");
	assert_string_equal(on_disk("started"), "(none)");
	assert_string_equal(on_disk("volume.vol-00000000000000001.state"),
	    "(none)");
}

/*
 * No capacity: the launch falls back to starting the fenced instance
 * again, after the volumes were asked off it. A Describe from before the
 * detach still shows them on it, now the target: that is not "attached",
 * or the move would end with the data volumes detached.
 */
static void
test_restart_in_place_after_detach_waits_for_the_volumes(void **state)
{
	struct buf	out;
	size_t		i;

	buf_init(&out);
	assert_int_equal(failover_manual(fo, &out), 0);
	buf_free(&out);
	answer(EC2_STOP_INSTANCES, ok_stop);
	fo_poll(fo);
	answer(EC2_DESCRIBE_INSTANCES, instance_xml("i-old", "stopped"));
	assert_int_equal(failover_step(fo), FAILOVER_DETACH);
	fo_poll(fo);
	answer(EC2_DESCRIBE_VOLUMES, volumes_xml("i-old"));
	assert_int_equal(pending(EC2_DETACH_VOLUME), 2);
	answer(EC2_DETACH_VOLUME, ok_detach);
	answer(EC2_DETACH_VOLUME, ok_detach);
	/* The last try of RunInstances: no capacity, restart in place. */
	fo->launch_tries = FO_LAUNCH_TRIES - 1;
	refuse(EC2_RUN_INSTANCES, "InsufficientInstanceCapacity");
	assert_true(fo->restart);
	assert_string_equal(fo->new, "i-old");
	fo_poll(fo);
	answer(EC2_DESCRIBE_VOLUMES, volumes_xml("i-old"));
	for (i = 0; i < fo->nvols; i++)
		assert_int_equal(fo->vols[i].st, VOL_DETACHING);
	assert_int_equal(failover_step(fo), FAILOVER_DETACH);
	fo_poll(fo);
	answer(EC2_DESCRIBE_VOLUMES, volumes_xml(NULL));
	for (i = 0; i < fo->nvols; i++)
		assert_int_equal(fo->vols[i].st, VOL_AVAILABLE);
}

/* A volume on another instance at ATTACH fails the move, by name. */
static void
test_attach_elsewhere_fails(void **state)
{
	to_detach();
	answer(EC2_DESCRIBE_VOLUMES, volumes_xml(NULL));
	answer(EC2_ATTACH_VOLUME, ok_attach);
	answer(EC2_ATTACH_VOLUME, ok_attach);
	next_turn();
	fo_poll(fo);
	answer(EC2_DESCRIBE_VOLUMES, volumes_xml("i-other"));
	assert_int_equal(failover_step(fo), FAILOVER_FAILED);
	assert_non_null(strstr(fo->hold_reason, "attached to i-other"));
	assert_string_equal(on_disk("h.0.result"), "failed");
	/* The idle replacement is stopped (kept for a look). */
	assert_int_equal(pending(EC2_STOP_INSTANCES), 1);
}

/* Save, then a new engine on the same journal: the same move. */
static void
test_journal_round_trip(void **state)
{
	struct failover	*back;
	int		 k;

	to_detach();
	answer(EC2_DESCRIBE_VOLUMES, volumes_xml(NULL));
	assert_int_equal(failover_step(fo), FAILOVER_ATTACH);
	fo_cancel_branch(fo, -1);
	assert_int_equal(fo_save(fo), 0);
	back = failover_new(&env, svc);
	assert_non_null(back);
	assert_int_equal(failover_step(back), FAILOVER_ATTACH);
	assert_true(back->resumed);
	assert_string_equal(back->id, fo->id);
	assert_string_equal(back->old, fo->old);
	assert_string_equal(back->new, fo->new);
	assert_string_equal(back->vol_az, fo->vol_az);
	assert_int_equal(back->kind, fo->kind);
	assert_int_equal(back->manual, fo->manual);
	assert_int_equal(back->restart, fo->restart);
	assert_int_equal(back->fence, fo->fence);
	assert_int_equal(back->launch, fo->launch);
	assert_int_equal(back->started_at, fo->started_at);
	assert_int_equal(back->nvols, fo->nvols);
	for (k = 0; k < (int)fo->nvols; k++)
		assert_int_equal(back->vols[k].st, fo->vols[k].st);
	for (k = 0; k < T_MAX; k++)
		assert_true(back->t[k] == fo->t[k] ||
		    (back->t[k] - fo->t[k] < 0.001 &&
		    fo->t[k] - back->t[k] < 0.001));
	failover_free(back);
}

/* An ended move, as fo_end would record it. */
static void
ended(const char *id, const char *result, long long started)
{
	int k;

	assert_int_equal(fo_set_str(&fo->id, id), 0);
	assert_int_equal(fo_set_str(&fo->old, "i-old"), 0);
	assert_int_equal(fo_set_str(&fo->new, "i-new"), 0);
	fo->kind = KIND_FAILOVER;
	fo->manual = 1;
	fo->started_at = started;
	for (k = 0; k < T_MAX; k++)
		fo->t[k] = k == T_TOTAL ? 42.125 : -1;
	fo_history_add(fo, result, "why not");
}

static void
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void
same_history(const struct failover *a, const struct failover *b)
{
	const struct fo_history	*x, *y;
	long long		 n;
	int			 k;

	assert_int_equal(a->history_next, b->history_next);
	for (n = 0; n < a->history_next; n++) {
		x = fo_history_at(a, n);
		y = fo_history_at(b, n);
		if (x == NULL || y == NULL) {
			assert_ptr_equal(x, y);
			continue;
		}
		same_str(x->id, y->id);
		same_str(x->kind, y->kind);
		same_str(x->result, y->result);
		same_str(x->reason, y->reason);
		same_str(x->mode, y->mode);
		same_str(x->trigger, y->trigger);
		same_str(x->old, y->old);
		same_str(x->new, y->new);
		same_str(x->az, y->az);
		assert_int_equal(x->started, y->started);
		for (k = 0; k < T_MAX; k++)
			assert_true(x->t[k] == y->t[k]);
	}
}

/*
 * What the service's moves left (identity, the settling move, learned
 * keys, the history) is in the struct, saved and restored through the
 * tables: a new engine on the same journal knows all of it.
 */
static void
test_service_fields_round_trip(void **state)
{
	struct failover	*back;
	struct buf	 out;

	assert_int_equal(fo_set_str(&fo->ident_vols[0], "vol-0aaaaaaaaaaaaaaa1"),
	    0);
	assert_int_equal(fo_set_str(&fo->ident_subnet, "subnet-0bbbbbbbbbbbbbbb1"),
	    0);
	assert_int_equal(fo_set_str(&fo->moved_to, "i-new"), 0);
	fo->moved_at = 1700000000;	/* moved_from stays NULL: "" */
	assert_int_equal(fo_set_str(&fo->learned_instances, "i-a i-new"), 0);
	assert_int_equal(fo_set_str(&fo->learned_instance, "i-new"), 0);
	fo->last_failover = 1700000100;
	ended("fo-web-1", "failed", 1690000000);
	ended("fo-web-2", "completed", 1700000000);
	assert_int_equal(fo_save(fo), 0);
	/* The keys on disk are those the previous versions wrote. */
	assert_string_equal(on_disk("identity.vol-00000000000000001"),
	    "vol-0aaaaaaaaaaaaaaa1");
	assert_string_equal(on_disk("identity.vol-00000000000000002"),
	    "(none)");
	assert_string_equal(on_disk("identity.subnet"),
	    "subnet-0bbbbbbbbbbbbbbb1");
	assert_string_equal(on_disk("moved_from"), "");
	assert_string_equal(on_disk("moved_to"), "i-new");
	assert_string_equal(on_disk("moved_at"), "1700000000");
	assert_string_equal(on_disk("learned_instances"), "i-a i-new");
	assert_string_equal(on_disk("learned_instance"), "i-new");
	assert_string_equal(on_disk("last_failover"), "1700000100");
	assert_string_equal(on_disk("eip_ip"), "127.0.0.9");
	assert_string_equal(on_disk("history.next"), "2");
	assert_string_equal(on_disk("h.1.id"), "fo-web-2");
	assert_string_equal(on_disk("h.0.result"), "failed");
	assert_string_equal(on_disk("h.0.t.total"), "42.125");
	assert_string_equal(on_disk("h.0.t.fence"), "(none)");

	back = failover_new(&env, svc);
	assert_non_null(back);
	assert_string_equal(fo_vol_id(back, "vol-00000000000000001"),
	    "vol-0aaaaaaaaaaaaaaa1");
	assert_string_equal(failover_volume_id(back, "vol-00000000000000002"),
	    "vol-00000000000000002");
	assert_string_equal(failover_subnet(back), "subnet-0bbbbbbbbbbbbbbb1");
	assert_null(back->moved_from);
	assert_string_equal(back->moved_to, "i-new");
	assert_int_equal(back->moved_at, 1700000000);
	assert_string_equal(back->learned_instances, "i-a i-new");
	assert_string_equal(back->learned_instance, "i-new");
	assert_int_equal(back->last_failover, 1700000100);
	assert_string_equal(back->eip_ip, "127.0.0.9");
	same_history(fo, back);
	/* A move now begins from the volume the evacuation made. */
	assert_string_equal(back->vols[0].id, "vol-00000000000000001");
	assert_int_equal(fo_progress_reset(back), 0);
	assert_string_equal(back->vols[0].id, "vol-0aaaaaaaaaaaaaaa1");
	buf_init(&out);
	failover_history(back, &out, 0);
	assert_non_null(strstr(buf_str(&out), "fo-web-2 result=completed "
	    "kind=failover trigger=manual mode=replace old=i-old new=i-new"));
	assert_non_null(strstr(buf_str(&out), "total=42.125s"));
	buf_free(&out);
	failover_free(back);
}

/* The history keeps the last FO_HISTORY_MAX moves, in the record too. */
static void
test_history_keeps_the_last(void **state)
{
	struct failover	*back;
	char		 id[32];
	int		 n;

	for (n = 0; n < FO_HISTORY_MAX + 5; n++) {
		snprintf(id, sizeof(id), "fo-web-%d", n);
		ended(id, "completed", 1700000000 + n);
	}
	assert_int_equal(fo_save(fo), 0);
	assert_null(fo_history_at(fo, 4));
	assert_string_equal(fo_history_at(fo, 5)->id, "fo-web-5");
	assert_string_equal(on_disk("h.4.id"), "(none)");
	assert_string_equal(on_disk("h.5.id"), "fo-web-5");
	back = failover_new(&env, svc);
	assert_non_null(back);
	same_history(fo, back);
	assert_string_equal(fo_history_at(back, FO_HISTORY_MAX + 4)->id,
	    "fo-web-24");
	failover_free(back);
}

/*
 * A journal the previous version wrote (its fields only in the record,
 * learned_instance alone, an old history entry without a kind) is
 * restored, and saved back with its keys as they were.
 */
static void
test_restore_previous_version(void **state)
{
	static const char *const kept[][2] = {
		{ "step", "idle" },
		{ "paused", "0" },
		{ "eip_ip", "127.0.0.9" },
		{ "identity.vol-00000000000000002", "vol-0ccccccccccccccc2" },
		{ "identity.subnet", "subnet-0ddddddddddddddd1" },
		{ "moved_from", "i-old" },
		{ "moved_to", "i-new" },
		{ "moved_at", "1700000000" },
		{ "learned_instance", "i-new" },
		{ "last_failover", "1700000100" },
		{ "history.next", "2" },
		{ "h.0.id", "fo-web-old" },
		{ "h.0.result", "completed" },
		{ "h.0.started", "1600000000" },
		{ "h.1.id", "fo-web-new" },
		{ "h.1.kind", "switch" },
		{ "h.1.result", "failed" },
		{ "h.1.started", "1700000000" },
		{ "h.1.t.total", "12.500" },
	};
	struct journal_rec	*rec;
	struct failover		*back;
	char			 err[512];
	size_t			 i;

	rec = journal_rec_new();
	assert_non_null(rec);
	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		assert_int_equal(journal_rec_set(rec, kept[i][0],
		    kept[i][1]), 0);
	assert_int_equal(journal_save(dir, "web", rec, err, sizeof(err)), 0);
	journal_rec_free(rec);
	back = failover_new(&env, svc);
	assert_non_null(back);
	assert_int_equal(failover_step(back), FAILOVER_IDLE);
	assert_string_equal(back->eip_ip, "127.0.0.9");
	assert_string_equal(fo_vol_id(back, "vol-00000000000000002"),
	    "vol-0ccccccccccccccc2");
	assert_string_equal(fo_vol_id(back, "vol-00000000000000001"),
	    "vol-00000000000000001");
	assert_string_equal(failover_subnet(back), "subnet-0ddddddddddddddd1");
	assert_string_equal(back->moved_from, "i-old");
	assert_string_equal(back->moved_to, "i-new");
	assert_int_equal(back->moved_at, 1700000000);
	assert_string_equal(back->learned_instance, "i-new");
	assert_null(back->learned_instances);
	assert_int_equal(back->last_failover, 1700000100);
	assert_int_equal(back->history_next, 2);
	assert_string_equal(fo_history_at(back, 0)->id, "fo-web-old");
	assert_null(fo_history_at(back, 0)->kind);
	assert_int_equal(fo_history_at(back, 0)->started, 1600000000);
	assert_string_equal(fo_history_at(back, 1)->kind, "switch");
	assert_true(fo_history_at(back, 1)->t[T_TOTAL] == 12.5);
	assert_true(fo_history_at(back, 1)->t[T_FENCE] < 0);
	/* Saved back: the same keys, the same values. */
	back->paused = 1;
	assert_int_equal(fo_save(back), 0);
	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		if (strcmp(kept[i][0], "paused") != 0)
			assert_string_equal(on_disk(kept[i][0]), kept[i][1]);
	assert_string_equal(on_disk("learned_instances"), "(none)");
	failover_free(back);
}

/* Every step a journal can hold resumes as itself, or looks again. */
static void
test_restore_every_step(void **state)
{
	struct journal_rec	*rec;
	struct failover		*back;
	char			 err[512];
	int			 s, want;

	for (s = 0; s < FAILOVER_STEP_MAX; s++) {
		rec = journal_rec_new();
		assert_non_null(rec);
		journal_rec_set(rec, "step", failover_step_str(s));
		journal_rec_set(rec, "failover_id", "fo-web-test");
		journal_rec_set(rec, "old_instance", "i-old");
		journal_rec_set(rec, "new_instance", "i-new");
		journal_rec_set(rec, "kind", "failover");
		journal_rec_set(rec, "fence", "fenced");
		journal_rec_set(rec, "launch", "ready");
		journal_rec_set(rec, "switch_kept", "i-kept");
		assert_int_equal(journal_save(dir, "web", rec, err,
		    sizeof(err)), 0);
		journal_rec_free(rec);
		back = failover_new(&env, svc);
		assert_non_null(back);
		want = s == FAILOVER_CORROBORATE ? FAILOVER_IDLE : s;
		assert_int_equal(failover_step(back), want);
		assert_int_equal(back->resumed, s >= FAILOVER_FENCE_LAUNCH &&
		    s <= FAILOVER_VERIFY);
		/* The service's own fields, whatever the step. */
		assert_string_equal(back->switch_kept, "i-kept");
		if (back->resumed) {
			assert_string_equal(back->id, "fo-web-test");
			assert_string_equal(back->new, "i-new");
			assert_int_equal(back->fence, FENCE_DONE);
		}
		failover_free(back);
		fake_reset();
	}
}

static const char ok_start[] = "<StartInstancesResponse " NS ">"
    "<requestId>r</requestId><instancesSet><item><instanceId>i-kept"
    "</instanceId><currentState><name>pending</name></currentState>"
    "</item></instancesSet></StartInstancesResponse>";

/*
 * A rollback begins through its kind (fo_kinds[KIND_ROLLBACK]): its id
 * says so, it fences production at once, and its launch is the kept
 * instance, looked at before it is started again.
 */
static void
test_rollback_starts_the_kept(void **state)
{
	struct buf out;

	assert_int_equal(fo_set_str(&fo->switch_kept, "i-kept"), 0);
	buf_init(&out);
	assert_int_equal(failover_rollback(fo, &out), 0);
	buf_free(&out);
	assert_int_equal(fo->kind, KIND_ROLLBACK);
	assert_int_equal(strncmp(fo->id, "rb-web-", 7), 0);
	assert_string_equal(fo->old, "i-old");
	assert_string_equal(fo->new, "i-kept");
	assert_true(fo->manual);
	assert_false(fo->rollback_auto);
	assert_string_equal(on_disk("kind"), "rollback");
	assert_int_equal(pending(EC2_STOP_INSTANCES), 1);
	assert_int_equal(pending(EC2_RUN_INSTANCES), 0);
	assert_int_equal(pending(EC2_DESCRIBE_INSTANCES), 1);
	answer(EC2_DESCRIBE_INSTANCES, instance_xml("i-kept", "stopped"));
	assert_int_equal(pending(EC2_START_INSTANCES), 1);
	answer(EC2_START_INSTANCES, ok_start);
	assert_int_equal(fo->launch, LAUNCH_SENT);
	/* Just started by us: a "stopped" still shown is not believed. */
	fo_poll(fo);
	answer(EC2_DESCRIBE_INSTANCES, instance_xml("i-kept", "stopped"));
	assert_int_equal(fo->launch, LAUNCH_SENT);
}

/* A failover with no capacity anywhere restarts production in place. */
static void
test_no_capacity_restarts_in_place(void **state)
{
	struct buf	out;
	int		n;

	buf_init(&out);
	assert_int_equal(failover_manual(fo, &out), 0);
	buf_free(&out);
	for (n = 0; n < FO_LAUNCH_TRIES; n++) {
		assert_int_equal(pending(EC2_RUN_INSTANCES), 1);
		refuse(EC2_RUN_INSTANCES, "InsufficientInstanceCapacity");
		fo->launch_next = 0;	/* no waiting in a unit test */
		fo_poll(fo);
	}
	assert_int_equal(fo->kind, KIND_FAILOVER);
	assert_true(fo->restart);
	assert_string_equal(fo->new, "i-old");
	assert_string_equal(on_disk("mode"), "restart");
	assert_int_equal(pending(EC2_RUN_INSTANCES), 0);
	/* Started again only once fenced. */
	assert_int_equal(pending(EC2_START_INSTANCES), 0);
}

/*
 * A failover resumed before its launch is known looks for it by its
 * ClientToken (the lookup's own reply handler) and adopts what it
 * finds instead of launching a second one.
 */
static void
test_resumed_launch_found(void **state)
{
	struct journal_rec	*rec;
	struct failover		*back;
	char			 err[512];

	rec = journal_rec_new();
	assert_non_null(rec);
	journal_rec_set(rec, "step", "fence+launch");
	journal_rec_set(rec, "failover_id", "fo-web-test");
	journal_rec_set(rec, "old_instance", "i-old");
	journal_rec_set(rec, "kind", "failover");
	journal_rec_set(rec, "fence", "stopping");
	journal_rec_set(rec, "launch", "sent");
	assert_int_equal(journal_save(dir, "web", rec, err, sizeof(err)), 0);
	journal_rec_free(rec);
	failover_free(fo);
	fo = back = failover_new(&env, svc);
	assert_non_null(back);
	knows_production(back);
	assert_true(back->resumed);
	/* Launch "sent" but no instance id: the launch is looked for. */
	assert_int_equal(back->launch, LAUNCH_TODO);
	fake_reset();
	fo_poll(back);
	assert_int_equal(pending(EC2_DESCRIBE_INSTANCES), 2);
	assert_int_equal(pending(EC2_RUN_INSTANCES), 0);
	answer(EC2_DESCRIBE_INSTANCES, instance_xml("i-old", "stopping"));
	answer(EC2_DESCRIBE_INSTANCES, instance_xml("i-found", "pending"));
	assert_string_equal(back->new, "i-found");
	assert_int_equal(back->launch, LAUNCH_SENT);
	assert_string_equal(on_disk("new_instance"), "i-found");
}

/*
 * Nothing holds the EIP or the volumes: nothing to fence, and the move
 * goes on to DETACH at once, its launch under way.
 */
static void
test_nothing_to_fence(void **state)
{
	struct buf out;

	assert_int_equal(fo_set_str(&fo->eip_instance, NULL), 0);
	assert_int_equal(fo_set_str(&fo->vol_instance, NULL), 0);
	buf_init(&out);
	assert_int_equal(failover_manual(fo, &out), 0);
	buf_free(&out);
	assert_null(fo->old);
	assert_int_equal(fo->fence, FENCE_DONE);
	assert_int_equal(failover_step(fo), FAILOVER_DETACH);
	assert_int_equal(pending(EC2_STOP_INSTANCES), 0);
	assert_int_equal(pending(EC2_RUN_INSTANCES), 1);
	assert_string_equal(on_disk("step"), "detach");
}

/*
 * Resumed in DETACH with every volume free and the replacement ready
 * (the crash came before the step was written): it goes on to ATTACH.
 */
static void
test_resumed_detach_goes_on(void **state)
{
	struct journal_rec	*rec;
	char			 err[512];

	rec = journal_rec_new();
	assert_non_null(rec);
	journal_rec_set(rec, "step", "detach");
	journal_rec_set(rec, "failover_id", "fo-web-test");
	journal_rec_set(rec, "old_instance", "i-old");
	journal_rec_set(rec, "new_instance", "i-new");
	journal_rec_set(rec, "kind", "failover");
	journal_rec_set(rec, "fence", "fenced");
	journal_rec_set(rec, "launch", "ready");
	journal_rec_set(rec, "t.detach", "1.500");
	assert_int_equal(journal_save(dir, "web", rec, err, sizeof(err)), 0);
	journal_rec_free(rec);
	failover_free(fo);
	fo = failover_new(&env, svc);
	assert_non_null(fo);
	knows_production(fo);
	fake_reset();
	assert_int_equal(failover_step(fo), FAILOVER_DETACH);
	fo_poll(fo);
	assert_int_equal(failover_step(fo), FAILOVER_ATTACH);
	/* Seen in an earlier life: described before anything is attached. */
	assert_int_equal(pending(EC2_ATTACH_VOLUME), 0);
	assert_int_equal(pending(EC2_DESCRIBE_VOLUMES), 1);
}

/* A switch refused before touching production leaves it alone. */
static void
test_switch_refused_leaves_production(void **state)
{
	struct buf out;

	buf_init(&out);
	assert_int_equal(failover_switch(fo, "ami-0fedcba9876543210", &out),
	    0);
	buf_free(&out);
	assert_int_equal(fo->kind, KIND_SWITCH);
	/* The new release runs before production is touched. */
	assert_int_equal(pending(EC2_RUN_INSTANCES), 1);
	assert_int_equal(pending(EC2_STOP_INSTANCES), 0);
	refuse(EC2_RUN_INSTANCES, "InvalidAMIID.NotFound");
	assert_int_equal(failover_step(fo), FAILOVER_IDLE);
	assert_int_equal(pending_all(), 0);
	assert_string_equal(on_disk("h.0.kind"), "switch");
	assert_string_equal(on_disk("h.0.result"), "failed");
	assert_null(fo->switch_kept);
}

/*
 * Out of memory while the move's volumes are set up: none of them, no
 * call, the service held for a person (never a move of some volumes).
 */
static void
test_oom_volumes_all_or_nothing(void **state)
{
	struct buf out;

	buf_init(&out);
	/* Four copies per volume: the second volume's second fails. */
	strdup_fail_in = 6;
	assert_int_equal(failover_manual(fo, &out), -1);
	assert_non_null(strstr(buf_str(&out), "out of memory"));
	buf_free(&out);
	assert_int_equal(fo->nvols, 0);
	assert_null(fo->vols);
	assert_int_equal(pending_all(), 0);
	assert_int_equal(failover_step(fo), FAILOVER_HELD);
	assert_non_null(strstr(fo->hold_reason, "out of memory"));
}

/* fo_set_str says so and keeps the old value; the caller decides. */
static void
test_oom_set_str(void **state)
{
	char *s = NULL;

	assert_int_equal(fo_set_str(&s, "i-one"), 0);
	strdup_fail_in = 1;
	assert_int_equal(fo_set_str(&s, "i-two"), -1);
	assert_string_equal(s, "i-one");
	assert_int_equal(fo_set_str(&s, NULL), 0);
	assert_null(s);
}

/* --- a cluster's hooks (failover_env journal_*, may_act, verdict) ------- */

static int			 ck_leads = 1;
static int			 ck_landed;	/* save: 0, else 1 (under way) */
static int			 ck_saves;
static enum service_verdict	 ck_verdict = SERVICE_HEALTHY;

static int
ck_save(void *arg, const char *service, const struct journal_rec *rec,
    char *err, size_t len)
{
	if (!ck_leads) {
		snprintf(err, len, "not the leader");
		return -1;
	}
	ck_saves++;
	return ck_landed ? 0 : 1;
}

static int
ck_may_act(void *arg, char *why, size_t len)
{
	if (!ck_leads)
		snprintf(why, len, "this member (b) is not the cluster's "
		    "leader; the leader is a");
	return ck_leads;
}

static enum service_verdict
ck_verdict_of(void *arg, const struct service *s)
{
	return ck_verdict;
}

static void
cluster_hooks(void)
{
	ck_leads = 1;
	ck_landed = 0;
	ck_saves = 0;
	ck_verdict = SERVICE_HEALTHY;
	env.journal_save = ck_save;
	env.may_act = ck_may_act;
	env.verdict = ck_verdict_of;
}

/*
 * A record on its way to etcd is not durable: the fence and the launch
 * wait for it, and go as soon as the cluster says it landed, not a
 * poll later.
 */
static void
test_cluster_call_waits_for_the_write(void **state)
{
	struct buf out;

	cluster_hooks();
	buf_init(&out);
	assert_int_equal(failover_manual(fo, &out), 0);
	buf_free(&out);
	assert_int_equal(failover_step(fo), FAILOVER_FENCE_LAUNCH);
	assert_true(ck_saves > 0);
	assert_int_equal(pending(EC2_STOP_INSTANCES), 0);
	assert_int_equal(pending(EC2_RUN_INSTANCES), 0);
	/* Not a journal failure: nothing is wrong with the state_dir. */
	assert_int_equal(fo->journal_failing, 0);
	ck_landed = 1;
	failover_journal_written(fo);
	ev_run(loop, EVRUN_NOWAIT);
	assert_int_equal(pending(EC2_STOP_INSTANCES), 1);
	assert_int_equal(pending(EC2_RUN_INSTANCES), 1);
}

/* A member that does not lead starts nothing and sends nothing. */
static void
test_cluster_follower_never_acts(void **state)
{
	struct ec2_request	*req;
	struct buf		 out;

	cluster_hooks();
	ck_leads = 0;
	ck_verdict = SERVICE_DOWN;
	failover_on_verdict(fo, SERVICE_HEALTHY, SERVICE_DOWN);
	assert_int_equal(failover_step(fo), FAILOVER_IDLE);
	assert_int_equal(pending_all(), 0);
	buf_init(&out);
	assert_int_equal(failover_manual(fo, &out), -1);
	assert_non_null(strstr(buf_str(&out), "not the cluster's leader"));
	buf_free(&out);
	req = fo_req_instance(EC2_STOP_INSTANCES, "InstanceId.1", "i-old");
	assert_non_null(req);
	assert_int_equal(fo_send(fo, FO_MAIN, req, FO_ACT_DEADLINE,
	    fo_on_stop, NULL), -1);
	assert_int_equal(pending_all(), 0);
	assert_int_equal(ck_saves, 0);
	assert_int_equal(fo->journal_failing, 0);
}

/* The hook's verdict moves the engine, not the service's own. */
static void
test_cluster_verdict_hook_decides(void **state)
{
	cluster_hooks();
	ck_landed = 1;
	/* The local probes' DOWN, the quorum's HEALTHY: nothing. */
	ck_verdict = SERVICE_HEALTHY;
	failover_on_verdict(fo, SERVICE_HEALTHY, SERVICE_DOWN);
	assert_int_equal(failover_step(fo), FAILOVER_IDLE);
	assert_int_equal(pending_all(), 0);
	/* The quorum's DOWN (the service itself never probed): acts. */
	ck_verdict = SERVICE_DOWN;
	failover_on_verdict(fo, SERVICE_HEALTHY, SERVICE_DOWN);
	assert_int_not_equal(failover_step(fo), FAILOVER_IDLE);
	assert_true(pending_all() > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_failover_steps, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_restart_in_place_after_detach_waits_for_the_volumes,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_elsewhere_fails,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_round_trip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_restore_every_step, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_switch_refused_leaves_production, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_oom_volumes_all_or_nothing, setup, teardown),
		cmocka_unit_test(test_oom_set_str),
		cmocka_unit_test_setup_teardown(test_service_fields_round_trip,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_keeps_the_last,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_previous_version,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_starts_the_kept,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_no_capacity_restarts_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resumed_launch_found,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_to_fence, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_resumed_detach_goes_on,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cluster_call_waits_for_the_write, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cluster_follower_never_acts, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cluster_verdict_hook_decides, setup, teardown),
	};

	log_init("test_failover_engine", LOG_USER, 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
