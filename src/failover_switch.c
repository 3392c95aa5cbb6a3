/*
 * Planned moves: a release switch (a new instance from a new AMI,
 * checked on its private address before production is touched, the old
 * one stopped and kept) and the rollback to the kept instance, which a
 * switch that fails after touching production starts by itself.
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

/*
 * A switch's new instance, before production is touched: a second set
 * of the service's probes, pointed at its private address, must pass
 * (verify_timeout), while the service's own probes go on watching
 * production through the EIP.
 */
void
fo_precheck_start(struct failover *fo)
{
	if (fo->new_ip == NULL) {
		fo_fail(fo, "EC2 gave the new instance no private "
		    "address to check it on");
		return;
	}
	fo->precheck_start = fo_now(fo);
	log_info("switch %s: checking %s on its private address %s before "
	    "touching production", fo->name, fo->new, fo->new_ip);
	if (service_check_start(fo->svc, fo->new_ip) == -1)
		fo_fail(fo, "cannot start the check of the new instance "
		    "(out of memory)");
}

int
fo_precheck_waiting(const struct failover *fo)
{
	return fo->kind == KIND_SWITCH && fo->step == FAILOVER_FENCE_LAUNCH &&
	    fo->launch == LAUNCH_READY && !fo->prechecked &&
	    fo->precheck_start > 0;
}

void
fo_precheck_passed(struct failover *fo)
{
	fo->prechecked = 1;
	fo->t[T_DETECT] = fo_now(fo) - fo->precheck_start;
	log_info("switch %s: %s passed the service's probes on %s (%.1fs); "
	    "moving production to it", fo->name, fo->new, fo->new_ip,
	    fo_now(fo) - fo->precheck_start);
	alert_emit(ALERT_FAILOVER_STEP, fo->name, "failover_id", fo->id,
	    "step", failover_step_str(fo->step), "kind", "switch",
	    "check", "passed on the private address", "instance", fo->new,
	    "address", fo->new_ip, NULL);
	service_check_stop(fo->svc);
	/* FENCE's budget starts now, not at the launch. */
	fo->step_start = fo_now(fo);
	fo->step_slow = 0;
	fo_save(fo);
	fo_poll(fo);
}

/*
 * A switch that fails before FENCE left production alone: the new
 * instance goes (terminated) and monitoring goes on as before. Past
 * that point everything moves back to the kept instance by itself.
 */
void
fo_switch_fail(struct failover *fo, const char *why, const char *stands)
{
	struct ec2_request	*req;
	struct fo_move		 m = { KIND_ROLLBACK, NULL, 0, NULL, NULL,
	    NULL };
	char			 from[32], to[32];

	if (!fo_switch_may_fence(fo)) {
		alert_emit(ALERT_SWITCH_FAILED, fo->name, "switch_id", fo->id,
		    "step", failover_step_str(fo->step), "reason", why,
		    "ami", fo->ami ? fo->ami : "-", "new_instance",
		    fo->new ? fo->new : "-", "action", "production untouched; "
		    "the new instance is terminated", NULL);
		if (fo->new != NULL) {
			req = fo_req_instance(EC2_TERMINATE_INSTANCES,
			    "InstanceId.1", fo->new);
			if (req != NULL)
				fo_send(fo, FO_REFRESH_BR, req,
				    FO_ACT_DEADLINE, fo_on_terminated, NULL);
		}
		fo_end(fo, FAILOVER_IDLE, "failed", why);
		/*
		 * Production stayed watched; if it went down meanwhile,
		 * its failover was only waiting for the switch to end.
		 */
		fo_consider(fo);
		return;
	}
	alert_emit(ALERT_SWITCH_FAILED, fo->name, "switch_id", fo->id,
	    "step", failover_step_str(fo->step), "reason", why, "ami",
	    fo->ami ? fo->ami : "-", "stands", stands, "action",
	    "rolling back to the kept instance automatically", NULL);
	snprintf(from, sizeof(from), "%s", fo->new ? fo->new : "");
	snprintf(to, sizeof(to), "%s", fo->old ? fo->old : "");
	/* Not fo_end: the rollback's first step is journaled at once. */
	fo_cancel_branch(fo, FO_MAIN);
	fo_cancel_branch(fo, FO_LAUNCH);
	fo_history_add(fo, "rolled_back", why);
	fo_rec_clear_progress(fo);
	/*
	 * The old instance stays the one to go back to until a rollback
	 * succeeds: if this one fails, failoverctl rollback (which its
	 * alert advises) must still know where to.
	 */
	if (to[0] != '\0')
		fo_set_str(&fo->switch_kept, to);
	m.from = from[0] ? from : NULL;
	m.to = to;
	m.why = why;
	fo_move_begin(fo, &m);
}

