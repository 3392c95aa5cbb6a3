/*
 * The failover engine, after Redis Sentinel: named steps, one function
 * per step with its own deadline, one function (failover_set_step) that
 * changes the step, logs "[old] -> [new]" and journals it.
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
 * The same machine runs two planned moves (fo_kind): a release switch
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
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "failoverd/alert.h"
#include "failoverd/ec2.h"
#include "failoverd/failover.h"
#include "failoverd/hostkey.h"
#include "failoverd/journal.h"
#include "failoverd/launch.h"
#include "failoverd/log.h"
#include "failoverd/snapshot.h"
#include "failoverd/sshcmd.h"
#include "failoverd/userdata.h"

/*
 * While acting, the engine looks at its step every FO_TICK and polls
 * EC2 at least every FO_POLL_EVERY; in between it polls only with call
 * budget to spare (ec2_budget_spare: nobody waiting, FO_POLL_RESERVE
 * tokens left for the actions that follow). A step AWS ends between two
 * polls is seen up to one poll period late, on each step of the
 * critical path: polling faster with spare budget keeps that small
 * without ever delaying an action or another service's call.
 */
#define FO_TICK			0.1
#define FO_POLL_EVERY		0.5
#define FO_POLL_RESERVE		2.0
#define FO_REFRESH		30.0	/* re-learn the EIP's instance */
#define FO_REFRESH_ACTIVE	4	/* services refreshing at once */
#define FO_REFRESH_RETRY	2.0	/* EC2 away: doubles up to ... */
#define FO_RETRY_IDLE		5.0	/* a DOWN we could not act on */
#define FO_POLL_DEADLINE	10.0	/* one Describe* call */
#define FO_ACT_DEADLINE		20.0	/* one mutating call */
#define FO_CORROBORATE_TIMEOUT	30.0
#define FO_LAUNCH_TRIES		3	/* RunInstances on no capacity */
#define FO_LOOKUP_TRIES		4	/* failed lookups, then launch */
#define FO_HISTORY_MAX		20
#define FO_TOKEN_MAX		64	/* AWS's ClientToken limit */
/*
 * EC2's Describe calls are eventually consistent: for a while after a
 * change they may still show what was before it ("Eventual consistency
 * in the Amazon EC2 API", which backs off up to five minutes). For that
 * long after the EIP moved, the EIP or a volume still seen on the
 * instance it moved away from is the past, not news. Our own StartInstances
 * is trusted over a "stopped" for less: starting again is harmless.
 */
#define FO_SETTLE		300	/* seconds, wall clock */
#define FO_START_SETTLE		10.0

enum fo_branch {
	FO_MAIN,	/* corroborate, fence, detach, attach, associate */
	FO_LAUNCH,
	FO_REFRESH_BR,
	FO_BRANCHES
};

enum fo_fence { FENCE_TODO, FENCE_STOPPING, FENCE_DONE };
enum fo_launch { LAUNCH_TODO, LAUNCH_SENT, LAUNCH_RUNNING, LAUNCH_READY };
enum fo_vol {
	VOL_UNKNOWN,
	VOL_ELSEWHERE,		/* attached to another instance */
	VOL_DETACHING,
	VOL_AVAILABLE,
	VOL_ATTACHING,
	VOL_ATTACHED		/* to the replacement */
};

static const char *fo_fence_names[] = { "todo", "stopping", "fenced" };
static const char *fo_launch_names[] = { "todo", "sent", "running",
	"ready" };
static const char *fo_vol_names[] = { "unknown", "elsewhere", "detaching",
	"available", "attaching", "attached" };

/* What the move is for; journaled as kind=. */
enum fo_kind { KIND_FAILOVER, KIND_SWITCH, KIND_ROLLBACK, KIND_EVACUATE,
	KIND_MAX };
static const char *fo_kind_names[KIND_MAX] = { "failover", "switch",
	"rollback", "evacuation" };

/* The timings of failover_completed, in this order. */
enum fo_timing {
	T_DETECT, T_FENCE, T_LAUNCH, T_DETACH, T_ATTACH, T_ASSOCIATE,
	T_VERIFY, T_TOTAL, T_CRITICAL, T_MAX
};
static const char *fo_timing_names[T_MAX] = { "detect", "fence", "launch",
	"detach", "attach", "associate", "verify", "total",
	"critical_path" };

static const char *failover_step_names[FAILOVER_STEP_MAX] = {
	[FAILOVER_IDLE]		= "idle",
	[FAILOVER_CORROBORATE]	= "corroborate",
	[FAILOVER_FENCE_LAUNCH]	= "fence+launch",
	[FAILOVER_DETACH]	= "detach",
	[FAILOVER_ATTACH]	= "attach",
	[FAILOVER_ASSOCIATE]	= "associate",
	[FAILOVER_VERIFY]	= "verify",
	[FAILOVER_DONE]		= "done",
	[FAILOVER_FAILED]	= "failed",
	[FAILOVER_HELD]		= "held",
};

struct fo_volume {
	char		*id;		/* what moves: maybe restored */
	char		*conf_id;	/* as configured */
	char		*from;		/* before an evacuation */
	char		*snap;		/* evacuation: restored from */
	long long	 snap_time;	/* its start, epoch seconds */
	char		*vtype;		/* evacuation: from's type, */
	int		 iops;		/* IOPS and throughput (0: */
	int		 throughput;	/* EC2's default) */
	int		 restored;	/* id is the new volume */
	char		*device;
	enum fo_vol	 st;
	char		 where[32];	/* instance it is attached to */
	char		 where_dev[32];	/* there: device, attachment */
	char		 where_state[16];
	char		 holder[32];	/* an instance we did not fence, */
	char		 holder_state[16]; /* its state ("": not read) */
	int		 holder_asked;
	int		 detach_sent;
	int		 forced;
	int		 attach_sent;
};

struct fo_call {
	struct fo_call		*next;
	struct failover		*fo;
	struct ec2_call		*call;
	enum fo_branch		 branch;
	struct fo_volume	*vol;	/* AttachVolume's, or NULL */
};

struct failover {
	const struct failover_env *env;
	struct service		*svc;
	char			*name;
	struct journal_rec	*rec;
	int			 journal_bad;	/* never save over it */
	int			 journal_failing; /* last save failed */
	char			*saved;		/* last written, seq aside */

	enum failover_step	 step;
	double			 step_start;	/* ev_now */
	int			 step_slow;	/* alerted for this step */
	double			 last_look;	/* deadline passed: re-read at */
	ev_timer		 tick;
	double			 polled_at;	/* ev_now of the last poll */
	ev_timer		 refresh;
	unsigned int		 refresh_fails;	/* in a row: the backoff */
	int			 refreshing;	/* counted in fo_refreshing */
	int			 in_line;	/* waiting to refresh */
	struct failover		*line_prev, *line_next;
	struct fo_call		*calls;
	int			 busy[FO_BRANCHES];

	/* What EC2 says the service is. */
	char			*eip_ip;
	char			*eip_instance;	/* production */
	char			*vol_az;
	char			*vol_instance;	/* the volumes' instance */
	int			 aws_ok;
	double			 down_since;	/* ev_now, 0: not down */
	double			 unhealthy_since; /* for the detect time */
	int			 paused;
	int			 isolated;	/* said so for this DOWN */
	int			 ec2_says_ok;	/* corroborate's answer */
	/* Heap, not arrays: a watchdog may hold thousands of these. */
	char			*ec2_view;	/* corroborate's EC2 answer */
	char			*hold_reason;	/* NULL: not held */
	char			*attach_refused; /* first refusal, pending */
	double			 retry_at;	/* idle: consider again */

	/* The failover in progress. */
	char			*id;
	char			*old;
	char			*new;
	enum fo_kind		 kind;
	char			*ami;		/* switch: the new release */
	char			*new_ip;	/* its private address */
	int			 prechecked;	/* switch: passed, privately */
	double			 precheck_start; /* ev_now, 0: not begun */
	int			 rollback_auto;	/* after a failed switch */
	int			 az_checked;	/* evacuate: AZ asked about */
	size_t			 evac_subnet;	/* evacuation_subnets[] */
	char			*evac_az;	/* where the launch landed */
	int			 snaps_known;
	int			 src_known;	/* from's type read */
	int			 src_sent;	/* that DescribeVolumes */
	int			 restart;	/* restart in place */
	int			 manual;
	int			 resumed;
	enum fo_fence		 fence;
	enum fo_launch		 launch;
	int			 stop_sent;
	int			 skip_os_sent;	/* in the last StopInstances */
	int			 skip_os_refused; /* here: graceful */
	int			 launch_looked_up;
	int			 lookup_by_tag;	/* else by token */
	int			 lookup_fails;
	int			 launch_tries;
	double			 launch_next;
	int			 assoc_sent;
	int			 keys_waiting;
	int			 keys_checked;	/* without the console? */
	int			 console_latest; /* asked for Latest */
	char			*latest_refused; /* its type refused it */
	double			 start_ok_at;	/* our StartInstances worked */
	double			 started;	/* ev_now */
	double			 launch_start;
	double			 fenced_at;
	double			 t[T_MAX];
	struct fo_volume	*vols;
	size_t			 nvols;
};

static void	failover_fail(struct failover *fo, const char *why);
static void	failover_poll(struct failover *fo);
static void	failover_consider(struct failover *fo);
static void	fo_refresh_over(struct failover *fo);
static void	fo_on_attach(struct failover *fo, struct fo_volume *vol,
		    struct ec2_result *res);
static void	failover_begin(struct failover *fo, const char *why,
		    int manual);
static void	fo_volumes_progress(struct failover *fo);
static int	fo_has_ssh_probe(const struct failover *fo);
static int	fo_write_learned(struct failover *fo, const struct buf *keys);
static void	fo_learned_note(struct failover *fo, const char *instance);
static int	fo_save(struct failover *fo);
static void	fo_rollback_begin(struct failover *fo, const char *from,
		    const char *to, const char *why, int manual);
static void	fo_new_id(struct failover *fo, const char *prefix);
static void	fo_evacuate_start(struct failover *fo, const char *why);
static void	fo_evac_next_subnet(struct failover *fo, const char *why);
static int	fo_evac_volumes(struct failover *fo);

const char *
failover_step_str(enum failover_step s)
{
	if ((unsigned int)s >= FAILOVER_STEP_MAX)
		return "?";
	return failover_step_names[s];
}

static int
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

static void
fo_set_str(char **dst, const char *src);

/* A hold reason, bounded as the journal and status lines like it. */
static void __attribute__((format(printf, 2, 3)))
fo_set_holdf(struct failover *fo, const char *fmt, ...)
{
	char	why[640];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fo_set_str(&fo->hold_reason, why);
}

static void
fo_set_str(char **dst, const char *src)
{
	char *copy = NULL;

	if (src != NULL && *src != '\0') {
		copy = strdup(src);
		if (copy == NULL)
			return;	/* keeps the old value: better than none */
	}
	free(*dst);
	*dst = copy;
}

