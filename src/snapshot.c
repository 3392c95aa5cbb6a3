/*
 * Scheduled, tagged EBS snapshots with safe retention (snapshot.h).
 *
 * A run is a small state machine, one step at a time, each logged by
 * snapshot_set_step():
 *
 *   resolve (EIP address, only for hooks without an address of their own)
 *   -> pre (pre_command) -> create (CreateSnapshot per volume, at once)
 *   -> post (post_command) -> list (DescribeSnapshots) -> delete -> idle
 *
 * post runs whenever pre was started, whatever happened after it: a
 * frozen file system left frozen is worse than a missed snapshot.
 *
 * The schedule uses the wall clock on purpose: the window is a time of
 * day and the last run must mean the same after a restart. The timer
 * that waits for it is relative and re-checks when it fires, so a clock
 * step only moves a run, never loses or doubles one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "failoverd/alert.h"
#include "failoverd/ec2.h"
#include "failoverd/journal.h"
#include "failoverd/log.h"
#include "failoverd/service.h"
#include "failoverd/snapshot.h"
#include "failoverd/sshcmd.h"

/* Each EC2 call of a run finishes (or fails) within this. */
#define SNAPSHOT_CALL_DEADLINE	120.0
/* A failed run is retried this soon (or at the interval if sooner). */
#define SNAPSHOT_RETRY		600.0
#define SNAPSHOT_LEADER_LOOK	30.0	/* a follower: lead now? */
#define SNAPSHOT_DAY		86400

enum snapshot_step {
	STEP_IDLE,
	STEP_RESOLVE,
	STEP_PRE,
	STEP_CREATE,
	STEP_POST,
	STEP_LIST,
	STEP_DELETE,
	STEP_MAX
};

static const char *const snapshot_step_names[STEP_MAX] = {
	"idle", "resolve", "pre", "create", "post", "list", "delete"
};

/* One volume of a run. */
struct snapshot_vol {
	struct snapshot	*s;
	char		*id;
	char		*device;
	struct ec2_call	*call;
	char		*snap_id;	/* what CreateSnapshot returned */
};

/* A described snapshot, kept for `failoverctl snapshots`. */
struct snapshot_seen {
	char		*id;
	char		*volume;
	char		*device;
	char		*state;
	char		*start_time;
	int		 ours;
	int		 deleted;
};

struct snapshot {
	struct snapshot_env	 env;
	struct service		*svc;
	char			*name;
	char			*state_name;	/* "<service>.snapshot" */
	char			*state_dir;

	ev_timer		 sched;
	time_t			 due;		/* 0: nothing scheduled */

	/* Persistent. */
	time_t			 last_ok;
	time_t			 last_attempt;
	int			 last_failed;
	char			*last_error;
	/*
	 * pre_command was started and post_command has not run yet: a
	 * daemon stopped in between owes the post command (the file
	 * system may be frozen) and runs it first thing at its start.
	 */
	int			 post_owed;

	/* The run in progress. */
	enum snapshot_step	 step;
	int			 manual;
	int			 recover;	/* only the owed post_command */
	struct snapshot_vol	*vols;
	size_t			 nvols;
	size_t			 pending;
	char			*pre, *post;
	struct sshcmd_spec	 hook;
	char			*hook_host, *hook_user, *hook_key;
	char			*hook_known, *hook_learned;
	char			*hook_source;	/* the probe's source_address */
	struct sshcmd		*cmd;
	struct ec2_call		*call;
	struct buf		 errors;	/* "; "-separated reasons */
	size_t			 taken;

	/* The last description, and retention's work list. */
	struct snapshot_seen	*seen;
	size_t			 nseen;
	time_t			 seen_at;
	size_t			 next_delete;
	int			 refreshing;
	struct ec2_call		*refresh_call;
};

static void snapshot_arm(struct snapshot *s);
static void snapshot_next(struct snapshot *s);

/* --- the pure parts ------------------------------------------------- */

int
snapshot_window_contains(int start, int end, int m)
{
	if (start < 0 || end < 0)
		return 1;
	if (start <= end)
		return m >= start && m < end;
	/* "22:00-02:00" wraps past midnight. */
	return m >= start || m < end;
}

time_t
snapshot_window_next(int start, int end, time_t t)
{
	time_t	day, m, open;

	if (start < 0 || end < 0)
		return t;
	m = (t % SNAPSHOT_DAY) / 60;
	if (snapshot_window_contains(start, end, (int)m))
		return t;
	day = t - t % SNAPSHOT_DAY;
	open = day + (time_t)start * 60;
	if (open <= t)
		open += SNAPSHOT_DAY;
	return open;
}

time_t
snapshot_next_due(const struct snapshot_conf *c, time_t last_ok, time_t now)
{
	time_t due;

	if (c->interval <= 0)
		return 0;
	due = last_ok == 0 ? now : last_ok + (time_t)c->interval;
	if (due < now)
		due = now;
	return snapshot_window_next(c->window_start, c->window_end, due);
}

static int
snapshot_item_newer(const struct snapshot_item *a,
    const struct snapshot_item *b)
{
	if (a->taken != b->taken)
		return a->taken > b->taken;
	/* Same second: any fixed order, so a run is repeatable. */
	return strcmp(a->id, b->id) > 0;
}

