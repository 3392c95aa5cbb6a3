/*
 * failover: the per-service state machine that replaces a dead
 * production instance through the EC2 API. docs/ARCHITECTURE.md
 * describes the engine, its files and its journal; the step chain is
 * drawn above fo_steps[] in src/failover.c.
 *
 * One struct failover per service. It learns the service's identity
 * from EC2 (the Elastic IP's address and the instance it points at, the
 * data volumes' AZ), listens to the service's verdict, and on DOWN
 * corroborates, fences the old instance and launches the replacement
 * at the same time, moves the volumes, re-associates the EIP and
 * verifies the replacement with the service's own probes. Every step
 * is journaled (journal.h) before and after, so a restarted daemon
 * resumes where it stood and re-describes AWS before acting again.
 */
#ifndef FAILOVERD_FAILOVER_H
#define FAILOVERD_FAILOVER_H

#include <ev.h>

#include "failoverd/buf.h"
#include "failoverd/service.h"

struct ec2_call;
struct ec2_client;
struct ec2_request;
struct ec2_result;
struct failover;
struct journal_rec;
struct tilt;

enum failover_step {
	FAILOVER_IDLE,
	FAILOVER_CORROBORATE,
	FAILOVER_FENCE_LAUNCH,	/* stop the old, launch the new, at once */
	FAILOVER_DETACH,	/* fenced; the launch may still run */
	FAILOVER_ATTACH,
	FAILOVER_ASSOCIATE,
	FAILOVER_VERIFY,
	FAILOVER_DONE,
	FAILOVER_FAILED,	/* waits for a person */
	FAILOVER_HELD,		/* waits for a person */
	FAILOVER_STEP_MAX
};

const char	*failover_step_str(enum failover_step s);

/* What every failover shares; owned by the daemon, which may update it. */
struct failover_env {
	struct ev_loop		*loop;
	struct ec2_client	*ec2;		/* NULL: AWS not usable */
	const char		*ec2_error;	/* why ec2 is NULL */
	const char		*state_dir;
	/*
	 * cluster.host_key_secret, the secret every member shares, or
	 * NULL: the host keys come from state_dir's own (hostkey.h).
	 */
	const char		*hostkey_secret;
	/* Tilted (tilt.h): no move starts, no new call goes. May be NULL. */
	const struct tilt	*tilt;
	/*
	 * 1 when the watchdog itself looks cut off: every service it
	 * watches went DOWN within a few seconds of each other; 0 when
	 * not; -1 while others may still follow (ask again later).
	 */
	int			(*isolated)(void *arg);
	/* The AMI to launch from (a baked one), or NULL: launch.ami. */
	const char		*(*replacement_ami)(void *arg,
				    const struct service *svc);
	void			*arg;
	/*
	 * A cluster's hooks (cluster.h), all NULL for a single watchdog,
	 * which keeps its journal in state_dir, acts on its own verdicts
	 * and may always act.
	 *
	 * journal_load: as journal_load() (0 with *rec, 1 none, -1 bad);
	 * *writer (freed by the engine) names the member that wrote it.
	 * journal_save: 0 the record is durable, 1 a write of it is under
	 * way (failover_journal_written tells its end), -1 not written.
	 * may_act: 1 when this watchdog may change the account now, else
	 * 0 with why filled. verdict: the verdict that moves the engine
	 * (a quorum's) in place of the service's own.
	 */
	int			(*journal_load)(void *arg, const char *service,
				    struct journal_rec **rec, char **writer,
				    char *err, size_t len);
	int			(*journal_save)(void *arg, const char *service,
				    const struct journal_rec *rec, char *err,
				    size_t len);
	int			(*may_act)(void *arg, char *why, size_t len);
	enum service_verdict	(*verdict)(void *arg,
				    const struct service *svc);
	/*
	 * Where the engine's EC2 calls go, as ec2_call() and
	 * ec2_call_cancel() (ec2.h) would take them; NULL: to ec2. The
	 * engine's unit tests answer here from memory.
	 */
	struct ec2_call		*(*send)(void *send_arg,
				    struct ec2_request *req, double deadline,
				    void (*done)(struct ec2_result *res,
				    void *arg), void *done_arg);
	void			(*cancel)(void *send_arg,
				    struct ec2_call *call);
	void			*send_arg;
};