/* strcmp for what EC2 may leave out of a reply. */
static int
fo_is(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static const struct service_conf *
fo_conf(const struct failover *fo)
{
	return service_conf(fo->svc);
}

static const struct policy_conf *
fo_policy(const struct failover *fo)
{
	return &service_conf(fo->svc)->policy;
}

static double
fo_now(const struct failover *fo)
{
	return ev_now(fo->env->loop);
}

static int
fo_active(const struct failover *fo)
{
	return fo->step >= FAILOVER_FENCE_LAUNCH &&
	    fo->step <= FAILOVER_VERIFY;
}

/* --- journal ------------------------------------------------------------- */

static void
fo_rec_set(struct failover *fo, const char *key, const char *value)
{
	if (value == NULL)
		journal_rec_del(fo->rec, key);
	else if (journal_rec_set(fo->rec, key, value) == -1)
		log_warn("failover %s: journal field %s", fo->name, key);
}

static void
fo_rec_setf(struct failover *fo, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fo_rec_setf(struct failover *fo, const char *key, const char *fmt, ...)
{
	va_list	ap;
	char	val[256];

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	fo_rec_set(fo, key, val);
}

/* The progress of the failover in progress, as journal fields. */
static void
fo_rec_progress(struct failover *fo)
{
	char	key[160];
	size_t	i;
	int	k;

	fo_rec_set(fo, "step", failover_step_str(fo->step));
	fo_rec_set(fo, "paused", fo->paused ? "1" : "0");
	fo_rec_set(fo, "hold_reason", fo->hold_reason);
	if (!fo_active(fo))
		return;
	fo_rec_set(fo, "failover_id", fo->id);
	fo_rec_set(fo, "client_token", fo->id);
	fo_rec_set(fo, "old_instance", fo->old);
	fo_rec_set(fo, "new_instance", fo->new);
	fo_rec_set(fo, "mode", fo->restart ? "restart" : "replace");
	fo_rec_set(fo, "manual", fo->manual ? "1" : "0");
	fo_rec_set(fo, "az", fo->vol_az);
	fo_rec_set(fo, "fence", fo_fence_names[fo->fence]);
	fo_rec_set(fo, "launch", fo_launch_names[fo->launch]);
	fo_rec_set(fo, "kind", fo_kind_names[fo->kind]);
	fo_rec_set(fo, "switch_ami", fo->ami);
	fo_rec_set(fo, "new_ip", fo->new_ip);
	fo_rec_set(fo, "prechecked", fo->prechecked ? "1" : "0");
	fo_rec_set(fo, "rollback_auto", fo->rollback_auto ? "1" : "0");
	if (fo->kind == KIND_EVACUATE) {
		fo_rec_setf(fo, "evac_subnet", "%zu", fo->evac_subnet);
		fo_rec_set(fo, "evac_az", fo->evac_az);
		for (i = 0; i < fo->nvols; i++) {
			snprintf(key, sizeof(key), "evac.%s.snap",
			    fo->vols[i].conf_id);
			fo_rec_set(fo, key, fo->vols[i].snap);
			snprintf(key, sizeof(key), "evac.%s.snap_time",
			    fo->vols[i].conf_id);
			fo_rec_setf(fo, key, "%lld", fo->vols[i].snap_time);
			snprintf(key, sizeof(key), "evac.%s.new",
			    fo->vols[i].conf_id);
			fo_rec_set(fo, key, fo->vols[i].restored ?
			    fo->vols[i].id : NULL);
		}
	}
	for (i = 0; i < fo->nvols; i++) {
		snprintf(key, sizeof(key), "volume.%s.state", fo->vols[i].id);
		fo_rec_set(fo, key, fo_vol_names[fo->vols[i].st]);
	}
	for (k = 0; k < T_MAX; k++) {
		snprintf(key, sizeof(key), "t.%s", fo_timing_names[k]);
		if (fo->t[k] < 0)
			fo_rec_set(fo, key, NULL);
		else
			fo_rec_setf(fo, key, "%.3f", fo->t[k]);
	}
}

/*
 * Writes the record durably (journal_save: temporary file, fsync,
 * rename, fsync of the directory). A failure is the watchdog's own
 * trouble, not production's: it is said once at crit, when it starts,
 * and once when a write succeeds again; fo_send takes no mutating step
 * in between.
 */
static int
fo_save(struct failover *fo)
{
	struct buf	 now;
	char		 err[512];

	if (fo->journal_bad)
		return -1;
	fo_rec_progress(fo);
	/*
	 * A poll that saw nothing new writes nothing: while EC2 takes its
	 * time to show a change, the wait is not a stream of fsyncs.
	 */
	buf_init(&now);
	if (journal_format(fo->rec, 0, &now) == 0 && fo->saved != NULL &&
	    strcmp(buf_str(&now), fo->saved) == 0) {
		buf_free(&now);
		return 0;	/* on disk already */
	}
	if (journal_save(fo->env->state_dir, fo->name, fo->rec, err,
	    sizeof(err)) == -1) {
		fo_set_str(&fo->saved, NULL);
		if (!fo->journal_failing)
			alert_emit(ALERT_JOURNAL_WRITE_FAILED, fo->name,
			    "state_dir", fo->env->state_dir, "error", err,
			    "step", failover_step_str(fo->step),
			    "action", fo_active(fo) ? "held until a write "
			    "succeeds" : "none", NULL);
		else
			log_debug("failover %s: journal not written: %s",
			    fo->name, err);
		fo->journal_failing = 1;
		buf_free(&now);
		return -1;
	}
	fo_set_str(&fo->saved, now.len > 0 ? buf_str(&now) : NULL);
	buf_free(&now);
	if (fo->journal_failing) {
		fo->journal_failing = 0;
		alert_emit(ALERT_JOURNAL_WRITE_OK, fo->name, "state_dir",
		    fo->env->state_dir, "step", failover_step_str(fo->step),
		    NULL);
	}
	return 0;
}

/* The fields of the failover in progress go once it has ended. */
static void
fo_rec_clear_progress(struct failover *fo)
{
	static const char *keys[] = { "failover_id", "client_token",
		"old_instance", "new_instance", "mode", "manual", "az",
		"fence", "launch", "started", "kind", "switch_ami", "new_ip",
		"prechecked", "rollback_auto", "evac_subnet", "evac_az" };
	const char	*k, *v;
	size_t		 i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		journal_rec_del(fo->rec, keys[i]);
	i = 0;
	while (i < journal_rec_count(fo->rec)) {
		journal_rec_at(fo->rec, i, &k, &v);
		if (strncmp(k, "volume.", 7) == 0 ||
		    strncmp(k, "t.", 2) == 0 || strncmp(k, "evac.", 5) == 0)
			journal_rec_del(fo->rec, k);
		else
			i++;
	}
}

static long long
fo_rec_int(const struct failover *fo, const char *key, long long def)
{
	long long	v;
	char		err[128];

	if (journal_rec_get_int(fo->rec, key, &v, err, sizeof(err)) != 0)
		return def;
	return v;
}

/* Appends the ended failover to the history kept in the journal. */
static void
fo_history_add(struct failover *fo, const char *result, const char *why)
{
	long long	next = fo_rec_int(fo, "history.next", 0);
	char		key[96], pfx[48];
	const char	*k, *v;
	size_t		i;
	int		n;

	snprintf(pfx, sizeof(pfx), "h.%lld.", next);
#define HSET(f, val) do {						\
	snprintf(key, sizeof(key), "%s%s", pfx, f);			\
	fo_rec_set(fo, key, val);					\
} while (0)
	HSET("id", fo->id);
	HSET("kind", fo_kind_names[fo->kind]);
	HSET("result", result);
	HSET("reason", why);
	HSET("mode", fo->restart ? "restart" : "replace");
	HSET("trigger", fo->manual ? "manual" : "auto");
	HSET("old", fo->old ? fo->old : "-");
	HSET("new", fo->new ? fo->new : "-");
	HSET("az", fo->vol_az ? fo->vol_az : "-");
	snprintf(key, sizeof(key), "%sstarted", pfx);
	fo_rec_setf(fo, key, "%lld", fo_rec_int(fo, "started",
	    (long long)time(NULL)));
	for (n = 0; n < T_MAX; n++) {
		if (fo->t[n] < 0)
			continue;
		snprintf(key, sizeof(key), "%st.%s", pfx, fo_timing_names[n]);
		fo_rec_setf(fo, key, "%.3f", fo->t[n]);
	}
#undef HSET
	fo_rec_setf(fo, "history.next", "%lld", next + 1);
	/* Forget the oldest beyond FO_HISTORY_MAX. */
	snprintf(pfx, sizeof(pfx), "h.%lld.", next - FO_HISTORY_MAX);
	i = 0;
	while (i < journal_rec_count(fo->rec)) {
		journal_rec_at(fo->rec, i, &k, &v);
		if (strncmp(k, pfx, strlen(pfx)) == 0)
			journal_rec_del(fo->rec, k);
		else
			i++;
	}
}

/* --- the step ------------------------------------------------------------ */

/* The one place the step changes: logged, journaled, told. */
static void
failover_set_step(struct failover *fo, enum failover_step to)
{
	enum failover_step from = fo->step;

	if (from == to)
		return;
	fo->step = to;
	fo->step_start = fo_now(fo);
	fo->step_slow = 0;
	fo->last_look = 0;
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

/* --- EC2 calls ----------------------------------------------------------- */

static void failover_on_result(struct ec2_result *res, void *arg);

static int
fo_send(struct failover *fo, enum fo_branch br, struct ec2_request *req,
    double deadline)
{
	struct fo_call *c;

	if (fo->env->ec2 == NULL) {
		ec2_request_free(req);
		return -1;
	}
	/*
	 * No change to the account without a durable record before it: a
	 * restart resumes from the record, so a call it does not know of
	 * could be made twice (a second RunInstances under a new token).
	 * The callers keep their state on -1 and try again next tick.
	 */
	if (ec2_action_mutates(ec2_request_action(req)) &&
	    fo_save(fo) == -1) {
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
	c->call = ec2_call(fo->env->ec2, req, deadline, failover_on_result,
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

static void
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
		ec2_call_cancel(c->call);
		fo->busy[c->branch]--;
		free(c);
	}
	if (br < 0 || br == FO_REFRESH_BR)
		fo_refresh_over(fo);
}

static struct ec2_request *
fo_req(enum ec2_action a)
{
	return ec2_request_new(a);
}

static struct ec2_request *
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
 * 0: the call worked. 1: a passing trouble (network, throttling past
 * the call's deadline): try again next tick. 2: AWS said no.
 */
static int
fo_result_kind(struct failover *fo, struct ec2_result *res)
{
	enum ec2_status st = ec2_result_status(res);

	if (st == EC2_OK)
		return 0;
	if (st == EC2_ERR_NETWORK || st == EC2_ERR_TIMEOUT ||
	    st == EC2_ERR_CREDS || ec2_result_retryable(res)) {
		alert_emit(ALERT_AWS_ERROR, fo->name, "error",
		    ec2_result_error(res), "step", failover_step_str(fo->step),
		    "action", "retrying", NULL);
		return 1;
	}
	return 2;
}

/* --- the service's identity (refresh) ------------------------------------ */

/*
 * A data volume's id now: the configured one, or the volume an
 * evacuation restored it into (identity.<configured id>).
 */
static const char *
fo_vol_id(const struct failover *fo, const char *conf_id)
{
	const char	*v;
	char		 key[160];

	if (fo->rec == NULL)
		return conf_id;		/* not loaded yet */
	snprintf(key, sizeof(key), "identity.%s", conf_id);
	v = journal_rec_get(fo->rec, key);
	return v != NULL ? v : conf_id;
}

/*
 * The production instance's own host keys, from its console, unless
 * they are learnt already: ssh probes without a known_hosts of their
 * own trust exactly these (never the first key that shows up).
 */
static void
fo_learn_current(struct failover *fo)
{
	const char		*had;
	struct ec2_request	*req;

	if (fo->eip_instance == NULL || !fo_has_ssh_probe(fo))
		return;
	had = journal_rec_get(fo->rec, "learned_instance");
	if (had != NULL && strcmp(had, fo->eip_instance) == 0)
		return;
	req = fo_req_instance(EC2_GET_CONSOLE_OUTPUT, "InstanceId",
	    fo->eip_instance);
	if (req != NULL)
		fo_send(fo, FO_REFRESH_BR, req, FO_POLL_DEADLINE);
}

static void	fo_refresh_volumes_send(struct failover *fo);
static void	fo_refresh_send(struct failover *fo);

/*
 * Services waiting for their turn to refresh, process-wide (a process
 * runs one daemon; its EC2 call budget is one). At start every service
 * looks its EIP up at once: thousands of calls that would all wait in
 * the budget's queue holding their requests, and ahead of a failover's.
 * At most FO_REFRESH_ACTIVE services refresh at a time; the others
 * wait here holding nothing.
 */
static struct failover	*fo_line_head, *fo_line_tail;
static unsigned int	 fo_refreshing;

static void
fo_line_remove(struct failover *fo)
{
	if (!fo->in_line)
		return;
	if (fo->line_prev != NULL)
		fo->line_prev->line_next = fo->line_next;
	else
		fo_line_head = fo->line_next;
	if (fo->line_next != NULL)
		fo->line_next->line_prev = fo->line_prev;
	else
		fo_line_tail = fo->line_prev;
	fo->line_prev = fo->line_next = NULL;
	fo->in_line = 0;
}

/* The refresh branch has nothing in flight any more: next in line. */
static void
fo_refresh_over(struct failover *fo)
{
	struct failover *next;

	if (!fo->refreshing || fo->busy[FO_REFRESH_BR] > 0)
		return;
	fo->refreshing = 0;
	fo_refreshing--;
	while (fo_refreshing < FO_REFRESH_ACTIVE && fo_line_head != NULL) {
		next = fo_line_head;
		fo_line_remove(next);
		fo_refresh_send(next);
	}
}

static void
fo_refresh_send(struct failover *fo)
{
	const struct service_conf	*sc = fo_conf(fo);
	struct ec2_request		*req;

	if (fo->busy[FO_REFRESH_BR] > 0 || fo->env->ec2 == NULL ||
	    fo->in_line)
		return;
	if (!fo->refreshing && fo_refreshing >= FO_REFRESH_ACTIVE) {
		fo->line_prev = fo_line_tail;
		fo->line_next = NULL;
		if (fo_line_tail != NULL)
			fo_line_tail->line_next = fo;
		else
			fo_line_head = fo;
		fo_line_tail = fo;
		fo->in_line = 1;
		return;
	}
	if (!fo->refreshing) {
		fo->refreshing = 1;
		fo_refreshing++;
	}
	req = fo_req_instance(EC2_DESCRIBE_ADDRESSES, "AllocationId.1",
	    sc->eip_allocation_id);
	if (req == NULL || fo_send(fo, FO_REFRESH_BR, req,
	    FO_POLL_DEADLINE) == -1) {
		fo_refresh_over(fo);
		return;
	}
	/* While EC2 is away the address alone tells when it is back. */
	if (fo->aws_ok)
		fo_refresh_volumes_send(fo);
}

static void
fo_refresh_volumes_send(struct failover *fo)
{
	const struct service_conf	*sc = fo_conf(fo);
	struct ec2_request		*req;
	const char			**ids;
	size_t				 i;

	if (sc->nvolumes == 0)
		return;
	ids = calloc(sc->nvolumes, sizeof(*ids));
	req = fo_req(EC2_DESCRIBE_VOLUMES);
	if (ids == NULL || req == NULL) {
		free(ids);
		ec2_request_free(req);
		return;
	}
	for (i = 0; i < sc->nvolumes; i++)
		ids[i] = fo_vol_id(fo, sc->volumes[i].id);
	if (ec2_request_add_list(req, "VolumeId", ids, sc->nvolumes) == 0)
		fo_send(fo, FO_REFRESH_BR, req, FO_POLL_DEADLINE);
	else
		ec2_request_free(req);
	free(ids);
}

static void
fo_on_refresh_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct failover *fo = w->data;

	/*
	 * During a failover the engine, not the EIP, says who is who; a
	 * resumed one still needs the address for its probes.
	 */
	if (!fo_active(fo) || fo->eip_ip == NULL)
		fo_refresh_send(fo);
	/*
	 * With EC2 away, look again soon, then less and less often (each
	 * look is a few attempts): an idle watchdog that cannot reach AWS
	 * must not keep waking up for it.
	 */
	if (fo->aws_ok) {
		fo->refresh_fails = 0;
		w->repeat = FO_REFRESH;
	} else {
		w->repeat = FO_REFRESH_RETRY * (double)(1u <<
		    (fo->refresh_fails < 4 ? fo->refresh_fails : 4));
		if (w->repeat > FO_REFRESH)
			w->repeat = FO_REFRESH;
		fo->refresh_fails++;
	}
	ev_timer_again(loop, w);
}

/*
 * The EIP moved: what the engine did is the service's identity until
 * EC2 shows it, whether VERIFY passes or not (journaled with the step,
 * so a restart right after the move knows it).
 */
static void
fo_settle_begin(struct failover *fo)
{
	fo_rec_set(fo, "moved_from", fo->old != NULL ? fo->old : "");
	fo_rec_set(fo, "moved_to", fo->new);
	fo_rec_setf(fo, "moved_at", "%lld", (long long)time(NULL));
}

/*
 * The instance the last move went to, when "seen" (what a Describe
 * says the EIP or a volume is on; NULL: nothing) is only the view from
 * before that move: the instance it moved away from, or nothing, within
 * FO_SETTLE of it. NULL when "seen" is to be believed.
 */
static const char *
fo_settling(const struct failover *fo, const char *seen)
{
	const char	*from, *to;
	long long	 at, now = (long long)time(NULL);

	to = journal_rec_get(fo->rec, "moved_to");
	from = journal_rec_get(fo->rec, "moved_from");
	at = fo_rec_int(fo, "moved_at", 0);
	if (to == NULL || from == NULL || fo_is(seen, to) ||
	    now - at > FO_SETTLE || at > now)
		return NULL;
	if (seen != NULL && *seen != '\0' && strcmp(seen, from) != 0)
		return NULL;	/* somebody else moved it since */
	return to;
}

static void
fo_refresh_address(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_address	*a;
	const char			*seen, *moved;
	size_t				 n;

	n = ec2_result_addresses(res, &a);
	if (n == 0 || a->public_ip == NULL) {
		alert_emit(ALERT_AWS_ERROR, fo->name, "error",
		    "DescribeAddresses: no such Elastic IP",
		    "allocation_id", fo_conf(fo)->eip_allocation_id, NULL);
		return;
	}
	if (fo->eip_ip == NULL || strcmp(fo->eip_ip, a->public_ip) != 0) {
		log_info("service %s: Elastic IP %s is %s", fo->name,
		    fo_conf(fo)->eip_allocation_id, a->public_ip);
		fo_set_str(&fo->eip_ip, a->public_ip);
		service_set_target(fo->svc, fo->eip_ip);
		/* Kept, so a restart while EC2 is away still probes it. */
		fo_rec_set(fo, "eip_ip", fo->eip_ip);
		fo_save(fo);
	}
	if (fo_active(fo))
		return;
	seen = a->instance_id;
	moved = fo_settling(fo, seen);
	if (moved != NULL) {
		if (!fo_is(fo->eip_instance, moved))
			log_info("service %s: EC2 still shows the Elastic IP "
			    "on %s, from before the move to %s (eventual "
			    "consistency): %s is production", fo->name,
			    seen ? seen : "no instance", moved, moved);
		seen = moved;
	}
	if ((fo->eip_instance == NULL) != (seen == NULL) ||
	    (seen != NULL && strcmp(fo->eip_instance, seen) != 0))
		log_info("service %s: production instance is %s", fo->name,
		    seen ? seen : "none (EIP unassociated)");
	fo_set_str(&fo->eip_instance, seen);
	if (!fo->aws_ok) {
		log_info("service %s: EC2 answers again", fo->name);
		fo->aws_ok = 1;
		fo_refresh_volumes_send(fo);
	}
	fo_learn_current(fo);
}

static void
fo_refresh_volumes(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_volume	*v;
	const char		*seen, *moved;
	size_t			 n, i;

	n = ec2_result_volumes(res, &v);
	if (n == 0 || fo_active(fo))
		return;
	for (i = 1; i < n; i++)
		if (!fo_is(v[0].az, v[i].az))
			log_warnx("service %s: volumes %s in %s and %s in %s: "
			    "a replacement can attach only one AZ's",
			    fo->name, v[0].volume_id, v[0].az,
			    v[i].volume_id, v[i].az);
	fo_set_str(&fo->vol_az, v[0].az);
	seen = v[0].nattachments > 0 ? v[0].attachments[0].instance_id :
	    NULL;
	moved = fo_settling(fo, seen);
	fo_set_str(&fo->vol_instance, moved != NULL ? moved : seen);
}

/* --- learned host keys --------------------------------------------------- */

size_t
failover_console_keys(const char *console, struct buf *out)
{
	static const char begin[] = "-----BEGIN SSH HOST KEY KEYS-----";
	static const char end[] = "-----END SSH HOST KEY KEYS-----";
	const char	*p, *e, *nl, *sp1, *sp2;
	size_t		 n = 0;

	if (console == NULL)
		return 0;
	p = strstr(console, begin);
	if (p == NULL)
		return 0;
	p += sizeof(begin) - 1;
	e = strstr(p, end);
	if (e == NULL)
		return 0;	/* the console is still being written */
	while (p < e) {
		while (p < e && (*p == '\n' || *p == '\r'))
			p++;
		nl = memchr(p, '\n', (size_t)(e - p));
		if (nl == NULL)
			nl = e;
		/* "type base64 comment": keep the first two words. */
		sp1 = memchr(p, ' ', (size_t)(nl - p));
		if (sp1 != NULL && sp1 > p) {
			sp2 = memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1));
			if (sp2 == NULL)
				sp2 = nl;
			while (sp2 > sp1 && sp2[-1] == '\r')
				sp2--;
			if (sp2 > sp1 + 1) {
				buf_append(out, p, (size_t)(sp2 - p));
				buf_puts(out, "\n");
				n++;
			}
		}
		p = nl + 1;
	}
	return n;
}

static void
fo_learned_path(const struct failover *fo, char *out, size_t len)
{
	snprintf(out, len, "%s/%s.learned_hosts", fo->env->state_dir,
	    fo->name);
}

/* The file as it is: a switch keeps the keys of the kept instance. */
static void
fo_read_learned(const char *path, struct buf *out)
{
	char	chunk[4096];
	ssize_t	n;
	int	fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return;
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n <= 0 || out->len >= 1024 * 1024)
			break;
		buf_append(out, chunk, (size_t)n);
	}
	close(fd);
}

