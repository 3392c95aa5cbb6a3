/*
 * The main branch of a move: fence (StopInstances of the old instance),
 * detach the volumes, attach them to the replacement, associate the
 * Elastic IP, verify with the service's own probes. Each step reads
 * what AWS has before it acts.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "failover_priv.h"

static void	fo_volumes_progress(struct failover *fo);

/*
 * The fence's StopInstances. Force in both forms: EC2 first asks the
 * OS to shut down (flushing the file systems of the very volumes that
 * move next) and powers off when that has not finished within its
 * timeout. SkipOsShutdown powers off at once, faster on a hung OS at
 * the price of writes not yet flushed; it is sent only when the
 * policy asks for it and this region has not refused it.
 */
static struct ec2_request *
fo_stop_request(struct failover *fo)
{
	struct ec2_request	*req;
	int			 skip;

	skip = fo_policy(fo)->fence == POLICY_FENCE_SKIP_OS &&
	    !fo->skip_os_refused;
	req = fo_req_instance(EC2_STOP_INSTANCES, "InstanceId.1", fo->old);
	if (req == NULL ||
	    ec2_request_add(req, "Force", "true") == -1 ||
	    (skip && ec2_request_add(req, "SkipOsShutdown", "true") == -1)) {
		ec2_request_free(req);
		return NULL;
	}
	fo->skip_os_sent = skip;
	return req;
}

/*
 * A region or endpoint that predates SkipOsShutdown refuses it as an
 * unknown or invalid parameter: stop gracefully instead (Force alone)
 * rather than leave the service down. Returns 1 when the refusal was
 * that, and the fence is to send StopInstances again.
 */
int
fo_stop_refused(struct failover *fo, struct ec2_result *res)
{
	static const char *codes[] = { "UnknownParameter",
		"InvalidParameterValue", "InvalidParameterCombination",
		"InvalidParameter", "UnsupportedOperation" };
	const char	*code = ec2_result_code(res);
	size_t		 i;

	if (!fo->skip_os_sent || code == NULL ||
	    ec2_result_status(res) == EC2_OK)
		return 0;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(code, codes[i]) == 0)
			break;
	if (i == sizeof(codes) / sizeof(codes[0]))
		return 0;
	fo->skip_os_refused = 1;
	fo->skip_os_sent = 0;
	log_warnx("failover %s: StopInstances of %s refused SkipOsShutdown "
	    "(%s); fencing with the graceful stop instead (Force: the OS "
	    "shuts down first, powered off after EC2's timeout)", fo->name,
	    fo->old, ec2_result_error(res));
	return 1;
}

static void
fo_fence_poll(struct failover *fo)
{
	struct ec2_request *req;

	/* Fenced, also before a restart: what comes next says. */
	if (fo->fence == FENCE_DONE) {
		fo_next(fo);
		return;
	}
	if (fo->busy[FO_MAIN] > 0)
		return;
	/* A switch touches production only once its release passed. */
	if (!fo_kinds[fo->kind].may_fence(fo))
		return;
	if (fo->old == NULL) {
		/* Nothing held the EIP or the volumes: nothing to stop. */
		fo->fence = FENCE_DONE;
		fo->fenced_at = fo_now(fo);
		fo->t[T_FENCE] = 0;
		fo_next(fo);
		return;
	}
	if (fo->fence == FENCE_TODO) {
		req = fo_stop_request(fo);
		if (req == NULL)
			return;
		fo->stop_sent = 1;
		if (fo_send(fo, FO_MAIN, req, FO_ACT_DEADLINE, fo_on_stop,
		    NULL) == 0)
			fo->fence = FENCE_STOPPING;
		return;
	}
	req = fo_req_instance(EC2_DESCRIBE_INSTANCES, "InstanceId.1",
	    fo->old);
	if (req != NULL)
		fo_send(fo, FO_MAIN, req, FO_POLL_DEADLINE,
		    fo_on_fence_describe, NULL);
}