/*
 * Loads the service's journal and resumes a failover in progress. A
 * corrupt journal holds the service (journal_corrupt) and is never
 * written over. NULL only when out of memory.
 */
struct failover	*failover_new(const struct failover_env *env,
		    struct service *svc);
/* Cancels calls in flight; the journal stays as it is on disk. */
void		 failover_free(struct failover *fo);

/*
 * A tilt is over (tilt_env.on_over): the steps' deadlines move on by
 * the held seconds that time was not trusted, and a DOWN held meanwhile
 * is considered again.
 */
void		 failover_tilt_over(struct failover *fo, double held);

/*
 * A journal write the journal_save hook said was under way has landed:
 * the call it was written for goes at once, not a poll later.
 */
void		 failover_journal_written(struct failover *fo);

/* The move in progress's id, or NULL. */
const char	*failover_id(const struct failover *fo);

/*
 * Who wrote the record this engine resumed from (journal_load hook's
 * writer), or NULL: a new leader tells a takeover by it.
 */
const char	*failover_writer(const struct failover *fo);

/* The service's verdict changed (service_env.on_verdict). */
void		 failover_on_verdict(struct failover *fo,
		    enum service_verdict from, enum service_verdict to);

/* A switch's check of its new instance reached a verdict (on_check). */
void		 failover_on_check(struct failover *fo,
		    enum service_verdict to);

enum failover_step failover_step(const struct failover *fo);

/*
 * The service's identity as it stands after any evacuation: a data
 * volume's id now (conf_id, or the volume an evacuation restored it
 * into), and the subnet replacements launch into (launch.subnet, or the
 * evacuation's; NULL when neither is set). Snapshots and preflight read
 * the volumes through these, never the configuration alone.
 */
const char	*failover_volume_id(const struct failover *fo,
		    const char *conf_id);
const char	*failover_subnet(const struct failover *fo);
/* ev_now when the service last went DOWN, or 0 while it is not DOWN. */
double		 failover_down_since(const struct failover *fo);

/* Control commands; -1 with the reason in out when refused. */
int		 failover_manual(struct failover *fo, struct buf *out);
int		 failover_pause(struct failover *fo, int on, struct buf *out);
/*
 * Release switch: a new instance from ami, checked with the service's
 * probes on its private address, then the move (old one stopped and
 * kept); a failed move rolls back by itself. rollback moves back to
 * the kept instance; switch_finish terminates it.
 */
int		 failover_switch(struct failover *fo, const char *ami,
		    struct buf *out);
int		 failover_rollback(struct failover *fo, struct buf *out);
int		 failover_switch_finish(struct failover *fo, struct buf *out);

/* One service's part of `failoverctl status` and `history`. */
void		 failover_status(const struct failover *fo, struct buf *out,
		    int json);
void		 failover_history(const struct failover *fo, struct buf *out,
		    int json);

/*
 * For the metrics: the kinds of move ("failover", "switch", "rollback",
 * "evacuation"; NULL past the end), and what this service's journal
 * holds of the moves it recorded: how many ever (a count that only
 * grows, across restarts) and the last one's kind, result ("completed",
 * "failed"), start (UTC seconds) and step timings in seconds (-1: not
 * reached; the names are the failover_completed event's: detect,
 * fence, launch, detach, attach, associate, verify, total,
 * critical_path). The strings are valid until the engine's next change.
 */
#define FAILOVER_METRICS_TIMINGS	9
struct failover_metrics_last {
	long long	 count;
	const char	*kind;
	const char	*result;
	long long	 started;
	const char	*timing_names[FAILOVER_METRICS_TIMINGS];
	double		 timings[FAILOVER_METRICS_TIMINGS];
};
const char	*failover_metrics_kind(size_t i);
void		 failover_metrics_last(const struct failover *fo,
		    struct failover_metrics_last *out);

/*
 * The host key lines of a cloud-init console ("-----BEGIN SSH HOST KEY
 * KEYS-----" block): returns the number of "type base64" keys copied
 * into out (one per line), 0 when the block is not complete yet.
 */
size_t		 failover_console_keys(const char *console, struct buf *out);

#endif
