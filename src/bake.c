/*
 * Baking an AMI of the running instance (bake.h), one step at a time,
 * each change logged by bake_set_step():
 *
 *   resolve (which instance the EIP points at) -> create (CreateImage)
 *   -> wait (DescribeImages until available, polling with backoff)
 *
 * The whole bake has one deadline; an image still pending then is left
 * to AWS and reported, never deregistered behind a person's back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "failoverd/alert.h"
#include "failoverd/bake.h"
#include "failoverd/ec2.h"
#include "failoverd/journal.h"
#include "failoverd/launch.h"
#include "failoverd/log.h"
#include "failoverd/service.h"
#include "failoverd/snapshot.h"

#define BAKE_DEADLINE		3600.0	/* CreateImage to available */
#define BAKE_CALL_DEADLINE	120.0
#define BAKE_POLL_FIRST		1.0
#define BAKE_POLL_MAX		15.0

enum bake_step {
	BAKE_IDLE,
	BAKE_RESOLVE,
	BAKE_CREATE,
	BAKE_WAIT,
	BAKE_STEP_MAX
};

static const char *const bake_step_names[BAKE_STEP_MAX] = {
	"idle", "resolve", "create", "wait"
};

struct bake {
	struct bake_env		 env;
	struct service		*svc;
	char			*name;
	char			*state_name;	/* "<service>.bake" */
	char			*state_dir;

	enum bake_step		 step;
	int			 no_reboot;
	int			 use;
	char			*instance;
	char			*image;
	double			 started;	/* ev_now */
	double			 poll;
	struct ec2_call		*call;
	ev_timer		 timer;

	/* Persistent. */
	char			*replacement;	/* NULL: launch.ami */
	char			*last_image;
	char			*last_result;	/* "available", "failed: .." */
};

static void bake_poll(struct bake *b);

void
bake_image_name(const char *service, time_t t, char *out, size_t len)
{
	struct tm tm;
	char stamp[32];

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(out, len, "failoverd-%s-%s", service, stamp);
}

static void
bake_set_step(struct bake *b, enum bake_step step)
{
	if (b->step == step)
		return;
	log_info("bake %s: [%s] -> [%s]", b->name, bake_step_names[b->step],
	    bake_step_names[step]);
	b->step = step;
}

static void
bake_set_str(char **field, const char *v)
{
	char *copy = NULL;

	if (v != NULL) {
		copy = strdup(v);
		if (copy == NULL) {
			log_warnx("bake: out of memory");
			return;
		}
	}
	free(*field);
	*field = copy;
}

static void
bake_load(struct bake *b)
{
	struct journal_rec	*rec = NULL;
	const char		*v;
	char			 err[512];
	int			 rc;

	rc = journal_load(b->env.state_dir, b->state_name, &rec, err,
	    sizeof(err));
	if (rc == 1)
		return;
	if (rc == -1) {
		/* Never guess an AMI: the configuration's stays in force. */
		alert_emit(ALERT_JOURNAL_CORRUPT, b->name, "file",
		    b->state_name, "error", err, "action", "launch.ami is "
		    "used until a person fixes or removes the file", NULL);
		return;
	}
	v = journal_rec_get(rec, "replacement_ami");
	if (v != NULL && v[0] != '\0')
		bake_set_str(&b->replacement, v);
	v = journal_rec_get(rec, "last_image");
	if (v != NULL && v[0] != '\0')
		bake_set_str(&b->last_image, v);
	v = journal_rec_get(rec, "last_result");
	if (v != NULL && v[0] != '\0')
		bake_set_str(&b->last_result, v);
	journal_rec_free(rec);
}

static void
bake_save(struct bake *b)
{
	struct journal_rec	*rec;
	char			 err[512];

	rec = journal_rec_new();
	if (rec == NULL ||
	    journal_rec_set(rec, "replacement_ami", b->replacement != NULL ?
	    b->replacement : "") ||
	    journal_rec_set(rec, "last_image", b->last_image != NULL ?
	    b->last_image : "") ||
	    journal_rec_set(rec, "last_result", b->last_result != NULL ?
	    b->last_result : "")) {
		log_warnx("bake %s: state: out of memory", b->name);
		journal_rec_free(rec);
		return;
	}
	if (journal_save(b->env.state_dir, b->state_name, rec, err,
	    sizeof(err)) == -1)
		log_warnx("bake %s: state not saved: %s", b->name, err);
	journal_rec_free(rec);
}