/*
 * Writes the replacement's keys for the EIP's address at each ssh
 * probe's port, in known_hosts form, through a temporary file and a
 * rename so a probe never reads half a file. A switch or a rollback
 * keeps the lines already there (the EIP must still match the instance
 * it may move back to) and adds the new instance's private address,
 * where the switch checks it before touching production.
 */
static int
fo_write_learned(struct failover *fo, const struct buf *keys)
{
	const struct service_conf	*sc = fo_conf(fo);
	struct buf			 file;
	char				 path[1024], tmp[1100], host[300];
	const char			*p, *nl, *ips[2];
	size_t				 i, k;
	int				 fd, rc = -1;

	buf_init(&file);
	fo_learned_path(fo, path, sizeof(path));
	ips[0] = fo->eip_ip;
	ips[1] = NULL;
	if (fo_active(fo) && fo->kind != KIND_FAILOVER) {
		fo_read_learned(path, &file);
		ips[1] = fo->new_ip;
	}
	for (k = 0; k < 2; k++) {
		if (ips[k] == NULL)
			continue;
		for (i = 0; i < sc->nprobes; i++) {
			if (sc->probes[i].type != PROBE_SSH ||
			    sc->probes[i].address != NULL)
				continue;
			if (sc->probes[i].ssh.port == 22)
				snprintf(host, sizeof(host), "%s", ips[k]);
			else
				snprintf(host, sizeof(host), "[%s]:%d",
				    ips[k], sc->probes[i].ssh.port);
			for (p = buf_str(keys); *p != '\0'; p = nl + 1) {
				nl = strchr(p, '\n');
				if (nl == NULL)
					break;
				buf_printf(&file, "%s %.*s\n", host,
				    (int)(nl - p), p);
			}
		}
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1) {
		log_warn("failover %s: %s", fo->name, tmp);
		goto done;
	}
	if (write(fd, file.data ? file.data : "", file.len) !=
	    (ssize_t)file.len || fsync(fd) == -1) {
		log_warn("failover %s: %s", fo->name, tmp);
		close(fd);
		unlink(tmp);
		goto done;
	}
	close(fd);
	if (rename(tmp, path) == -1) {
		log_warn("failover %s: %s", fo->name, path);
		unlink(tmp);
		goto done;
	}
	service_set_learned_hosts(fo->svc, path);
	rc = 0;
done:
	buf_free(&file);
	return rc;
}

static int
fo_has_ssh_probe(const struct failover *fo)
{
	const struct service_conf	*sc = fo_conf(fo);
	size_t				 i;

	for (i = 0; i < sc->nprobes; i++)
		if (sc->probes[i].type == PROBE_SSH &&
		    sc->probes[i].address == NULL)
			return 1;
	return 0;
}

/* --- where a replacement's host keys come from --------------------------- */

#define FO_LEARNED_MAX	8	/* instances the learned file holds */

/*
 * Whether the learned file holds this instance's keys: the instances
 * are journaled as the file is written (learned_instances, newest
 * last; learned_instance alone in journals of older versions).
 */
static int
fo_keys_learnt(const struct failover *fo, const char *instance)
{
	const char	*p;
	size_t		 n;

	if (instance == NULL)
		return 0;
	if (fo_is(journal_rec_get(fo->rec, "learned_instance"), instance))
		return 1;
	n = strlen(instance);
	for (p = journal_rec_get(fo->rec, "learned_instances"); p != NULL;
	    p = strchr(p, ' ') != NULL ? strchr(p, ' ') + 1 : NULL)
		if (strncmp(p, instance, n) == 0 &&
		    (p[n] == ' ' || p[n] == '\0'))
			return 1;
	return 0;
}

/*
 * After fo_write_learned: the file kept its lines (a switch, a
 * rollback) or holds this instance's alone; the list says the same.
 */
static void
fo_learned_note(struct failover *fo, const char *instance)
{
	const char	*had = journal_rec_get(fo->rec, "learned_instances");
	const char	*p, *sp;
	char		 list[FO_LEARNED_MAX * 24];
	size_t		 words = 0, skip, off = 0, n;

	list[0] = '\0';
	if (fo_active(fo) && fo->kind != KIND_FAILOVER && had != NULL) {
		for (p = had; *p != '\0'; p = *sp ? sp + 1 : sp) {
			sp = strchr(p, ' ');
			if (sp == NULL)
				sp = p + strlen(p);
			words++;
		}
		skip = words >= FO_LEARNED_MAX ? words - FO_LEARNED_MAX + 1 :
		    0;
		for (p = had; *p != '\0'; p = *sp ? sp + 1 : sp) {
			sp = strchr(p, ' ');
			if (sp == NULL)
				sp = p + strlen(p);
			n = (size_t)(sp - p);
			if (skip > 0) {
				skip--;
				continue;
			}
			if (n == 0 || n > 23 || (n == strlen(instance) &&
			    strncmp(p, instance, n) == 0))
				continue;
			off += (size_t)snprintf(list + off, sizeof(list) - off,
			    "%.*s ", (int)n, p);
		}
	}
	snprintf(list + off, sizeof(list) - off, "%s", instance);
	fo_rec_set(fo, "learned_instances", list);
	fo_rec_set(fo, "learned_instance", instance);
}

/*
 * The key failoverd gives this failover's launches: the same for every
 * launch of one failover id, also after a crash (hostkey.h).
 */
static struct hostkey *
fo_hostkey(const struct failover *fo, char *why, size_t len)
{
	char path[1024], comment[128];

	snprintf(path, sizeof(path), "%s/" HOSTKEY_SECRET_NAME,
	    fo->env->state_dir);
	snprintf(comment, sizeof(comment), "failoverd@%.100s", fo->name);
	return hostkey_for_launch(path, fo->id, comment, why, len);
}

/*
 * RunInstances' UserData: the user's file and, with host_keys =
 * "user_data", the replacement's host key. The request wipes its
 * copy when freed; this function wipes its own.
 */
static int
fo_add_user_data(struct failover *fo, struct ec2_request *req, char *why,
    size_t len)
{
	const struct launch_conf	*lc = &fo_conf(fo)->launch;
	struct hostkey			*hk = NULL;
	char				*b64 = NULL;
	int				 rc = -1;

	if (lc->host_keys == HOST_KEYS_USER_DATA && fo_has_ssh_probe(fo)) {
		hk = fo_hostkey(fo, why, len);
		if (hk == NULL)
			return -1;
	}
	if (userdata_build(lc->user_data_file, hk, &b64, why, len) == -1)
		goto done;
	if (b64 != NULL && ec2_request_add(req, "UserData", b64) != 0) {
		snprintf(why, len, "RunInstances: out of memory");
		goto done;
	}
	rc = 0;
done:
	hostkey_free(hk);
	userdata_free(b64);
	return rc;
}

/* The probes' own known_hosts vouch for the new instance's address. */
static int
fo_known_hosts_cover(const struct failover *fo)
{
	const struct service_conf	*sc = fo_conf(fo);
	const struct probe_conf		*p;
	const char			*ips[2];
	size_t				 i, k, n = 0;

	ips[0] = fo->eip_ip;
	ips[1] = fo->kind == KIND_SWITCH ? fo->new_ip : NULL;
	if (ips[0] == NULL)
		return 0;
	for (i = 0; i < sc->nprobes; i++) {
		p = &sc->probes[i];
		if (p->type != PROBE_SSH || p->address != NULL)
			continue;
		if (p->ssh.known_hosts == NULL)
			return 0;
		for (k = 0; k < 2; k++)
			if (ips[k] != NULL && sshcmd_known_has(
			    p->ssh.known_hosts, ips[k], p->ssh.port) != 1)
				return 0;
		n++;
	}
	return n > 0;
}

/* The key given in the user data, trusted before the instance boots. */
static int
fo_learn_given_key(struct failover *fo)
{
	struct hostkey	*hk;
	struct buf	 keys;
	char		 why[512];
	int		 rc = -1;

	hk = fo_hostkey(fo, why, sizeof(why));
	if (hk == NULL) {
		failover_fail(fo, why);
		return -1;
	}
	buf_init(&keys);
	buf_printf(&keys, "%s\n", hostkey_public_key(hk));
	hostkey_free(hk);
	if (fo_write_learned(fo, &keys) == 0) {
		log_info("failover %s: %s's SSH host key is the one failoverd "
		    "gave it in its user data", fo->name, fo->new);
		fo_learned_note(fo, fo->new);
		fo_save(fo);
		rc = 1;
	} else {
		/*
		 * The watchdog's own disk, not the replacement: say so once
		 * and try again at the next poll, within launch_timeout.
		 */
		if (!fo->journal_failing)
			alert_emit(ALERT_JOURNAL_WRITE_FAILED, fo->name,
			    "state_dir", fo->env->state_dir, "error",
			    "cannot write the file of learned SSH host keys "
			    "(see the log)", "step",
			    failover_step_str(fo->step), "action",
			    "held until a write succeeds", NULL);
		fo->journal_failing = 1;
		rc = 2;
	}
	buf_free(&keys);
	return rc;
}

/*
 * Whether the new instance's host keys are known without its console:
 * 1 yes (in the learned file or the probes' known_hosts), 0 no (wait
 * for the console), 2 not yet (the state_dir cannot be written: try
 * again), -1 the failover failed. An instance that booted
 * before (restart in place, rollback) prints no keys any more: cloud-
 * init prints them on a first boot only.
 */
static int
fo_keys_known(struct failover *fo)
{
	enum host_keys_source	src = fo_conf(fo)->launch.host_keys;
	int			again = fo->restart ||
				    fo->kind == KIND_ROLLBACK;

	if (again && fo_keys_learnt(fo, fo->new)) {
		log_info("failover %s: %s's SSH host keys are known from "
		    "before it was stopped", fo->name, fo->new);
		return 1;
	}
	if (src == HOST_KEYS_KNOWN_HOSTS) {
		log_info("failover %s: the probes' known_hosts are to hold "
		    "%s's SSH host keys (host_keys = \"known_hosts\")",
		    fo->name, fo->new);
		return 1;
	}
	if (src == HOST_KEYS_USER_DATA && !again)
		return fo_learn_given_key(fo);
	if (fo_known_hosts_cover(fo)) {
		log_info("failover %s: the probes' known_hosts hold keys for "
		    "%s: not waiting for %s's console", fo->name, fo->eip_ip,
		    fo->new);
		return 1;
	}
	return 0;
}

/* --- evacuation ---------------------------------------------------------- */

/*
 * The volumes' AZ is impaired (DescribeAvailabilityZones, or no
 * capacity there after the retry budget): go on as an evacuation. The
 * fence goes on as it was; the launch starts again in the first
 * evacuation subnet.
 */
static void
fo_evacuate_start(struct failover *fo, const char *why)
{
	const struct policy_conf	*p = fo_policy(fo);
	char				 subnets[512];
	size_t				 i, off = 0;
	int				 n;

	subnets[0] = '\0';
	for (i = 0; i < p->nevacuation_subnets; i++) {
		n = snprintf(subnets + off, sizeof(subnets) - off, "%s%s",
		    i ? "," : "", p->evacuation_subnets[i]);
		if (n < 0 || (size_t)n >= sizeof(subnets) - off)
			break;
		off += (size_t)n;
	}
	fo->kind = KIND_EVACUATE;
	fo->restart = 0;
	fo->evac_subnet = 0;
	fo->launch = LAUNCH_TODO;
	fo->launch_tries = 0;
	fo->launch_next = 0;
	fo->launch_looked_up = 1;
	fo->launch_start = fo_now(fo);
	fo_set_str(&fo->new, NULL);
	/*
	 * The old volumes may be free already (no capacity shows late):
	 * what DETACH waits for now is their restored copies.
	 */
	fo->t[T_DETACH] = -1;
	alert_emit(ALERT_EVACUATION_STARTED, fo->name, "failover_id", fo->id,
	    "az", fo->vol_az ? fo->vol_az : "-", "reason", why, "subnets",
	    subnets, "action", "restoring the newest completed snapshot of "
	    "each volume in another AZ: the writes since then are lost; the "
	    "old volumes are left untouched", NULL);
	fo_save(fo);
	failover_poll(fo);
}