/*
 * A switch or a rollback verified. The switch's old instance stays
 * stopped, kept (switch_kept) for failoverctl rollback until a person
 * retires it with switch --finish; a rollback leaves the instance it
 * moved away from stopped and forgets the kept one (it is production
 * again).
 */
void
fo_switch_done(struct failover *fo, char v[T_MAX][32])
{
	fo_set_str(&fo->switch_kept, fo->old);
	alert_emit(ALERT_SWITCH_COMPLETED, fo->name, "switch_id",
	    fo->id, "ami", fo->ami ? fo->ami : "-", "new_instance",
	    fo->new, "kept_instance", fo->old ? fo->old : "-",
	    "az", fo->vol_az ? fo->vol_az : "-", "launch",
	    v[T_LAUNCH], "fence", v[T_FENCE], "detach", v[T_DETACH],
	    "attach", v[T_ATTACH], "associate", v[T_ASSOCIATE],
	    "verify", v[T_VERIFY], "total", v[T_TOTAL], "action",
	    "old instance stopped and kept: failoverctl rollback, or "
	    "failoverctl switch --finish to terminate it", NULL);
	fo_end(fo, FAILOVER_DONE, "completed", NULL);
}

void
fo_rollback_done(struct failover *fo, char v[T_MAX][32])
{
	fo_set_str(&fo->switch_kept, NULL);
	alert_emit(fo->rollback_auto ? ALERT_SWITCH_ROLLED_BACK :
	    ALERT_ROLLBACK_COMPLETED, fo->name, "rollback_id", fo->id,
	    "instance", fo->new, "stopped_instance", fo->old ? fo->old : "-",
	    "trigger", fo->rollback_auto ? "failed switch" : "manual",
	    "total", v[T_TOTAL], "action", "production is back on the kept "
	    "instance; the other one is stopped, kept for a look", NULL);
	/* A failed switch had touched production: it was out. */
	if (fo->rollback_auto)
		fo_recovered(fo);
	fo_end(fo, FAILOVER_DONE, "completed", NULL);
}

/*
 * A rollback moves production from `from` (stopped, kept for a look)
 * back to `to`, the instance a switch kept: its "launch" starts `to`
 * again while `from` is fenced.
 */
int
fo_rollback_begin(struct failover *fo, const struct fo_move *m)
{
	if (fo_set_str(&fo->new, m->to) == -1)
		return -1;
	fo->rollback_auto = !m->manual;
	fo->t[T_DETECT] = 0;
	alert_emit(ALERT_ROLLBACK_STARTED, fo->name, "rollback_id", fo->id,
	    "trigger", m->manual ? "manual" : "failed switch", "reason",
	    m->why, "from_instance", m->from ? m->from : "-", "to_instance",
	    m->to, NULL);
	/* The EIP may already point at `to`: verify through it anyway. */
	service_set_target(fo->svc, fo->eip_ip);
	return 0;
}

int
fo_switch_begin(struct failover *fo, const struct fo_move *m)
{
	if (fo_set_str(&fo->ami, m->ami) == -1)
		return -1;
	alert_emit(ALERT_SWITCH_STARTED, fo->name, "switch_id", fo->id,
	    "ami", m->ami, "old_instance", fo->old, "az", fo->vol_az, NULL);
	return 0;
}

/* What refuses a planned move now; 0 when it may go. */
static int
fo_refuse_move(struct failover *fo, const char *what, struct buf *out)
{
	char why[300];

	if (fo_active(fo) || fo->step == FAILOVER_CORROBORATE) {
		buf_printf(out, "service %s: a %s is in progress (%s, step "
		    "%s); %s refused", fo->name, fo_kind_names[fo->kind],
		    fo->id ? fo->id : "-", failover_step_str(fo->step), what);
		return -1;
	}
	if (!fo_can_act(fo, why, sizeof(why))) {
		buf_printf(out, "service %s: cannot %s: %s", fo->name, what,
		    why);
		return -1;
	}
	if (fo->eip_instance == NULL) {
		buf_printf(out, "service %s: cannot %s: the Elastic IP %s is "
		    "not associated with an instance", fo->name, what,
		    fo_conf(fo)->eip_allocation_id);
		return -1;
	}
	return 0;
}

int
failover_switch(struct failover *fo, const char *ami, struct buf *out)
{
	const char	*kept = fo->switch_kept;
	struct fo_move	 m = { KIND_SWITCH, "asked by a person", 1, NULL,
	    NULL, ami };

	if (fo_refuse_move(fo, "switch", out) == -1)
		return -1;
	if (kept != NULL) {
		buf_printf(out, "service %s: the last switch still keeps %s; "
		    "failoverctl rollback %s or failoverctl switch %s "
		    "--finish first", fo->name, kept, fo->name, fo->name);
		return -1;
	}
	m.from = fo->eip_instance;
	if (fo_move_begin(fo, &m) == -1) {
		buf_printf(out, "service %s: out of memory: the switch could "
		    "not begin", fo->name);
		return -1;
	}
	buf_printf(out, "service %s: switch %s started: a new instance from "
	    "%s is checked on its private address before production moves "
	    "(old instance %s is kept); follow it with: failoverctl status "
	    "%s\n", fo->name, fo->id, ami, fo->old, fo->name);
	return 0;
}

