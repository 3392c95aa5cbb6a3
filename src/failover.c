/*
 * The failover engine, after Redis Sentinel: named steps, one function
 * per step with its own deadline, one function (fo_set_step) that
 * changes the step, logs "[old] -> [new]" and journals it, and one
 * (fo_next) that says what comes next from what the replies recorded.
 *
 * This file is the core: the step, the EC2 calls, the tick and the
 * public API (failover.h). Around it, one file per concern, sharing
 * src/failover_priv.h:
 *
 *   failover_consider.c  whether to act on a DOWN (corroborate, cooldown)
 *   failover_steps.c     fence, detach, attach, associate, verify
 *   failover_launch.c    RunInstances, ClientToken lookup, restart in place
 *   failover_hostkeys.c  the replacement's SSH host keys, learned_hosts
 *   failover_evacuate.c  an impaired AZ: volumes restored from snapshots
 *   failover_switch.c    release switch and rollback
 *   failover_end.c       completed or failed
 *   failover_journal.c   the journal record: save, restore, history
 *   failover_identity.c  the EIP and volumes as EC2 shows them (refresh)
 *   failover_status.c    failoverctl status and history
 *
 * Two branches run at once while the old instance is fenced: the main
 * branch (fence -> detach -> attach -> associate -> verify) and the
 * launch branch (RunInstances -> running -> host keys from the console).
 * ATTACH needs both: the replacement ready and every volume free. So
 * the critical path is max(launch, fence + detach) + attach + associate
 * + verify, never the sum.
 *
 * Everything is driven by one tick (FO_TICK seconds) that polls EC2
 * for the branches that have no call in flight. Each poll describes
 * what AWS has before acting, which is also what makes a resume after
 * a crash safe: a volume already attached to the replacement is not
 * attached again, the launch is found again by its ClientToken.
 *
 * The same machine runs two planned moves (fo_kinds[]): a release switch
 * (failoverctl switch --ami), which launches from the new AMI and
 * checks it on its private address before FENCE touches production,
 * and a rollback, whose "launch" starts the instance kept by the
 * switch again. A switch that fails after touching production rolls
 * back by itself.
 *
 * An evacuation (policy.evacuate) is a failover whose volumes' AZ is
 * impaired: the launch goes to an evacuation subnet, the newest
 * completed snapshot of each volume is restored into a new volume in
 * the AZ the launch landed in, and those are attached instead. The old
 * volumes are left untouched; the new ids become the service's
 * identity (identity.<configured id>= in the journal).
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

#include <openssl/rand.h>

#include "failover_priv.h"
#include "failoverd/tilt.h"

const char *fo_fence_names[FENCE_MAX] = { "todo", "stopping",
	"fenced" };
const char *fo_launch_names[LAUNCH_MAX] = { "todo", "sent", "running",
	"ready" };
const char *fo_vol_names[VOL_MAX] = { "unknown", "elsewhere",
	"detaching", "available", "attaching", "attached" };
const char *fo_kind_names[KIND_MAX] = { "failover", "switch",
	"rollback", "evacuation" };
const char *fo_timing_names[T_MAX] = { "detect", "fence", "launch",
	"detach", "attach", "associate", "verify", "total",
	"critical_path" };

static double	fo_fence_deadline(const struct failover *fo);
static double	fo_detach_deadline(const struct failover *fo);
static double	fo_attach_deadline(const struct failover *fo);
static double	fo_associate_deadline(const struct failover *fo);
static double	fo_verify_deadline(const struct failover *fo);

/*
 * The steps, in the order a move takes them:
 *
 *   idle -> corroborate -> fence+launch -> detach -> attach -> associate
 *        -> verify -> done
 *
 * and failed or held (a person decides) from any of them. Each active
 * step has its deadline and the function the tick runs while in it;
 * `abortable`: past its deadline, its calls in flight are dropped for
 * one last look at AWS before the move fails (fo_last_look).
 */
struct fo_step_def {
	const char	*name;
	double		(*deadline)(const struct failover *fo);
	void		(*run)(struct failover *fo);
	int		 abortable;
};

static const struct fo_step_def fo_steps[FAILOVER_STEP_MAX] = {
	[FAILOVER_IDLE]		= { "idle", NULL, NULL, 0 },
	[FAILOVER_CORROBORATE]	= { "corroborate", NULL, NULL, 0 },
	[FAILOVER_FENCE_LAUNCH]	= { "fence+launch", fo_fence_deadline,
				    fo_step_fence_launch, 0 },
	[FAILOVER_DETACH]	= { "detach", fo_detach_deadline,
				    fo_step_detach, 1 },
	[FAILOVER_ATTACH]	= { "attach", fo_attach_deadline,
				    fo_step_attach, 1 },
	[FAILOVER_ASSOCIATE]	= { "associate", fo_associate_deadline,
				    fo_associate_poll, 1 },
	[FAILOVER_VERIFY]	= { "verify", fo_verify_deadline,
				    fo_step_verify, 0 },
	[FAILOVER_DONE]		= { "done", NULL, NULL, 0 },
	[FAILOVER_FAILED]	= { "failed", NULL, NULL, 0 },
	[FAILOVER_HELD]		= { "held", NULL, NULL, 0 },
};

