/*
 * How a move ends: completed (timings, the old instance as the policy
 * says, the service recovered) or failed (an idle replacement stopped,
 * the service held for a person, with what stands in the alert).
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

/* What stands now, for a person: instances, volumes, the EIP. */
static void
fo_what_stands(struct failover *fo, char *out, size_t len)
{
	size_t	i, off;
	int	n;

	n = snprintf(out, len, "old %s %s; new %s %s; EIP on %s;",
	    fo->old ? fo->old : "-",
	    fo->fence == FENCE_DONE ? "stopped" : "not confirmed stopped",
	    fo->new ? fo->new : "-",
	    fo->new == NULL ? "not launched" :
	    fo->launch >= LAUNCH_RUNNING ? "running" : "launching",
	    fo->step >= FAILOVER_VERIFY ? (fo->new ? fo->new : "-") :
	    (fo->old ? fo->old : "-"));
	off = n > 0 && (size_t)n < len ? (size_t)n : len - 1;
	for (i = 0; i < fo->nvols && off < len - 1; i++) {
		n = snprintf(out + off, len - off, " %s %s%s%s",
		    fo->vols[i].id, fo_vol_names[fo->vols[i].st],
		    fo->vols[i].where[0] ? " to " : "", fo->vols[i].where);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
}

void
fo_end(struct failover *fo, enum failover_step to, const char *result,
    const char *why)
{
	fo_cancel_branch(fo, FO_MAIN);
	fo_cancel_branch(fo, FO_LAUNCH);
	ev_timer_stop(fo->env->loop, &fo->tick);
	service_check_stop(fo->svc);
	fo_set_str(&fo->attach_refused, NULL);
	fo_history_add(fo, result, why);
	fo_rec_clear_progress(fo);
	fo->step_start = fo_now(fo);
	fo->resumed = 0;
	fo_set_step(fo, to);
}

/*
 * One of the calls a move's end makes, on the refresh branch (fo_end
 * cancels the others). Refused because the record is not durable yet
 * (a cluster's write under way), it is kept for fo_end_retry.
 */
static int
fo_end_send(struct failover *fo, size_t slot, enum ec2_action action,
    const char *instance, fo_reply_fn *on_reply)
{
	struct fo_end_call	*ec = &fo->end_calls[slot];
	struct ec2_request	*req;
	char			*copy;

	req = fo_req_instance(action, "InstanceId.1", instance);
	if (req == NULL)
		return -1;
	if (fo_send(fo, FO_REFRESH_BR, req, FO_ACT_DEADLINE, on_reply,
	    NULL) == 0) {
		free(ec->instance);
		ec->instance = NULL;
		return 0;
	}
	if (fo->env->journal_save == NULL || ec->instance == instance)
		return -1;
	if ((copy = strdup(instance)) == NULL)
		return -1;
	free(ec->instance);
	ec->instance = copy;
	ec->action = action;
	ec->on_reply = on_reply;
	return -1;
}

void
fo_end_retry(struct failover *fo)
{
	size_t i;

	for (i = 0; i < 2; i++)
		if (fo->end_calls[i].instance != NULL)
			fo_end_send(fo, i, fo->end_calls[i].action,
			    fo->end_calls[i].instance,
			    fo->end_calls[i].on_reply);
}

void
fo_stop_idle_replacement(struct failover *fo)
{
	if (fo_end_send(fo, 0, EC2_STOP_INSTANCES, fo->new,
	    fo_on_idle_stopped) == 0)
		log_warnx("failover %s: stopping the idle replacement %s",
		    fo->name, fo->new);
}

/* The move fails: what that means is its kind's (fo_kinds). */
void
fo_fail(struct failover *fo, const char *why)
{
	char stands[1024];

	if (!fo_active(fo))
		return;
	fo_what_stands(fo, stands, sizeof(stands));
	fo_kinds[fo->kind].on_fail(fo, why, stands);
}

/* A failover (or an evacuation) failed: held for a person. */
static void
fo_failover_fail(struct failover *fo, const char *why, const char *stands)
{
	enum failover_step at = fo->step;

	/*
	 * Before ASSOCIATE the replacement serves nobody: stopped (kept for
	 * a look) it cannot run beside volumes that ended up attached
	 * nowhere, nor become a second production by accident.
	 */
	if (fo->new != NULL && at < FAILOVER_ASSOCIATE) {
		fo_stop_idle_replacement(fo);
		alert_emit(ALERT_FAILOVER_FAILED, fo->name, "failover_id",
		    fo->id, "step", failover_step_str(at), "reason", why,
		    "stands", stands, "action", "the replacement, which "
		    "serves nobody, is stopped and kept; the rest is left as "
		    "it stands; a person decides (failoverctl failover to "
		    "try again)", NULL);
	} else
		alert_emit(ALERT_FAILOVER_FAILED, fo->name, "failover_id",
		    fo->id, "step", failover_step_str(at), "reason", why,
		    "stands", stands, "action", "left as it stands; a person "
		    "decides (failoverctl failover to try again)", NULL);
	/* Shown by status until a person resumes the service. */
	fo_set_holdf(fo, "%s failed in %s: %.300s", fo->id,
	    failover_step_str(at), why);
	fo_end(fo, FAILOVER_FAILED, "failed", why);
}

/*
 * A failover's (or an evacuation's) fence stopped the old instance;
 * "stop" leaves it so, "terminate" ends it, "keep" starts it again
 * (without its volumes and EIP) for whoever wants to look at it
 * running. A switch keeps its own for a rollback.
 */
static void
fo_old_instance(struct failover *fo)
{
	enum policy_old		 pol = fo_policy(fo)->old_instance;

	if (fo->restart || fo->old == NULL || pol == POLICY_OLD_STOP)
		return;
	/* On the refresh branch: it outlives the failover's own calls. */
	fo_end_send(fo, 1, pol == POLICY_OLD_TERMINATE ?
	    EC2_TERMINATE_INSTANCES : EC2_START_INSTANCES, fo->old,
	    pol == POLICY_OLD_TERMINATE ? fo_on_terminated :
	    fo_on_old_started);
}

/*
 * The service answers again, from the instance the move put behind
 * the Elastic IP. Its probes were reset at ASSOCIATE, so their own
 * verdict comes from "unknown" and says nothing: the story of the
 * outage ends here, for whoever follows the service's events.
 */
void
fo_recovered(struct failover *fo)
{
	alert_emit(ALERT_SERVICE_RECOVERED, fo->name,
	    "instance", fo->new, "by", fo->rollback_auto ?
	    "rollback of the failed switch" : fo->restart ?
	    "restart_in_place" : fo_kind_names[fo->kind], "failover_id",
	    fo->id, NULL);
}

void
fo_complete(struct failover *fo)
{
	char	 v[T_MAX][32];
	double	 a, b;
	int	 k;

	fo->t[T_VERIFY] = fo_now(fo) - fo->step_start;
	fo->t[T_TOTAL] = fo_now(fo) - fo->started;
	a = fo->t[T_LAUNCH] < 0 ? 0 : fo->t[T_LAUNCH];
	b = (fo->t[T_FENCE] < 0 ? 0 : fo->t[T_FENCE]) +
	    (fo->t[T_DETACH] < 0 ? 0 : fo->t[T_DETACH]);
	fo->t[T_CRITICAL] = (a > b ? a : b) +
	    (fo->t[T_ATTACH] < 0 ? 0 : fo->t[T_ATTACH]) +
	    (fo->t[T_ASSOCIATE] < 0 ? 0 : fo->t[T_ASSOCIATE]) +
	    fo->t[T_VERIFY];
	for (k = 0; k < T_MAX; k++)
		snprintf(v[k], sizeof(v[k]), "%.3f", fo->t[k] < 0 ? 0 :
		    fo->t[k]);
	fo_kinds[fo->kind].on_complete(fo, v);
}

static void
fo_failover_done(struct failover *fo, char v[T_MAX][32])
{
	fo_old_instance(fo);
	alert_emit(ALERT_FAILOVER_COMPLETED, fo->name, "failover_id", fo->id,
	    "old_instance", fo->old ? fo->old : "-", "new_instance", fo->new,
	    "mode", fo->restart ? "restart_in_place" : "replace",
	    "az", fo->vol_az ? fo->vol_az : "-",
	    "old_is", fo->restart ? "the new" :
	    fo_policy(fo)->old_instance == POLICY_OLD_TERMINATE ?
	    "terminating" : fo_policy(fo)->old_instance == POLICY_OLD_KEEP ?
	    "starting" : "stopped",
	    "detect", v[T_DETECT], "fence", v[T_FENCE], "launch", v[T_LAUNCH],
	    "detach", v[T_DETACH], "attach", v[T_ATTACH],
	    "associate", v[T_ASSOCIATE], "verify", v[T_VERIFY],
	    "total", v[T_TOTAL], "critical_path", v[T_CRITICAL], NULL);
	fo_recovered(fo);
	fo->last_failover = (long long)time(NULL);
	fo_end(fo, FAILOVER_DONE, "completed", NULL);
}

/* The new volumes are the service's from now on (fo_evac_done). */
static void
fo_evacuation_done(struct failover *fo, char v[T_MAX][32])
{
	fo_evac_done(fo);
	fo_failover_done(fo, v);
}

/* A failover fences at once; a switch once its new instance passed. */
static int
fo_fence_at_once(const struct failover *fo)
{
	return 1;
}

/*
 * What differs between the kinds of move, in one place: how one begins
 * and launches, what no capacity means, whether the fence may touch
 * production yet, what a failure does, what completion says. The steps
 * themselves are the same for all four. An evacuation never begins
 * from idle: a failover turns into one (fo_move_turn).
 */
const struct fo_kind_ops fo_kinds[KIND_MAX] = {
	[KIND_FAILOVER]	= { "fo", 1, 0, fo_failover_begin, fo_launch_new,
			    fo_failover_no_capacity, fo_fence_at_once,
			    fo_failover_fail, fo_failover_done },
	[KIND_SWITCH]	= { "sw", 0, 0, fo_switch_begin, fo_launch_new,
			    fo_no_capacity_fail, fo_switch_may_fence,
			    fo_switch_fail, fo_switch_done },
	[KIND_ROLLBACK]	= { "rb", 0, 1, fo_rollback_begin, fo_launch_kept,
			    fo_no_capacity_fail, fo_fence_at_once,
			    fo_rollback_fail, fo_rollback_done },
	[KIND_EVACUATE]	= { "fo", 0, 0, fo_evacuate_begin, fo_launch_new,
			    fo_evac_next_subnet, fo_fence_at_once,
			    fo_failover_fail, fo_evacuation_done },
};

/*
 * Replies on the refresh branch, which outlives a move's own calls:
 * what they failed to do is said, for a person to finish.
 */
void
fo_on_idle_stopped(struct failover *fo, struct ec2_result *res, void *arg)
{
	if (ec2_result_status(res) != EC2_OK)
		alert_emit(ALERT_AWS_ERROR, fo->name, "error",
		    ec2_result_error(res), "action", "the idle replacement "
		    "was not stopped; stop it by hand", NULL);
}

void
fo_on_old_started(struct failover *fo, struct ec2_result *res, void *arg)
{
	if (ec2_result_status(res) != EC2_OK)
		alert_emit(ALERT_AWS_ERROR, fo->name, "error",
		    ec2_result_error(res), "action", "the old instance was "
		    "not started again", NULL);
}

void
fo_on_terminated(struct failover *fo, struct ec2_result *res, void *arg)
{
	if (ec2_result_status(res) != EC2_OK)
		alert_emit(ALERT_AWS_ERROR, fo->name, "error",
		    ec2_result_error(res), "action", "the old instance was "
		    "not terminated", NULL);
}
