/*
 * The launch branch, beside the fence: RunInstances under the move's
 * ClientToken (found again after a crash by that token or its tag),
 * retries on no capacity, a restart in place when there is none, and
 * the wait for the replacement to run and show its host keys.
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

static void	fo_on_launch_lookup(struct failover *fo,
		    struct ec2_result *res, void *arg);
static void	fo_on_kept_describe(struct failover *fo,
		    struct ec2_result *res, void *arg);

int
fo_launch_ready(struct failover *fo)
{
	fo->launch = LAUNCH_READY;
	fo->t[T_LAUNCH] = fo_now(fo) - fo->launch_start;
	log_info("failover %s: replacement %s ready (%.1fs)", fo->name,
	    fo->new, fo->t[T_LAUNCH]);
	fo_save(fo);
	/* Production may not be touched yet: the new one is checked first. */
	if (!fo_kinds[fo->kind].may_fence(fo)) {
		fo_precheck_start(fo);
		return 0;
	}
	/* The volumes may be waiting for it. */
	fo_next(fo);
	return 0;
}

const char *
fo_ami(const struct failover *fo)
{
	const char *ami = NULL;

	if (fo->ami != NULL)
		return fo->ami;
	if (fo->env->replacement_ami != NULL)
		ami = fo->env->replacement_ami(fo->env->arg, fo->svc);
	return ami != NULL ? ami : fo_conf(fo)->launch.ami;
}

/*
 * The launch's ClientToken: the failover's id, and one per evacuation
 * subnet (a token is bound to its parameters).
 */
static void
fo_token(const struct failover *fo, char *out, size_t len)
{
	if (fo->kind == KIND_EVACUATE)
		snprintf(out, len, "%.58s-e%zu", fo->id,
		    fo->evac_subnet % 100);
	else
		snprintf(out, len, "%s", fo->id);
}

static struct ec2_request *
fo_run_request(struct failover *fo)
{
	struct ec2_request	*req;
	char			 token[FO_TOKEN_MAX + 1], why[640];

	fo_token(fo, token, sizeof(token));
	/* An evacuation goes where its subnet is; the volumes follow. */
	req = launch_request_new(fo_conf(fo), fo_ami(fo), fo_subnet(fo),
	    fo->kind != KIND_EVACUATE ? fo->vol_az : NULL, token, fo->id);
	if (req != NULL && fo_add_user_data(fo, req, why, sizeof(why)) ==
	    -1) {
		ec2_request_free(req);
		fo_fail(fo, why);
		return NULL;
	}
	return req;
}

/*
 * A resumed failover that may have launched before the crash looks for
 * its replacement: by the ClientToken it gave RunInstances, then by
 * the failoverd:failover-id tag the instance was launched with (a
 * token filter an endpoint does not answer must not be the only way).
 */
static struct ec2_request *
fo_lookup_request(struct failover *fo)
{
	struct ec2_request	*req;
	const char		*v[1];
	char			 token[FO_TOKEN_MAX + 1];
	int			 bad;

	req = fo_req(EC2_DESCRIBE_INSTANCES);
	if (req == NULL)
		return NULL;
	if (fo->lookup_by_tag) {
		v[0] = fo->id;
		bad = ec2_request_add_filter(req,
		    "tag:failoverd:failover-id", v, 1);
		/* An evacuation tags every subnet's try alike. */
		if (!bad && fo->kind == KIND_EVACUATE) {
			v[0] = fo_policy(fo)->evacuation_subnets[
			    fo->evac_subnet];
			bad = ec2_request_add_filter(req, "subnet-id", v, 1);
		}
	} else {
		fo_token(fo, token, sizeof(token));
		v[0] = token;
		bad = ec2_request_add_filter(req, "client-token", v, 1);
	}
	if (bad) {
		ec2_request_free(req);
		return NULL;
	}
	return req;
}

/*
 * The lookup's answer. Found: adopt it. Neither filter finds one: the
 * launch did not happen. A lookup that keeps failing is bounded
 * (FO_LOOKUP_TRIES, the two filters in turn): then RunInstances goes
 * out again with the same ClientToken, which EC2 answers with the
 * instance it already launched for that token, if any, rather than a
 * second one.
 */
