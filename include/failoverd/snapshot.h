/*
 * snapshot: scheduled EBS snapshots of a service's data volumes, with
 * retention that only ever deletes snapshots failoverd took for this
 * service.
 *
 * A run: (pre_command over SSH) -> CreateSnapshot of every data volume,
 * tagged -> (post_command, always, once pre_command was started, even
 * when a snapshot call failed) -> retention -> done. The schedule is an
 * interval from the last good run, optionally only inside a UTC
 * time-of-day window. The last good run is kept in
 * <state_dir>/<service>.snapshot.journal, so a run that fell due while
 * the daemon was down is taken as soon as it starts. The same file
 * says when a pre_command was started and its post_command has not run
 * yet: a daemon stopped in between runs that post_command at start.
 *
 * A snapshot is failoverd's, for service S, when it carries both
 * failoverd:taken-by=failoverd and failoverd:service=S. Snapshots
 * without those tags (taken by a person, by another tool, or by AWS
 * for an AMI) are never deleted.
 */
#ifndef FAILOVERD_SNAPSHOT_H
#define FAILOVERD_SNAPSHOT_H

#include <stddef.h>
#include <time.h>

#include <ev.h>

#include "failoverd/buf.h"
#include "failoverd/conf.h"

struct ec2_client;
struct ec2_snapshot;
struct service;
struct snapshot;

#define SNAPSHOT_TAG_SERVICE	"failoverd:service"
#define SNAPSHOT_TAG_VOLUME	"failoverd:volume"
#define SNAPSHOT_TAG_DEVICE	"failoverd:device"
#define SNAPSHOT_TAG_TAKEN_BY	"failoverd:taken-by"
#define SNAPSHOT_TAG_TIME	"failoverd:time"
#define SNAPSHOT_TAKEN_BY	"failoverd"
/*
 * Every DescribeSnapshots asks for Owner.1=self (without it EC2 also
 * returns every public snapshot, anyone's) and pages by this many, as
 * its API reference recommends; the EC2 client reads every page.
 */
#define SNAPSHOT_OWNER		"self"
#define SNAPSHOT_PAGE		"500"

/* --- the pure parts (unit-tested) ----------------------------------- */

/* Whether minute of the UTC day m is in [start, end), wrapping at 24h. */
int	 snapshot_window_contains(int start, int end, int m);

/* The first time >= t inside the window (t itself when no window). */
time_t	 snapshot_window_next(int start, int end, time_t t);

/*
 * When the next scheduled run is due (UTC seconds), given the last good
 * run (0: never) and now: last + interval, or now when that has passed
 * (a missed run is taken at once), moved to the window's next opening.
 * 0 when nothing is scheduled (interval 0).
 */
time_t	 snapshot_next_due(const struct snapshot_conf *c, time_t last_ok,
	    time_t now);

/* One of a service's snapshots, as retention sees it. */
struct snapshot_item {
	const char	*id;
	const char	*volume;	/* failoverd:volume, else the source */
	time_t		 taken;
	int		 completed;
	int		 ours;		/* snapshot_is_ours() */
};

/*
 * Marks in del[i] (1/0) which items retention deletes and returns how
 * many: per volume, completed snapshots of ours beyond the `keep` newest
 * (keep > 0) or older than max_age seconds (max_age > 0). Never one that
 * is not ours, never one still pending, and never the newest completed
 * one of a volume: a schedule that stopped working must not end with a
 * volume that has no snapshot at all.
 */
size_t	 snapshot_retention(const struct snapshot_item *items, size_t n,
	    int keep, double max_age, time_t now, int *del);

/* Tagged taken-by=failoverd and service=service. */
int	 snapshot_is_ours(const struct ec2_snapshot *s, const char *service);

/* "2026-11-26T15:20:49.000Z" -> seconds; -1 when it is not that. */
int	 snapshot_parse_time(const char *iso, time_t *out);

/* --- the runtime ---------------------------------------------------- */

struct snapshot_env {
	struct ev_loop		*loop;
	struct ec2_client	*ec2;		/* NULL: AWS not usable */
	const char		*state_dir;
	/*
	 * A data volume's id now (failover_volume_id): after an AZ
	 * evacuation the service's data lives in restored volumes, and
	 * those are the ones to snapshot. NULL: the configured ids.
	 */
	const char		*(*volume_id)(void *arg,
				    const struct service *svc,
				    const char *conf_id);
	void			*arg;
	/*
	 * A cluster's member: 1 when it may act (leads), else 0 with why;
	 * scheduled runs are the leader's only. NULL: always.
	 */
	int			(*may_act)(void *arg, char *why, size_t len);
};

/*
 * Reads the service's configuration through svc at every run (so a
 * reload applies at once), loads the last good run and arms the
 * schedule. NULL only when out of memory.
 */
struct snapshot	*snapshot_new(const struct snapshot_env *env,
		    struct service *svc);
/* Cancels calls and commands in flight; a running hook is abandoned. */
void		 snapshot_free(struct snapshot *s);

/* The configuration changed: recompute when the next run is due. */
void		 snapshot_reschedule(struct snapshot *s);

/* `failoverctl snapshot`: starts a run now. -1 with why in out. */
int		 snapshot_take(struct snapshot *s, struct buf *out);

/*
 * `failoverctl snapshots`: the service's snapshots as last described
 * (after every run, at start, and refreshed by each call of this), and
 * the schedule.
 */
void		 snapshot_list(struct snapshot *s, struct buf *out, int json);

/* Whether a run is in progress (for tests and status). */
int		 snapshot_running(const struct snapshot *s);

/* The last run that took a snapshot of every volume; 0: never. */
time_t		 snapshot_last_ok(const struct snapshot *s);
/*
 * For each volume in the last description, the start time of its
 * newest completed snapshot (volumes with none are left out).
 */
void		 snapshot_newest_each(const struct snapshot *s,
		    void (*fn)(const char *volume, time_t taken, void *arg),
		    void *arg);

#endif