static void
fo_evac_next_subnet(struct failover *fo, const char *why)
{
	char msg[400];

	fo->evac_subnet++;
	fo->launch_tries = 0;
	fo->launch_next = 0;
	if (fo->evac_subnet >= fo_policy(fo)->nevacuation_subnets) {
		snprintf(msg, sizeof(msg), "no capacity in any evacuation "
		    "subnet: %.300s", why);
		failover_fail(fo, msg);
		return;
	}
	log_warnx("failover %s: evacuation subnet %s: %s; trying %s",
	    fo->name, fo_policy(fo)->evacuation_subnets[fo->evac_subnet - 1],
	    why, fo_policy(fo)->evacuation_subnets[fo->evac_subnet]);
	fo_save(fo);
}

static void
fo_on_zones(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_zone	*z;
	char			 why[200];

	fo->az_checked = 1;
	if (ec2_result_status(res) != EC2_OK ||
	    ec2_result_zones(res, &z) == 0 || z->state == NULL)
		return;		/* launch there, as usual */
	/*
	 * Evacuating loses the writes since the last snapshot: only a
	 * zone EC2 calls impaired or unavailable is worth that. Any other
	 * state (information, constrained, and whatever AWS adds) is a
	 * notice; the launch there tells whether capacity is short.
	 */
	if (!fo_is(z->state, "impaired") && !fo_is(z->state, "unavailable")) {
		if (!fo_is(z->state, "available"))
			log_info("failover %s: %s is %s: not a reason to "
			    "evacuate; launching there", fo->name, fo->vol_az,
			    z->state);
		return;
	}
	snprintf(why, sizeof(why), "DescribeAvailabilityZones: %s is %s",
	    fo->vol_az, z->state);
	fo_evacuate_start(fo, why);
}

/* The evacuated volumes' own ids, for a filter; NULL: no memory. */
static const char **
fo_evac_from_ids(const struct failover *fo)
{
	const char	**ids;
	size_t		  i;

	ids = calloc(fo->nvols > 0 ? fo->nvols : 1, sizeof(*ids));
	if (ids == NULL)
		return NULL;
	for (i = 0; i < fo->nvols; i++)
		ids[i] = fo->vols[i].from;
	return ids;
}

static void
fo_evac_snapshots_send(struct failover *fo)
{
	struct ec2_request	*req;
	const char		**ids, *st[1] = { "completed" };
	const char		*self = SNAPSHOT_OWNER;

	ids = fo_evac_from_ids(fo);
	req = fo_req(EC2_DESCRIBE_SNAPSHOTS);
	if (ids == NULL || req == NULL) {
		free(ids);
		ec2_request_free(req);
		return;
	}
	/* Ours only: a public snapshot of anyone's would restore too. */
	if (ec2_request_add_list(req, "Owner", &self, 1) == 0 &&
	    ec2_request_add(req, "MaxResults", SNAPSHOT_PAGE) == 0 &&
	    ec2_request_add_filter(req, "volume-id", ids, fo->nvols) == 0 &&
	    ec2_request_add_filter(req, "status", st, 1) == 0)
		fo_send(fo, FO_MAIN, req, FO_POLL_DEADLINE);
	else
		ec2_request_free(req);
	free(ids);
}

/* The newest completed snapshot of each volume, or the evacuation fails. */
static void
fo_on_evac_snapshots(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_snapshot	*sn;
	struct fo_volume		*v;
	size_t				 n, i, k;
	time_t				 t;
	char				 why[256];

	if (fo_result_kind(fo, res) != 0)
		return;
	n = ec2_result_snapshots(res, &sn);
	for (i = 0; i < fo->nvols; i++) {
		v = &fo->vols[i];
		for (k = 0; k < n; k++) {
			if (!fo_is(sn[k].volume_id, v->from) ||
			    !fo_is(sn[k].state, "completed") ||
			    sn[k].snapshot_id == NULL ||
			    snapshot_parse_time(sn[k].start_time, &t) == -1)
				continue;
			if (v->snap == NULL || (long long)t > v->snap_time) {
				fo_set_str(&v->snap, sn[k].snapshot_id);
				v->snap_time = (long long)t;
			}
		}
		if (v->snap == NULL) {
			snprintf(why, sizeof(why), "evacuation: volume %s has "
			    "no completed snapshot to restore", v->from);
			failover_fail(fo, why);
			return;
		}
		log_info("failover %s: evacuation restores %s from %s "
		    "(%llds old)", fo->name, v->from, v->snap,
		    (long long)time(NULL) - v->snap_time);
	}
	fo->snaps_known = 1;
	fo_save(fo);
	failover_poll(fo);
}

/*
 * CreateVolume makes a gp2 volume unless told otherwise: a restored
 * io2 or gp3 volume would serve the database at a fraction of its
 * IOPS. The old volumes are read (the API is regional: an impaired AZ
 * still answers) for their type, IOPS and throughput.
 */
static void
fo_evac_sources_send(struct failover *fo)
{
	struct ec2_request	*req;
	const char		**ids;

	ids = fo_evac_from_ids(fo);
	req = fo_req(EC2_DESCRIBE_VOLUMES);
	if (ids == NULL || req == NULL) {
		free(ids);
		ec2_request_free(req);
		return;
	}
	if (ec2_request_add_list(req, "VolumeId", ids, fo->nvols) == -1)
		ec2_request_free(req);
	else if (fo_send(fo, FO_MAIN, req, FO_POLL_DEADLINE) == 0)
		fo->src_sent = 1;
	free(ids);
}

static void
fo_on_evac_sources(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_volume	*ev;
	struct fo_volume	*v;
	size_t			 n, i, k;
	int			 kind = fo_result_kind(fo, res);

	fo->src_sent = 0;
	if (kind == 1)
		return;
	n = kind == 0 ? ec2_result_volumes(res, &ev) : 0;
	for (i = 0; i < fo->nvols; i++) {
		v = &fo->vols[i];
		for (k = 0; k < n; k++)
			if (fo_is(ev[k].volume_id, v->from))
				break;
		if (k == n || ev[k].volume_type == NULL) {
			log_warnx("failover %s: the type of %s is not known "
			    "(%s): restored with EC2's default type", fo->name,
			    v->from, kind == 0 ? "not described" :
			    ec2_result_error(res));
			continue;
		}
		fo_set_str(&v->vtype, ev[k].volume_type);
		v->iops = ev[k].iops;
		v->throughput = ev[k].throughput;
	}
	fo->src_known = 1;
	failover_poll(fo);
}

/* The source's performance, as far as CreateVolume takes it. */
static int
fo_evac_add_type(struct ec2_request *req, const struct fo_volume *v)
{
	int bad = 0;

	if (v->vtype == NULL)
		return 0;
	bad |= ec2_request_add(req, "VolumeType", v->vtype);
	/* Iops: io1, io2, gp3 only; Throughput: gp3 only. */
	if (v->iops > 0 && (fo_is(v->vtype, "io1") ||
	    fo_is(v->vtype, "io2") || fo_is(v->vtype, "gp3")))
		bad |= ec2_request_addf(req, "Iops", "%d", v->iops);
	if (v->throughput > 0 && fo_is(v->vtype, "gp3"))
		bad |= ec2_request_addf(req, "Throughput", "%d",
		    v->throughput);
	return bad;
}

static void
fo_evac_create(struct failover *fo, struct fo_volume *v, size_t idx)
{
	struct ec2_request	*req;
	struct ec2_tag		 tags[4];
	char			 token[96];
	int			 bad = 0;

	/* One token per volume: a resumed evacuation creates it once. */
	snprintf(token, sizeof(token), "%.58s-v%zu", fo->id, idx % 100);
	token[FO_TOKEN_MAX] = '\0';
	req = fo_req_instance(EC2_CREATE_VOLUME, "SnapshotId", v->snap);
	if (req == NULL)
		return;
	bad |= ec2_request_add(req, "AvailabilityZone", fo->evac_az);
	bad |= fo_evac_add_type(req, v);
	bad |= ec2_request_add(req, "ClientToken", token);
	tags[0].key = "failoverd:service";
	tags[0].value = fo->name;
	tags[1].key = "failoverd:failover-id";
	tags[1].value = fo->id;
	tags[2].key = "failoverd:restored-from";
	tags[2].value = v->from;
	tags[3].key = "failoverd:snapshot";
	tags[3].value = v->snap;
	bad |= ec2_request_add_tag_spec(req, "volume", tags, 4);
	if (bad) {
		ec2_request_free(req);
		return;
	}
	fo_send(fo, FO_MAIN, req, FO_ACT_DEADLINE);
}

static void
fo_on_evac_create(struct failover *fo, struct ec2_result *res)
{
	const char	*id;
	size_t		 i;
	int		 kind = fo_result_kind(fo, res);

	if (kind == 2)
		failover_fail(fo, ec2_result_error(res));
	id = ec2_result_id(res);
	if (kind != 0 || id == NULL)
		return;
	for (i = 0; i < fo->nvols; i++) {
		if (fo->vols[i].restored)
			continue;
		fo_set_str(&fo->vols[i].id, id);
		fo->vols[i].restored = 1;
		fo->vols[i].st = VOL_UNKNOWN;
		log_info("failover %s: volume %s restored from %s as %s in %s "
		    "(%s)", fo->name, fo->vols[i].from, fo->vols[i].snap, id,
		    fo->evac_az, fo->vols[i].vtype != NULL ?
		    fo->vols[i].vtype : "EC2's default type");
		break;
	}
	fo_save(fo);
	failover_poll(fo);
}

/*
 * DETACH of an evacuation: the old volumes stay where they are; the
 * new ones are made (one CreateVolume at a time, in order). 1 once
 * every volume to attach exists.
 */
static int
fo_evac_volumes(struct failover *fo)
{
	size_t i;

	if (fo->busy[FO_MAIN] > 0)
		return 0;
	if (!fo->snaps_known) {
		fo_evac_snapshots_send(fo);
		return 0;
	}
	/* Nothing in flight: a source read cancelled is read again. */
	fo->src_sent = 0;
	if (fo->evac_az == NULL)
		return 0;	/* the launch tells where */
	for (i = 0; i < fo->nvols; i++)
		if (!fo->vols[i].restored) {
			if (!fo->src_known)
				fo_evac_sources_send(fo);
			else
				fo_evac_create(fo, &fo->vols[i], i);
			return 0;
		}
	return 1;
}

/* The new volumes are the service's from now on; the alert says so. */
static void
fo_evac_done(struct failover *fo)
{
	struct fo_volume	*v;
	char			 key[160], vols[600], age[32];
	long long		 oldest = 0, now = (long long)time(NULL);
	size_t			 i, off = 0;
	int			 n;

	vols[0] = '\0';
	for (i = 0; i < fo->nvols; i++) {
		v = &fo->vols[i];
		snprintf(key, sizeof(key), "identity.%s", v->conf_id);
		fo_rec_set(fo, key, v->id);
		if (oldest == 0 || v->snap_time < oldest)
			oldest = v->snap_time;
		n = snprintf(vols + off, sizeof(vols) - off, "%s%s<-%s<-%s",
		    i ? "," : "", v->id, v->snap ? v->snap : "?", v->from);
		if (n > 0 && (size_t)n < sizeof(vols) - off)
			off += (size_t)n;
	}
	fo_rec_set(fo, "identity.subnet",
	    fo_policy(fo)->evacuation_subnets[fo->evac_subnet]);
	fo_set_str(&fo->vol_az, fo->evac_az);
	snprintf(age, sizeof(age), "%lld", now - oldest);
	alert_emit(ALERT_EVACUATION_COMPLETED, fo->name, "failover_id",
	    fo->id, "az", fo->evac_az, "instance", fo->new, "volumes", vols,
	    "snapshot_age", age, "data", "as of the snapshots: the writes of "
	    "the last snapshot_age seconds are lost", "note", "restored "
	    "volumes start slow: blocks load lazily from S3 on first read",
	    "action", "old volumes left untouched; later failovers move the "
	    "new volumes", NULL);
}

/* --- the launch branch --------------------------------------------------- */

/*
 * A switch's new instance, before production is touched: a second set
 * of the service's probes, pointed at its private address, must pass
 * (verify_timeout), while the service's own probes go on watching
 * production through the EIP.
 */
static void
fo_precheck_start(struct failover *fo)
{
	if (fo->new_ip == NULL) {
		failover_fail(fo, "EC2 gave the new instance no private "
		    "address to check it on");
		return;
	}
	fo->precheck_start = fo_now(fo);
	log_info("switch %s: checking %s on its private address %s before "
	    "touching production", fo->name, fo->new, fo->new_ip);
	if (service_check_start(fo->svc, fo->new_ip) == -1)
		failover_fail(fo, "cannot start the check of the new instance "
		    "(out of memory)");
}

static int
fo_precheck_waiting(const struct failover *fo)
{
	return fo->kind == KIND_SWITCH && fo->step == FAILOVER_FENCE_LAUNCH &&
	    fo->launch == LAUNCH_READY && !fo->prechecked &&
	    fo->precheck_start > 0;
}

static void
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
	failover_poll(fo);
}

static int
fo_launch_ready(struct failover *fo)
{
	fo->launch = LAUNCH_READY;
	fo->t[T_LAUNCH] = fo_now(fo) - fo->launch_start;
	log_info("failover %s: replacement %s ready (%.1fs)", fo->name,
	    fo->new, fo->t[T_LAUNCH]);
	fo_save(fo);
	if (fo->kind == KIND_SWITCH && !fo->prechecked) {
		fo_precheck_start(fo);
		return 0;
	}
	/* The volumes may be waiting for it: go on at once. */
	if (fo->step == FAILOVER_DETACH && fo->t[T_DETACH] >= 0) {
		failover_set_step(fo, FAILOVER_ATTACH);
		failover_poll(fo);
	}
	return 0;
}

static const char *
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

const char *
failover_volume_id(const struct failover *fo, const char *conf_id)
{
	return fo_vol_id(fo, conf_id);
}

const char *
failover_subnet(const struct failover *fo)
{
	const char *moved = NULL;

	if (fo->rec != NULL)
		moved = journal_rec_get(fo->rec, "identity.subnet");
	return moved != NULL ? moved : fo_conf(fo)->launch.subnet;
}