static void
fo_on_launch_lookup(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const struct ec2_instance	*inst;
	const char			*by;
	size_t				 n, i;

	if (!fo_active(fo) || fo->launch != LAUNCH_TODO ||
	    fo->launch_looked_up)
		return;		/* a change of plan since it was asked */
	by = fo->lookup_by_tag ? "failoverd:failover-id tag" :
	    "client token";
	if (fo_outcome(fo, res) != FO_OK) {
		fo->lookup_fails++;
		fo->lookup_by_tag = !fo->lookup_by_tag;
		/* A third of launch_timeout leaves the launch its time. */
		if (fo->lookup_fails < FO_LOOKUP_TRIES && fo_now(fo) -
		    fo->launch_start < fo_policy(fo)->launch_timeout / 3)
			return;
		log_warnx("failover %s: looking up the replacement failed %d "
		    "times (last by its %s: %s); launching with the same "
		    "ClientToken, which finds the instance if it exists",
		    fo->name, fo->lookup_fails, by, ec2_result_error(res));
		fo->launch_looked_up = 1;
		return;
	}
	n = ec2_result_instances(res, &inst);
	for (i = 0; i < n; i++) {
		if (fo_is(inst[i].state, "terminated") ||
		    fo_is(inst[i].state, "shutting-down") ||
		    inst[i].instance_id == NULL)
			continue;
		if (fo_set_str(&fo->new, inst[i].instance_id) == -1 ||
		    (fo->kind == KIND_EVACUATE &&
		    fo_set_str(&fo->evac_az, inst[i].az) == -1)) {
			fo_fail(fo, "out of memory for the replacement's id");
			return;
		}
		fo->launch_looked_up = 1;
		fo->launch = LAUNCH_SENT;
		log_info("failover %s: found replacement %s by its %s",
		    fo->name, fo->new, by);
		fo_save(fo);
		return;
	}
	if (!fo->lookup_by_tag) {
		fo->lookup_by_tag = 1;	/* the tag, before launching */
		return;
	}
	fo->launch_looked_up = 1;
}

/*
 * The launch of a new instance (a failover, a switch, an evacuation):
 * a restart in place starts the old one once fenced; a resumed move
 * looks for the launch it may have made; a failover asks first whether
 * its AZ is impaired (policy evacuate); then RunInstances.
 */
struct ec2_request *
fo_launch_new(struct failover *fo, fo_reply_fn **on_reply)
{
	if (fo->restart) {
		/* The same instance, on new hardware after a stop. */
		if (fo->fence != FENCE_DONE)
			return NULL;
		*on_reply = fo_on_start;
		return fo_req_instance(EC2_START_INSTANCES, "InstanceId.1",
		    fo->old);
	}
	if (fo->resumed && !fo->launch_looked_up) {
		*on_reply = fo_on_launch_lookup;
		return fo_lookup_request(fo);
	}
	if (fo_now(fo) < fo->launch_next)
		return NULL;
	if (fo_kinds[fo->kind].may_evacuate && fo_policy(fo)->evacuate &&
	    !fo->az_checked && fo->vol_az != NULL) {
		/* Is the volumes' AZ impaired? Then evacuate. */
		*on_reply = fo_on_zones;
		return fo_req_instance(EC2_DESCRIBE_AVAILABILITY_ZONES,
		    "ZoneName.1", fo->vol_az);
	}
	*on_reply = fo_on_run;
	return fo_run_request(fo);
}

/* A rollback's: the kept instance, started, stopping or stopped. */
struct ec2_request *
fo_launch_kept(struct failover *fo, fo_reply_fn **on_reply)
{
	/* Look before acting. */
	*on_reply = fo_on_kept_describe;
	return fo_req_instance(EC2_DESCRIBE_INSTANCES, "InstanceId.1",
	    fo->new);
}