/* The fence's StopInstances: sent again on a passing trouble. */
void
fo_on_stop(struct failover *fo, struct ec2_result *res, void *arg)
{
	if (fo_stop_refused(fo, res))
		fo->fence = FENCE_TODO;
	else if (fo_outcome(fo, res) == FO_AGAIN)
		fo->fence = FENCE_TODO;
	else if (ec2_result_status(res) != EC2_OK)
		fo_fail(fo, ec2_result_error(res));
}

void
fo_on_fence_describe(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const struct ec2_instance *inst;

	if (fo->step != FAILOVER_FENCE_LAUNCH ||
	    fo_outcome(fo, res) != FO_OK ||
	    ec2_result_instances(res, &inst) == 0)
		return;
	if (fo_is(inst->state, "stopped") ||
	    fo_is(inst->state, "terminated")) {
		fo->fence = FENCE_DONE;
		fo->fenced_at = fo_now(fo);
		/* A switch fences only once its new instance passed. */
		fo->t[T_FENCE] = fo->fenced_at - (fo->prechecked ?
		    fo->step_start : fo->started);
		log_info("failover %s: %s fenced (%s, %.1fs, %s)", fo->name,
		    fo->old, inst->state, fo->t[T_FENCE], fo->skip_os_sent ?
		    "OS shutdown skipped" : "graceful stop");
		fo_next(fo);
		return;
	}
	/* Resumed, or someone started it again: stop it (again). */
	if (!fo->stop_sent && !fo_is(inst->state, "stopping"))
		fo->fence = FENCE_TODO;
}

static const char *
fo_target(const struct failover *fo)
{
	return fo->new;
}

static void
fo_volumes_describe(struct failover *fo)
{
	struct ec2_request	*req;
	const char		**ids;
	size_t			 i;

	if (fo->nvols == 0) {
		fo_volumes_progress(fo);
		return;
	}
	ids = calloc(fo->nvols, sizeof(*ids));
	req = fo_req(EC2_DESCRIBE_VOLUMES);
	if (ids == NULL || req == NULL) {
		free(ids);
		ec2_request_free(req);
		return;
	}
	for (i = 0; i < fo->nvols; i++)
		ids[i] = fo->vols[i].id;
	if (ec2_request_add_list(req, "VolumeId", ids, fo->nvols) == 0)
		fo_send(fo, FO_MAIN, req, FO_POLL_DEADLINE, fo_on_volumes,
		    NULL);
	else
		ec2_request_free(req);
	free(ids);
}

static struct fo_volume *
fo_find_volume(struct failover *fo, const char *id)
{
	size_t i;

	for (i = 0; i < fo->nvols; i++)
		if (fo_is(fo->vols[i].id, id))
			return &fo->vols[i];
	return NULL;
}

static void
fo_vol_set(struct failover *fo, struct fo_volume *v, enum fo_vol st)
{
	if (v->st == st)
		return;
	log_debug("failover %s: volume %s [%s] -> [%s]", fo->name, v->id,
	    fo_vol_names[v->st], fo_vol_names[st]);
	v->st = st;
}

/* Reads one volume of a DescribeVolumes reply into its state. */
static void
fo_vol_read(struct failover *fo, struct fo_volume *v,
    const struct ec2_volume *ev)
{
	const struct ec2_attachment	*a = NULL;
	const char			*target = fo_target(fo);

	if (ev->nattachments > 0)
		a = &ev->attachments[0];
	if (a == NULL || fo_is(a->state, "detached")) {
		v->where[0] = '\0';
		v->seen_free = 1;
		/* EC2 took our AttachVolume: this view is from before it. */
		if (v->attach_sent && v->st == VOL_ATTACHING)
			return;
		fo_vol_set(fo, v, fo_is(ev->state, "available") ?
		    VOL_AVAILABLE : VOL_DETACHING);
		return;
	}
	snprintf(v->where, sizeof(v->where), "%s",
	    a->instance_id ? a->instance_id : "");
	snprintf(v->where_dev, sizeof(v->where_dev), "%s",
	    a->device ? a->device : "?");
	snprintf(v->where_state, sizeof(v->where_state), "%s",
	    a->state ? a->state : "?");
	/*
	 * A restart in place makes the fenced instance the target. A volume
	 * we asked to detach from it and have not yet seen free is still on
	 * it only in a view from before our DetachVolume (Describe lags):
	 * counting it attached would end the move with it detached.
	 */
	if (target != NULL && fo_is(a->instance_id, target) &&
	    v->detach_sent && !v->seen_free && !v->attach_sent) {
		fo_vol_set(fo, v, VOL_DETACHING);
		return;
	}
	if (target != NULL && fo_is(a->instance_id, target)) {
		fo_vol_set(fo, v, fo_is(a->state, "attached") ?
		    VOL_ATTACHED : VOL_ATTACHING);
		return;
	}
	fo_vol_set(fo, v, fo_is(a->state, "detaching") ?
	    VOL_DETACHING : VOL_ELSEWHERE);
}