int
failover_rollback(struct failover *fo, struct buf *out)
{
	struct fo_move	m = { KIND_ROLLBACK, "asked by a person", 1, NULL,
	    NULL, NULL };
	char		kept[64];

	if (fo->switch_kept == NULL) {
		buf_printf(out, "service %s: no instance kept by a switch to "
		    "roll back to", fo->name);
		return -1;
	}
	snprintf(kept, sizeof(kept), "%s",
	    fo->switch_kept);
	if (fo_refuse_move(fo, "rollback", out) == -1)
		return -1;
	if (strcmp(kept, fo->eip_instance) == 0) {
		buf_printf(out, "service %s: %s is production already",
		    fo->name, kept);
		return -1;
	}
	m.from = fo->eip_instance;
	m.to = kept;
	if (fo_move_begin(fo, &m) == -1) {
		buf_printf(out, "service %s: out of memory: the rollback "
		    "could not begin", fo->name);
		return -1;
	}
	buf_printf(out, "service %s: rollback %s started: production moves "
	    "from %s back to %s; follow it with: failoverctl status %s\n",
	    fo->name, fo->id, fo->old, kept, fo->name);
	return 0;
}

int
failover_switch_finish(struct failover *fo, struct buf *out)
{
	struct ec2_request	*req;
	char			 kept[64];

	if (fo->switch_kept == NULL) {
		buf_printf(out, "service %s: no instance kept by a switch",
		    fo->name);
		return -1;
	}
	if (fo_active(fo)) {
		buf_printf(out, "service %s: a %s is in progress; finish "
		    "refused", fo->name, fo_kind_names[fo->kind]);
		return -1;
	}
	if (!fo_has_ec2(fo)) {
		buf_printf(out, "service %s: no EC2 client: %s", fo->name,
		    fo->env->ec2_error ? fo->env->ec2_error : "?");
		return -1;
	}
	snprintf(kept, sizeof(kept), "%s",
	    fo->switch_kept);
	req = fo_req_instance(EC2_TERMINATE_INSTANCES, "InstanceId.1", kept);
	if (req == NULL || fo_send(fo, FO_REFRESH_BR, req,
	    FO_ACT_DEADLINE, fo_on_terminated, NULL) == -1) {
		buf_printf(out, "service %s: TerminateInstances %s could not "
		    "be sent", fo->name, kept);
		return -1;
	}
	fo_set_str(&fo->switch_kept, NULL);
	fo_save(fo);
	alert_emit(ALERT_SWITCH_FINISHED, fo->name, "terminated_instance",
	    kept, "action", "no rollback possible from now on", NULL);
	buf_printf(out, "service %s: switch finished: %s is being "
	    "terminated\n", fo->name, kept);
	return 0;
}

/*
 * The point of no return of a switch: production (the old instance) is
 * touched only once the new release passed its check on its private
 * address. Before, a failure leaves production alone; after, it rolls
 * back (fo_switch_fail).
 */
int
fo_switch_may_fence(const struct failover *fo)
{
	return fo->prechecked;
}

/*
 * A rollback failed. The instance we were moving back to serves nobody
 * before ASSOCIATE: stopped, it cannot run beside volumes attached
 * nowhere (as a failed failover's replacement).
 */
void
fo_rollback_fail(struct failover *fo, const char *why, const char *stands)
{
	enum failover_step at = fo->step;

	if (fo->new != NULL && at < FAILOVER_ASSOCIATE &&
	    fo->launch >= LAUNCH_SENT) {
		fo_stop_idle_replacement(fo);
		alert_emit(ALERT_ROLLBACK_FAILED, fo->name, "rollback_id",
		    fo->id, "step", failover_step_str(at), "reason", why,
		    "stands", stands, "action", "the instance we were moving "
		    "back to serves nobody and is stopped again; the rest is "
		    "left as it stands; a person decides (failoverctl "
		    "rollback to try again)", NULL);
	} else
		alert_emit(ALERT_ROLLBACK_FAILED, fo->name, "rollback_id",
		    fo->id, "step", failover_step_str(at), "reason", why,
		    "stands", stands, "action", "left as it stands; a person "
		    "decides (failoverctl rollback to try again)", NULL);
	fo_set_holdf(fo, "%s failed in %s: %.300s", fo->id,
	    failover_step_str(at), why);
	fo_end(fo, FAILOVER_FAILED, "failed", why);
}