void
fo_launch_poll(struct failover *fo)
{
	struct ec2_request	*req = NULL;
	fo_reply_fn		*on_reply = fo_on_launch_describe;
	double			 deadline;

	if (fo->busy[FO_LAUNCH] > 0 || fo->launch == LAUNCH_READY)
		return;
	switch (fo->launch) {
	case LAUNCH_TODO:
		/* What launching means is the kind's. */
		req = fo_kinds[fo->kind].launch(fo, &on_reply);
		break;
	case LAUNCH_SENT:
		req = fo_req_instance(EC2_DESCRIBE_INSTANCES, "InstanceId.1",
		    fo->new);
		if (req != NULL)
			ec2_request_set_after_mutation(req, 1);
		break;
	case LAUNCH_RUNNING:
		if (!fo->keys_checked) {
			fo->keys_checked = 1;
			switch (fo_keys_known(fo)) {
			case 1:
				fo_launch_ready(fo);
				return;
			case 2:		/* the state_dir cannot be written */
				fo->keys_checked = 0;
				return;
			case -1:
				return;
			default:
				break;
			}
		}
		req = fo_req_instance(EC2_GET_CONSOLE_OUTPUT, "InstanceId",
		    fo->new);
		/*
		 * The buffered output is posted after a state change and
		 * may lack the keys for minutes; the latest is there at
		 * once, on the instance types that offer it (Nitro).
		 */
		fo->console_latest = !fo_is(fo->latest_refused, fo->new);
		if (req != NULL && fo->console_latest &&
		    ec2_request_add(req, "Latest", "true") != 0) {
			ec2_request_free(req);
			req = NULL;
		}
		if (req != NULL)
			ec2_request_set_after_mutation(req, 1);
		on_reply = fo_on_console;
		break;
	default:
		return;
	}
	if (req == NULL)
		return;
	/* Room for the fallback when RunInstances keeps failing. */
	deadline = fo_policy(fo)->launch_timeout / 3;
	if (deadline > FO_ACT_DEADLINE)
		deadline = FO_ACT_DEADLINE;
	fo_send(fo, FO_LAUNCH, req, ec2_request_action(req) ==
	    EC2_RUN_INSTANCES ? deadline : FO_POLL_DEADLINE, on_reply, NULL);
}

static int
fo_no_capacity(const char *code)
{
	static const char *codes[] = { "InsufficientInstanceCapacity",
		"InsufficientCapacity", "InsufficientHostCapacity",
		"InstanceLimitExceeded", "VcpuLimitExceeded",
		"Unsupported", "InsufficientFreeAddressesInSubnet" };
	size_t i;

	if (code == NULL)
		return 0;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(code, codes[i]) == 0)
			return 1;
	return 0;
}

void
fo_on_run(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const struct ec2_instance	*inst;
	const char			*code = ec2_result_code(res);
	enum fo_outcome		 out;

	/*
	 * AWS sends InsufficientInstanceCapacity with HTTP 500; the client
	 * hands it back at once, and the tries are counted here.
	 */
	if (ec2_result_status(res) == EC2_ERR_AWS && fo_no_capacity(code)) {
		out = FO_REFUSED;
	} else {
		out = fo_outcome(fo, res);
	}
	if (out == FO_AGAIN)
		return;
	if (out == FO_REFUSED && fo_no_capacity(code)) {
		fo->launch_tries++;
		log_warnx("failover %s: %s (try %d of %d)",
		    fo->name, ec2_result_error(res), fo->launch_tries,
		    FO_LAUNCH_TRIES);
		if (fo->launch_tries < FO_LAUNCH_TRIES) {
			fo->launch_next = fo_now(fo) + 1.0;
			return;
		}
		fo_kinds[fo->kind].no_capacity(fo, ec2_result_error(res));
		return;
	}
	if (out == FO_REFUSED) {
		fo_fail(fo, ec2_result_error(res));
		return;
	}
	if (ec2_result_instances(res, &inst) == 0 ||
	    inst->instance_id == NULL) {
		fo_fail(fo, "RunInstances answered without an instance");
		return;
	}
	/* Launched but not known: it fails, stopped by its tag's owner. */
	if (fo_set_str(&fo->new, inst->instance_id) == -1 ||
	    (fo->kind == KIND_EVACUATE &&
	    fo_set_str(&fo->evac_az, inst->az) == -1)) {
		fo_fail(fo, "out of memory for the replacement's id");
		return;
	}
	fo->launch = LAUNCH_SENT;
	log_info("failover %s: launched %s in %s from %s", fo->name,
	    inst->instance_id, inst->az ? inst->az : "?", fo_ami(fo));
	fo_save(fo);
}

/*
 * No capacity for a failover's launch, after the tries: evacuate when
 * the policy says so, else restart the old instance in place, else
 * fail.
 */
