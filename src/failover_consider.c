/*
 * Whether to act on a DOWN: auto_failover, pause, cooldown and the
 * window's count, then EC2's own view of the instance (corroborate),
 * which tells a dead application from a watchdog cut off.
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
#include "failoverd/tilt.h"

/* The verdict that moves the engine: the quorum's in a cluster. */
enum service_verdict
fo_verdict(const struct failover *fo)
{
	if (fo->env->verdict != NULL)
		return fo->env->verdict(fo->env->arg, fo->svc);
	return service_verdict(fo->svc);
}

/* A single watchdog always may; a cluster's member while it leads. */
int
fo_may_act(const struct failover *fo, char *why, size_t len)
{
	if (fo->env->may_act == NULL)
		return 1;
	return fo->env->may_act(fo->env->arg, why, len);
}

int
fo_wants_failover(const struct failover *fo)
{
	enum service_verdict v = fo_verdict(fo);

	return v == SERVICE_DOWN || (v == SERVICE_DEGRADED &&
	    fo_policy(fo)->failover_on_degraded);
}

void
fo_hold(struct failover *fo, const char *why)
{
	fo_set_str(&fo->hold_reason, why);
	alert_emit(ALERT_FAILOVER_HELD, fo->name, "reason", why,
	    "action", "waiting for a person (failoverctl failover or "
	    "resume)", NULL);
	fo_set_step(fo, FAILOVER_HELD);
}

/* Cooldown and the window's count, from the journal's history. */
static int
fo_rate_limited(struct failover *fo, char *why, size_t len)
{
	const struct policy_conf	*p = fo_policy(fo);
	const struct fo_history		*h;
	long long			 i, started, last = 0;
	int				 count = 0;
	time_t				 now = time(NULL);

	/*
	 * Wall clock on purpose: these spans must survive a restart of
	 * the daemon, which the monotonic clock does not.
	 */
	for (i = fo->history_next - FO_HISTORY_MAX; i < fo->history_next;
	    i++) {
		if ((h = fo_history_at(fo, i)) == NULL)
			continue;
		/* Switches and rollbacks are planned: not counted. */
		if (h->kind != NULL && strcmp(h->kind, "failover") != 0)
			continue;
		started = h->started;
		if (started <= 0)
			continue;
		if (started > last)
			last = started;
		if ((double)(now - started) < p->window)
			count++;
	}
	if (last > 0 && (double)(now - last) < p->cooldown) {
		snprintf(why, len, "cooldown: the last failover began %llds "
		    "ago (cooldown %.0fs)", (long long)(now - last),
		    p->cooldown);
		return 1;
	}
	if (count >= p->max_failovers) {
		snprintf(why, len, "%d failovers within %.0fs (max_failovers "
		    "%d)", count, p->window, p->max_failovers);
		return 1;
	}
	return 0;
}

int
fo_can_act(struct failover *fo, char *why, size_t len)
{
	if (!fo_has_ec2(fo)) {
		snprintf(why, len, "no EC2 client: %s", fo->env->ec2_error ?
		    fo->env->ec2_error : "?");
		return 0;
	}
	if (fo->journal_bad) {
		snprintf(why, len, "the journal is corrupt: %.200s",
		    fo->hold_reason ? fo->hold_reason : "?");
		return 0;
	}
	if (fo->eip_ip == NULL || fo->vol_az == NULL) {
		snprintf(why, len, "EC2 has not yet told where the Elastic IP "
		    "and the volumes are");
		return 0;
	}
	if (!fo_may_act(fo, why, len))
		return 0;
	/* TILT: no move starts on evidence from across a stall. */
	if (tilt_active(fo->env->tilt)) {
		snprintf(why, len, "the watchdog is in TILT (its loop stalled "
		    "or its clock jumped) for %.0fs more",
		    tilt_left(fo->env->tilt));
		return 0;
	}
	return 1;
}

