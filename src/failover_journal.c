/*
 * The journal record of a service's engine: the progress of the move
 * in progress (written before every mutating call, so a restart resumes
 * where it stood), its restore, and the history of ended moves.
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

void
fo_rec_set(struct failover *fo, const char *key, const char *value)
{
	if (value == NULL)
		journal_rec_del(fo->rec, key);
	else if (journal_rec_set(fo->rec, key, value) == -1)
		log_warn("failover %s: journal field %s", fo->name, key);
}

void
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
int
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
		fo_journal_failed(fo, err);
		buf_free(&now);
		return -1;
	}
	/* A stale copy would skip a later write: none rather than that. */
	if (fo_set_str(&fo->saved, now.len > 0 ? buf_str(&now) : NULL) ==
	    -1) {
		free(fo->saved);
		fo->saved = NULL;
	}
	buf_free(&now);
	if (fo->journal_failing) {
		fo->journal_failing = 0;
		alert_emit(ALERT_JOURNAL_WRITE_OK, fo->name, "state_dir",
		    fo->env->state_dir, "step", failover_step_str(fo->step),
		    NULL);
	}
	return 0;
}

/*
 * The state_dir (the journal, or the learned-hosts file beside it)
 * cannot be written: the watchdog's own trouble, said once until a
 * write succeeds (fo_save says that); no mutating step in between.
 */
void
fo_journal_failed(struct failover *fo, const char *error)
{
	if (!fo->journal_failing)
		alert_emit(ALERT_JOURNAL_WRITE_FAILED, fo->name, "state_dir",
		    fo->env->state_dir, "error", error, "step",
		    failover_step_str(fo->step), "action", fo_active(fo) ?
		    "held until a write succeeds" : "none", NULL);
	else
		log_debug("failover %s: journal not written: %s", fo->name,
		    error);
	fo->journal_failing = 1;
}

/* The fields of the failover in progress go once it has ended. */
void
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

long long
fo_rec_int(const struct failover *fo, const char *key, long long def)
{
	long long	v;
	char		err[128];

	if (journal_rec_get_int(fo->rec, key, &v, err, sizeof(err)) != 0)
		return def;
	return v;
}

/* Appends the ended failover to the history kept in the journal. */
void
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

int
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
	s = fo_str_index(fo_step_names, FAILOVER_STEP_MAX, step);
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
	if (fo_progress_reset(fo) == -1 ||
	    fo_set_str(&fo->id, journal_rec_get(fo->rec, "failover_id")) ==
	    -1) {
		snprintf(err, errlen, "out of memory restoring %s", step);
		return -1;
	}
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