/* The subnet of a launch: after an evacuation, one in the new AZ. */
static const char *
fo_subnet(const struct failover *fo)
{
	const struct policy_conf	*p = fo_policy(fo);
	const char			*moved;

	if (fo->kind == KIND_EVACUATE && fo->evac_subnet <
	    p->nevacuation_subnets)
		return p->evacuation_subnets[fo->evac_subnet];
	moved = journal_rec_get(fo->rec, "identity.subnet");
	return moved != NULL ? moved : fo_conf(fo)->launch.subnet;
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
		failover_fail(fo, why);
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
 * second one. Returns 1 when the answer was the lookup's.
 */
static int
fo_on_launch_lookup(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_instance	*inst;
	const char			*by;
	size_t				 n, i;

	by = fo->lookup_by_tag ? "failoverd:failover-id tag" :
	    "client token";
	if (fo_result_kind(fo, res) != 0) {
		fo->lookup_fails++;
		fo->lookup_by_tag = !fo->lookup_by_tag;
		/* A third of launch_timeout leaves the launch its time. */
		if (fo->lookup_fails < FO_LOOKUP_TRIES && fo_now(fo) -
		    fo->launch_start < fo_policy(fo)->launch_timeout / 3)
			return 1;
		log_warnx("failover %s: looking up the replacement failed %d "
		    "times (last by its %s: %s); launching with the same "
		    "ClientToken, which finds the instance if it exists",
		    fo->name, fo->lookup_fails, by, ec2_result_error(res));
		fo->launch_looked_up = 1;
		return 1;
	}
	n = ec2_result_instances(res, &inst);
	for (i = 0; i < n; i++) {
		if (fo_is(inst[i].state, "terminated") ||
		    fo_is(inst[i].state, "shutting-down") ||
		    inst[i].instance_id == NULL)
			continue;
		fo->launch_looked_up = 1;
		fo_set_str(&fo->new, inst[i].instance_id);
		fo->launch = LAUNCH_SENT;
		if (fo->kind == KIND_EVACUATE)
			fo_set_str(&fo->evac_az, inst[i].az);
		log_info("failover %s: found replacement %s by its %s",
		    fo->name, fo->new, by);
		fo_save(fo);
		return 1;
	}
	if (!fo->lookup_by_tag) {
		fo->lookup_by_tag = 1;	/* the tag, before launching */
		return 1;
	}
	fo->launch_looked_up = 1;
	return 1;
}

static void
fo_launch_poll(struct failover *fo)
{
	struct ec2_request	*req = NULL;
	double			 deadline;

	if (fo->busy[FO_LAUNCH] > 0 || fo->launch == LAUNCH_READY)
		return;
	switch (fo->launch) {
	case LAUNCH_TODO:
		if (fo->kind == KIND_ROLLBACK) {
			/* Started, stopping or stopped: look before acting. */
			req = fo_req_instance(EC2_DESCRIBE_INSTANCES,
			    "InstanceId.1", fo->new);
			break;
		}
		if (fo->restart) {
			/* The same instance, on new hardware after a stop. */
			if (fo->fence != FENCE_DONE)
				return;
			req = fo_req_instance(EC2_START_INSTANCES,
			    "InstanceId.1", fo->old);
			break;
		}
		if (fo->resumed && !fo->launch_looked_up) {
			req = fo_lookup_request(fo);
			break;
		}
		if (fo_now(fo) < fo->launch_next)
			return;
		if (fo->kind == KIND_FAILOVER && fo_policy(fo)->evacuate &&
		    !fo->az_checked && fo->vol_az != NULL) {
			/* Is the volumes' AZ impaired? Then evacuate. */
			req = fo_req_instance(EC2_DESCRIBE_AVAILABILITY_ZONES,
			    "ZoneName.1", fo->vol_az);
			break;
		}
		req = fo_run_request(fo);
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
	    EC2_RUN_INSTANCES ? deadline : FO_POLL_DEADLINE);
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

static void
fo_on_run(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_instance	*inst;
	const char			*code = ec2_result_code(res);
	int				 kind;

	/*
	 * AWS sends InsufficientInstanceCapacity with HTTP 500; the client
	 * hands it back at once, and the tries are counted here.
	 */
	if (ec2_result_status(res) == EC2_ERR_AWS && fo_no_capacity(code)) {
		kind = 2;
	} else {
		kind = fo_result_kind(fo, res);
	}
	if (kind == 1)
		return;
	if (kind == 2 && fo_no_capacity(code)) {
		fo->launch_tries++;
		log_warnx("failover %s: %s (try %d of %d)",
		    fo->name, ec2_result_error(res), fo->launch_tries,
		    FO_LAUNCH_TRIES);
		if (fo->launch_tries < FO_LAUNCH_TRIES) {
			fo->launch_next = fo_now(fo) + 1.0;
			return;
		}
		if (fo->kind == KIND_EVACUATE) {
			fo_evac_next_subnet(fo, ec2_result_error(res));
			return;
		}
		/* A switch has production to fall back on: it just fails. */
		if (fo->kind == KIND_SWITCH) {
			failover_fail(fo, ec2_result_error(res));
			return;
		}
		if (fo_policy(fo)->evacuate) {
			fo_evacuate_start(fo, ec2_result_error(res));
			return;
		}
		if (!fo_policy(fo)->restart_in_place || fo->old == NULL) {
			failover_fail(fo, ec2_result_error(res));
			return;
		}
		fo->restart = 1;
		fo_set_str(&fo->new, fo->old);
		alert_emit(ALERT_FAILOVER_STEP, fo->name, "failover_id",
		    fo->id, "step", failover_step_str(fo->step),
		    "change", "restart_in_place", "reason",
		    ec2_result_error(res), "instance", fo->old, NULL);
		fo_save(fo);
		return;
	}
	if (kind == 2) {
		failover_fail(fo, ec2_result_error(res));
		return;
	}
	if (ec2_result_instances(res, &inst) == 0 ||
	    inst->instance_id == NULL) {
		failover_fail(fo, "RunInstances answered without an instance");
		return;
	}
	fo_set_str(&fo->new, inst->instance_id);
	fo->launch = LAUNCH_SENT;
	if (fo->kind == KIND_EVACUATE)
		fo_set_str(&fo->evac_az, inst->az);
	log_info("failover %s: launched %s in %s from %s", fo->name,
	    inst->instance_id, inst->az ? inst->az : "?", fo_ami(fo));
	fo_save(fo);
}

/*
 * A rollback's "launch": the kept instance is started again, unless it
 * runs already; one still stopping is looked at again next tick.
 */
static void
fo_rollback_look(struct failover *fo, const struct ec2_instance *inst)
{
	struct ec2_request	*req;
	char			 why[256];

	if (inst == NULL || fo_is(inst->state, "terminated") ||
	    fo_is(inst->state, "shutting-down")) {
		snprintf(why, sizeof(why), "the instance to roll back to, %s, "
		    "is %s", fo->new, inst == NULL ? "gone" : inst->state);
		failover_fail(fo, why);
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
		fo_send(fo, FO_LAUNCH, req, FO_ACT_DEADLINE);
}

static void
fo_on_launch_describe(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_instance	*inst;
	size_t				 n;
	char				 why[256];

	/* Resumed: did the launch before the crash happen? */
	if (fo->launch == LAUNCH_TODO && fo->kind != KIND_ROLLBACK &&
	    !fo->launch_looked_up && fo_on_launch_lookup(fo, res))
		return;
	if (fo_result_kind(fo, res) != 0)
		return;	/* a Describe that fails is tried again */
	n = ec2_result_instances(res, &inst);
	if (fo->launch == LAUNCH_TODO && fo->kind == KIND_ROLLBACK) {
		fo_rollback_look(fo, n > 0 ? inst : NULL);
		return;
	}
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
	if ((fo->restart || fo->kind == KIND_ROLLBACK) &&
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
	failover_fail(fo, why);
}

static void
fo_on_console(struct failover *fo, struct ec2_result *res)
{
	struct buf keys;

	/*
	 * EC2 documents Latest for Nitro types only, not the refusal's
	 * code: any refusal falls back to the buffered output, which
	 * every type has, for the rest of this instance's launch.
	 */
	if (fo->console_latest && ec2_result_status(res) == EC2_ERR_AWS &&
	    !ec2_result_retryable(res)) {
		if (!fo_is(fo->latest_refused, fo->new))
			log_info("failover %s: %s gives no latest console "
			    "output (%s); reading its buffered output, "
			    "posted late", fo->name, fo->new,
			    ec2_result_error(res));
		fo_set_str(&fo->latest_refused, fo->new);
		return;
	}
	if (fo_result_kind(fo, res) != 0)
		return;
	buf_init(&keys);
	if (failover_console_keys(ec2_result_console_output(res), &keys) >
	    0 && fo->eip_ip != NULL && fo_write_learned(fo, &keys) == 0) {
		log_info("failover %s: learnt %s's SSH host keys from its "
		    "console", fo->name, fo->new);
		fo_learned_note(fo, fo->new);
		fo_launch_ready(fo);
	} else if (!fo->keys_waiting) {
		fo->keys_waiting = 1;
		log_info("failover %s: waiting for %s's SSH host keys on its "
		    "console", fo->name, fo->new);
	}
	buf_free(&keys);
}

static void
fo_on_current_console(struct failover *fo, struct ec2_result *res)
{
	struct buf keys;

	if (ec2_result_status(res) != EC2_OK || fo_active(fo) ||
	    fo->eip_instance == NULL)
		return;
	buf_init(&keys);
	if (failover_console_keys(ec2_result_console_output(res), &keys) >
	    0 && fo->eip_ip != NULL && fo_write_learned(fo, &keys) == 0) {
		log_info("service %s: learnt %s's SSH host keys from its "
		    "console", fo->name, fo->eip_instance);
		fo_learned_note(fo, fo->eip_instance);
		fo_save(fo);
	}
	buf_free(&keys);
}

/* --- the main branch: fence, detach, attach, associate ------------------- */

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
static int
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

	if (fo->busy[FO_MAIN] > 0 || fo->fence == FENCE_DONE)
		return;
	/* Production is touched only once the new release passed. */
	if (fo->kind == KIND_SWITCH && !fo->prechecked)
		return;
	if (fo->old == NULL) {
		fo->fence = FENCE_DONE;
		fo->fenced_at = fo_now(fo);
		fo->t[T_FENCE] = 0;
		return;
	}
	if (fo->fence == FENCE_TODO) {
		req = fo_stop_request(fo);
		if (req == NULL)
			return;
		fo->stop_sent = 1;
		if (fo_send(fo, FO_MAIN, req, FO_ACT_DEADLINE) == 0)
			fo->fence = FENCE_STOPPING;
		return;
	}
	req = fo_req_instance(EC2_DESCRIBE_INSTANCES, "InstanceId.1",
	    fo->old);
	if (req != NULL)
		fo_send(fo, FO_MAIN, req, FO_POLL_DEADLINE);
}

static void
fo_on_fence_describe(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_instance *inst;

	if (fo_result_kind(fo, res) != 0 ||
	    ec2_result_instances(res, &inst) == 0)
		return;
	if (fo_is(inst->state, "stopped") ||
	    fo_is(inst->state, "terminated")) {
		fo->fence = FENCE_DONE;
		fo->fenced_at = fo_now(fo);
		/* A switch fences only once its new instance passed. */
		fo->t[T_FENCE] = fo->fenced_at - (fo->kind == KIND_SWITCH ?
		    fo->step_start : fo->started);
		log_info("failover %s: %s fenced (%s, %.1fs, %s)", fo->name,
		    fo->old, inst->state, fo->t[T_FENCE], fo->skip_os_sent ?
		    "OS shutdown skipped" : "graceful stop");
		failover_set_step(fo, FAILOVER_DETACH);
		failover_poll(fo);
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
		fo_send(fo, FO_MAIN, req, FO_POLL_DEADLINE);
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
	if (fo_send(fo, FO_MAIN, req, FO_ACT_DEADLINE) == -1)
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
	if (fo_send(fo, FO_MAIN, req, FO_ACT_DEADLINE) == 0) {
		fo->calls->vol = v;	/* fo_send put it first */
		v->attach_sent = 1;
		fo_vol_set(fo, v, VOL_ATTACHING);
	}
}

static void
fo_on_volumes(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_volume	*ev;
	struct fo_volume	*v;
	size_t			 n, i;

	if (fo_result_kind(fo, res) != 0)
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
	failover_fail(fo, why);
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
		    FO_POLL_DEADLINE) == 0)
			v->holder_asked = 1;
		return 0;
	}
	if (fo_is(v->holder_state, "stopped"))
		return 1;
	fo_foreign_holder(fo, v);
	return -1;
}

static void
fo_on_holder_describe(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_instance	*inst;
	struct fo_volume		*v;
	size_t				 n, i, k;
	int				 kind = fo_result_kind(fo, res);

	n = kind == 0 ? ec2_result_instances(res, &inst) : 0;
	for (i = 0; i < fo->nvols; i++) {
		v = &fo->vols[i];
		if (!v->holder_asked)
			continue;
		v->holder_asked = 0;
		if (kind == 1)
			continue;	/* asked again */
		for (k = 0; k < n; k++)
			if (fo_is(inst[k].instance_id, v->holder))
				break;
		/* Not found, or refused: not known to be stopped. */
		snprintf(v->holder_state, sizeof(v->holder_state), "%s",
		    k < n && inst[k].state != NULL ? inst[k].state :
		    "state unknown");
	}
	if (kind != 1 && fo->step == FAILOVER_DETACH)
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
				failover_fail(fo, why);
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
		if (fo->launch == LAUNCH_READY) {
			failover_set_step(fo, FAILOVER_ATTACH);
			/* We know they are free: attach now, not a tick on. */
			fo_volumes_progress(fo);
		}
	} else if (fo->step == FAILOVER_ATTACH && attached == fo->nvols) {
		fo->t[T_ATTACH] = fo_now(fo) - fo->step_start;
		failover_set_step(fo, FAILOVER_ASSOCIATE);
		failover_poll(fo);
	}
}

static void
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
			fo_send(fo, FO_MAIN, req, FO_POLL_DEADLINE);
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
	fo_send(fo, FO_MAIN, req, FO_ACT_DEADLINE);
}

static void
fo_associated(struct failover *fo)
{
	fo->t[T_ASSOCIATE] = fo_now(fo) - fo->step_start;
	fo_set_str(&fo->eip_instance, fo->new);
	fo_settle_begin(fo);
	log_info("failover %s: Elastic IP %s now on %s", fo->name,
	    fo->eip_ip ? fo->eip_ip : "?", fo->new);
	failover_set_step(fo, FAILOVER_VERIFY);
	/* Counting starts afresh: only the replacement's answers count. */
	service_reset_probes(fo->svc);
}

static void
fo_on_associate(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_address	*a;
	int				 kind = fo_result_kind(fo, res);

	if (kind == 1)
		return;
	if (kind == 2) {
		failover_fail(fo, ec2_result_error(res));
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

/* --- done, failed -------------------------------------------------------- */

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

static void
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
	journal_rec_del(fo->rec, "started");
	fo->step_start = fo_now(fo);
	fo->resumed = 0;
	failover_set_step(fo, to);
}

/*
 * A switch that fails before FENCE left production alone: the new
 * instance goes (terminated) and monitoring goes on as before. Past
 * that point everything moves back to the kept instance by itself.
 */
static void
fo_switch_fail(struct failover *fo, const char *why, const char *stands)
{
	struct ec2_request	*req;
	char			 from[32], to[32];

	if (!fo->prechecked) {
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
				    FO_ACT_DEADLINE);
		}
		fo_end(fo, FAILOVER_IDLE, "failed", why);
		/*
		 * Production stayed watched; if it went down meanwhile,
		 * its failover was only waiting for the switch to end.
		 */
		failover_consider(fo);
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
		fo_rec_set(fo, "switch_kept", to);
	fo_rollback_begin(fo, from[0] ? from : NULL, to, why, 0);
}

static void
fo_stop_idle_replacement(struct failover *fo)
{
	struct ec2_request *req;

	req = fo_req_instance(EC2_STOP_INSTANCES, "InstanceId.1", fo->new);
	if (req == NULL)
		return;
	/* The refresh branch: fo_end cancels the others. */
	if (fo_send(fo, FO_REFRESH_BR, req, FO_ACT_DEADLINE) == 0)
		log_warnx("failover %s: stopping the idle replacement %s",
		    fo->name, fo->new);
}