static void
fo_detach_one(struct failover *fo, struct fo_volume *v, int force)
{
	struct ec2_request	*req;
	int			 bad = 0;

	req = fo_req_instance(EC2_DETACH_VOLUME, "VolumeId", v->id);
	if (req == NULL)
		return;
	if (v->where[0] != '\0')
		bad |= ec2_request_add(req, "InstanceId", v->where);
	if (force)
		bad |= ec2_request_add(req, "Force", "true");
	if (bad) {
		ec2_request_free(req);
		return;
	}
	/* A refusal is judged as an AttachVolume's, without its volume. */
	if (fo_send(fo, FO_MAIN, req, FO_ACT_DEADLINE, fo_on_attach,
	    NULL) == -1)
		return;
	v->detach_sent = 1;
	if (force) {
		v->forced = 1;
		alert_emit(ALERT_FAILOVER_STEP_SLOW, fo->name, "failover_id",
		    fo->id, "step", "detach", "volume", v->id, "instance",
		    v->where, "action", "forced detach after detach_timeout",
		    NULL);
	}
}

static void
fo_attach_one(struct failover *fo, struct fo_volume *v)
{
	struct ec2_request	*req;
	int			 bad = 0;

	req = fo_req_instance(EC2_ATTACH_VOLUME, "VolumeId", v->id);
	if (req == NULL)
		return;
	bad |= ec2_request_add(req, "InstanceId", fo->new);
	bad |= ec2_request_add(req, "Device", v->device);
	if (bad) {
		ec2_request_free(req);
		return;
	}
	if (fo_send(fo, FO_MAIN, req, FO_ACT_DEADLINE, fo_on_attach, v) == 0) {
		v->attach_sent = 1;
		fo_vol_set(fo, v, VOL_ATTACHING);
	}
}

void
fo_on_volumes(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const struct ec2_volume	*ev;
	struct fo_volume	*v;
	size_t			 n, i;

	if ((fo->step != FAILOVER_DETACH && fo->step != FAILOVER_ATTACH) ||
	    fo_outcome(fo, res) != FO_OK)
		return;
	n = ec2_result_volumes(res, &ev);
	for (i = 0; i < n; i++) {
		v = fo_find_volume(fo, ev[i].volume_id);
		if (v != NULL)
			fo_vol_read(fo, v, &ev[i]);
	}
	fo_volumes_progress(fo);
}

/*
 * Only the instance this failover fenced (stopped) gives its volumes
 * up: DetachVolume's reference keeps Force for a failed instance and
 * warns that it can corrupt the file system. Any other holder (a
 * replacement a failed failover left running, an instance a person
 * started) may be writing to the volume.
 */
static int
fo_fenced_holder(const struct failover *fo, const struct fo_volume *v)
{
	return fo->fence == FENCE_DONE && fo->old != NULL &&
	    fo_is(v->where, fo->old);
}

/* A volume held by an instance we did not fence: a person decides. */
static void
fo_foreign_holder(struct failover *fo, const struct fo_volume *v)
{
	char why[400];

	snprintf(why, sizeof(why), "volume %s is attached to %s (%s) at %s "
	    "(attachment %s), an instance failoverd did not fence; it "
	    "detaches a volume only from the instance it stopped, or from "
	    "a stopped one", v->id, v->where, v->holder_state, v->where_dev,
	    v->where_state);
	alert_emit(ALERT_FAILOVER_HELD, fo->name, "failover_id", fo->id,
	    "volume", v->id, "instance", v->where, "instance_state",
	    v->holder_state, "device", v->where_dev, "attachment",
	    v->where_state, "reason", why, "action",
	    "nothing detached; if that instance should not have the volume, "
	    "stop it (or unmount and detach the volume there), then "
	    "failoverctl failover; if it should, move the Elastic IP to it",
	    NULL);
	fo_fail(fo, why);
}

