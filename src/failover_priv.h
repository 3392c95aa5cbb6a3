/*
 * The failover engine's private header: the state of one service's
 * engine (struct failover) and what its files share. The engine is a
 * core (src/failover.c: the step, the calls, the tick, the public API)
 * and one file per concern around it (src/failover_*.c); nothing
 * outside those files includes this header, except the engine's own
 * unit tests.
 */
#ifndef FAILOVERD_FAILOVER_PRIV_H
#define FAILOVERD_FAILOVER_PRIV_H

#include <stddef.h>

#include "failoverd/admission.h"
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
#define FO_REFRESH_FOLLOW	2.0	/* a follower, service unhealthy */
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

enum fo_fence { FENCE_TODO, FENCE_STOPPING, FENCE_DONE, FENCE_MAX };
enum fo_launch { LAUNCH_TODO, LAUNCH_SENT, LAUNCH_RUNNING, LAUNCH_READY,
	LAUNCH_MAX };
enum fo_vol {
	VOL_UNKNOWN,
	VOL_ELSEWHERE,		/* attached to another instance */
	VOL_DETACHING,
	VOL_AVAILABLE,
	VOL_ATTACHING,
	VOL_ATTACHED,		/* to the replacement */
	VOL_MAX
};

/* What the move is for; journaled as kind=. */
enum fo_kind { KIND_FAILOVER, KIND_SWITCH, KIND_ROLLBACK, KIND_EVACUATE,
	KIND_MAX };

/* The timings of failover_completed, in this order. */
enum fo_timing {
	T_DETECT, T_FENCE, T_LAUNCH, T_DETACH, T_ATTACH, T_ASSOCIATE,
	T_VERIFY, T_TOTAL, T_CRITICAL, T_MAX
};

extern const char	*fo_fence_names[FENCE_MAX];
extern const char	*fo_launch_names[LAUNCH_MAX];
extern const char	*fo_vol_names[VOL_MAX];
extern const char	*fo_kind_names[KIND_MAX];
extern const char	*fo_timing_names[T_MAX];

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
	int		 seen_free;	/* since our DetachVolume */
	int		 forced;
	int		 attach_sent;
};

/*
 * One ended move, as the history keeps it (h.<n>.* in the journal):
 * what status and history show, what cooldown and window count.
 */
struct fo_history {
	char		*id;		/* NULL: no such entry */
	char		*kind;
	char		*result;
	char		*reason;
	char		*mode;
	char		*trigger;
	char		*old;
	char		*new;
	char		*az;
	long long	 started;	/* epoch seconds, 0: not known */
	double		 t[T_MAX];	/* -1: not measured */
};

/*
 * What a call's reply means, for the handler it carries: the step or
 * the kind may have changed since it was sent, so each handler checks
 * that its reply still concerns the move as it stands.
 */
typedef void	fo_reply_fn(struct failover *fo, struct ec2_result *res,
		    void *arg);

struct fo_call {
	struct fo_call		*next;
	struct failover		*fo;
	struct ec2_call		*call;
	enum fo_branch		 branch;
	fo_reply_fn		*on_reply;
	void			*arg;	/* AttachVolume's volume, or NULL */
};

/* What a move begins from (fo_move_begin, fo_kind_ops.begin). */
struct fo_move {
	enum fo_kind	 kind;
	const char	*why;
	int		 manual;
	const char	*from;		/* the instance it moves away from */
	const char	*to;		/* rollback: the instance kept */
	const char	*ami;		/* switch: the new release */
};

/* What a reply says, for a handler (fo_outcome). */
enum fo_outcome {
	FO_OK,		/* the call worked */
	FO_AGAIN,	/* a passing trouble (network, throttling): next tick */
	FO_REFUSED	/* AWS said no */
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
	struct admission_ticket	 refresh_ticket; /* fo_refresh_line's */
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
	char			*switch_kept;	/* production before a switch */
	char			*attach_refused; /* first refusal, pending */
	double			 retry_at;	/* idle: consider again */