static void
failover_fail(struct failover *fo, const char *why)
{
	enum failover_step	at = fo->step;
	char			stands[1024];

	if (!fo_active(fo))
		return;
	fo_what_stands(fo, stands, sizeof(stands));
	if (fo->kind == KIND_SWITCH) {
		fo_switch_fail(fo, why, stands);
		return;
	}
	if (fo->kind == KIND_ROLLBACK) {
		/*
		 * The instance we were moving back to serves nobody before
		 * ASSOCIATE: stopped, it cannot run beside volumes attached
		 * nowhere (as a failed failover's replacement).
		 */
		if (fo->new != NULL && at < FAILOVER_ASSOCIATE &&
		    fo->launch >= LAUNCH_SENT) {
			fo_stop_idle_replacement(fo);
			alert_emit(ALERT_ROLLBACK_FAILED, fo->name,
			    "rollback_id", fo->id, "step",
			    failover_step_str(at), "reason", why, "stands",
			    stands, "action", "the instance we were moving "
			    "back to serves nobody and is stopped again; the "
			    "rest is left as it stands; a person decides "
			    "(failoverctl rollback to try again)", NULL);
		} else
			alert_emit(ALERT_ROLLBACK_FAILED, fo->name,
			    "rollback_id", fo->id, "step",
			    failover_step_str(at), "reason", why, "stands",
			    stands, "action", "left as it stands; a person "
			    "decides (failoverctl rollback to try again)",
			    NULL);
		fo_set_holdf(fo, "%s failed in %s: %.300s", fo->id,
		    failover_step_str(at), why);
		fo_end(fo, FAILOVER_FAILED, "failed", why);
		return;
	}
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
 * The fence stopped the old instance; "stop" leaves it so, "terminate"
 * ends it, "keep" starts it again (without its volumes and EIP) for
 * whoever wants to look at it running.
 */
static void
fo_old_instance(struct failover *fo)
{
	struct ec2_request	*req;
	enum policy_old		 pol = fo_policy(fo)->old_instance;

	if (fo->restart || fo->old == NULL || pol == POLICY_OLD_STOP ||
	    (fo->kind != KIND_FAILOVER && fo->kind != KIND_EVACUATE))
		return;
	req = fo_req_instance(pol == POLICY_OLD_TERMINATE ?
	    EC2_TERMINATE_INSTANCES : EC2_START_INSTANCES, "InstanceId.1",
	    fo->old);
	/* On the refresh branch: it outlives the failover's own calls. */
	if (req != NULL)
		fo_send(fo, FO_REFRESH_BR, req, FO_ACT_DEADLINE);
}

/*
 * The service answers again, from the instance the move put behind
 * the Elastic IP. Its probes were reset at ASSOCIATE, so their own
 * verdict comes from "unknown" and says nothing: the story of the
 * outage ends here, for whoever follows the service's events.
 */
static void
fo_recovered(struct failover *fo)
{
	alert_emit(ALERT_SERVICE_RECOVERED, fo->name,
	    "instance", fo->new, "by", fo->rollback_auto ?
	    "rollback of the failed switch" : fo->restart ?
	    "restart_in_place" : fo_kind_names[fo->kind], "failover_id",
	    fo->id, NULL);
}

/*
 * A switch or a rollback verified. The switch's old instance stays
 * stopped, kept (switch_kept) for failoverctl rollback until a person
 * retires it with switch --finish; a rollback leaves the instance it
 * moved away from stopped and forgets the kept one (it is production
 * again).
 */
static void
fo_moved(struct failover *fo, char v[T_MAX][32])
{
	char precheck[32];

	if (fo->kind == KIND_SWITCH) {
		snprintf(precheck, sizeof(precheck), "%.3f",
		    fo->t[T_DETECT] < 0 ? 0 : fo->t[T_DETECT]);
		fo_rec_set(fo, "switch_kept", fo->old);
		fo_rec_set(fo, "switch_ami", NULL);
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
		return;
	}
	journal_rec_del(fo->rec, "switch_kept");
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

static void
failover_complete(struct failover *fo)
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
	fo_old_instance(fo);
	if (fo->kind == KIND_EVACUATE)
		fo_evac_done(fo);
	if (fo->kind != KIND_FAILOVER && fo->kind != KIND_EVACUATE) {
		fo_moved(fo, v);
		return;
	}
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
	fo_rec_setf(fo, "last_failover", "%lld", (long long)time(NULL));
	fo_end(fo, FAILOVER_DONE, "completed", NULL);
}

/* --- the tick: deadlines, then the step's function ----------------------- */

static double
fo_step_deadline(const struct failover *fo)
{
	const struct policy_conf *p = fo_policy(fo);

	switch (fo->step) {
	case FAILOVER_FENCE_LAUNCH:
		return p->fence_timeout;
	case FAILOVER_DETACH:
		/* An evacuation restores volumes here, after its launch. */
		if (fo->kind == KIND_EVACUATE)
			return 2 * p->detach_timeout + p->launch_timeout;
		/* Forced after detach_timeout, given up after twice that. */
		return 2 * p->detach_timeout;
	case FAILOVER_ATTACH:
		return p->attach_timeout;
	case FAILOVER_ASSOCIATE:
		return p->associate_timeout;
	case FAILOVER_VERIFY:
		return p->verify_timeout;
	default:
		return 0;
	}
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
	if (fo->step < FAILOVER_DETACH || fo->step > FAILOVER_ASSOCIATE)
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
	if (fo->kind == KIND_SWITCH && !fo->prechecked) {
		dl = 0;
		if (fo->precheck_start > 0 && now - fo->precheck_start >
		    fo_policy(fo)->verify_timeout) {
			snprintf(why, sizeof(why), "new instance %s did not "
			    "pass the service's probes on its private address "
			    "%s within verify_timeout (%.0fs)", fo->new,
			    fo->new_ip ? fo->new_ip : "?",
			    fo_policy(fo)->verify_timeout);
			failover_fail(fo, why);
			return -1;
		}
	}
	if (dl > 0 && in > dl && fo_last_look(fo, now) == 0)
		return 0;
	if (dl > 0 && in > dl) {
		snprintf(why, sizeof(why), "step %s passed its deadline "
		    "(%.0fs)", failover_step_str(fo->step), dl);
		failover_fail(fo, why);
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
		failover_fail(fo, why);
		return -1;
	}
	if (fo->launch != LAUNCH_READY &&
	    now - fo->launch_start > fo_policy(fo)->launch_timeout) {
		snprintf(why, sizeof(why), "launch of the replacement%s%s "
		    "passed its deadline (%.0fs)", fo->new ? " " : "",
		    fo->new ? fo->new : "", fo_policy(fo)->launch_timeout);
		failover_fail(fo, why);
		return -1;
	}
	return 0;
}

/* One function per step: each knows what it waits for. */
static void
failover_step_fence_launch(struct failover *fo)
{
	if (fo->kind == KIND_SWITCH && fo->launch == LAUNCH_READY &&
	    !fo->prechecked) {
		/* Resumed with the instance ready: check it again. */
		if (fo->precheck_start == 0 ||
		    service_check_target(fo->svc) == NULL)
			fo_precheck_start(fo);
		else if (service_check_verdict(fo->svc) == SERVICE_HEALTHY)
			fo_precheck_passed(fo);
		return;
	}
	fo_fence_poll(fo);
	fo_launch_poll(fo);
}

static void
failover_step_detach(struct failover *fo)
{
	fo_launch_poll(fo);
	/* Volumes all free: only the launch is awaited now. */
	if (fo->t[T_DETACH] >= 0)
		return;
	if (fo->kind == KIND_EVACUATE && !fo_evac_volumes(fo))
		return;
	if (fo->busy[FO_MAIN] == 0)
		fo_volumes_describe(fo);
}

static void
failover_step_attach(struct failover *fo)
{
	if (fo->busy[FO_MAIN] == 0)
		fo_volumes_describe(fo);
}

static void
failover_step_verify(struct failover *fo)
{
	/* The probes run on their own schedule; the verdict tells us. */
	if (service_verdict(fo->svc) == SERVICE_HEALTHY)
		failover_complete(fo);
}

static void
failover_poll(struct failover *fo)
{
	if (!fo_active(fo) || fo_check_deadlines(fo) == -1)
		return;
	switch (fo->step) {
	case FAILOVER_FENCE_LAUNCH:
		failover_step_fence_launch(fo);
		break;
	case FAILOVER_DETACH:
		failover_step_detach(fo);
		break;
	case FAILOVER_ATTACH:
		failover_step_attach(fo);
		break;
	case FAILOVER_ASSOCIATE:
		fo_associate_poll(fo);
		break;
	case FAILOVER_VERIFY:
		failover_step_verify(fo);
		break;
	default:
		break;
	}
}

/* --- corroborate, cooldown, begin ---------------------------------------- */

static int
fo_wants_failover(const struct failover *fo)
{
	enum service_verdict v = service_verdict(fo->svc);

	return v == SERVICE_DOWN || (v == SERVICE_DEGRADED &&
	    fo_policy(fo)->failover_on_degraded);
}

static void
fo_hold(struct failover *fo, const char *why)
{
	fo_set_str(&fo->hold_reason, why);
	alert_emit(ALERT_FAILOVER_HELD, fo->name, "reason", why,
	    "action", "waiting for a person (failoverctl failover or "
	    "resume)", NULL);
	failover_set_step(fo, FAILOVER_HELD);
}

/* Cooldown and the window's count, from the journal's history. */
static int
fo_rate_limited(struct failover *fo, char *why, size_t len)
{
	const struct policy_conf	*p = fo_policy(fo);
	long long			 next, i, started, last = 0;
	int				 count = 0;
	char				 key[64];
	const char			*kind;
	time_t				 now = time(NULL);

	/*
	 * Wall clock on purpose: these spans must survive a restart of
	 * the daemon, which the monotonic clock does not.
	 */
	next = fo_rec_int(fo, "history.next", 0);
	for (i = next - FO_HISTORY_MAX; i < next; i++) {
		if (i < 0)
			continue;
		snprintf(key, sizeof(key), "h.%lld.kind", i);
		kind = journal_rec_get(fo->rec, key);
		/* Switches and rollbacks are planned: not counted. */
		if (kind != NULL && strcmp(kind, "failover") != 0)
			continue;
		snprintf(key, sizeof(key), "h.%lld.started", i);
		started = fo_rec_int(fo, key, -1);
		if (started < 0)
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

static int
fo_can_act(struct failover *fo, char *why, size_t len)
{
	if (fo->env->ec2 == NULL) {
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
	return 1;
}

/* A DOWN (or DEGRADED, by policy) for the automatic path. */
static void
failover_consider(struct failover *fo)
{
	struct ec2_request	*req;
	char			 why[300];

	if (fo->step != FAILOVER_IDLE && fo->step != FAILOVER_DONE)
		return;
	if (!fo_wants_failover(fo) || fo->isolated)
		return;
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
		failover_begin(fo, "service down", 0);
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
	failover_set_step(fo, FAILOVER_CORROBORATE);
	ev_timer_again(fo->env->loop, &fo->tick);
	if (fo_send(fo, FO_MAIN, req, FO_CORROBORATE_TIMEOUT) == -1)
		failover_set_step(fo, FAILOVER_IDLE);
}

/*
 * EC2 sees the instance healthy while our probes see it down: either
 * the application died (fail over) or this watchdog is cut off (do
 * not). The daemon tells which, possibly only after the other services
 * had a few seconds to go down too; until then we stay here.
 */
static void
fo_corroborate_decide(struct failover *fo)
{
	int iso = 0;

	if (fo->env->isolated != NULL)
		iso = fo->env->isolated(fo->env->arg);
	if (iso < 0)
		return;		/* undecided: asked again next tick */
	fo->ec2_says_ok = 0;
	if (iso == 0) {
		failover_begin(fo, fo->ec2_view ? fo->ec2_view : "", 0);
		return;
	}
	fo->isolated = 1;
	alert_emit(ALERT_WATCHDOG_ISOLATED, fo->name, "instance",
	    fo->eip_instance, "ec2", fo->ec2_view ? fo->ec2_view : "",
	    "action", "no failover: "
	    "every service went down at once while EC2 sees them healthy; "
	    "check this host's network", NULL);
	failover_set_step(fo, FAILOVER_IDLE);
}

static void
fo_on_corroborate(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_instance_status	*st;
	char					 what[160];
	int					 ok;

	if (ec2_result_status(res) != EC2_OK) {
		alert_emit(ALERT_AWS_ERROR, fo->name, "error",
		    ec2_result_error(res), "step", "corroborate",
		    "action", "failover postponed, retrying", NULL);
		failover_set_step(fo, FAILOVER_IDLE);
		fo->retry_at = fo_now(fo) + FO_RETRY_IDLE;
		ev_timer_again(fo->env->loop, &fo->tick);
		return;
	}
	if (!fo_wants_failover(fo)) {
		log_info("failover %s: recovered while asking EC2; no "
		    "action", fo->name);
		failover_set_step(fo, FAILOVER_IDLE);
		return;
	}
	if (ec2_result_instance_statuses(res, &st) == 0) {
		failover_begin(fo, "service down; EC2 has no status for the "
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
		failover_begin(fo, what, 0);
		return;
	}
	fo->ec2_says_ok = 1;
	fo_set_str(&fo->ec2_view, what);
	fo_corroborate_decide(fo);
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

static void
fo_vols_reset(struct failover *fo)
{
	const struct service_conf	*sc = fo_conf(fo);
	struct fo_volume		*v;
	size_t				 i;

	fo_vols_free(fo);
	if (sc->nvolumes == 0)
		return;
	fo->vols = calloc(sc->nvolumes, sizeof(*fo->vols));
	if (fo->vols == NULL)
		return;
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
			break;
		}
		fo->nvols++;
	}
}

static void
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
	fo->src_sent = 0;
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
	fo_vols_reset(fo);
}

static void
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
	fo_set_str(&fo->id, id);
}

static void
failover_begin(struct failover *fo, const char *why, int manual)
{
	double now = fo_now(fo);

	fo_progress_reset(fo);
	fo->manual = manual;
	fo_new_id(fo, "fo");
	/*
	 * The EIP's instance is production; with the EIP unassociated,
	 * whatever holds the volumes must be fenced all the same.
	 */
	fo_set_str(&fo->old, fo->eip_instance ? fo->eip_instance :
	    fo->vol_instance);
	fo->started = now;
	fo->launch_start = now;
	fo->isolated = 0;
	fo_set_str(&fo->hold_reason, NULL);
	fo->t[T_DETECT] = fo->manual || fo->unhealthy_since == 0 ? 0 :
	    now - fo->unhealthy_since;
	fo_rec_setf(fo, "started", "%lld", (long long)time(NULL));
	alert_emit(ALERT_FAILOVER_STARTED, fo->name, "failover_id", fo->id,
	    "trigger", fo->manual ? "manual" : "auto", "reason", why,
	    "old_instance", fo->old ? fo->old : "-",
	    "az", fo->vol_az, "ami", fo_ami(fo), NULL);
	failover_set_step(fo, FAILOVER_FENCE_LAUNCH);
	failover_poll(fo);
}

/*
 * A rollback moves production from `from` (stopped, kept for a look)
 * back to `to`, the instance a switch kept: its "launch" starts `to`
 * again while `from` is fenced.
 */
static void
fo_rollback_begin(struct failover *fo, const char *from, const char *to,
    const char *why, int manual)
{
	double now = fo_now(fo);

	fo_progress_reset(fo);
	fo->kind = KIND_ROLLBACK;
	fo->manual = manual;
	fo->rollback_auto = !manual;
	fo_new_id(fo, "rb");
	fo_set_str(&fo->old, from);
	fo_set_str(&fo->new, to);
	fo->started = now;
	fo->launch_start = now;
	fo_set_str(&fo->hold_reason, NULL);
	fo->t[T_DETECT] = 0;
	fo_rec_setf(fo, "started", "%lld", (long long)time(NULL));
	alert_emit(ALERT_ROLLBACK_STARTED, fo->name, "rollback_id", fo->id,
	    "trigger", manual ? "manual" : "failed switch", "reason", why,
	    "from_instance", from ? from : "-", "to_instance", to, NULL);
	/* The EIP may already point at `to`: verify through it anyway. */
	service_set_target(fo->svc, fo->eip_ip);
	failover_set_step(fo, FAILOVER_FENCE_LAUNCH);
	failover_poll(fo);
}

static void
fo_switch_begin(struct failover *fo, const char *ami)
{
	double now = fo_now(fo);

	fo_progress_reset(fo);
	fo->kind = KIND_SWITCH;
	fo->manual = 1;
	fo_set_str(&fo->ami, ami);
	fo_new_id(fo, "sw");
	fo_set_str(&fo->old, fo->eip_instance);
	fo->started = now;
	fo->launch_start = now;
	fo_set_str(&fo->hold_reason, NULL);
	fo_rec_setf(fo, "started", "%lld", (long long)time(NULL));
	alert_emit(ALERT_SWITCH_STARTED, fo->name, "switch_id", fo->id,
	    "ami", ami, "old_instance", fo->old, "az", fo->vol_az, NULL);
	failover_set_step(fo, FAILOVER_FENCE_LAUNCH);
	failover_poll(fo);
}

/* --- results ------------------------------------------------------------- */

static void
failover_on_result(struct ec2_result *res, void *arg)
{
	struct fo_call	*c = arg, **pp;
	struct failover	*fo = c->fo;
	enum fo_branch	 br = c->branch;
	struct fo_volume *vol = c->vol;

	for (pp = &fo->calls; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	fo->busy[br]--;
	free(c);
	if (br == FO_REFRESH_BR)
		fo_refresh_over(fo);

	switch (ec2_result_action(res)) {
	case EC2_DESCRIBE_ADDRESSES:
		if (br == FO_REFRESH_BR) {
			if (ec2_result_status(res) == EC2_OK) {
				fo_refresh_address(fo, res);
			} else {
				if (fo->aws_ok || fo->eip_ip == NULL)
					alert_emit(ALERT_AWS_ERROR, fo->name,
					    "error", ec2_result_error(res),
					    "action", "monitoring goes on; "
					    "retrying", NULL);
				fo->aws_ok = 0;
			}
		} else if (fo->step == FAILOVER_ASSOCIATE) {
			fo_on_associate(fo, res);
		}
		break;
	case EC2_DESCRIBE_VOLUMES:
		if (br == FO_REFRESH_BR) {
			if (ec2_result_status(res) == EC2_OK)
				fo_refresh_volumes(fo, res);
		} else if (fo->src_sent && fo->step == FAILOVER_DETACH &&
		    fo->kind == KIND_EVACUATE) {
			fo_on_evac_sources(fo, res);
		} else if (fo->step == FAILOVER_DETACH ||
		    fo->step == FAILOVER_ATTACH) {
			fo_on_volumes(fo, res);
		}
		break;
	case EC2_DESCRIBE_INSTANCE_STATUS:
		if (fo->step == FAILOVER_CORROBORATE)
			fo_on_corroborate(fo, res);
		break;
	case EC2_DESCRIBE_AVAILABILITY_ZONES:
		if (fo_active(fo) && fo->kind == KIND_FAILOVER)
			fo_on_zones(fo, res);
		break;
	case EC2_DESCRIBE_SNAPSHOTS:
		if (fo->step == FAILOVER_DETACH &&
		    fo->kind == KIND_EVACUATE)
			fo_on_evac_snapshots(fo, res);
		break;
	case EC2_CREATE_VOLUME:
		if (fo->step == FAILOVER_DETACH &&
		    fo->kind == KIND_EVACUATE)
			fo_on_evac_create(fo, res);
		break;
	case EC2_STOP_INSTANCES:
		if (br == FO_REFRESH_BR) {
			/* The idle replacement of a failed failover. */
			if (ec2_result_status(res) != EC2_OK)
				alert_emit(ALERT_AWS_ERROR, fo->name, "error",
				    ec2_result_error(res), "action", "the idle "
				    "replacement was not stopped; stop it by "
				    "hand", NULL);
		} else if (fo_stop_refused(fo, res))
			fo->fence = FENCE_TODO;
		else if (fo_result_kind(fo, res) == 1)
			fo->fence = FENCE_TODO;
		else if (ec2_result_status(res) != EC2_OK)
			failover_fail(fo, ec2_result_error(res));
		break;
	case EC2_DESCRIBE_INSTANCES:
		if (br == FO_LAUNCH)
			fo_on_launch_describe(fo, res);
		else if (fo->step == FAILOVER_FENCE_LAUNCH)
			fo_on_fence_describe(fo, res);
		else if (fo->step == FAILOVER_DETACH)
			fo_on_holder_describe(fo, res);
		break;
	case EC2_RUN_INSTANCES:
		fo_on_run(fo, res);
		break;
	case EC2_START_INSTANCES:
		if (br == FO_REFRESH_BR) {
			if (ec2_result_status(res) != EC2_OK)
				alert_emit(ALERT_AWS_ERROR, fo->name, "error",
				    ec2_result_error(res), "action", "the old "
				    "instance was not started again", NULL);
		} else if (fo_result_kind(fo, res) == 2) {
			failover_fail(fo, ec2_result_error(res));
		} else if (ec2_result_status(res) == EC2_OK) {
			fo->launch = LAUNCH_SENT;
			fo->start_ok_at = fo_now(fo);
			if (fo->kind == KIND_ROLLBACK)
				log_info("rollback %s: starting %s again",
				    fo->name, fo->new);
			else
				log_info("failover %s: restarting %s in place",
				    fo->name, fo->old);
			fo_save(fo);
		}
		break;
	case EC2_GET_CONSOLE_OUTPUT:
		if (br == FO_REFRESH_BR)
			fo_on_current_console(fo, res);
		else if (fo->launch == LAUNCH_RUNNING)
			fo_on_console(fo, res);
		break;
	case EC2_DETACH_VOLUME:
	case EC2_ATTACH_VOLUME:
		fo_on_attach(fo, vol, res);
		break;
	case EC2_ASSOCIATE_ADDRESS:
		if (fo->step == FAILOVER_ASSOCIATE)
			fo_on_associate(fo, res);
		break;
	case EC2_TERMINATE_INSTANCES:
		if (ec2_result_status(res) != EC2_OK)
			alert_emit(ALERT_AWS_ERROR, fo->name, "error",
			    ec2_result_error(res), "action", "the old "
			    "instance was not terminated", NULL);
		break;
	default:
		break;
	}
	ec2_result_free(res);
}

static int
fo_attach_in_flight(const struct failover *fo)
{
	const struct fo_call *c;

	for (c = fo->calls; c != NULL; c = c->next)
		if (c->vol != NULL)
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
 * AWS refused an AttachVolume: the volume is where it was, free. The
 * failover fails once every AttachVolume sent has its answer, so that
 * its alert says where each volume really is.
 */
static void
fo_on_attach(struct failover *fo, struct fo_volume *vol,
    struct ec2_result *res)
{
	char *why;

	if (fo_refusal_is_past(fo, vol, res)) {
		/* nothing more: the next poll reads the volume */
	} else if (fo_result_kind(fo, res) == 2) {
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
	failover_fail(fo, why);
	free(why);
}

static void
fo_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct failover *fo = w->data;
	double		 now = fo_now(fo);

	/* Fast only while acting; waiting to retry needs no haste. */
	w->repeat = fo_active(fo) ? FO_TICK : FO_POLL_EVERY;
	if (fo_active(fo)) {
		if (now - fo->polled_at < FO_POLL_EVERY &&
		    (fo->env->ec2 == NULL ||
		    !ec2_budget_spare(fo->env->ec2, FO_POLL_RESERVE)))
			return;
		fo->polled_at = now;
		failover_poll(fo);
		return;
	}
	if (fo->step == FAILOVER_CORROBORATE) {
		if (!fo_wants_failover(fo)) {
			log_info("failover %s: recovered while corroborating; "
			    "no action", fo->name);
			fo_cancel_branch(fo, FO_MAIN);
			fo->ec2_says_ok = 0;
			failover_set_step(fo, FAILOVER_IDLE);
		} else if (fo->ec2_says_ok) {
			fo_corroborate_decide(fo);
		} else if (fo_now(fo) - fo->step_start >
		    FO_CORROBORATE_TIMEOUT + 5) {
			fo_cancel_branch(fo, FO_MAIN);
			failover_set_step(fo, FAILOVER_IDLE);
		}
		return;
	}
	if (fo->retry_at > 0 && fo_now(fo) >= fo->retry_at) {
		fo->retry_at = 0;
		failover_consider(fo);
	}
	if (fo->retry_at == 0 && fo->step != FAILOVER_CORROBORATE)
		ev_timer_stop(loop, w);
}

/* --- the public side ----------------------------------------------------- */

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
			failover_complete(fo);
		return;
	}
	if (fo_active(fo))
		return;
	failover_consider(fo);
}

static int
fo_restore(struct failover *fo, char *err, size_t errlen)
{
	const char	*step, *v;
	char		 key[160];
	int		 s, k;
	size_t		 i;
	long long	 started;

	step = journal_rec_get(fo->rec, "step");
	fo->paused = fo_rec_int(fo, "paused", 0) != 0;
	v = journal_rec_get(fo->rec, "hold_reason");
	if (v != NULL)
		fo_set_str(&fo->hold_reason, v);
	s = fo_str_index(failover_step_names, FAILOVER_STEP_MAX, step);
	if (s < 0) {
		if (step == NULL)
			return 0;
		snprintf(err, errlen, "unknown step '%s'", step);
		return -1;
	}
	if (s == FAILOVER_HELD || s == FAILOVER_FAILED ||
	    s == FAILOVER_DONE) {
		fo->step = s;
		return 0;
	}
	if (s < FAILOVER_FENCE_LAUNCH)
		return 0;	/* idle or corroborating: look again */
	if (journal_rec_get(fo->rec, "failover_id") == NULL) {
		snprintf(err, errlen, "step %s without a failover_id", step);
		return -1;
	}
	fo_progress_reset(fo);
	fo_set_str(&fo->id, journal_rec_get(fo->rec, "failover_id"));
	fo_set_str(&fo->old, journal_rec_get(fo->rec, "old_instance"));
	fo_set_str(&fo->new, journal_rec_get(fo->rec, "new_instance"));
	fo_set_str(&fo->vol_az, journal_rec_get(fo->rec, "az"));
	v = journal_rec_get(fo->rec, "mode");
	fo->restart = v != NULL && strcmp(v, "restart") == 0;
	k = fo_str_index(fo_kind_names, KIND_MAX,
	    journal_rec_get(fo->rec, "kind"));
	fo->kind = k < 0 ? KIND_FAILOVER : (enum fo_kind)k;
	fo_set_str(&fo->ami, journal_rec_get(fo->rec, "switch_ami"));
	fo_set_str(&fo->new_ip, journal_rec_get(fo->rec, "new_ip"));
	fo->prechecked = fo_rec_int(fo, "prechecked", 0) != 0;
	fo->rollback_auto = fo_rec_int(fo, "rollback_auto", 0) != 0;
	fo->evac_subnet = (size_t)fo_rec_int(fo, "evac_subnet", 0);
	fo_set_str(&fo->evac_az, journal_rec_get(fo->rec, "evac_az"));
	fo->snaps_known = fo->kind == KIND_EVACUATE;
	for (i = 0; i < fo->nvols && fo->kind == KIND_EVACUATE; i++) {
		snprintf(key, sizeof(key), "evac.%s.snap",
		    fo->vols[i].conf_id);
		fo_set_str(&fo->vols[i].snap, journal_rec_get(fo->rec, key));
		if (fo->vols[i].snap == NULL)
			fo->snaps_known = 0;
		snprintf(key, sizeof(key), "evac.%s.snap_time",
		    fo->vols[i].conf_id);
		fo->vols[i].snap_time = fo_rec_int(fo, key, 0);
		snprintf(key, sizeof(key), "evac.%s.new",
		    fo->vols[i].conf_id);
		if (journal_rec_get(fo->rec, key) != NULL) {
			fo_set_str(&fo->vols[i].id,
			    journal_rec_get(fo->rec, key));
			fo->vols[i].restored = 1;
		}
	}
	if (!fo->snaps_known)
		for (i = 0; i < fo->nvols; i++)
			fo_set_str(&fo->vols[i].snap, NULL);
	fo->manual = fo_rec_int(fo, "manual", 0) != 0;
	k = fo_str_index(fo_fence_names, 3,
	    journal_rec_get(fo->rec, "fence"));
	/* Stopping: look at it again; stop it again if it runs. */
	fo->fence = k == FENCE_DONE ? FENCE_DONE : FENCE_STOPPING;
	k = fo_str_index(fo_launch_names, 4,
	    journal_rec_get(fo->rec, "launch"));
	fo->launch = k < 0 ? LAUNCH_TODO : (enum fo_launch)k;
	/*
	 * Before ATTACH, keys are learnt again (the crash may have come
	 * between the file and the journal); from ATTACH on they were.
	 */
	if (fo->launch == LAUNCH_READY && fo_has_ssh_probe(fo) &&
	    s <= FAILOVER_DETACH)
		fo->launch = LAUNCH_RUNNING;
	if (s >= FAILOVER_ATTACH)
		fo->launch = LAUNCH_READY;
	if (fo->launch >= LAUNCH_SENT && fo->new == NULL)
		fo->launch = LAUNCH_TODO;
	for (k = 0; k < T_MAX; k++) {
		snprintf(key, sizeof(key), "t.%s", fo_timing_names[k]);
		v = journal_rec_get(fo->rec, key);
		if (v != NULL)
			fo->t[k] = strtod(v, NULL);
	}
	if (fo->launch != LAUNCH_READY)
		fo->t[T_LAUNCH] = -1;
	for (i = 0; i < fo->nvols; i++) {
		snprintf(key, sizeof(key), "volume.%s.state", fo->vols[i].id);
		k = fo_str_index(fo_vol_names, 6,
		    journal_rec_get(fo->rec, key));
		fo->vols[i].st = k < 0 ? VOL_UNKNOWN : (enum fo_vol)k;
	}
	fo->resumed = 1;
	started = fo_rec_int(fo, "started", (long long)time(NULL));
	fo->started = fo_now(fo) - (double)(time(NULL) - started);
	fo->launch_start = fo_now(fo);
	fo->fenced_at = fo_now(fo);
	fo->step = s;
	fo->step_start = fo_now(fo);
	return 1;
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
	fo->name = strdup(service_name(svc));
	if (fo->name == NULL)
		goto fail;
	ev_timer_init(&fo->tick, fo_on_tick, 0., FO_TICK);
	fo->tick.data = fo;
	ev_timer_init(&fo->refresh, fo_on_refresh_timer, 0., 0.05);
	fo->refresh.data = fo;
	fo_progress_reset(fo);
	fo_learned_path(fo, path, sizeof(path));
	service_set_learned_hosts(svc, path);

	rc = journal_load(env->state_dir, fo->name, &fo->rec, err,
	    sizeof(err));
	if (rc == -1) {
		fo->journal_bad = 1;
		fo->rec = journal_rec_new();
		if (fo->rec == NULL)
			goto fail;
		fo_set_str(&fo->hold_reason, err);
		alert_emit(ALERT_JOURNAL_CORRUPT, fo->name, "error", err,
		    "action", "service held; move the file away and run "
		    "failoverctl resume", NULL);
		fo->step = FAILOVER_HELD;
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
			fo->step = FAILOVER_HELD;
		} else if (rc == 1) {
			log_info("failover %s: resuming failover %s at step "
			    "%s", fo->name, fo->id,
			    failover_step_str(fo->step));
			alert_emit(ALERT_FAILOVER_STEP, fo->name,
			    "failover_id", fo->id, "step",
			    failover_step_str(fo->step), "resumed", "yes",
			    NULL);
			if (fo->step == FAILOVER_VERIFY)
				service_reset_probes(svc);
			ev_timer_again(env->loop, &fo->tick);
		}
	}
	if (!fo->journal_bad && fo->eip_ip == NULL &&
	    journal_rec_get(fo->rec, "eip_ip") != NULL) {
		fo_set_str(&fo->eip_ip, journal_rec_get(fo->rec, "eip_ip"));
		service_set_target(svc, fo->eip_ip);
	}
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
	fo_line_remove(fo);
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
	failover_begin(fo, "asked by a person", 1);
	buf_printf(out, "service %s: failover %s started (old instance %s); "
	    "follow it with: failoverctl status %s\n", fo->name, fo->id,
	    fo->old ? fo->old : "-", fo->name);
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
	const char *kept = journal_rec_get(fo->rec, "switch_kept");

	if (fo_refuse_move(fo, "switch", out) == -1)
		return -1;
	if (kept != NULL) {
		buf_printf(out, "service %s: the last switch still keeps %s; "
		    "failoverctl rollback %s or failoverctl switch %s "
		    "--finish first", fo->name, kept, fo->name, fo->name);
		return -1;
	}
	fo_switch_begin(fo, ami);
	buf_printf(out, "service %s: switch %s started: a new instance from "
	    "%s is checked on its private address before production moves "
	    "(old instance %s is kept); follow it with: failoverctl status "
	    "%s\n", fo->name, fo->id, ami, fo->old, fo->name);
	return 0;
}

int
failover_rollback(struct failover *fo, struct buf *out)
{
	char kept[64];

	if (journal_rec_get(fo->rec, "switch_kept") == NULL) {
		buf_printf(out, "service %s: no instance kept by a switch to "
		    "roll back to", fo->name);
		return -1;
	}
	snprintf(kept, sizeof(kept), "%s",
	    journal_rec_get(fo->rec, "switch_kept"));
	if (fo_refuse_move(fo, "rollback", out) == -1)
		return -1;
	if (strcmp(kept, fo->eip_instance) == 0) {
		buf_printf(out, "service %s: %s is production already",
		    fo->name, kept);
		return -1;
	}
	fo_rollback_begin(fo, fo->eip_instance, kept, "asked by a person",
	    1);
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

	if (journal_rec_get(fo->rec, "switch_kept") == NULL) {
		buf_printf(out, "service %s: no instance kept by a switch",
		    fo->name);
		return -1;
	}
	if (fo_active(fo)) {
		buf_printf(out, "service %s: a %s is in progress; finish "
		    "refused", fo->name, fo_kind_names[fo->kind]);
		return -1;
	}
	if (fo->env->ec2 == NULL) {
		buf_printf(out, "service %s: no EC2 client: %s", fo->name,
		    fo->env->ec2_error ? fo->env->ec2_error : "?");
		return -1;
	}
	snprintf(kept, sizeof(kept), "%s",
	    journal_rec_get(fo->rec, "switch_kept"));
	req = fo_req_instance(EC2_TERMINATE_INSTANCES, "InstanceId.1", kept);
	if (req == NULL || fo_send(fo, FO_REFRESH_BR, req,
	    FO_ACT_DEADLINE) == -1) {
		buf_printf(out, "service %s: TerminateInstances %s could not "
		    "be sent", fo->name, kept);
		return -1;
	}
	journal_rec_del(fo->rec, "switch_kept");
	fo_save(fo);
	alert_emit(ALERT_SWITCH_FINISHED, fo->name, "terminated_instance",
	    kept, "action", "no rollback possible from now on", NULL);
	buf_printf(out, "service %s: switch finished: %s is being "
	    "terminated\n", fo->name, kept);
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
		rc = journal_load(fo->env->state_dir, fo->name, &rec, err,
		    sizeof(err));
		if (rc == -1) {
			buf_printf(out, "service %s: the journal is still "
			    "unreadable: %s", fo->name, err);
			return -1;
		}
		if (rc == 0) {
			journal_rec_free(fo->rec);
			fo->rec = rec;
		}
		fo->journal_bad = 0;
	}
	fo->paused = on;
	if (!on && (fo->step == FAILOVER_HELD ||
	    fo->step == FAILOVER_FAILED)) {
		fo_set_str(&fo->hold_reason, NULL);
		failover_set_step(fo, FAILOVER_IDLE);
	}
	fo_save(fo);
	buf_printf(out, "service %s: %s\n", fo->name, on ?
	    "paused: probes run and alert, no automatic failover" :
	    "resumed: automatic failover is armed");
	if (!on)
		failover_consider(fo);
	return 0;
}