static void
bake_end(struct bake *b, const char *failure)
{
	char result[600], secs[32];

	ev_timer_stop(b->env.loop, &b->timer);
	if (failure != NULL) {
		snprintf(result, sizeof(result), "failed: %s", failure);
		alert_emit(ALERT_BAKE_FAILED, b->name, "instance",
		    b->instance != NULL ? b->instance : "-", "image",
		    b->image != NULL ? b->image : "-", "reason", failure,
		    NULL);
	} else {
		snprintf(result, sizeof(result), "available");
		if (b->use)
			bake_set_str(&b->replacement, b->image);
		snprintf(secs, sizeof(secs), "%.0f",
		    ev_now(b->env.loop) - b->started);
		alert_emit(ALERT_BAKE_COMPLETED, b->name, "image", b->image,
		    "instance", b->instance, "used", b->use ? "yes: "
		    "replacements launch from it" : "no", "seconds", secs,
		    NULL);
	}
	bake_set_str(&b->last_result, result);
	if (b->image != NULL)
		bake_set_str(&b->last_image, b->image);
	bake_save(b);
	free(b->instance);
	free(b->image);
	b->instance = b->image = NULL;
	bake_set_step(b, BAKE_IDLE);
}

static void
bake_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	bake_poll(w->data);
}

static void
bake_on_described(struct ec2_result *res, void *arg)
{
	struct bake		*b = arg;
	const struct ec2_image	*im;
	char			 why[512];
	size_t			 n;

	b->call = NULL;
	n = ec2_result_status(res) == EC2_OK ?
	    ec2_result_images(res, &im) : 0;
	if (n > 0 && im->state != NULL && strcmp(im->state, "available")
	    == 0) {
		ec2_result_free(res);
		bake_end(b, NULL);
		return;
	}
	if (n > 0 && im->state != NULL && strcmp(im->state, "pending")
	    != 0) {
		snprintf(why, sizeof(why), "image %s is %s", b->image,
		    im->state);
		ec2_result_free(res);
		bake_end(b, why);
		return;
	}
	if (n == 0 && ec2_result_status(res) != EC2_OK)
		log_warnx("bake %s: describing %s: %s", b->name, b->image,
		    ec2_result_error(res));
	ec2_result_free(res);
	if (ev_now(b->env.loop) - b->started > BAKE_DEADLINE) {
		snprintf(why, sizeof(why), "image %s not available after "
		    "%.0fs; left to AWS", b->image, BAKE_DEADLINE);
		bake_end(b, why);
		return;
	}
	ev_timer_set(&b->timer, b->poll, 0.);
	ev_timer_start(b->env.loop, &b->timer);
	b->poll = b->poll * 2 < BAKE_POLL_MAX ? b->poll * 2 : BAKE_POLL_MAX;
}

static void
bake_poll(struct bake *b)
{
	struct ec2_request *req;

	req = ec2_request_new(EC2_DESCRIBE_IMAGES);
	if (req == NULL || ec2_request_add(req, "ImageId.1", b->image)) {
		ec2_request_free(req);
		bake_end(b, "out of memory");
		return;
	}
	/* Just created: a NotFound is AWS's lag, not an absence. */
	ec2_request_set_after_mutation(req, 1);
	b->call = ec2_call(b->env.ec2, req, BAKE_CALL_DEADLINE,
	    bake_on_described, b);
	if (b->call == NULL)
		bake_end(b, "out of memory");
}

static void
bake_on_created(struct ec2_result *res, void *arg)
{
	struct bake	*b = arg;
	const char	*id = ec2_result_id(res);
	char		 why[600];

	b->call = NULL;
	if (ec2_result_status(res) != EC2_OK || id == NULL) {
		snprintf(why, sizeof(why), "CreateImage of %s: %s",
		    b->instance, ec2_result_error(res));
		ec2_result_free(res);
		bake_end(b, why);
		return;
	}
	bake_set_str(&b->image, id);
	ec2_result_free(res);
	if (b->image == NULL) {
		bake_end(b, "out of memory");
		return;
	}
	log_info("bake %s: image %s of %s created, waiting until available",
	    b->name, b->image, b->instance);
	bake_set_step(b, BAKE_WAIT);
	b->poll = BAKE_POLL_FIRST;
	bake_poll(b);
}