void
fo_failover_no_capacity(struct failover *fo, const char *why)
{
	if (fo_policy(fo)->evacuate) {
		fo_move_turn(fo, KIND_EVACUATE, why);
		return;
	}
	if (!fo_policy(fo)->restart_in_place || fo->old == NULL) {
		fo_fail(fo, why);
		return;
	}
	if (fo_set_str(&fo->new, fo->old) == -1) {
		fo_fail(fo, "out of memory for restart_in_place");
		return;
	}
	fo->restart = 1;
	alert_emit(ALERT_FAILOVER_STEP, fo->name, "failover_id", fo->id,
	    "step", failover_step_str(fo->step), "change", "restart_in_place",
	    "reason", why, "instance", fo->old, NULL);
	fo_save(fo);
}

/* A switch has production to fall back on: it just fails. */
void
fo_no_capacity_fail(struct failover *fo, const char *why)
{
	fo_fail(fo, why);
}

/*
 * A rollback's "launch": the kept instance is started again, unless it
 * runs already; one still stopping is looked at again next tick.
 */
static void
fo_on_kept_describe(struct failover *fo, struct ec2_result *res, void *arg)
{
	const struct ec2_instance	*inst = NULL;
	struct ec2_request		*req;
	char				 why[256];

	if (fo_outcome(fo, res) != FO_OK || fo->launch != LAUNCH_TODO)
		return;		/* tried again next tick */
	if (ec2_result_instances(res, &inst) == 0)
		inst = NULL;
	if (inst == NULL || fo_is(inst->state, "terminated") ||
	    fo_is(inst->state, "shutting-down")) {
		snprintf(why, sizeof(why), "the instance to roll back to, %s, "
		    "is %s", fo->new, inst == NULL ? "gone" : inst->state);
		fo_fail(fo, why);
		return;
	}
	if (fo_is(inst->state, "running") || fo_is(inst->state, "pending")) {
		fo->launch = LAUNCH_SENT;
		fo_save(fo);
		return;
	}
	if (!fo_is(inst->state, "stopped"))
		return;
	req = fo_req_instance(EC2_START_INSTANCES, "InstanceId.1", fo->new);
	if (req != NULL)
		fo_send(fo, FO_LAUNCH, req, FO_ACT_DEADLINE, fo_on_start, NULL);
}

/* StartInstances of a restart in place or a rollback. */
void
fo_on_start(struct failover *fo, struct ec2_result *res, void *arg)
{
	enum fo_outcome out = fo_outcome(fo, res);

	if (out == FO_REFUSED) {
		fo_fail(fo, ec2_result_error(res));
		return;
	}
	if (out != FO_OK)
		return;
	fo->launch = LAUNCH_SENT;
	fo->start_ok_at = fo_now(fo);
	log_info("%s %s: starting %s %s", fo_kind_names[fo->kind], fo->name,
	    fo->new, fo->restart ? "in place" : "again");
	fo_save(fo);
}

void
fo_on_launch_describe(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const struct ec2_instance	*inst;
	size_t				 n;
	char				 why[256];

	if (fo_outcome(fo, res) != FO_OK)
		return;	/* a Describe that fails is tried again */
	n = ec2_result_instances(res, &inst);
	if (fo->launch == LAUNCH_TODO)
		return;		/* answered before a change of plan */
	if (n == 0)
		return;
	if (fo_is(inst->state, "running")) {
		fo->launch = LAUNCH_RUNNING;
		fo_set_str(&fo->new_ip, inst->private_ip);
		if (!fo_has_ssh_probe(fo)) {
			fo_launch_ready(fo);
			return;
		}
		fo_save(fo);
		fo_launch_poll(fo);
		return;
	}
	if (fo_is(inst->state, "pending"))
		return;
	if ((fo->restart || fo_kinds[fo->kind].starts_kept) &&
	    (fo_is(inst->state, "stopped") ||
	    fo_is(inst->state, "stopping"))) {
		/* Just started by us: EC2 may not show it yet. */
		if (fo->start_ok_at > 0 &&
		    fo_now(fo) - fo->start_ok_at < FO_START_SETTLE)
			return;
		fo->launch = LAUNCH_TODO;	/* start it (again) */
		return;
	}
	snprintf(why, sizeof(why), "replacement %s is %s", fo->new,
	    inst->state ? inst->state : "in no state EC2 names");
	fo_fail(fo, why);
}