/*
 * The data volumes as they are now: after an evacuation, not the ids
 * of the configuration (which says where the service started).
 */
static void
fo_status_volumes(const struct failover *fo, struct buf *out, int json)
{
	const struct service_conf	*sc = fo_conf(fo);
	const char			*id;
	size_t				 i;

	if (json)
		buf_puts(out, ",\"volumes\":[");
	for (i = 0; i < sc->nvolumes; i++) {
		id = fo_vol_id(fo, sc->volumes[i].id);
		if (json) {
			buf_printf(out, "%s{\"id\":", i ? "," : "");
			buf_json_str(out, id);
			buf_puts(out, ",\"configured\":");
			buf_json_str(out, sc->volumes[i].id);
			buf_puts(out, ",\"device\":");
			buf_json_str(out, sc->volumes[i].device);
			buf_puts(out, "}");
		} else if (strcmp(id, sc->volumes[i].id) != 0) {
			buf_printf(out, "  volume %s: %s (restored by an "
			    "evacuation from %s, the configured one)\n",
			    sc->volumes[i].device, id, sc->volumes[i].id);
		}
	}
	if (json)
		buf_puts(out, "]");
}

void
failover_status(const struct failover *fo, struct buf *out, int json)
{
	double in = fo_now(fo) - fo->step_start;

	if (!json) {
		buf_printf(out, "  instance %s  az %s  eip %s%s\n",
		    fo->eip_instance ? fo->eip_instance : "-",
		    fo->vol_az ? fo->vol_az : "-",
		    fo->eip_ip ? fo->eip_ip : "-",
		    fo->aws_ok ? "" : "  (EC2 not reachable yet)");
		if (fo_active(fo))
			buf_printf(out, "  %s %s in progress: step %s "
			    "for %.1fs, old %s new %s%s%s%s%s\n",
			    fo_kind_names[fo->kind], fo->id,
			    failover_step_str(fo->step), in,
			    fo->old ? fo->old : "-", fo->new ? fo->new : "-",
			    fo->restart ? " (restart in place)" : "",
			    fo_precheck_waiting(fo) ? " (checking it on its "
			    "private address " : "",
			    fo_precheck_waiting(fo) ? fo->new_ip : "",
			    fo_precheck_waiting(fo) ? ")" : "");
		else if (fo->step == FAILOVER_DONE && fo->id != NULL)
			buf_printf(out, "  failover: none; the last one, %s, "
			    "completed (failoverctl history)\n", fo->id);
		else
			buf_printf(out, "  failover: %s%s%s%s\n",
			    fo->step == FAILOVER_IDLE ? "none" :
			    failover_step_str(fo->step),
			    fo->hold_reason ? " (" : "",
			    fo->hold_reason ? fo->hold_reason : "",
			    fo->hold_reason ? ")" : "");
		if (fo->paused)
			buf_puts(out, "  paused: no automatic failover\n");
		fo_status_volumes(fo, out, 0);
		if (journal_rec_get(fo->rec, "switch_kept") != NULL)
			buf_printf(out, "  kept: %s, production before the "
			    "last switch, stopped (failoverctl rollback %s, or "
			    "switch %s --finish)\n",
			    journal_rec_get(fo->rec, "switch_kept"), fo->name,
			    fo->name);
		return;
	}
	buf_puts(out, "\"instance\":");
	if (fo->eip_instance)
		buf_json_str(out, fo->eip_instance);
	else
		buf_puts(out, "null");
	buf_puts(out, ",\"az\":");
	if (fo->vol_az)
		buf_json_str(out, fo->vol_az);
	else
		buf_puts(out, "null");
	buf_puts(out, ",\"eip\":");
	if (fo->eip_ip)
		buf_json_str(out, fo->eip_ip);
	else
		buf_puts(out, "null");
	buf_printf(out, ",\"aws_ok\":%s,\"paused\":%s,\"step\":",
	    fo->aws_ok ? "true" : "false", fo->paused ? "true" : "false");
	buf_json_str(out, failover_step_str(fo->step));
	buf_puts(out, ",\"hold_reason\":");
	buf_json_str(out, fo->hold_reason ? fo->hold_reason : "");
	fo_status_volumes(fo, out, 1);
	buf_puts(out, ",\"kept_instance\":");
	if (journal_rec_get(fo->rec, "switch_kept") != NULL)
		buf_json_str(out, journal_rec_get(fo->rec, "switch_kept"));
	else
		buf_puts(out, "null");
	buf_puts(out, ",\"failover\":");
	if (!fo_active(fo)) {
		buf_puts(out, "null");
		return;
	}
	buf_puts(out, "{\"id\":");
	buf_json_str(out, fo->id);
	buf_puts(out, ",\"kind\":");
	buf_json_str(out, fo_kind_names[fo->kind]);
	buf_printf(out, ",\"checking_private\":%s",
	    fo_precheck_waiting(fo) ? "true" : "false");
	buf_puts(out, ",\"step\":");
	buf_json_str(out, failover_step_str(fo->step));
	buf_printf(out, ",\"step_for\":%.1f,\"old\":", in);
	if (fo->old)
		buf_json_str(out, fo->old);
	else
		buf_puts(out, "null");
	buf_puts(out, ",\"new\":");
	if (fo->new)
		buf_json_str(out, fo->new);
	else
		buf_puts(out, "null");
	buf_printf(out, ",\"restart_in_place\":%s}",
	    fo->restart ? "true" : "false");
}