/*
 * CreateImage has no ClientToken: if a reply is lost, the image of
 * this name with this bake's tags is looked for before another is
 * made, and a retry told the name is taken adopts it when it is ours.
 */
static struct ec2_request *
bake_effect_lookup(struct bake *b, const char *name)
{
	struct ec2_request	*req;
	const char		*val[1];
	int			 bad = 0;

	req = ec2_request_new(EC2_DESCRIBE_IMAGES);
	if (req == NULL)
		return NULL;
	bad |= ec2_request_add(req, "Owner.1", "self");
	val[0] = name;
	bad |= ec2_request_add_filter(req, "name", val, 1);
	val[0] = b->name;
	bad |= ec2_request_add_filter(req, "tag:" SNAPSHOT_TAG_SERVICE, val,
	    1);
	val[0] = b->instance;
	bad |= ec2_request_add_filter(req, "tag:failoverd:source-instance",
	    val, 1);
	if (bad) {
		ec2_request_free(req);
		return NULL;
	}
	return req;
}

static void
bake_create(struct bake *b)
{
	struct ec2_request	*req;
	struct ec2_tag		 tags[4];
	char			 name[128], when[32];
	time_t			 now = time(NULL);
	struct tm		 tm;
	int			 bad = 0;

	bake_set_step(b, BAKE_CREATE);
	bake_image_name(b->name, now, name, sizeof(name));
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	tags[0].key = SNAPSHOT_TAG_SERVICE;
	tags[0].value = b->name;
	tags[1].key = SNAPSHOT_TAG_TAKEN_BY;
	tags[1].value = SNAPSHOT_TAKEN_BY;
	tags[2].key = "failoverd:source-instance";
	tags[2].value = b->instance;
	tags[3].key = SNAPSHOT_TAG_TIME;
	tags[3].value = when;
	req = ec2_request_new(EC2_CREATE_IMAGE);
	if (req == NULL) {
		bake_end(b, "out of memory");
		return;
	}
	bad |= ec2_request_add(req, "InstanceId", b->instance);
	bad |= ec2_request_add(req, "Name", name);
	bad |= ec2_request_addf(req, "Description", "failoverd bake of "
	    "service %s from %s at %s", b->name, b->instance, when);
	if (b->no_reboot)
		bad |= ec2_request_add(req, "NoReboot", "true");
	/* An image of the system, not of the data the failover moves. */
	bad |= launch_no_data_devices(req, service_conf(b->svc),
	    "BlockDeviceMapping");
	bad |= ec2_request_add_tag_spec(req, "image", tags, 4);
	bad |= ec2_request_set_effect_lookup(req, bake_effect_lookup(b,
	    name), "InvalidAMIName.Duplicate");
	if (bad) {
		ec2_request_free(req);
		bake_end(b, "out of memory");
		return;
	}
	b->call = ec2_call(b->env.ec2, req, BAKE_CALL_DEADLINE,
	    bake_on_created, b);
	if (b->call == NULL)
		bake_end(b, "out of memory");
}

static void
bake_on_resolved(struct ec2_result *res, void *arg)
{
	struct bake			*b = arg;
	const struct ec2_address	*a;
	char				 why[600];

	b->call = NULL;
	if (ec2_result_status(res) != EC2_OK) {
		snprintf(why, sizeof(why), "which instance the Elastic IP "
		    "points at: %s", ec2_result_error(res));
		ec2_result_free(res);
		bake_end(b, why);
		return;
	}
	if (ec2_result_addresses(res, &a) == 0 || a->instance_id == NULL ||
	    a->instance_id[0] == '\0') {
		ec2_result_free(res);
		bake_end(b, "the Elastic IP is not associated with an "
		    "instance: nothing to bake");
		return;
	}
	bake_set_str(&b->instance, a->instance_id);
	ec2_result_free(res);
	if (b->instance == NULL) {
		bake_end(b, "out of memory");
		return;
	}
	bake_create(b);
}