	/*
	 * What the service's moves left (journaled with the service's
	 * fields, fo_fields[]): the volumes and subnet an evacuation
	 * moved it to, the last move until EC2 shows it, the instances
	 * whose host keys the learned-hosts file holds, the history.
	 */
	char			**ident_vols;	/* per configured volume: */
	size_t			 nident;	/* restored into, NULL: itself */
	char			*ident_subnet;
	char			*moved_from;	/* "": from no instance */
	char			*moved_to;
	long long		 moved_at;	/* wall clock, 0: none */
	char			*learned_instance;
	char			*learned_instances; /* newest last */
	long long		 last_failover;	/* wall clock, 0: none */
	long long		 history_next;	/* moves ended so far */
	struct fo_history	 history[FO_HISTORY_MAX]; /* n % MAX */

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
	int			 restart;	/* restart in place */
	int			 manual;
	int			 resumed;
	char			*writer;	/* the record's, another's */
	int			 keys_relearn;	/* taken over past DETACH */
	/*
	 * The calls a move's end makes (stop the idle replacement, the
	 * old instance's policy) while its record is still on its way to
	 * a cluster's etcd: sent when it lands (fo_end_retry).
	 */
	struct fo_end_call {
		enum ec2_action	 action;
		char		*instance;
		fo_reply_fn	*on_reply;
	}			 end_calls[2];
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
	long long		 started_at;	/* the same, wall clock */
	double			 launch_start;
	double			 fenced_at;
	double			 t[T_MAX];	/* -1: not there yet */
	double			 vols_seen_at;	/* ev_now: fo_volumes_progress */
	struct fo_volume	*vols;
	size_t			 nvols;
};