/*
 * Another instance holds v: a stopped one writes nothing and gives it
 * up to a plain detach (a failed failover's replacement, stopped when
 * it failed); any other is a person's to decide. 1 when v may be
 * detached (never forced), 0 while its state is read, -1 once held.
 */
static int
fo_holder_check(struct failover *fo, struct fo_volume *v)
{
	struct ec2_request *req;

	if (!fo_is(v->holder, v->where)) {
		snprintf(v->holder, sizeof(v->holder), "%s", v->where);
		v->holder_state[0] = '\0';
		v->holder_asked = 0;
	}
	if (v->holder_state[0] == '\0') {
		/* Asked, and the answer still to come. */
		if (v->holder_asked && fo->busy[FO_MAIN] > 0)
			return 0;
		req = fo_req_instance(EC2_DESCRIBE_INSTANCES, "InstanceId.1",
		    v->holder);
		if (req != NULL && fo_send(fo, FO_MAIN, req,
		    FO_POLL_DEADLINE, fo_on_holder_describe, NULL) == 0)
			v->holder_asked = 1;
		return 0;
	}
	if (fo_is(v->holder_state, "stopped"))
		return 1;
	fo_foreign_holder(fo, v);
	return -1;
}

void
fo_on_holder_describe(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const struct ec2_instance	*inst;
	struct fo_volume		*v;
	size_t				 n, i, k;
	enum fo_outcome			 out;

	if (fo->step != FAILOVER_DETACH)
		return;
	out = fo_outcome(fo, res);
	n = out == FO_OK ? ec2_result_instances(res, &inst) : 0;
	for (i = 0; i < fo->nvols; i++) {
		v = &fo->vols[i];
		if (!v->holder_asked)
			continue;
		v->holder_asked = 0;
		if (out == FO_AGAIN)
			continue;	/* asked again */
		for (k = 0; k < n; k++)
			if (fo_is(inst[k].instance_id, v->holder))
				break;
		/* Not found, or refused: not known to be stopped. */
		snprintf(v->holder_state, sizeof(v->holder_state), "%s",
		    k < n && inst[k].state != NULL ? inst[k].state :
		    "state unknown");
	}
	if (out != FO_AGAIN && fo->step == FAILOVER_DETACH)
		fo_volumes_progress(fo);
}

/* Acts on what the volumes' states say: detach, attach, next step. */
static void
fo_volumes_progress(struct failover *fo)
{
	struct fo_volume	*v;
	size_t			 i, free_n = 0, attached = 0;
	int			 force;
	char			 why[256];

	fo->vols_seen_at = fo_now(fo);
	force = fo_now(fo) - fo->step_start >= fo_policy(fo)->detach_timeout;
	/* Before any detach: all of them move, or none. */
	for (i = 0; i < fo->nvols; i++) {
		v = &fo->vols[i];
		if (v->st == VOL_ELSEWHERE && fo->step == FAILOVER_DETACH &&
		    !fo_fenced_holder(fo, v) && fo_holder_check(fo, v) != 1)
			return;
	}
	for (i = 0; i < fo->nvols; i++) {
		v = &fo->vols[i];
		switch (v->st) {
		case VOL_ELSEWHERE:
			if (fo->step == FAILOVER_ATTACH) {
				snprintf(why, sizeof(why), "volume %s is "
				    "attached to %s, not the replacement %s",
				    v->id, v->where, fo->new);
				fo_fail(fo, why);
				return;
			}
			/* Force only from the fenced instance. */
			if (!fo_fenced_holder(fo, v)) {
				if (!v->detach_sent)
					fo_detach_one(fo, v, 0);
			} else if (!v->detach_sent || (force && !v->forced))
				fo_detach_one(fo, v, force);
			break;
		case VOL_DETACHING:
			/* Someone else's detach: theirs to finish. */
			if (fo->step == FAILOVER_DETACH && force &&
			    !v->forced && fo_fenced_holder(fo, v))
				fo_detach_one(fo, v, 1);
			break;
		case VOL_AVAILABLE:
			free_n++;
			if (fo->step == FAILOVER_ATTACH && !v->attach_sent)
				fo_attach_one(fo, v);
			break;
		case VOL_ATTACHED:
			free_n++;
			attached++;
			break;
		default:
			break;
		}
	}
	fo_save(fo);
	if (fo->step == FAILOVER_DETACH && free_n == fo->nvols) {
		if (fo->t[T_DETACH] < 0) {
			fo->t[T_DETACH] = fo_now(fo) - fo->fenced_at;
			log_info("failover %s: every volume is free (%.1fs)%s",
			    fo->name, fo->t[T_DETACH],
			    fo->launch == LAUNCH_READY ? "" :
			    "; waiting for the replacement");
		}
	} else if (fo->step == FAILOVER_ATTACH && attached == fo->nvols) {
		fo->t[T_ATTACH] = fo_now(fo) - fo->step_start;
	}
	fo_next(fo);
}