/* A DOWN (or DEGRADED, by policy) for the automatic path. */
void
fo_consider(struct failover *fo)
{
	struct ec2_request	*req;
	char			 why[300];

	if (fo->step != FAILOVER_IDLE && fo->step != FAILOVER_DONE)
		return;
	if (!fo_wants_failover(fo) || fo->isolated)
		return;
	/*
	 * A member that does not lead leaves the move to the leader, which
	 * sees the same quorum; it says nothing (no retry either: a new
	 * leader's engine is new and considers from the start).
	 */
	if (!fo_may_act(fo, why, sizeof(why))) {
		log_debug("failover %s: down, not acting: %s", fo->name, why);
		return;
	}
	if (!fo_policy(fo)->auto_failover) {
		log_info("failover %s: auto_failover is off: no action "
		    "(failoverctl failover %s to act)", fo->name, fo->name);
		return;
	}
	if (fo->paused) {
		alert_emit(ALERT_FAILOVER_HELD, fo->name, "reason", "paused",
		    "action", "probes run, no automatic action until "
		    "failoverctl resume", NULL);
		return;
	}
	/* TILT: the watchdog's trouble, not AWS's; failover_tilt_over
	 * considers again. */
	if (tilt_active(fo->env->tilt)) {
		alert_emit(ALERT_FAILOVER_HELD, fo->name, "reason", "tilt",
		    "action", "no action until the watchdog_tilt is over",
		    NULL);
		return;
	}
	if (fo_rate_limited(fo, why, sizeof(why))) {
		fo_hold(fo, why);
		return;
	}
	if (!fo_can_act(fo, why, sizeof(why))) {
		alert_emit(ALERT_AWS_ERROR, fo->name, "error", why,
		    "action", "failover postponed, retrying", NULL);
		fo->retry_at = fo_now(fo) + FO_RETRY_IDLE;
		ev_timer_again(fo->env->loop, &fo->tick);
		return;
	}
	if (!fo_policy(fo)->corroborate || fo->eip_instance == NULL) {
		fo_begin(fo, "service down", 0);
		return;
	}
	req = fo_req_instance(EC2_DESCRIBE_INSTANCE_STATUS, "InstanceId.1",
	    fo->eip_instance);
	if (req == NULL || ec2_request_add(req, "IncludeAllInstances",
	    "true") == -1) {
		ec2_request_free(req);
		return;
	}
	fo->ec2_says_ok = 0;
	fo_set_step(fo, FAILOVER_CORROBORATE);
	ev_timer_again(fo->env->loop, &fo->tick);
	if (fo_send(fo, FO_MAIN, req, FO_CORROBORATE_TIMEOUT,
	    fo_on_corroborate, NULL) == -1)
		fo_set_step(fo, FAILOVER_IDLE);
}

/*
 * EC2 sees the instance healthy while our probes see it down: either
 * the application died (fail over) or this watchdog is cut off (do
 * not). The daemon tells which, possibly only after the other services
 * had a few seconds to go down too; until then we stay here.
 */
void
fo_corroborate_decide(struct failover *fo)
{
	int iso = 0;

	if (fo->env->isolated != NULL)
		iso = fo->env->isolated(fo->env->arg);
	if (iso < 0)
		return;		/* undecided: asked again next tick */
	fo->ec2_says_ok = 0;
	if (iso == 0) {
		fo_begin(fo, fo->ec2_view ? fo->ec2_view : "", 0);
		return;
	}
	fo->isolated = 1;
	alert_emit(ALERT_WATCHDOG_ISOLATED, fo->name, "instance",
	    fo->eip_instance, "ec2", fo->ec2_view ? fo->ec2_view : "",
	    "action", "no failover: "
	    "every service went down at once while EC2 sees them healthy; "
	    "check this host's network", NULL);
	fo_set_step(fo, FAILOVER_IDLE);
}

void
fo_on_corroborate(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const struct ec2_instance_status	*st;
	char					 what[160];
	int					 ok;

	if (fo->step != FAILOVER_CORROBORATE)
		return;
	if (ec2_result_status(res) != EC2_OK) {
		alert_emit(ALERT_AWS_ERROR, fo->name, "error",
		    ec2_result_error(res), "step", "corroborate",
		    "action", "failover postponed, retrying", NULL);
		fo_set_step(fo, FAILOVER_IDLE);
		fo->retry_at = fo_now(fo) + FO_RETRY_IDLE;
		ev_timer_again(fo->env->loop, &fo->tick);
		return;
	}
	if (!fo_wants_failover(fo)) {
		log_info("failover %s: recovered while asking EC2; no "
		    "action", fo->name);
		fo_set_step(fo, FAILOVER_IDLE);
		return;
	}
	if (ec2_result_instance_statuses(res, &st) == 0) {
		fo_begin(fo, "service down; EC2 has no status for the "
		    "instance", 0);
		return;
	}
	ok = st->state != NULL && fo_is(st->state, "running") &&
	    st->instance_status != NULL &&
	    fo_is(st->instance_status, "ok") &&
	    fo_is(st->system_status, "ok");
	snprintf(what, sizeof(what), "EC2: %s, instance %s, system %s",
	    st->state ? st->state : "?",
	    st->instance_status ? st->instance_status : "?",
	    st->system_status ? st->system_status : "?");
	if (!ok) {
		fo_begin(fo, what, 0);
		return;
	}
	fo->ec2_says_ok = 1;
	fo_set_str(&fo->ec2_view, what);
	fo_corroborate_decide(fo);
}