size_t
snapshot_retention(const struct snapshot_item *items, size_t n, int keep,
    double max_age, time_t now, int *del)
{
	size_t	i, j, rank, count = 0;
	int	newest;

	for (i = 0; i < n; i++)
		del[i] = 0;
	for (i = 0; i < n; i++) {
		if (!items[i].ours || !items[i].completed)
			continue;
		/* Its rank among the completed ones of its volume. */
		rank = 0;
		for (j = 0; j < n; j++) {
			if (j == i || !items[j].ours || !items[j].completed ||
			    strcmp(items[j].volume, items[i].volume) != 0)
				continue;
			if (snapshot_item_newer(&items[j], &items[i]))
				rank++;
		}
		newest = rank == 0;
		if (newest)
			continue;
		if ((keep > 0 && rank >= (size_t)keep) ||
		    (max_age > 0 &&
		    (double)(now - items[i].taken) > max_age)) {
			del[i] = 1;
			count++;
		}
	}
	return count;
}

static const char *
snapshot_tag(const struct ec2_tag *tags, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (tags[i].key != NULL && strcmp(tags[i].key, key) == 0)
			return tags[i].value != NULL ? tags[i].value : "";
	return NULL;
}

int
snapshot_is_ours(const struct ec2_snapshot *s, const char *service)
{
	const char *by, *svc;

	by = snapshot_tag(s->tags, s->ntags, SNAPSHOT_TAG_TAKEN_BY);
	svc = snapshot_tag(s->tags, s->ntags, SNAPSHOT_TAG_SERVICE);
	return by != NULL && strcmp(by, SNAPSHOT_TAKEN_BY) == 0 &&
	    svc != NULL && strcmp(svc, service) == 0;
}

int
snapshot_parse_time(const char *iso, time_t *out)
{
	struct tm	 tm;
	const char	*end;

	if (iso == NULL)
		return -1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return -1;
	if (*end == '.') {
		end++;
		while (*end >= '0' && *end <= '9')
			end++;
	}
	if (*end != 'Z' || end[1] != '\0')
		return -1;
	*out = timegm(&tm);
	return 0;
}