void
fo_associate_poll(struct failover *fo)
{
	struct ec2_request	*req;
	int			 bad = 0;

	if (fo->busy[FO_MAIN] > 0)
		return;
	if (!fo->assoc_sent) {
		/* Describe first: a resumed failover may have done it. */
		req = fo_req_instance(EC2_DESCRIBE_ADDRESSES,
		    "AllocationId.1", fo_conf(fo)->eip_allocation_id);
		if (req != NULL)
			fo_send(fo, FO_MAIN, req, FO_POLL_DEADLINE,
			    fo_on_associate, NULL);
		return;
	}
	req = fo_req_instance(EC2_ASSOCIATE_ADDRESS, "AllocationId",
	    fo_conf(fo)->eip_allocation_id);
	if (req == NULL)
		return;
	bad |= ec2_request_add(req, "InstanceId", fo->new);
	bad |= ec2_request_add(req, "AllowReassociation", "true");
	if (bad) {
		ec2_request_free(req);
		return;
	}
	fo_send(fo, FO_MAIN, req, FO_ACT_DEADLINE, fo_on_associate, NULL);
}

static void
fo_associated(struct failover *fo)
{
	fo->t[T_ASSOCIATE] = fo_now(fo) - fo->step_start;
	fo_set_str(&fo->eip_instance, fo->new);
	fo_settle_begin(fo);
	log_info("failover %s: Elastic IP %s now on %s", fo->name,
	    fo->eip_ip ? fo->eip_ip : "?", fo->new);
	fo_next(fo);
}

void
fo_on_associate(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const struct ec2_address	*a;
	enum fo_outcome			 out;

	if (fo->step != FAILOVER_ASSOCIATE)
		return;
	out = fo_outcome(fo, res);
	if (out == FO_AGAIN)
		return;
	if (out == FO_REFUSED) {
		fo_fail(fo, ec2_result_error(res));
		return;
	}
	if (ec2_result_action(res) == EC2_ASSOCIATE_ADDRESS) {
		fo_associated(fo);
		return;
	}
	if (ec2_result_addresses(res, &a) > 0 && a->instance_id != NULL &&
	    fo_is(a->instance_id, fo->new)) {
		fo_associated(fo);
		return;
	}
	fo->assoc_sent = 1;
	fo_associate_poll(fo);
}

/* One function per step: each knows what it waits for. */
void
fo_step_fence_launch(struct failover *fo)
{
	if (fo->launch == LAUNCH_READY && !fo_kinds[fo->kind].may_fence(fo)) {
		/* Resumed with the instance ready: check it again. */
		if (fo->precheck_start == 0 ||
		    service_check_target(fo->svc) == NULL)
			fo_precheck_start(fo);
		else if (service_check_verdict(fo->svc) == SERVICE_HEALTHY)
			fo_precheck_passed(fo);
		return;
	}
	fo_fence_poll(fo);
	if (fo->step == FAILOVER_FENCE_LAUNCH)	/* else polled already */
		fo_launch_poll(fo);
}