/* strcmp for what EC2 may leave out of a reply. */
static inline int
fo_is(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static inline const struct service_conf *
fo_conf(const struct failover *fo)
{
	return service_conf(fo->svc);
}

static inline const struct policy_conf *
fo_policy(const struct failover *fo)
{
	return &service_conf(fo->svc)->policy;
}

static inline double
fo_now(const struct failover *fo)
{
	return ev_now(fo->env->loop);
}

/* Calls can go out: to EC2, or to a test's fake (failover_env.send). */
static inline int
fo_has_ec2(const struct failover *fo)
{
	return fo->env->ec2 != NULL || fo->env->send != NULL;
}

static inline int
fo_active(const struct failover *fo)
{
	return fo->step >= FAILOVER_FENCE_LAUNCH &&
	    fo->step <= FAILOVER_VERIFY;
}

void	fo_rec_setf(struct failover *fo, const char *key, const char *fmt,
	    ...) __attribute__((format(printf, 3, 4)));

/* failover.c */
int	fo_str_index(const char *const *names, size_t n, const char *s);
void __attribute__((format(printf, 2, 3)))	fo_set_holdf(struct failover *fo, const char *fmt, ...);
int	fo_set_str(char **dst, const char *src);
void	fo_set_step(struct failover *fo, enum failover_step to);
void	fo_resume_step(struct failover *fo, enum failover_step to);
int	fo_step_index(const char *name);
int	fo_send(struct failover *fo, enum fo_branch br, struct ec2_request *req,
	    double deadline, fo_reply_fn *on_reply, void *arg);
void	fo_cancel_branch(struct failover *fo, int br);
struct ec2_request	*fo_req(enum ec2_action a);
struct ec2_request	*fo_req_instance(enum ec2_action a, const char *key, const char *id);
enum fo_outcome	fo_outcome(struct failover *fo, struct ec2_result *res);
void	fo_poll(struct failover *fo);
void	fo_next(struct failover *fo);
int	fo_progress_reset(struct failover *fo);
int	fo_move_begin(struct failover *fo, const struct fo_move *m);
int	fo_move_turn(struct failover *fo, enum fo_kind kind, const char *why);
int	fo_begin(struct failover *fo, const char *why, int manual);
int	fo_failover_begin(struct failover *fo, const struct fo_move *m);

/* failover_journal.c */
void	fo_rec_set(struct failover *fo, const char *key, const char *value);
void	fo_rec_setf(struct failover *fo, const char *key, const char *fmt, ...);
int	fo_save(struct failover *fo);
int	fo_restore_service(struct failover *fo);
void	fo_journal_failed(struct failover *fo, const char *error);
void	fo_rec_clear_progress(struct failover *fo);
long long	fo_rec_int(const struct failover *fo, const char *key, long long def);
void	fo_history_add(struct failover *fo, const char *result, const char *why);
const struct fo_history	*fo_history_at(const struct failover *fo,
	    long long n);
void	fo_service_free(struct failover *fo);
int	fo_restore(struct failover *fo, char *err, size_t errlen);

/* failover_identity.c */
const char	*fo_vol_id(const struct failover *fo, const char *conf_id);
void	fo_refresh_line_join(struct failover *fo);
void	fo_refresh_line_leave(struct failover *fo);
void	fo_refresh_over(struct failover *fo);
void	fo_on_refresh_timer(struct ev_loop *loop, ev_timer *w, int revents);
void	fo_settle_begin(struct failover *fo);
void	fo_refresh_address(struct failover *fo, struct ec2_result *res);
void	fo_refresh_volumes(struct failover *fo, struct ec2_result *res);
const char	*fo_subnet(const struct failover *fo);

/* failover_hostkeys.c */
int	fo_journal_load(struct failover *fo, struct journal_rec **rec,
	    char *err, size_t len);
int	fo_may_act(const struct failover *fo, char *why, size_t len);
enum service_verdict fo_verdict(const struct failover *fo);
void	fo_relearn_keys(struct failover *fo);
void	fo_end_retry(struct failover *fo);
void	fo_learned_path(const struct failover *fo, char *out, size_t len);
int	fo_has_ssh_probe(const struct failover *fo);
int	fo_add_user_data(struct failover *fo, struct ec2_request *req, char *why,
	    size_t len);
int	fo_keys_known(struct failover *fo);
void	fo_on_console(struct failover *fo, struct ec2_result *res,
	    void *arg);
void	fo_on_current_console(struct failover *fo, struct ec2_result *res,
	    void *arg);

/* failover_evacuate.c */
int	fo_evacuate_begin(struct failover *fo, const struct fo_move *m);
void	fo_evac_next_subnet(struct failover *fo, const char *why);
void	fo_on_zones(struct failover *fo, struct ec2_result *res,
	    void *arg);
void	fo_on_evac_snapshots(struct failover *fo, struct ec2_result *res,
	    void *arg);
void	fo_on_evac_sources(struct failover *fo, struct ec2_result *res,
	    void *arg);
void	fo_on_evac_create(struct failover *fo, struct ec2_result *res,
	    void *arg);
int	fo_evac_volumes(struct failover *fo);
void	fo_evac_done(struct failover *fo);

/* failover_launch.c */
int	fo_launch_ready(struct failover *fo);
const char	*fo_ami(const struct failover *fo);
void	fo_launch_poll(struct failover *fo);
struct ec2_request	*fo_launch_new(struct failover *fo,
	    fo_reply_fn **on_reply);
struct ec2_request	*fo_launch_kept(struct failover *fo,
	    fo_reply_fn **on_reply);
void	fo_failover_no_capacity(struct failover *fo, const char *why);
void	fo_no_capacity_fail(struct failover *fo, const char *why);
void	fo_on_run(struct failover *fo, struct ec2_result *res,
	    void *arg);
void	fo_on_launch_describe(struct failover *fo, struct ec2_result *res,
	    void *arg);

/* failover_steps.c */
int	fo_stop_refused(struct failover *fo, struct ec2_result *res);
void	fo_on_fence_describe(struct failover *fo, struct ec2_result *res,
	    void *arg);
void	fo_on_volumes(struct failover *fo, struct ec2_result *res,
	    void *arg);
void	fo_on_holder_describe(struct failover *fo, struct ec2_result *res,
	    void *arg);
void	fo_associate_poll(struct failover *fo);
void	fo_on_associate(struct failover *fo, struct ec2_result *res,
	    void *arg);
void	fo_step_fence_launch(struct failover *fo);
void	fo_step_detach(struct failover *fo);
void	fo_step_attach(struct failover *fo);
void	fo_step_verify(struct failover *fo);
void	fo_on_attach(struct failover *fo, struct ec2_result *res, void *arg);

/* failover_end.c */
void	fo_stop_idle_replacement(struct failover *fo);
void	fo_end(struct failover *fo, enum failover_step to, const char *result,
	    const char *why);
void	fo_fail(struct failover *fo, const char *why);
void	fo_recovered(struct failover *fo);
void	fo_complete(struct failover *fo);

/* failover_switch.c */
void	fo_precheck_start(struct failover *fo);
int	fo_precheck_waiting(const struct failover *fo);
void	fo_precheck_passed(struct failover *fo);
void	fo_switch_fail(struct failover *fo, const char *why, const char *stands);
void	fo_switch_done(struct failover *fo, char v[T_MAX][32]);
void	fo_rollback_done(struct failover *fo, char v[T_MAX][32]);
void	fo_rollback_fail(struct failover *fo, const char *why,
	    const char *stands);
int	fo_switch_may_fence(const struct failover *fo);
int	fo_switch_begin(struct failover *fo, const struct fo_move *m);
int	fo_rollback_begin(struct failover *fo, const struct fo_move *m);

/* failover_consider.c */
void	fo_hold(struct failover *fo, const char *why);
int	fo_wants_failover(const struct failover *fo);
int	fo_can_act(struct failover *fo, char *why, size_t len);
void	fo_consider(struct failover *fo);
void	fo_corroborate_decide(struct failover *fo);
void	fo_on_corroborate(struct failover *fo, struct ec2_result *res,
	    void *arg);

/*
 * What differs between the kinds of move (failover_end.c): how a move
 * of the kind begins (its own fields and its "started" event; -1 when
 * out of memory, before anything is said), the launch branch's first
 * call (NULL: nothing to send yet; on_reply is its handler), what no
 * capacity for the launch means, whether the fence may touch
 * production yet (the point of no return), what a failure does
 * (stands: what stands now, for a person), what completion says (v:
 * the timings).
 */
struct fo_kind_ops {
	const char	*id_prefix;	/* of the move's id, its ClientToken */
	int		 may_evacuate;	/* an impaired AZ turns it over */
	int		 starts_kept;	/* launches by starting an instance */
	int	(*begin)(struct failover *fo, const struct fo_move *m);
	struct ec2_request *(*launch)(struct failover *fo,
		    fo_reply_fn **on_reply);
	void	(*no_capacity)(struct failover *fo, const char *why);
	int	(*may_fence)(const struct failover *fo);
	void	(*on_fail)(struct failover *fo, const char *why,
		    const char *stands);
	void	(*on_complete)(struct failover *fo, char v[T_MAX][32]);
};
extern const struct fo_kind_ops fo_kinds[KIND_MAX];

/* Reply handlers (fo_reply_fn) defined with the calls they answer. */
void	fo_on_start(struct failover *fo, struct ec2_result *res, void *arg);
void	fo_on_stop(struct failover *fo, struct ec2_result *res, void *arg);
void	fo_on_idle_stopped(struct failover *fo, struct ec2_result *res,
	    void *arg);
void	fo_on_old_started(struct failover *fo, struct ec2_result *res,
	    void *arg);
void	fo_on_terminated(struct failover *fo, struct ec2_result *res,
	    void *arg);

#endif