/* The step a journal names, or -1. */
int
fo_step_index(const char *name)
{
	int s;

	for (s = 0; name != NULL && s < FAILOVER_STEP_MAX; s++)
		if (strcmp(fo_steps[s].name, name) == 0)
			return s;
	return -1;
}
const char *
failover_step_str(enum failover_step s)
{
	if ((unsigned int)s >= FAILOVER_STEP_MAX)
		return "?";
	return fo_steps[s].name;
}

int
fo_str_index(const char *const *names, size_t n, const char *s)
{
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

/* A hold reason, bounded as the journal and status lines like it. */
void __attribute__((format(printf, 2, 3)))
fo_set_holdf(struct failover *fo, const char *fmt, ...)
{
	char	why[640];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fo_set_str(&fo->hold_reason, why);
}

/*
 * -1 when out of memory: *dst keeps its old value, and the caller says
 * what that means (a move fails rather than go on with a stale id).
 */
int
fo_set_str(char **dst, const char *src)
{
	char *copy = NULL;

	if (src != NULL && *src != '\0') {
		copy = strdup(src);
		if (copy == NULL) {
			log_warnx("failover: out of memory (%zu bytes)",
			    strlen(src) + 1);
			return -1;
		}
	}
	free(*dst);
	*dst = copy;
	return 0;
}

/*
 * The one place the step changes. A move is logged, journaled and told;
 * a step found in the journal (restored) is on disk already, and a
 * resumed move says so instead.
 */
static void
fo_step_enter(struct failover *fo, enum failover_step to, int restored)
{
	enum failover_step from = fo->step;

	if (from == to && !restored)
		return;
	fo->step = to;
	fo->step_start = fo_now(fo);
	fo->step_slow = 0;
	fo->last_look = 0;
	if (restored) {
		if (!fo_active(fo))
			return;
		log_info("failover %s: resuming failover %s at step %s",
		    fo->name, fo->id, failover_step_str(to));
		alert_emit(ALERT_FAILOVER_STEP, fo->name, "failover_id",
		    fo->id, "step", failover_step_str(to), "resumed", "yes",
		    NULL);
		ev_timer_again(fo->env->loop, &fo->tick);
		return;
	}
	/* On disk first: what the log says has happened is durable. */
	fo_save(fo);
	log_info("failover %s: [%s] -> [%s]", fo->name,
	    failover_step_str(from), failover_step_str(to));
	if (to >= FAILOVER_FENCE_LAUNCH && to <= FAILOVER_VERIFY)
		alert_emit(ALERT_FAILOVER_STEP, fo->name, "failover_id",
		    fo->id ? fo->id : "", "step", failover_step_str(to),
		    "from", failover_step_str(from), "kind",
		    fo_kind_names[fo->kind], NULL);
	if (fo_active(fo))
		ev_timer_again(fo->env->loop, &fo->tick);
}

void
fo_set_step(struct failover *fo, enum failover_step to)
{
	fo_step_enter(fo, to, 0);
}

/* As the journal has it (fo_restore, a corrupt journal's hold). */
void
fo_resume_step(struct failover *fo, enum failover_step to)
{
	fo_step_enter(fo, to, 1);
}

static void fo_on_result(struct ec2_result *res, void *arg);

int
fo_send(struct failover *fo, enum fo_branch br, struct ec2_request *req,
    double deadline, fo_reply_fn *on_reply, void *arg)
{
	struct fo_call *c;

	char		 why[300];
	int		 mutates = ec2_action_mutates(ec2_request_action(req));

	if (!fo_has_ec2(fo)) {
		ec2_request_free(req);
		return -1;
	}
	/* A member of a cluster that does not lead changes nothing. */
	if (mutates && !fo_may_act(fo, why, sizeof(why))) {
		log_debug("failover %s: %s not sent: %s", fo->name,
		    ec2_action_str(ec2_request_action(req)), why);
		ec2_request_free(req);
		return -1;
	}
	/*
	 * No change to the account without a durable record before it: a
	 * restart (or the next leader) resumes from the record, so a call
	 * it does not know of could be made twice (a second RunInstances
	 * under a new token). A record still on its way to etcd (1) is
	 * not durable yet. The callers keep their state on -1 and try
	 * again next tick, or at once when the write lands
	 * (failover_journal_written).
	 */
	if (mutates && fo_save(fo) != 0) {
		ec2_request_free(req);
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		ec2_request_free(req);
		log_warn("failover %s: call", fo->name);
		return -1;
	}
	c->fo = fo;
	c->branch = br;
	c->on_reply = on_reply;
	c->arg = arg;
	if (fo->env->send != NULL)
		c->call = fo->env->send(fo->env->send_arg, req, deadline,
		    fo_on_result, c);
	else
		c->call = ec2_call(fo->env->ec2, req, deadline, fo_on_result,
		    c);
	if (c->call == NULL) {
		free(c);
		return -1;
	}
	c->next = fo->calls;
	fo->calls = c;
	fo->busy[br]++;
	return 0;
}

void
fo_cancel_branch(struct failover *fo, int br)
{
	struct fo_call **pp = &fo->calls, *c;

	while (*pp != NULL) {
		c = *pp;
		if (br >= 0 && (int)c->branch != br) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		if (fo->env->cancel != NULL)
			fo->env->cancel(fo->env->send_arg, c->call);
		else
			ec2_call_cancel(c->call);
		fo->busy[c->branch]--;
		free(c);
	}
	if (br < 0 || br == FO_REFRESH_BR)
		fo_refresh_over(fo);
}

struct ec2_request *
fo_req(enum ec2_action a)
{
	return ec2_request_new(a);
}

struct ec2_request *
fo_req_instance(enum ec2_action a, const char *key, const char *id)
{
	struct ec2_request *req = ec2_request_new(a);

	if (req != NULL && ec2_request_add(req, key, id) == -1) {
		ec2_request_free(req);
		return NULL;
	}
	return req;
}

/*
 * A passing trouble (network, throttling past the call's deadline) is
 * said as aws_error and tried again next tick; a refusal is the
 * caller's to judge.
 */
enum fo_outcome
fo_outcome(struct failover *fo, struct ec2_result *res)
{
	enum ec2_status st = ec2_result_status(res);

	if (st == EC2_OK)
		return FO_OK;
	if (st == EC2_ERR_NETWORK || st == EC2_ERR_TIMEOUT ||
	    st == EC2_ERR_CREDS || ec2_result_retryable(res)) {
		alert_emit(ALERT_AWS_ERROR, fo->name, "error",
		    ec2_result_error(res), "step", failover_step_str(fo->step),
		    "action", "retrying", NULL);
		return FO_AGAIN;
	}
	return FO_REFUSED;
}

static double
fo_fence_deadline(const struct failover *fo)
{
	return fo_policy(fo)->fence_timeout;
}

static double
fo_detach_deadline(const struct failover *fo)
{
	const struct policy_conf *p = fo_policy(fo);

	/* An evacuation restores volumes here, after its launch. */
	if (fo->kind == KIND_EVACUATE)
		return 2 * p->detach_timeout + p->launch_timeout;
	/* Forced after detach_timeout, given up after twice that. */
	return 2 * p->detach_timeout;
}

static double
fo_attach_deadline(const struct failover *fo)
{
	return fo_policy(fo)->attach_timeout;
}

static double
fo_associate_deadline(const struct failover *fo)
{
	return fo_policy(fo)->associate_timeout;
}

static double
fo_verify_deadline(const struct failover *fo)
{
	return fo_policy(fo)->verify_timeout;
}

static double
fo_step_deadline(const struct failover *fo)
{
	const struct fo_step_def *d = &fo_steps[fo->step];

	return d->deadline != NULL ? d->deadline(fo) : 0;
}

/*
 * A step past its deadline gets one last look at AWS before it fails:
 * the calls that made it late may have hung while EC2 carried them out
 * (a detach that went through behind a dead connection). The calls in
 * flight are dropped and the step polls afresh for one more poll
 * deadline; if what it reads moves the step on, the failover goes on,
 * and if not, the failure names what AWS says now, not what it said
 * before the hang. Returns 0 during that look, -1 once it is over.
 */
static int
fo_last_look(struct failover *fo, double now)
{
	if (!fo_steps[fo->step].abortable)
		return -1;
	if (fo->last_look == 0) {
		fo->last_look = now;
		fo_cancel_branch(fo, FO_MAIN);
		/* ASSOCIATE describes before it associates again. */
		fo->assoc_sent = 0;
		log_warnx("failover %s: step %s passed its deadline; reading "
		    "AWS afresh for %.0fs before giving up", fo->name,
		    failover_step_str(fo->step), FO_POLL_DEADLINE);
		return 0;
	}
	return now - fo->last_look < FO_POLL_DEADLINE ? 0 : -1;
}

/* Past half its deadline a step is slow: say so once. */
static int
fo_check_deadlines(struct failover *fo)
{
	double	now = fo_now(fo), in = now - fo->step_start;
	double	dl = fo_step_deadline(fo);
	char	why[256], secs[32], budget[32];

	/* DETACH waiting only for the launch is not late: launch is. */
	if (fo->step == FAILOVER_DETACH && fo->t[T_DETACH] >= 0)
		dl = 0;
	/* A switch's FENCE waits for its launch and its private check. */
	if (!fo_kinds[fo->kind].may_fence(fo)) {
		dl = 0;
		if (fo->precheck_start > 0 && now - fo->precheck_start >
		    fo_policy(fo)->verify_timeout) {
			snprintf(why, sizeof(why), "new instance %s did not "
			    "pass the service's probes on its private address "
			    "%s within verify_timeout (%.0fs)", fo->new,
			    fo->new_ip ? fo->new_ip : "?",
			    fo_policy(fo)->verify_timeout);
			fo_fail(fo, why);
			return -1;
		}
	}
	if (dl > 0 && in > dl && fo_last_look(fo, now) == 0)
		return 0;
	if (dl > 0 && in > dl) {
		snprintf(why, sizeof(why), "step %s passed its deadline "
		    "(%.0fs)", failover_step_str(fo->step), dl);
		fo_fail(fo, why);
		return -1;
	}
	if (dl > 0 && in > dl / 2 && !fo->step_slow) {
		fo->step_slow = 1;
		snprintf(secs, sizeof(secs), "%.1f", in);
		snprintf(budget, sizeof(budget), "%.1f", dl / 2);
		alert_emit(ALERT_FAILOVER_STEP_SLOW, fo->name, "failover_id",
		    fo->id, "step", failover_step_str(fo->step), "elapsed",
		    secs, "budget", budget, NULL);
	}
	if (fo->launch == LAUNCH_RUNNING && fo_has_ssh_probe(fo) &&
	    now - fo->launch_start > fo_policy(fo)->launch_timeout) {
		snprintf(why, sizeof(why), "no SSH host keys on the console "
		    "of %s within %.0f s (launch_timeout)%s", fo->new,
		    fo_policy(fo)->launch_timeout, fo->restart ||
		    fo->kind == KIND_ROLLBACK ? "; cloud-init prints them on "
		    "an instance's first boot only" : "");
		fo_fail(fo, why);
		return -1;
	}
	if (fo->launch != LAUNCH_READY &&
	    now - fo->launch_start > fo_policy(fo)->launch_timeout) {
		snprintf(why, sizeof(why), "launch of the replacement%s%s "
		    "passed its deadline (%.0fs)", fo->new ? " " : "",
		    fo->new ? fo->new : "", fo_policy(fo)->launch_timeout);
		fo_fail(fo, why);
		return -1;
	}
	return 0;
}

/*
 * What comes next: the one place a move goes forward. The reply
 * handlers record what they learnt (the fence done, the launch ready,
 * the time a step's work took, which says it is over) and call this;
 * failing, holding and ending are fo_fail, fo_hold and fo_end, and
 * VERIFY ends on the service's verdict (fo_complete).
 *
 *   FENCE+LAUNCH -> DETACH     the old instance is stopped
 *   DETACH -> ATTACH           every volume free (T_DETACH) and the
 *                              replacement ready: both branches
 *   ATTACH -> ASSOCIATE        every volume on the replacement
 *   ASSOCIATE -> VERIFY        the EIP on the replacement
 *
 * A step entered is polled at once: its work starts in this very turn
 * of the loop, not a tick on.
 */
void
fo_next(struct failover *fo)
{
	switch (fo->step) {
	case FAILOVER_FENCE_LAUNCH:
		if (fo->fence != FENCE_DONE)
			return;
		fo_set_step(fo, FAILOVER_DETACH);
		break;
	case FAILOVER_DETACH:
		if (fo->t[T_DETACH] < 0 || fo->launch != LAUNCH_READY)
			return;
		fo_set_step(fo, FAILOVER_ATTACH);
		break;
	case FAILOVER_ATTACH:
		if (fo->t[T_ATTACH] < 0)
			return;
		fo_set_step(fo, FAILOVER_ASSOCIATE);
		break;
	case FAILOVER_ASSOCIATE:
		if (fo->t[T_ASSOCIATE] < 0)
			return;
		fo_set_step(fo, FAILOVER_VERIFY);
		/* Counting starts afresh: only the replacement's answers count. */
		service_reset_probes(fo->svc);
		return;		/* the probes run on their own schedule */
	default:
		return;
	}
	fo_poll(fo);
}

void
fo_poll(struct failover *fo)
{
	if (!fo_active(fo) || fo_check_deadlines(fo) == -1)
		return;
	fo_steps[fo->step].run(fo);
}

static void
fo_vols_free(struct failover *fo)
{
	size_t i;

	for (i = 0; i < fo->nvols; i++) {
		free(fo->vols[i].id);
		free(fo->vols[i].conf_id);
		free(fo->vols[i].from);
		free(fo->vols[i].snap);
		free(fo->vols[i].vtype);
		free(fo->vols[i].device);
	}
	free(fo->vols);
	fo->vols = NULL;
	fo->nvols = 0;
}

/* All the volumes, or none and -1: a move never takes only some. */
static int
fo_vols_reset(struct failover *fo)
{
	const struct service_conf	*sc = fo_conf(fo);
	struct fo_volume		*v;
	size_t				 i;

	fo_vols_free(fo);
	if (sc->nvolumes == 0)
		return 0;
	fo->vols = calloc(sc->nvolumes, sizeof(*fo->vols));
	if (fo->vols == NULL)
		return -1;
	for (i = 0; i < sc->nvolumes; i++) {
		v = &fo->vols[i];
		v->id = strdup(fo_vol_id(fo, sc->volumes[i].id));
		v->from = strdup(fo_vol_id(fo, sc->volumes[i].id));
		v->conf_id = strdup(sc->volumes[i].id);
		v->device = strdup(sc->volumes[i].device);
		if (v->id == NULL || v->from == NULL || v->conf_id == NULL ||
		    v->device == NULL) {
			free(v->id);
			free(v->from);
			free(v->conf_id);
			free(v->device);
			fo_vols_free(fo);
			return -1;
		}
		fo->nvols++;
	}
	return 0;
}

/* -1 when out of memory for the volumes: no move may begin. */
int
fo_progress_reset(struct failover *fo)
{
	int k;

	fo->restart = 0;
	fo->resumed = 0;
	fo->kind = KIND_FAILOVER;
	fo->prechecked = 0;
	fo->precheck_start = 0;
	fo->rollback_auto = 0;
	fo->az_checked = 0;
	fo->evac_subnet = 0;
	fo->snaps_known = 0;
	fo->src_known = 0;
	fo_set_str(&fo->evac_az, NULL);
	fo_set_str(&fo->ami, NULL);
	fo_set_str(&fo->new_ip, NULL);
	fo->fence = FENCE_TODO;
	fo->launch = LAUNCH_TODO;
	fo->stop_sent = 0;
	fo->skip_os_sent = 0;
	fo->skip_os_refused = 0;
	fo->launch_looked_up = 0;
	fo->lookup_by_tag = 0;
	fo->lookup_fails = 0;
	fo->launch_tries = 0;
	fo->launch_next = 0;
	fo->assoc_sent = 0;
	fo->keys_waiting = 0;
	fo->keys_checked = 0;
	fo->console_latest = 0;
	fo_set_str(&fo->latest_refused, NULL);
	fo->start_ok_at = 0;
	fo->fenced_at = 0;
	for (k = 0; k < T_MAX; k++)
		fo->t[k] = -1;
	fo_set_str(&fo->new, NULL);
	return fo_vols_reset(fo);
}

static int
fo_new_id(struct failover *fo, const char *prefix)
{
	unsigned char	rnd[3];
	char		id[128], stamp[32];
	time_t		now = time(NULL);
	struct tm	tm;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	/* A ClientToken: at most 64 ASCII characters. */
	snprintf(id, sizeof(id), "%s-%.30s-%s-%02x%02x%02x", prefix, fo->name,
	    stamp, rnd[0], rnd[1], rnd[2]);
	id[FO_TOKEN_MAX] = '\0';
	return fo_set_str(&fo->id, id);
}

/*
 * What every move starts from: its state reset, a new id (its
 * ClientToken), the instance it moves away from, its clocks. -1 when
 * out of memory, before anything is journaled or sent.
 */
static int
fo_move_prepare(struct failover *fo, const struct fo_move *m)
{
	double now = fo_now(fo);

	if (fo_progress_reset(fo) == -1 ||
	    fo_new_id(fo, fo_kinds[m->kind].id_prefix) == -1 ||
	    fo_set_str(&fo->old, m->from) == -1)
		return -1;
	fo->kind = m->kind;
	fo->manual = m->manual;
	fo->started = now;
	fo->launch_start = now;
	fo_set_str(&fo->hold_reason, NULL);
	fo->started_at = (long long)time(NULL);
	return 0;
}

/*
 * A move of any kind begins: prepared, then its kind's own beginning
 * (fo_kinds[].begin: its fields, its event), then FENCE+LAUNCH at once.
 * One that could not begin (out of memory) waits for a person.
 */
int
fo_move_begin(struct failover *fo, const struct fo_move *m)
{
	char why[128];

	if (fo_move_prepare(fo, m) == -1 ||
	    fo_kinds[m->kind].begin(fo, m) == -1) {
		snprintf(why, sizeof(why), "out of memory: the %s could not "
		    "begin", fo_kind_names[m->kind]);
		fo_hold(fo, why);
		return -1;
	}
	fo_set_step(fo, FAILOVER_FENCE_LAUNCH);
	fo_poll(fo);
	return 0;
}

/*
 * A move in progress becomes another kind (a failover whose AZ is
 * impaired, an evacuation): same id, the fence goes on as it was; the
 * new kind's beginning says what changes.
 */
int
fo_move_turn(struct failover *fo, enum fo_kind kind, const char *why)
{
	struct fo_move m = { kind, why, fo->manual, fo->old, NULL, NULL };

	fo->kind = kind;
	return fo_kinds[kind].begin(fo, &m);
}

/* A failover: the service is down, or a person asked. */
int
fo_begin(struct failover *fo, const char *why, int manual)
{
	/*
	 * The EIP's instance is production; with the EIP unassociated,
	 * whatever holds the volumes must be fenced all the same.
	 */
	struct fo_move m = { KIND_FAILOVER, why, manual, fo->eip_instance ?
	    fo->eip_instance : fo->vol_instance, NULL, NULL };

	return fo_move_begin(fo, &m);
}

int
fo_failover_begin(struct failover *fo, const struct fo_move *m)
{
	fo->isolated = 0;
	fo->t[T_DETECT] = fo->manual || fo->unhealthy_since == 0 ? 0 :
	    fo_now(fo) - fo->unhealthy_since;
	alert_emit(ALERT_FAILOVER_STARTED, fo->name, "failover_id", fo->id,
	    "trigger", fo->manual ? "manual" : "auto", "reason", m->why,
	    "old_instance", fo->old ? fo->old : "-",
	    "az", fo->vol_az, "ami", fo_ami(fo), NULL);
	return 0;
}

/* A reply: its call is done; the handler it carries says what it means. */
static void
fo_on_result(struct ec2_result *res, void *arg)
{
	struct fo_call	*c = arg, **pp;
	struct failover	*fo = c->fo;
	fo_reply_fn	*on_reply = c->on_reply;
	void		*rarg = c->arg;
	enum fo_branch	 br = c->branch;

	for (pp = &fo->calls; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	fo->busy[br]--;
	free(c);
	if (br == FO_REFRESH_BR)
		fo_refresh_over(fo);
	on_reply(fo, res, rarg);
	ec2_result_free(res);
}

static void
fo_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct failover *fo = w->data;
	double		 now = fo_now(fo);

	/*
	 * TILT: no new call and no deadline while time is not trusted;
	 * failover_tilt_over moves the deadlines on by the time held.
	 */
	if (tilt_active(fo->env->tilt))
		return;
	/* Fast only while acting; waiting to retry needs no haste. */
	w->repeat = fo_active(fo) ? FO_TICK : FO_POLL_EVERY;
	if (fo_active(fo)) {
		if (now - fo->polled_at < FO_POLL_EVERY &&
		    (fo->env->ec2 == NULL ||
		    !ec2_budget_spare(fo->env->ec2, FO_POLL_RESERVE)))
			return;
		fo->polled_at = now;
		fo_relearn_keys(fo);
		fo_poll(fo);
		return;
	}
	if (fo->step == FAILOVER_CORROBORATE) {
		if (!fo_wants_failover(fo)) {
			log_info("failover %s: recovered while corroborating; "
			    "no action", fo->name);
			fo_cancel_branch(fo, FO_MAIN);
			fo->ec2_says_ok = 0;
			fo_set_step(fo, FAILOVER_IDLE);
		} else if (fo->ec2_says_ok) {
			fo_corroborate_decide(fo);
		} else if (fo_now(fo) - fo->step_start >
		    FO_CORROBORATE_TIMEOUT + 5) {
			fo_cancel_branch(fo, FO_MAIN);
			fo_set_step(fo, FAILOVER_IDLE);
		}
		return;
	}
	if (fo->retry_at > 0 && fo_now(fo) >= fo->retry_at) {
		fo->retry_at = 0;
		fo_consider(fo);
	}
	if (fo->retry_at == 0 && fo->step != FAILOVER_CORROBORATE)
		ev_timer_stop(loop, w);
}

/*
 * A cluster's follower told of a DOWN: the leader is about to move the
 * service; look at the EIP soon and then often (fo_on_refresh_timer),
 * not at the idle pace.
 */
static void
fo_follow_soon(struct failover *fo, enum service_verdict to)
{
	char why[300];

	if (to == SERVICE_HEALTHY || fo->env->may_act == NULL ||
	    fo_may_act(fo, why, sizeof(why)))
		return;
	if (ev_timer_remaining(fo->env->loop, &fo->refresh) >
	    FO_REFRESH_FOLLOW) {
		fo->refresh.repeat = FO_REFRESH_FOLLOW;
		ev_timer_again(fo->env->loop, &fo->refresh);
	}
}

void
failover_journal_written(struct failover *fo)
{
	fo_end_retry(fo);
	/* From the loop, not from inside the cluster's callback. */
	if (fo_active(fo) || fo->step == FAILOVER_CORROBORATE ||
	    fo->retry_at > 0) {
		fo->polled_at = 0;
		ev_timer_again(fo->env->loop, &fo->tick);
		ev_feed_event(fo->env->loop, &fo->tick, EV_TIMER);
	}
}

const char *
failover_id(const struct failover *fo)
{
	return fo->id;
}

const char *
failover_writer(const struct failover *fo)
{
	return fo->writer;
}

void
failover_tilt_over(struct failover *fo, double held)
{
	if (fo->step_start > 0)
		fo->step_start += held;
	if (fo->launch_start > 0)
		fo->launch_start += held;
	if (fo->retry_at > 0)
		fo->retry_at += held;
	if (!fo_active(fo) && fo->step != FAILOVER_CORROBORATE)
		fo_consider(fo);
}

void
failover_on_check(struct failover *fo, enum service_verdict to)
{
	if (fo_precheck_waiting(fo) && to == SERVICE_HEALTHY)
		fo_precheck_passed(fo);
}

void
failover_on_verdict(struct failover *fo, enum service_verdict from,
    enum service_verdict to)
{
	double now = fo_now(fo);

	if (to == SERVICE_DOWN && fo->down_since == 0)
		fo->down_since = now;
	else if (to != SERVICE_DOWN)
		fo->down_since = 0;
	if (to == SERVICE_HEALTHY) {
		fo->unhealthy_since = 0;
		fo->isolated = 0;
	} else if (from == SERVICE_HEALTHY) {
		fo->unhealthy_since = now;
	}
	if (fo->step == FAILOVER_VERIFY) {
		if (to == SERVICE_HEALTHY)
			fo_complete(fo);
		return;
	}
	if (fo_active(fo))
		return;
	fo_follow_soon(fo, to);
	fo_consider(fo);
}

struct failover *
failover_new(const struct failover_env *env, struct service *svc)
{
	struct failover	*fo;
	char		 err[600], path[1024];
	int		 rc;

	fo = calloc(1, sizeof(*fo));
	if (fo == NULL)
		return NULL;
	fo->env = env;
	fo->svc = svc;
	fo_refresh_line_join(fo);
	fo->name = strdup(service_name(svc));
	if (fo->name == NULL)
		goto fail;
	ev_timer_init(&fo->tick, fo_on_tick, 0., FO_TICK);
	fo->tick.data = fo;
	ev_timer_init(&fo->refresh, fo_on_refresh_timer, 0., 0.05);
	fo->refresh.data = fo;
	fo->nident = service_conf(svc)->nvolumes;
	if (fo->nident > 0) {
		fo->ident_vols = calloc(fo->nident, sizeof(*fo->ident_vols));
		if (fo->ident_vols == NULL) {
			fo->nident = 0;
			goto fail;
		}
	}
	fo_progress_reset(fo);
	fo_learned_path(fo, path, sizeof(path));
	service_set_learned_hosts(svc, path);

	rc = fo_journal_load(fo, &fo->rec, err, sizeof(err));
	if (rc == -1) {
		fo->journal_bad = 1;
		fo->rec = journal_rec_new();
		if (fo->rec == NULL)
			goto fail;
		fo_set_str(&fo->hold_reason, err);
		alert_emit(ALERT_JOURNAL_CORRUPT, fo->name, "error", err,
		    "action", "service held; move the file away and run "
		    "failoverctl resume", NULL);
		fo_resume_step(fo, FAILOVER_HELD);
	} else if (rc == 1) {
		fo->rec = journal_rec_new();
		if (fo->rec == NULL)
			goto fail;
	} else {
		rc = fo_restore(fo, err, sizeof(err));
		if (rc == -1) {
			fo->journal_bad = 1;
			fo_set_str(&fo->hold_reason, err);
			alert_emit(ALERT_JOURNAL_CORRUPT, fo->name, "error",
			    err, "action", "service held; move the file "
			    "away and run failoverctl resume", NULL);
			fo_resume_step(fo, FAILOVER_HELD);
		} else if (rc == 1 && fo->step == FAILOVER_VERIFY) {
			service_reset_probes(svc);
		}
		/*
		 * A cluster's record may come from another member, whose
		 * learned-hosts file is not this one: learn again the
		 * keys of the instance the move is on.
		 */
		if (env->journal_load != NULL) {
			free(fo->learned_instance);
			free(fo->learned_instances);
			fo->learned_instance = fo->learned_instances = NULL;
		}
		if (rc == 1 && env->journal_load != NULL &&
		    fo->step >= FAILOVER_ATTACH && fo_has_ssh_probe(fo))
			fo->keys_relearn = 1;
	}
	/* Probed from the start, also while EC2 is away. */
	if (!fo->journal_bad && fo->eip_ip != NULL)
		service_set_target(svc, fo->eip_ip);
	ev_timer_again(env->loop, &fo->refresh);
	return fo;
fail:
	failover_free(fo);
	return NULL;
}

void
failover_free(struct failover *fo)
{
	if (fo == NULL)
		return;
	fo_cancel_branch(fo, -1);
	ev_timer_stop(fo->env->loop, &fo->tick);
	ev_timer_stop(fo->env->loop, &fo->refresh);
	/* The check is the switch's; the service outlives it. */
	service_check_stop(fo->svc);
	fo_refresh_line_leave(fo);
	fo_vols_free(fo);
	journal_rec_free(fo->rec);
	free(fo->saved);
	free(fo->evac_az);
	free(fo->hold_reason);
	free(fo->ec2_view);
	free(fo->attach_refused);
	free(fo->eip_ip);
	free(fo->eip_instance);
	free(fo->vol_az);
	free(fo->vol_instance);
	free(fo->id);
	free(fo->old);
	free(fo->new);
	free(fo->ami);
	free(fo->new_ip);
	free(fo->latest_refused);
	free(fo->switch_kept);
	free(fo->ident_subnet);
	free(fo->moved_from);
	free(fo->moved_to);
	free(fo->learned_instance);
	free(fo->learned_instances);
	free(fo->writer);
	free(fo->end_calls[0].instance);
	free(fo->end_calls[1].instance);
	fo_service_free(fo);
	free(fo->name);
	free(fo);
}

enum failover_step
failover_step(const struct failover *fo)
{
	return fo->step;
}

double
failover_down_since(const struct failover *fo)
{
	return fo->down_since;
}

int
failover_manual(struct failover *fo, struct buf *out)
{
	char why[300];

	if (fo_active(fo) || fo->step == FAILOVER_CORROBORATE) {
		buf_printf(out, "service %s: a failover is in progress (%s, "
		    "step %s); refused", fo->name, fo->id ? fo->id : "-",
		    failover_step_str(fo->step));
		return -1;
	}
	if (!fo_can_act(fo, why, sizeof(why))) {
		buf_printf(out, "service %s: cannot fail over: %s", fo->name,
		    why);
		return -1;
	}
	if (fo_begin(fo, "asked by a person", 1) == -1) {
		buf_printf(out, "service %s: out of memory: the failover "
		    "could not begin", fo->name);
		return -1;
	}
	buf_printf(out, "service %s: failover %s started (old instance %s); "
	    "follow it with: failoverctl status %s\n", fo->name, fo->id,
	    fo->old ? fo->old : "-", fo->name);
	return 0;
}

int
failover_pause(struct failover *fo, int on, struct buf *out)
{
	char	err[600];
	struct journal_rec *rec;
	int	rc;

	if (!on && fo->journal_bad) {
		/* A person says the file is dealt with: read it again. */
		rc = fo_journal_load(fo, &rec, err, sizeof(err));
		if (rc == -1) {
			buf_printf(out, "service %s: the journal is still "
			    "unreadable: %s", fo->name, err);
			return -1;
		}
		if (rc == 0) {
			journal_rec_free(fo->rec);
			fo->rec = rec;
			fo_restore_service(fo);
		}
		fo->journal_bad = 0;
	}
	fo->paused = on;
	if (!on && (fo->step == FAILOVER_HELD ||
	    fo->step == FAILOVER_FAILED)) {
		fo_set_str(&fo->hold_reason, NULL);
		fo_set_step(fo, FAILOVER_IDLE);
	}
	fo_save(fo);
	buf_printf(out, "service %s: %s\n", fo->name, on ?
	    "paused: probes run and alert, no automatic failover" :
	    "resumed: automatic failover is armed");
	if (!on)
		fo_consider(fo);
	return 0;
}