struct bake *
bake_new(const struct bake_env *env, struct service *svc)
{
	struct bake *b;

	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->env = *env;
	b->svc = svc;
	b->name = strdup(service_name(svc));
	/* Ours: a reload frees the configuration it came from. */
	b->env.state_dir = b->state_dir = strdup(env->state_dir);
	if (b->name == NULL || b->state_dir == NULL ||
	    asprintf(&b->state_name, "%s.bake", b->name) == -1) {
		free(b->state_dir);
		free(b->name);
		free(b);
		return NULL;
	}
	ev_timer_init(&b->timer, bake_on_timer, 0., 0.);
	b->timer.data = b;
	bake_load(b);
	return b;
}

void
bake_free(struct bake *b)
{
	if (b == NULL)
		return;
	ev_timer_stop(b->env.loop, &b->timer);
	if (b->call != NULL)
		ec2_call_cancel(b->call);
	free(b->instance);
	free(b->image);
	free(b->replacement);
	free(b->last_image);
	free(b->last_result);
	free(b->state_name);
	free(b->state_dir);
	free(b->name);
	free(b);
}

int
bake_running(const struct bake *b)
{
	return b->step != BAKE_IDLE;
}

const char *
bake_replacement_ami(const struct bake *b)
{
	return b->replacement;
}

int
bake_start(struct bake *b, int no_reboot, int use, struct buf *out)
{
	const struct service_conf	*sc = service_conf(b->svc);
	struct ec2_request		*req;

	if (b->step != BAKE_IDLE) {
		buf_printf(out, "service %s: a bake is in progress (%s%s%s)",
		    b->name, bake_step_names[b->step], b->image != NULL ?
		    ", image " : "", b->image != NULL ? b->image : "");
		return -1;
	}
	if (b->env.ec2 == NULL) {
		buf_printf(out, "service %s: no bake: the EC2 client is not "
		    "usable", b->name);
		return -1;
	}
	req = ec2_request_new(EC2_DESCRIBE_ADDRESSES);
	if (req == NULL || ec2_request_add(req, "AllocationId.1",
	    sc->eip_allocation_id) == -1) {
		ec2_request_free(req);
		buf_printf(out, "service %s: bake: out of memory", b->name);
		return -1;
	}
	b->no_reboot = no_reboot;
	b->use = use;
	b->started = ev_now(b->env.loop);
	bake_set_step(b, BAKE_RESOLVE);
	b->call = ec2_call(b->env.ec2, req, BAKE_CALL_DEADLINE,
	    bake_on_resolved, b);
	if (b->call == NULL) {
		bake_set_step(b, BAKE_IDLE);
		buf_printf(out, "service %s: bake: out of memory", b->name);
		return -1;
	}
	buf_printf(out, "bake of service %s started (%s%s); status shows "
	    "its progress\n", b->name, no_reboot ? "no reboot" :
	    "the instance reboots for a consistent image", use ?
	    ", the image becomes the replacement AMI" : "");
	return 0;
}

void
bake_status(const struct bake *b, struct buf *out, int json)
{
	if (json) {
		buf_puts(out, "\"bake\":{\"step\":");
		buf_json_str(out, bake_step_names[b->step]);
		buf_puts(out, ",\"image\":");
		buf_json_str(out, b->image != NULL ? b->image : "");
		buf_puts(out, ",\"replacement_ami\":");
		buf_json_str(out, b->replacement != NULL ? b->replacement :
		    "");
		buf_puts(out, ",\"last_image\":");
		buf_json_str(out, b->last_image != NULL ? b->last_image : "");
		buf_puts(out, ",\"last_result\":");
		buf_json_str(out, b->last_result != NULL ? b->last_result :
		    "");
		buf_puts(out, "}");
		return;
	}
	buf_printf(out, "  replacement AMI: %s\n", b->replacement != NULL ?
	    b->replacement : "launch.ami (from the configuration)");
	if (b->step != BAKE_IDLE)
		buf_printf(out, "  bake: %s%s%s\n", bake_step_names[b->step],
		    b->image != NULL ? " " : "", b->image != NULL ? b->image :
		    "");
	else if (b->last_image != NULL || b->last_result != NULL)
		buf_printf(out, "  last bake: %s %s\n", b->last_image != NULL ?
		    b->last_image : "-", b->last_result != NULL ?
		    b->last_result : "");
}