void
fo_step_detach(struct failover *fo)
{
	fo_launch_poll(fo);
	/* Volumes all free: only the launch is awaited now. */
	if (fo->t[T_DETACH] >= 0) {
		fo_next(fo);	/* also resumed with the launch ready */
		return;
	}
	if (fo->kind == KIND_EVACUATE && !fo_evac_volumes(fo))
		return;
	if (fo->busy[FO_MAIN] == 0)
		fo_volumes_describe(fo);
}

void
fo_step_attach(struct failover *fo)
{
	/* Seen free in this very turn of the loop: attach now. */
	if (fo->vols_seen_at == fo_now(fo)) {
		fo_volumes_progress(fo);
		return;
	}
	if (fo->busy[FO_MAIN] == 0)
		fo_volumes_describe(fo);
}

void
fo_step_verify(struct failover *fo)
{
	/* The probes run on their own schedule; the verdict tells us. */
	if (service_verdict(fo->svc) == SERVICE_HEALTHY)
		fo_complete(fo);
}

static int
fo_attach_in_flight(const struct failover *fo)
{
	const struct fo_call *c;

	for (c = fo->calls; c != NULL; c = c->next)
		if (c->on_reply == fo_on_attach && c->arg != NULL)
			return 1;
	return 0;
}

/*
 * A refusal that says the volume is already past what the Describe we
 * acted on showed: an AttachVolume to a volume seen "available" that is
 * in use or attaching (an earlier AttachVolume of ours, before a crash
 * or within the view's lag), a DetachVolume of a volume seen attached
 * that is detached already. Eventually consistent Describe calls show
 * such past states ("Eventual consistency in the Amazon EC2 API"): the
 * next Describe says where the volume really is, and the step acts on
 * that (a volume on another instance still fails ATTACH, by name).
 */
static int
fo_refusal_is_past(struct failover *fo, struct fo_volume *vol,
    struct ec2_result *res)
{
	const char	*code = ec2_result_code(res);
	int		 attach = ec2_result_action(res) == EC2_ATTACH_VOLUME;

	if (ec2_result_status(res) != EC2_ERR_AWS || code == NULL)
		return 0;
	if (attach ? strcmp(code, "VolumeInUse") != 0 &&
	    strcmp(code, "IncorrectState") != 0 :
	    strcmp(code, "IncorrectState") != 0 &&
	    strcmp(code, "InvalidAttachment.NotFound") != 0)
		return 0;
	log_info("failover %s: %s%s%s: %s; looking again", fo->name,
	    attach ? "AttachVolume" : "DetachVolume", vol ? " " : "",
	    vol ? vol->id : "", ec2_result_error(res));
	if (vol != NULL)
		fo_vol_set(fo, vol, VOL_UNKNOWN);	/* attach_sent stays */
	return 1;
}

/*
 * The reply to an AttachVolume (arg: its volume) or a DetachVolume
 * (NULL). AWS refused an AttachVolume: the volume is where it was,
 * free. The failover fails once every AttachVolume sent has its
 * answer, so that its alert says where each volume really is.
 */
void
fo_on_attach(struct failover *fo, struct ec2_result *res, void *arg)
{
	struct fo_volume	*vol = arg;
	char			*why;

	if (fo_refusal_is_past(fo, vol, res)) {
		/* nothing more: the next poll reads the volume */
	} else if (fo_outcome(fo, res) == FO_REFUSED) {
		if (vol != NULL) {
			vol->attach_sent = 0;
			fo_vol_set(fo, vol, VOL_AVAILABLE);
		}
		if (fo->attach_refused == NULL)
			fo_set_str(&fo->attach_refused, ec2_result_error(res));
	}
	if (fo->attach_refused == NULL || fo_attach_in_flight(fo))
		return;
	why = fo->attach_refused;
	fo->attach_refused = NULL;
	fo_fail(fo, why);
	free(why);
}