void
failover_history(const struct failover *fo, struct buf *out, int json)
{
	static const char *fields[] = { "id", "result", "kind", "trigger",
		"mode", "old", "new", "az", "reason" };
	long long	next = fo_rec_int(fo, "history.next", 0), i;
	char		key[96], when[32];
	const char	*v;
	size_t		f;
	int		k, first = 1;
	time_t		started;
	struct tm	tm;

	for (i = next - FO_HISTORY_MAX; i < next; i++) {
		snprintf(key, sizeof(key), "h.%lld.id", i);
		if (i < 0 || journal_rec_get(fo->rec, key) == NULL)
			continue;
		snprintf(key, sizeof(key), "h.%lld.started", i);
		started = (time_t)fo_rec_int(fo, key, 0);
		gmtime_r(&started, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (json) {
			buf_printf(out, "%s{\"service\":", first ? "" : ",");
			buf_json_str(out, fo->name);
			buf_puts(out, ",\"started\":");
			buf_json_str(out, when);
			for (f = 0; f < sizeof(fields) / sizeof(*fields);
			    f++) {
				snprintf(key, sizeof(key), "h.%lld.%s", i,
				    fields[f]);
				v = journal_rec_get(fo->rec, key);
				buf_printf(out, ",\"%s\":", fields[f]);
				if (v != NULL)
					buf_json_str(out, v);
				else
					buf_puts(out, "null");
			}
			buf_puts(out, ",\"timings\":{");
			for (k = 0; k < T_MAX; k++) {
				snprintf(key, sizeof(key), "h.%lld.t.%s", i,
				    fo_timing_names[k]);
				v = journal_rec_get(fo->rec, key);
				buf_printf(out, "%s\"%s\":%s", k ? "," : "",
				    fo_timing_names[k], v ? v : "null");
			}
			buf_puts(out, "}}");
			first = 0;
			continue;
		}
		snprintf(key, sizeof(key), "h.%lld.id", i);
		buf_printf(out, "%s %s %s", when, fo->name,
		    journal_rec_get(fo->rec, key));
		for (f = 1; f < sizeof(fields) / sizeof(*fields); f++) {
			snprintf(key, sizeof(key), "h.%lld.%s", i, fields[f]);
			v = journal_rec_get(fo->rec, key);
			if (v != NULL)
				buf_printf(out, " %s=%s", fields[f], v);
		}
		buf_puts(out, "\n   ");
		for (k = 0; k < T_MAX; k++) {
			snprintf(key, sizeof(key), "h.%lld.t.%s", i,
			    fo_timing_names[k]);
			v = journal_rec_get(fo->rec, key);
			if (v != NULL)
				buf_printf(out, " %s=%ss", fo_timing_names[k],
				    v);
		}
		buf_puts(out, "\n");
	}
}

/* --- for the metrics (metrics.c reads, never changes) ----------------- */

_Static_assert(T_MAX == FAILOVER_METRICS_TIMINGS,
    "failover.h's FAILOVER_METRICS_TIMINGS is fo_timing_names' size");

const char *
failover_metrics_kind(size_t i)
{
	return i < KIND_MAX ? fo_kind_names[i] : NULL;
}

void
failover_metrics_last(const struct failover *fo,
    struct failover_metrics_last *out)
{
	char		 key[96];
	const char	*v;
	long long	 i;
	int		 k;

	memset(out, 0, sizeof(*out));
	out->count = fo_rec_int(fo, "history.next", 0);
	for (k = 0; k < T_MAX; k++) {
		out->timing_names[k] = fo_timing_names[k];
		out->timings[k] = -1;
	}
	if (out->count <= 0)
		return;
	i = out->count - 1;
	snprintf(key, sizeof(key), "h.%lld.kind", i);
	out->kind = journal_rec_get(fo->rec, key);
	snprintf(key, sizeof(key), "h.%lld.result", i);
	out->result = journal_rec_get(fo->rec, key);
	snprintf(key, sizeof(key), "h.%lld.started", i);
	out->started = fo_rec_int(fo, key, 0);
	for (k = 0; k < T_MAX; k++) {
		snprintf(key, sizeof(key), "h.%lld.t.%s", i,
		    fo_timing_names[k]);
		v = journal_rec_get(fo->rec, key);
		if (v != NULL)
			out->timings[k] = strtod(v, NULL);
	}
}