static void
snapshot_iso(time_t t, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* --- state ---------------------------------------------------------- */

static const struct service_conf *
snapshot_conf(const struct snapshot *s)
{
	return service_conf(s->svc);
}

static void
snapshot_load(struct snapshot *s)
{
	struct journal_rec	*rec = NULL;
	const char		*v;
	long long		 n;
	char			 err[512];
	int			 rc;

	rc = journal_load(s->env.state_dir, s->state_name, &rec, err,
	    sizeof(err));
	if (rc == 1)
		return;
	if (rc == -1) {
		/* An extra snapshot is harmless; a guessed date is not. */
		log_warnx("service %s: snapshot state unreadable, taking "
		    "the schedule as never run: %s", s->name, err);
		return;
	}
	if (journal_rec_get_int(rec, "last_ok", &n, err, sizeof(err)) == 0)
		s->last_ok = (time_t)n;
	if (journal_rec_get_int(rec, "last_attempt", &n, err,
	    sizeof(err)) == 0)
		s->last_attempt = (time_t)n;
	if (journal_rec_get_int(rec, "post_owed", &n, err,
	    sizeof(err)) == 0)
		s->post_owed = n != 0;
	v = journal_rec_get(rec, "last_result");
	s->last_failed = v != NULL && strcmp(v, "failed") == 0;
	v = journal_rec_get(rec, "last_error");
	if (v != NULL)
		s->last_error = strdup(v);
	journal_rec_free(rec);
}

static void
snapshot_save(struct snapshot *s)
{
	struct journal_rec	*rec;
	char			 err[512];

	rec = journal_rec_new();
	if (rec == NULL ||
	    journal_rec_set_int(rec, "last_ok", (long long)s->last_ok) ||
	    journal_rec_set_int(rec, "last_attempt",
	    (long long)s->last_attempt) ||
	    journal_rec_set_int(rec, "post_owed", s->post_owed) ||
	    journal_rec_set(rec, "last_result", s->last_failed ? "failed" :
	    "ok") ||
	    journal_rec_set(rec, "last_error", s->last_error != NULL ?
	    s->last_error : "")) {
		log_warnx("service %s: snapshot state: out of memory",
		    s->name);
		journal_rec_free(rec);
		return;
	}
	if (journal_save(s->env.state_dir, s->state_name, rec, err,
	    sizeof(err)) == -1)
		log_warnx("service %s: snapshot state not saved, a restart "
		    "may take an extra snapshot: %s", s->name, err);
	journal_rec_free(rec);
}

/* The one place a run's step changes, and it says so. */
static void
snapshot_set_step(struct snapshot *s, enum snapshot_step step)
{
	if (s->step == step)
		return;
	log_debug("service %s: snapshot [%s] -> [%s]", s->name,
	    snapshot_step_names[s->step], snapshot_step_names[step]);
	s->step = step;
}

static void
snapshot_error(struct snapshot *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
snapshot_error(struct snapshot *s, const char *fmt, ...)
{
	char	line[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (s->errors.len > 0)
		buf_puts(&s->errors, "; ");
	buf_puts(&s->errors, line);
}

/* --- the described snapshots ---------------------------------------- */

static void
snapshot_seen_clear(struct snapshot *s)
{
	size_t i;

	for (i = 0; i < s->nseen; i++) {
		free(s->seen[i].id);
		free(s->seen[i].volume);
		free(s->seen[i].device);
		free(s->seen[i].state);
		free(s->seen[i].start_time);
	}
	free(s->seen);
	s->seen = NULL;
	s->nseen = 0;
}

static char *
snapshot_strdup(const char *v)
{
	return strdup(v != NULL ? v : "");
}

/* Keeps what DescribeSnapshots said; 0, or -1 when out of memory. */
static int
snapshot_seen_set(struct snapshot *s, const struct ec2_result *res)
{
	const struct ec2_snapshot	*list;
	const char			*vol, *dev;
	size_t				 n, i;

	snapshot_seen_clear(s);
	n = ec2_result_snapshots(res, &list);
	if (n == 0)
		goto done;
	s->seen = calloc(n, sizeof(*s->seen));
	if (s->seen == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		vol = snapshot_tag(list[i].tags, list[i].ntags,
		    SNAPSHOT_TAG_VOLUME);
		dev = snapshot_tag(list[i].tags, list[i].ntags,
		    SNAPSHOT_TAG_DEVICE);
		s->seen[i].id = snapshot_strdup(list[i].snapshot_id);
		s->seen[i].volume = snapshot_strdup(vol != NULL ? vol :
		    list[i].volume_id);
		s->seen[i].device = snapshot_strdup(dev);
		s->seen[i].state = snapshot_strdup(list[i].state);
		s->seen[i].start_time = snapshot_strdup(list[i].start_time);
		s->seen[i].ours = snapshot_is_ours(&list[i], s->name);
		s->nseen = i + 1;
		if (s->seen[i].id == NULL || s->seen[i].volume == NULL ||
		    s->seen[i].device == NULL || s->seen[i].state == NULL ||
		    s->seen[i].start_time == NULL)
			return -1;
	}
done:
	s->seen_at = time(NULL);
	return 0;
}

/* Marks the snapshots retention deletes; how many. */
static size_t
snapshot_plan_retention(struct snapshot *s)
{
	const struct snapshot_conf	*c = &snapshot_conf(s)->snapshot;
	struct snapshot_item		*items;
	int				*del;
	size_t				 i, count;
	time_t				 t;

	if (s->nseen == 0)
		return 0;
	items = calloc(s->nseen, sizeof(*items));
	del = calloc(s->nseen, sizeof(*del));
	if (items == NULL || del == NULL) {
		free(items);
		free(del);
		return 0;
	}
	for (i = 0; i < s->nseen; i++) {
		items[i].id = s->seen[i].id;
		items[i].volume = s->seen[i].volume;
		items[i].completed = strcmp(s->seen[i].state,
		    "completed") == 0;
		items[i].ours = s->seen[i].ours;
		/* No readable date: never old enough to delete by age. */
		if (snapshot_parse_time(s->seen[i].start_time, &t) == -1) {
			t = time(NULL);
			items[i].ours = 0;
		}
		items[i].taken = t;
	}
	count = snapshot_retention(items, s->nseen, c->keep, c->max_age,
	    time(NULL), del);
	for (i = 0; i < s->nseen; i++)
		s->seen[i].deleted = del[i] ? -1 : 0;	/* -1: to delete */
	free(items);
	free(del);
	return count;
}

static struct ec2_request *
snapshot_describe_request(struct snapshot *s)
{
	struct ec2_request	*req;
	const char		*self = SNAPSHOT_OWNER;
	const char		*svc = s->name;

	req = ec2_request_new(EC2_DESCRIBE_SNAPSHOTS);
	if (req == NULL)
		return NULL;
	if (ec2_request_add_list(req, "Owner", &self, 1) == -1 ||
	    ec2_request_add(req, "MaxResults", SNAPSHOT_PAGE) == -1 ||
	    ec2_request_add_filter(req, "tag:" SNAPSHOT_TAG_SERVICE, &svc,
	    1) == -1) {
		ec2_request_free(req);
		return NULL;
	}
	return req;
}

/* --- the run -------------------------------------------------------- */

static void
snapshot_run_clear(struct snapshot *s)
{
	size_t i;

	if (s->cmd != NULL) {
		sshcmd_cancel(s->cmd);
		s->cmd = NULL;
	}
	if (s->call != NULL) {
		ec2_call_cancel(s->call);
		s->call = NULL;
	}
	for (i = 0; i < s->nvols; i++) {
		if (s->vols[i].call != NULL)
			ec2_call_cancel(s->vols[i].call);
		free(s->vols[i].id);
		free(s->vols[i].device);
		free(s->vols[i].snap_id);
	}
	free(s->vols);
	s->vols = NULL;
	s->nvols = 0;
	free(s->pre);
	free(s->post);
	free(s->hook_host);
	free(s->hook_user);
	free(s->hook_key);
	free(s->hook_known);
	free(s->hook_learned);
	free(s->hook_source);
	s->hook_source = NULL;
	s->pre = s->post = NULL;
	s->hook_host = s->hook_user = s->hook_key = s->hook_known = NULL;
	s->hook_learned = NULL;
	buf_reset(&s->errors);
}

static void
snapshot_finish(struct snapshot *s)
{
	char reason[1024];

	if (s->recover) {
		if (s->errors.len > 0)
			alert_emit(ALERT_SNAPSHOT_FAILED, s->name, "reason",
			    buf_str(&s->errors), "taken", "none", NULL);
		snapshot_save(s);
		snapshot_run_clear(s);
		snapshot_set_step(s, STEP_IDLE);
		s->recover = 0;
		snapshot_arm(s);
		return;
	}
	s->last_attempt = time(NULL);
	if (s->errors.len > 0) {
		snprintf(reason, sizeof(reason), "%s", buf_str(&s->errors));
		s->last_failed = 1;
		free(s->last_error);
		s->last_error = strdup(reason);
		alert_emit(ALERT_SNAPSHOT_FAILED, s->name, "reason", reason,
		    "taken", s->taken > 0 ? "some" : "none", NULL);
	} else {
		s->last_failed = 0;
		free(s->last_error);
		s->last_error = NULL;
	}
	/* A snapshot of every volume is what the schedule promises. */
	if (s->nvols > 0 && s->taken == s->nvols)
		s->last_ok = s->last_attempt;
	snapshot_save(s);
	snapshot_run_clear(s);
	snapshot_set_step(s, STEP_IDLE);
	s->manual = 0;
	snapshot_arm(s);
}

static void
snapshot_on_deleted(struct ec2_result *res, void *arg)
{
	struct snapshot		*s = arg;
	struct snapshot_seen	*z = &s->seen[s->next_delete];

	s->call = NULL;
	if (ec2_result_status(res) == EC2_OK) {
		z->deleted = 1;
		alert_emit(ALERT_SNAPSHOT_DELETED, s->name, "snapshot", z->id,
		    "volume", z->volume, "taken", z->start_time, NULL);
	} else if (ec2_result_status(res) == EC2_ERR_AWS &&
	    ec2_result_code(res) != NULL &&
	    strcmp(ec2_result_code(res), "InvalidSnapshot.NotFound") == 0) {
		/*
		 * Gone already: DescribeSnapshots is eventually consistent
		 * and may list a snapshot an earlier run just deleted.
		 */
		z->deleted = 1;
		log_info("service %s: snapshot %s was deleted already",
		    s->name, z->id);
	} else {
		z->deleted = 0;
		snapshot_error(s, "retention: DeleteSnapshot %s: %s", z->id,
		    ec2_result_error(res));
	}
	ec2_result_free(res);
	s->next_delete++;
	snapshot_next(s);
}

static void
snapshot_delete_next(struct snapshot *s)
{
	struct ec2_request *req;

	while (s->next_delete < s->nseen &&
	    s->seen[s->next_delete].deleted != -1)
		s->next_delete++;
	if (s->next_delete == s->nseen) {
		snapshot_finish(s);
		return;
	}
	req = ec2_request_new(EC2_DELETE_SNAPSHOT);
	if (req == NULL || ec2_request_add(req, "SnapshotId",
	    s->seen[s->next_delete].id) == -1) {
		ec2_request_free(req);
		snapshot_error(s, "retention: out of memory");
		snapshot_finish(s);
		return;
	}
	s->call = ec2_call(s->env.ec2, req, SNAPSHOT_CALL_DEADLINE,
	    snapshot_on_deleted, s);
	if (s->call == NULL) {
		snapshot_error(s, "retention: out of memory");
		snapshot_finish(s);
	}
}

static void
snapshot_on_listed(struct ec2_result *res, void *arg)
{
	struct snapshot *s = arg;

	s->call = NULL;
	if (ec2_result_status(res) != EC2_OK) {
		snapshot_error(s, "retention skipped: %s",
		    ec2_result_error(res));
		ec2_result_free(res);
		snapshot_finish(s);
		return;
	}
	if (snapshot_seen_set(s, res) == -1) {
		snapshot_error(s, "retention skipped: out of memory");
		snapshot_seen_clear(s);
		ec2_result_free(res);
		snapshot_finish(s);
		return;
	}
	ec2_result_free(res);
	snapshot_plan_retention(s);
	s->next_delete = 0;
	snapshot_set_step(s, STEP_DELETE);
	snapshot_delete_next(s);
}

static void
snapshot_list_start(struct snapshot *s)
{
	struct ec2_request *req;

	snapshot_set_step(s, STEP_LIST);
	req = snapshot_describe_request(s);
	if (req == NULL) {
		snapshot_error(s, "retention: out of memory");
		snapshot_finish(s);
		return;
	}
	/* The new snapshots were just made: a NotFound is lag. */
	ec2_request_set_after_mutation(req, 1);
	s->call = ec2_call(s->env.ec2, req, SNAPSHOT_CALL_DEADLINE,
	    snapshot_on_listed, s);
	if (s->call == NULL) {
		snapshot_error(s, "retention: out of memory");
		snapshot_finish(s);
	}
}

static void
snapshot_on_hook(enum sshcmd_status st, int code, const char *detail,
    void *arg)
{
	struct snapshot *s = arg;

	s->cmd = NULL;
	/* It ran (whatever it said): nothing is owed any more. */
	if (s->step == STEP_POST && (st == SSHCMD_OK || st == SSHCMD_EXIT ||
	    st == SSHCMD_SIGNAL))
		s->post_owed = 0;
	if (st == SSHCMD_OK)
		log_info("service %s: snapshot %s_command done", s->name,
		    s->step == STEP_PRE ? "pre" : "post");
	else
		snapshot_error(s, "%s_command failed (%s): %s",
		    s->step == STEP_PRE ? "pre" : "post",
		    sshcmd_status_str(st), detail);
	if (s->step == STEP_PRE && st != SSHCMD_OK) {
		/* No consistent snapshot; still undo what pre may have
		 * done. */
		snapshot_set_step(s, STEP_POST);
		s->hook.command = s->post;
		s->cmd = sshcmd_start(s->env.loop, &s->hook, snapshot_on_hook,
		    s);
		if (s->cmd == NULL) {
			snapshot_error(s, "post_command: out of memory");
			snapshot_finish(s);
		}
		return;
	}
	snapshot_next(s);
}

static void
snapshot_on_created(struct ec2_result *res, void *arg)
{
	struct snapshot_vol	*v = arg;
	struct snapshot		*s = v->s;
	const char		*id;

	v->call = NULL;
	s->pending--;
	id = ec2_result_id(res);
	if (ec2_result_status(res) == EC2_OK && id != NULL) {
		v->snap_id = strdup(id);
		s->taken++;
		alert_emit(ALERT_SNAPSHOT_TAKEN, s->name, "volume", v->id,
		    "device", v->device, "snapshot", id, "trigger",
		    s->manual ? "manual" : "schedule", NULL);
	} else
		snapshot_error(s, "CreateSnapshot %s (%s): %s", v->id,
		    v->device, ec2_result_error(res));
	ec2_result_free(res);
	if (s->pending == 0)
		snapshot_next(s);
}

/*
 * CreateSnapshot has no ClientToken: if a reply is lost, the snapshot
 * this run's tags name (service, volume, time) is looked for before
 * another is made.
 */
static struct ec2_request *
snapshot_effect_lookup(struct snapshot *s, struct snapshot_vol *v,
    const char *when)
{
	struct ec2_request	*req;
	const char		*val[1];
	int			 bad = 0;

	req = ec2_request_new(EC2_DESCRIBE_SNAPSHOTS);
	if (req == NULL)
		return NULL;
	bad |= ec2_request_add(req, "Owner.1", "self");
	val[0] = s->name;
	bad |= ec2_request_add_filter(req, "tag:" SNAPSHOT_TAG_SERVICE, val,
	    1);
	val[0] = v->id;
	bad |= ec2_request_add_filter(req, "tag:" SNAPSHOT_TAG_VOLUME, val,
	    1);
	val[0] = when;
	bad |= ec2_request_add_filter(req, "tag:" SNAPSHOT_TAG_TIME, val, 1);
	if (bad) {
		ec2_request_free(req);
		return NULL;
	}
	return req;
}

static int
snapshot_create_one(struct snapshot *s, struct snapshot_vol *v,
    const char *when)
{
	struct ec2_request	*req;
	struct ec2_tag		 tags[5];

	tags[0].key = SNAPSHOT_TAG_SERVICE;
	tags[0].value = s->name;
	tags[1].key = SNAPSHOT_TAG_VOLUME;
	tags[1].value = v->id;
	tags[2].key = SNAPSHOT_TAG_DEVICE;
	tags[2].value = v->device;
	tags[3].key = SNAPSHOT_TAG_TAKEN_BY;
	tags[3].value = SNAPSHOT_TAKEN_BY;
	tags[4].key = SNAPSHOT_TAG_TIME;
	tags[4].value = when;
	req = ec2_request_new(EC2_CREATE_SNAPSHOT);
	if (req == NULL ||
	    ec2_request_add(req, "VolumeId", v->id) == -1 ||
	    ec2_request_addf(req, "Description", "failoverd %s %s %s %s",
	    s->name, v->id, v->device, when) == -1 ||
	    ec2_request_add_tag_spec(req, "snapshot", tags, 5) == -1 ||
	    ec2_request_set_effect_lookup(req,
	    snapshot_effect_lookup(s, v, when), NULL) == -1) {
		ec2_request_free(req);
		return -1;
	}
	v->call = ec2_call(s->env.ec2, req, SNAPSHOT_CALL_DEADLINE,
	    snapshot_on_created, v);
	return v->call == NULL ? -1 : 0;
}

/* Every volume at once: with a frozen file system, time counts. */
static void
snapshot_create_start(struct snapshot *s)
{
	char	when[32];
	size_t	i;

	snapshot_set_step(s, STEP_CREATE);
	snapshot_iso(time(NULL), when, sizeof(when));
	s->pending = 0;
	for (i = 0; i < s->nvols; i++) {
		if (snapshot_create_one(s, &s->vols[i], when) == -1) {
			snapshot_error(s, "CreateSnapshot %s: out of memory",
			    s->vols[i].id);
			continue;
		}
		s->pending++;
	}
	if (s->pending == 0)
		snapshot_next(s);
}

static void
snapshot_hook_start(struct snapshot *s, enum snapshot_step step)
{
	snapshot_set_step(s, step);
	if (step == STEP_PRE) {
		/* Durable before the command can freeze anything. */
		s->post_owed = 1;
		snapshot_save(s);
	}
	s->hook.command = step == STEP_PRE ? s->pre : s->post;
	s->cmd = sshcmd_start(s->env.loop, &s->hook, snapshot_on_hook, s);
	if (s->cmd == NULL) {
		snapshot_error(s, "%s_command: out of memory",
		    step == STEP_PRE ? "pre" : "post");
		if (step == STEP_PRE)
			snapshot_hook_start(s, STEP_POST);
		else
			snapshot_next(s);
	}
}

/* Moves the run on from the step that just ended. */
static void
snapshot_next(struct snapshot *s)
{
	switch (s->step) {
	case STEP_RESOLVE:
		if (s->recover && s->errors.len == 0 && s->post != NULL) {
			snapshot_hook_start(s, STEP_POST);
			return;
		}
		if (s->recover && s->errors.len == 0) {
			log_warnx("service %s: no post_command configured "
			    "any more; nothing owed", s->name);
			s->post_owed = 0;
		}
		if (s->recover || s->errors.len > 0) {
			/* The hooks cannot run: no consistent snapshot. */
			snapshot_finish(s);
			return;
		}
		if (s->pre != NULL) {
			snapshot_hook_start(s, STEP_PRE);
			return;
		}
		snapshot_create_start(s);
		return;
	case STEP_PRE:
		snapshot_create_start(s);
		return;
	case STEP_CREATE:
		if (s->post != NULL) {
			snapshot_hook_start(s, STEP_POST);
			return;
		}
		snapshot_list_start(s);
		return;
	case STEP_POST:
		if (s->recover) {
			snapshot_finish(s);
			return;
		}
		snapshot_list_start(s);
		return;
	case STEP_DELETE:
		snapshot_delete_next(s);
		return;
	default:
		snapshot_finish(s);
		return;
	}
}

static void
snapshot_on_resolved(struct ec2_result *res, void *arg)
{
	struct snapshot			*s = arg;
	const struct ec2_address	*a;

	s->call = NULL;
	if (ec2_result_status(res) != EC2_OK)
		snapshot_error(s, "Elastic IP address for the hooks: %s",
		    ec2_result_error(res));
	else if (ec2_result_addresses(res, &a) == 0 || a->public_ip == NULL)
		snapshot_error(s, "Elastic IP %s not found for the hooks",
		    snapshot_conf(s)->eip_allocation_id);
	else {
		s->hook_host = strdup(a->public_ip);
		s->hook.host = s->hook_host;
		if (s->hook_host == NULL)
			snapshot_error(s, "hooks: out of memory");
	}
	ec2_result_free(res);
	snapshot_next(s);
}

/* The probe whose user and key run the hooks (conf.c checked it). */
static const struct probe_conf *
snapshot_hook_probe(const struct service_conf *sc)
{
	const char	*want = sc->snapshot.hook_probe;
	size_t		 i;

	for (i = 0; i < sc->nprobes; i++) {
		if (sc->probes[i].type != PROBE_SSH ||
		    sc->probes[i].ssh.key_file == NULL)
			continue;
		if (want == NULL || strcmp(sc->probes[i].name, want) == 0)
			return &sc->probes[i];
	}
	return NULL;
}

static const char *
snapshot_volume_id(const struct snapshot *s, const char *conf_id)
{
	const char *id = NULL;

	if (s->env.volume_id != NULL)
		id = s->env.volume_id(s->env.arg, s->svc, conf_id);
	return id != NULL ? id : conf_id;
}

/*
 * Copies what the run needs out of the configuration, which a reload
 * may free while the run is in flight.
 */
static int
snapshot_run_prepare(struct snapshot *s)
{
	const struct service_conf	*sc = snapshot_conf(s);
	const struct snapshot_conf	*c = &sc->snapshot;
	const struct probe_conf		*p = NULL;
	size_t				 i;

	s->vols = calloc(sc->nvolumes > 0 ? sc->nvolumes : 1,
	    sizeof(*s->vols));
	if (s->vols == NULL)
		return -1;
	for (i = 0; i < sc->nvolumes; i++) {
		s->vols[i].s = s;
		s->vols[i].id = strdup(snapshot_volume_id(s,
		    sc->volumes[i].id));
		s->vols[i].device = strdup(sc->volumes[i].device);
		s->nvols = i + 1;
		if (s->vols[i].id == NULL || s->vols[i].device == NULL)
			return -1;
	}
	memset(&s->hook, 0, sizeof(s->hook));
	if (c->pre_command == NULL && c->post_command == NULL)
		return 0;
	p = snapshot_hook_probe(sc);
	if (p == NULL)
		return 0;	/* conf.c refuses this; say it in the run */
	if (c->pre_command != NULL) {
		s->pre = strdup(c->pre_command);
		if (s->pre == NULL)
			return -1;
	}
	if (c->post_command != NULL) {
		s->post = strdup(c->post_command);
		if (s->post == NULL)
			return -1;
	}
	s->hook_user = strdup(p->ssh.user != NULL ? p->ssh.user : "root");
	s->hook_key = strdup(p->ssh.key_file);
	if (s->hook_user == NULL || s->hook_key == NULL)
		return -1;
	if (p->ssh.known_hosts != NULL) {
		s->hook_known = strdup(p->ssh.known_hosts);
		if (s->hook_known == NULL)
			return -1;
	}
	if (p->address != NULL) {
		s->hook_host = strdup(p->address);
		if (s->hook_host == NULL)
			return -1;
	}
	s->hook.host = s->hook_host;
	s->hook.port = p->ssh.port;
	s->hook.user = s->hook_user;
	s->hook.key_file = s->hook_key;
	s->hook.known_hosts = s->hook_known;
	/* Copied: the failover engine replaces it when keys change. */
	if (service_learned_hosts(s->svc) != NULL) {
		s->hook_learned = strdup(service_learned_hosts(s->svc));
		if (s->hook_learned == NULL)
			return -1;
	}
	s->hook.learned_hosts = s->hook_learned;
	/* The hooks leave from where the probe does, as users route. */
	if (p->source_address != NULL) {
		s->hook_source = strdup(p->source_address);
		if (s->hook_source == NULL)
			return -1;
	}
	s->hook.source = s->hook_source;
	s->hook.timeout = c->hook_timeout;
	return 0;
}

static int
snapshot_run(struct snapshot *s, int manual, struct buf *out)
{
	const struct service_conf	*sc = snapshot_conf(s);
	struct ec2_request		*req;
	size_t				 i;

	if (s->step != STEP_IDLE) {
		buf_printf(out, "service %s: a snapshot run is in progress "
		    "(%s)", s->name, snapshot_step_names[s->step]);
		return -1;
	}
	if (s->env.ec2 == NULL) {
		buf_printf(out, "service %s: no snapshot: the EC2 client is "
		    "not usable", s->name);
		if (!manual) {
			s->last_attempt = time(NULL);
			s->last_failed = 1;
			alert_emit(ALERT_SNAPSHOT_FAILED, s->name, "reason",
			    "the EC2 client is not usable", NULL);
			snapshot_save(s);
			snapshot_arm(s);
		}
		return -1;
	}
	if (sc->nvolumes == 0) {
		buf_printf(out, "service %s has no data volumes to snapshot",
		    s->name);
		return -1;
	}
	s->manual = manual;
	s->taken = 0;
	if (snapshot_run_prepare(s) == -1) {
		snapshot_run_clear(s);
		buf_printf(out, "service %s: snapshot: out of memory",
		    s->name);
		return -1;
	}
	ev_timer_stop(s->env.loop, &s->sched);
	buf_printf(out, "snapshot of service %s started:", s->name);
	for (i = 0; i < s->nvols; i++)
		buf_printf(out, " %s (%s)", s->vols[i].id, s->vols[i].device);
	buf_puts(out, "\n");
	if (s->recover)
		log_warnx("service %s: a snapshot run stopped after its "
		    "pre_command: running the post_command it owes",
		    s->name);
	else
		log_info("service %s: snapshot run started (%s), %zu "
		    "volumes", s->name, manual ? "manual" : "schedule",
		    s->nvols);
	snapshot_set_step(s, STEP_RESOLVE);
	if ((s->pre != NULL || s->post != NULL) && s->hook.host == NULL) {
		req = ec2_request_new(EC2_DESCRIBE_ADDRESSES);
		if (req != NULL && ec2_request_add(req, "AllocationId.1",
		    sc->eip_allocation_id) == -1) {
			ec2_request_free(req);
			req = NULL;
		}
		if (req != NULL)
			s->call = ec2_call(s->env.ec2, req,
			    SNAPSHOT_CALL_DEADLINE, snapshot_on_resolved, s);
		if (req == NULL || s->call == NULL) {
			snapshot_error(s, "hooks: out of memory");
			snapshot_finish(s);
		}
		return 0;
	}
	if ((s->pre != NULL || s->post != NULL) || (sc->snapshot.pre_command
	    == NULL && sc->snapshot.post_command == NULL))
		snapshot_next(s);
	else {
		snapshot_error(s, "hooks: no ssh probe with a key_file");
		snapshot_finish(s);
	}
	return 0;
}

/* --- the schedule --------------------------------------------------- */

static void
snapshot_on_sched(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct snapshot	*s = w->data;
	struct buf	 out;
	char		 why[300];
	time_t		 now = time(NULL);

	/* Woken early (the wall clock moved back): wait some more. */
	if (s->due == 0 || now + 1 < s->due) {
		snapshot_arm(s);
		return;
	}
	/*
	 * In a cluster the leader takes the scheduled snapshots (the EC2
	 * gate would refuse a follower's anyway): look again later, should
	 * this member come to lead.
	 */
	if (s->env.may_act != NULL &&
	    !s->env.may_act(s->env.arg, why, sizeof(why))) {
		log_debug("snapshot %s: scheduled run left to the leader: %s",
		    service_name(s->svc), why);
		ev_timer_set(&s->sched, SNAPSHOT_LEADER_LOOK, 0.);
		ev_timer_start(s->env.loop, &s->sched);
		return;
	}
	buf_init(&out);
	if (snapshot_run(s, 0, &out) == -1 && s->step == STEP_IDLE)
		log_warnx("%s", buf_str(&out));
	buf_free(&out);
}

static void
snapshot_arm(struct snapshot *s)
{
	const struct snapshot_conf	*c = &snapshot_conf(s)->snapshot;
	time_t				 now = time(NULL), retry;
	double				 r;

	ev_timer_stop(s->env.loop, &s->sched);
	s->due = snapshot_next_due(c, s->last_ok, now);
	if (s->due == 0 || s->step != STEP_IDLE)
		return;
	if (s->last_failed && s->last_attempt > 0) {
		/* Not at once again and again: a little later. */
		r = c->interval < SNAPSHOT_RETRY ? c->interval :
		    SNAPSHOT_RETRY;
		retry = s->last_attempt + (time_t)r;
		if (retry > s->due)
			s->due = snapshot_window_next(c->window_start,
			    c->window_end, retry);
	}
	ev_timer_set(&s->sched, s->due > now ? (double)(s->due - now) : 0.,
	    0.);
	ev_timer_start(s->env.loop, &s->sched);
}

void
snapshot_reschedule(struct snapshot *s)
{
	if (s->step == STEP_IDLE)
		snapshot_arm(s);
}

/* --- the public face ------------------------------------------------ */

static void
snapshot_recover(struct snapshot *s)
{
	struct buf out;

	buf_init(&out);
	s->recover = 1;
	if (snapshot_run(s, 0, &out) == -1) {
		s->recover = 0;
		log_warnx("service %s: the owed post_command cannot run "
		    "now: %s", s->name, buf_str(&out));
		snapshot_arm(s);
	}
	buf_free(&out);
}

struct snapshot *
snapshot_new(const struct snapshot_env *env, struct service *svc)
{
	struct snapshot	*s;
	const char	*name = service_name(svc);

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->env = *env;
	s->svc = svc;
	s->name = strdup(name);
	/* Ours: a reload frees the configuration it came from. */
	s->env.state_dir = s->state_dir = strdup(env->state_dir);
	if (s->name == NULL || s->state_dir == NULL ||
	    asprintf(&s->state_name, "%s.snapshot", name) == -1) {
		s->state_name = NULL;
		free(s->state_dir);
		free(s->name);
		free(s);
		return NULL;
	}
	buf_init(&s->errors);
	ev_timer_init(&s->sched, snapshot_on_sched, 0., 0.);
	s->sched.data = s;
	snapshot_load(s);
	if (s->post_owed)
		snapshot_recover(s);
	else
		snapshot_arm(s);
	return s;
}

void
snapshot_free(struct snapshot *s)
{
	if (s == NULL)
		return;
	ev_timer_stop(s->env.loop, &s->sched);
	snapshot_run_clear(s);
	if (s->refresh_call != NULL)
		ec2_call_cancel(s->refresh_call);
	buf_free(&s->errors);
	snapshot_seen_clear(s);
	free(s->last_error);
	free(s->state_name);
	free(s->state_dir);
	free(s->name);
	free(s);
}

int
snapshot_take(struct snapshot *s, struct buf *out)
{
	return snapshot_run(s, 1, out);
}

int
snapshot_running(const struct snapshot *s)
{
	return s->step != STEP_IDLE;
}

time_t
snapshot_last_ok(const struct snapshot *s)
{
	return s->last_ok;
}

void
snapshot_newest_each(const struct snapshot *s,
    void (*fn)(const char *volume, time_t taken, void *arg), void *arg)
{
	const struct snapshot_seen	*a, *b;
	time_t				 newest, t;
	size_t				 i, j;

	for (i = 0; i < s->nseen; i++) {
		a = &s->seen[i];
		for (j = 0; j < i; j++)
			if (strcmp(s->seen[j].volume, a->volume) == 0)
				break;
		if (j < i)
			continue;	/* that volume was reported already */
		newest = 0;
		for (j = i; j < s->nseen; j++) {
			b = &s->seen[j];
			if (strcmp(b->volume, a->volume) != 0 ||
			    strcmp(b->state, "completed") != 0 ||
			    b->deleted == 1 ||
			    snapshot_parse_time(b->start_time, &t) == -1)
				continue;
			if (t > newest)
				newest = t;
		}
		if (newest > 0)
			fn(a->volume, newest, arg);
	}
}

static void
snapshot_on_refreshed(struct ec2_result *res, void *arg)
{
	struct snapshot *s = arg;

	s->refresh_call = NULL;
	/* A run's own listing is newer than this: keep that one. */
	if (s->step == STEP_IDLE) {
		if (ec2_result_status(res) == EC2_OK) {
			if (snapshot_seen_set(s, res) == -1)
				snapshot_seen_clear(s);
		} else
			log_warnx("service %s: listing snapshots: %s",
			    s->name, ec2_result_error(res));
	}
	ec2_result_free(res);
}

static void
snapshot_refresh(struct snapshot *s)
{
	struct ec2_request *req;

	if (s->env.ec2 == NULL || s->refresh_call != NULL ||
	    s->step != STEP_IDLE)
		return;
	req = snapshot_describe_request(s);
	if (req == NULL)
		return;
	s->refresh_call = ec2_call(s->env.ec2, req, SNAPSHOT_CALL_DEADLINE,
	    snapshot_on_refreshed, s);
}

static void
snapshot_list_text(struct snapshot *s, struct buf *out)
{
	char	 when[32];
	size_t	 i;

	buf_printf(out, "service %s snapshots", s->name);
	if (s->seen_at > 0) {
		snapshot_iso(s->seen_at, when, sizeof(when));
		buf_printf(out, " (as described at %s)", when);
	}
	buf_puts(out, ":\n");
	if (s->seen_at == 0)
		buf_puts(out, "  not described yet; ask again in a moment\n");
	for (i = 0; i < s->nseen; i++)
		buf_printf(out, "  %s %s %s %s %s%s\n", s->seen[i].id,
		    s->seen[i].volume, s->seen[i].device[0] != '\0' ?
		    s->seen[i].device : "-", s->seen[i].state,
		    s->seen[i].start_time, s->seen[i].ours ? "" :
		    " (not taken by failoverd: never deleted)");
	if (s->last_ok > 0) {
		snapshot_iso(s->last_ok, when, sizeof(when));
		buf_printf(out, "last good run: %s\n", when);
	} else
		buf_puts(out, "last good run: never\n");
	if (s->last_failed && s->last_error != NULL)
		buf_printf(out, "last run failed: %s\n", s->last_error);
	if (s->step != STEP_IDLE)
		buf_printf(out, "running: %s\n",
		    snapshot_step_names[s->step]);
	else if (s->due > 0) {
		snapshot_iso(s->due, when, sizeof(when));
		buf_printf(out, "next run: %s\n", when);
	} else
		buf_puts(out, "next run: none scheduled\n");
}

static void
snapshot_list_json(struct snapshot *s, struct buf *out)
{
	size_t i;

	buf_puts(out, "{\"service\":");
	buf_json_str(out, s->name);
	buf_printf(out, ",\"described_at\":%lld,\"last_ok\":%lld,"
	    "\"next_due\":%lld,\"running\":", (long long)s->seen_at,
	    (long long)s->last_ok, (long long)s->due);
	buf_json_str(out, s->step != STEP_IDLE ?
	    snapshot_step_names[s->step] : "");
	buf_puts(out, ",\"last_error\":");
	buf_json_str(out, s->last_failed && s->last_error != NULL ?
	    s->last_error : "");
	buf_puts(out, ",\"snapshots\":[");
	for (i = 0; i < s->nseen; i++) {
		buf_puts(out, i > 0 ? ",{\"id\":" : "{\"id\":");
		buf_json_str(out, s->seen[i].id);
		buf_puts(out, ",\"volume\":");
		buf_json_str(out, s->seen[i].volume);
		buf_puts(out, ",\"device\":");
		buf_json_str(out, s->seen[i].device);
		buf_puts(out, ",\"state\":");
		buf_json_str(out, s->seen[i].state);
		buf_puts(out, ",\"start_time\":");
		buf_json_str(out, s->seen[i].start_time);
		buf_printf(out, ",\"failoverd\":%s}",
		    s->seen[i].ours ? "true" : "false");
	}
	buf_puts(out, "]}\n");
}

void
snapshot_list(struct snapshot *s, struct buf *out, int json)
{
	if (json)
		snapshot_list_json(s, out);
	else
		snapshot_list_text(s, out);
	snapshot_refresh(s);
}
