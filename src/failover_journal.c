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

/*
 * The journal fields of struct failover, in the order they are written:
 * the one list that save (fo_rec_progress), clear (fo_rec_clear_progress)
 * and restore (fo_restore) go through. The service's fields are always
 * written; a move's while it is active, and cleared once it has ended
 * (an evacuation's only for an evacuation). The volumes (volume.<id>.*,
 * evac.<configured id>.*, identity.<configured id>), the timings
 * (t.<name>) and the history (h.<n>.*, through fo_hfields[]) are
 * families of their own below. Nothing the engine knows lives only in
 * the record: the struct is the truth, the record its copy on disk.
 */
enum fo_ftype { FT_STR, FT_BOOL, FT_SIZE, FT_LLONG, FT_ENUM };
enum fo_fwhen {
	FW_SERVICE,	/* always */
	FW_MOVE,	/* while a move is active */
	FW_EVAC		/* while an evacuation is active */
};
#define FF_WRITE_ONLY	0x01	/* for the outside (a token): not read */
#define FF_ZERO_ABSENT	0x02	/* FT_LLONG: 0 is "never", not written */
#define FF_LEARNT	0x04	/* missing: what EC2 told since stands */

struct fo_field {
	const char		*key;
	enum fo_ftype		 type;
	enum fo_fwhen		 when;
	size_t			 off;
	const char *const	*names;	/* FT_ENUM: the value's words */
	size_t			 nnames;
	int			 flags;
};

static const char *const fo_mode_names[] = { "replace", "restart" };

/* FT_ENUM fields are enums, read and written as the int they are. */
_Static_assert(sizeof(enum fo_kind) == sizeof(int) &&
    sizeof(enum fo_fence) == sizeof(int) &&
    sizeof(enum fo_launch) == sizeof(int), "enum fields are ints");

#define FO_F(k, t, w, m)	{ k, t, w, offsetof(struct failover, m), \
				    NULL, 0, 0 }
#define FO_FE(k, w, m, n)	{ k, FT_ENUM, w, offsetof(struct failover, m), \
				    n, sizeof(n) / sizeof((n)[0]), 0 }
#define FO_FX(k, t, w, m, x)	{ k, t, w, offsetof(struct failover, m), \
				    NULL, 0, x }

static const struct fo_field fo_fields[] = {
	FO_F("paused",		FT_BOOL,  FW_SERVICE,	paused),
	FO_F("hold_reason",	FT_STR,   FW_SERVICE,	hold_reason),
	FO_F("switch_kept",	FT_STR,   FW_SERVICE,	switch_kept),
	/* Kept, so a restart while EC2 is away still probes it. */
	FO_FX("eip_ip",		FT_STR,   FW_SERVICE,	eip_ip,	FF_LEARNT),
	FO_F("identity.subnet",	FT_STR,   FW_SERVICE,	ident_subnet),
	FO_F("moved_from",	FT_STR,   FW_SERVICE,	moved_from),
	FO_F("moved_to",	FT_STR,   FW_SERVICE,	moved_to),
	FO_FX("moved_at",	FT_LLONG, FW_SERVICE,	moved_at,
	    FF_ZERO_ABSENT),
	FO_F("learned_instance", FT_STR,  FW_SERVICE,	learned_instance),
	FO_F("learned_instances", FT_STR, FW_SERVICE,	learned_instances),
	FO_FX("last_failover",	FT_LLONG, FW_SERVICE,	last_failover,
	    FF_ZERO_ABSENT),
	FO_FX("history.next",	FT_LLONG, FW_SERVICE,	history_next,
	    FF_ZERO_ABSENT),
	FO_F("failover_id",	FT_STR,   FW_MOVE,	id),
	{ "client_token", FT_STR, FW_MOVE, offsetof(struct failover, id),
	    NULL, 0, FF_WRITE_ONLY },
	FO_F("old_instance",	FT_STR,   FW_MOVE,	old),
	FO_F("new_instance",	FT_STR,   FW_MOVE,	new),
	FO_FE("mode",		FW_MOVE,  restart,	fo_mode_names),
	FO_F("manual",		FT_BOOL,  FW_MOVE,	manual),
	FO_F("az",		FT_STR,   FW_MOVE,	vol_az),
	FO_FE("fence",		FW_MOVE,  fence,	fo_fence_names),
	FO_FE("launch",		FW_MOVE,  launch,	fo_launch_names),
	FO_F("started",		FT_LLONG, FW_MOVE,	started_at),
	FO_FE("kind",		FW_MOVE,  kind,		fo_kind_names),
	FO_F("switch_ami",	FT_STR,   FW_MOVE,	ami),
	FO_F("new_ip",		FT_STR,   FW_MOVE,	new_ip),
	FO_F("prechecked",	FT_BOOL,  FW_MOVE,	prechecked),
	FO_F("rollback_auto",	FT_BOOL,  FW_MOVE,	rollback_auto),
	FO_F("evac_subnet",	FT_SIZE,  FW_EVAC,	evac_subnet),
	FO_F("evac_az",		FT_STR,   FW_EVAC,	evac_az),
};
#define FO_NFIELDS	(sizeof(fo_fields) / sizeof(fo_fields[0]))

/*
 * An ended move's fields, h.<n>.<key> (struct fo_history); its timings
 * are h.<n>.t.<name>. Written once, when the move ends.
 */
#define FO_H(k, t, m, x)	{ k, t, FW_SERVICE, \
				    offsetof(struct fo_history, m), NULL, 0, x }

static const struct fo_field fo_hfields[] = {
	FO_H("id",	FT_STR,   id,		0),
	FO_H("kind",	FT_STR,   kind,		0),
	FO_H("result",	FT_STR,   result,	0),
	FO_H("reason",	FT_STR,   reason,	0),
	FO_H("mode",	FT_STR,   mode,		0),
	FO_H("trigger",	FT_STR,   trigger,	0),
	FO_H("old",	FT_STR,   old,		0),
	FO_H("new",	FT_STR,   new,		0),
	FO_H("az",	FT_STR,   az,		0),
	FO_H("started",	FT_LLONG, started,	FF_ZERO_ABSENT),
};
#define FO_NHFIELDS	(sizeof(fo_hfields) / sizeof(fo_hfields[0]))

/* The key families of a move, cleared with its fields. */
static const char *const fo_move_prefixes[] = { "volume.", "t.", "evac." };

/* Field f of the struct at base, under key (f->key, or a family's). */
static void
fo_field_save(struct failover *fo, const struct fo_field *f,
    const void *base, const char *key)
{
	const char	*p = (const char *)base + f->off;
	long long	 ll;
	int		 e;

	switch (f->type) {
	case FT_STR:
		fo_rec_set(fo, key, *(char *const *)(const void *)p);
		break;
	case FT_BOOL:
		fo_rec_set(fo, key, *(const int *)(const void *)p ?
		    "1" : "0");
		break;
	case FT_SIZE:
		fo_rec_setf(fo, key, "%zu",
		    *(const size_t *)(const void *)p);
		break;
	case FT_LLONG:
		ll = *(const long long *)(const void *)p;
		if (ll == 0 && (f->flags & FF_ZERO_ABSENT))
			fo_rec_set(fo, key, NULL);
		else
			fo_rec_setf(fo, key, "%lld", ll);
		break;
	case FT_ENUM:
		e = *(const int *)(const void *)p;
		fo_rec_set(fo, key, e >= 0 && (size_t)e < f->nnames ?
		    f->names[e] : NULL);
		break;
	}
}

/* -1 only when out of memory; a missing field reads as its zero. */
static int
fo_field_restore(struct failover *fo, const struct fo_field *f, void *base,
    const char *key)
{
	char		*p = (char *)base + f->off;
	const char	*v = journal_rec_get(fo->rec, key);
	int		 e;

	if (f->flags & FF_WRITE_ONLY)
		return 0;
	if (v == NULL && (f->flags & FF_LEARNT))
		return 0;
	switch (f->type) {
	case FT_STR:
		return fo_set_str((char **)(void *)p, v);
	case FT_BOOL:
		*(int *)(void *)p = fo_rec_int(fo, key, 0) != 0;
		break;
	case FT_SIZE:
		*(size_t *)(void *)p = (size_t)fo_rec_int(fo, key, 0);
		break;
	case FT_LLONG:
		*(long long *)(void *)p = fo_rec_int(fo, key, 0);
		break;
	case FT_ENUM:
		e = fo_str_index(f->names, f->nnames, v);
		*(int *)(void *)p = e < 0 ? 0 : e;
		break;
	}
	return 0;
}

/* The volume an evacuation restored configured volume i into. */
static void
fo_ident_key(const struct failover *fo, size_t i, char *key, size_t len)
{
	snprintf(key, len, "identity.%s", fo_conf(fo)->volumes[i].id);
}

/* The fields written when: the service's, or those of a move. */
static int
fo_field_due(const struct failover *fo, const struct fo_field *f)
{
	if (f->when == FW_SERVICE)
		return 1;
	if (!fo_active(fo))
		return 0;
	return f->when == FW_MOVE || fo->kind == KIND_EVACUATE;
}

/* The state of the service and of its move, as journal fields. */
static void
fo_rec_progress(struct failover *fo)
{
	char	key[160];
	size_t	i;
	int	k;

	fo_rec_set(fo, "step", failover_step_str(fo->step));
	for (i = 0; i < FO_NFIELDS; i++)
		if (fo_field_due(fo, &fo_fields[i]))
			fo_field_save(fo, &fo_fields[i], fo,
			    fo_fields[i].key);
	/* A move from no instance: moved_from="", as it always was. */
	if (fo->moved_to != NULL && fo->moved_from == NULL)
		fo_rec_set(fo, "moved_from", "");
	for (i = 0; i < fo->nident; i++) {
		fo_ident_key(fo, i, key, sizeof(key));
		fo_rec_set(fo, key, fo->ident_vols[i]);
	}
	if (!fo_active(fo))
		return;
	for (i = 0; i < fo->nvols && fo->kind == KIND_EVACUATE; i++) {
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
	int		 rc;

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
	if (fo->env->journal_save != NULL) {
		/* A follower keeps what it learns in memory: not a fault. */
		if (!fo_may_act(fo, err, sizeof(err))) {
			buf_free(&now);
			return -1;
		}
		rc = fo->env->journal_save(fo->env->arg, fo->name, fo->rec,
		    err, sizeof(err));
	} else
		rc = journal_save(fo->env->state_dir, fo->name, fo->rec, err,
		    sizeof(err));
	if (rc == 1) {
		/* Under way: not durable yet, and no fault either. */
		fo_set_str(&fo->saved, NULL);
		buf_free(&now);
		return 1;
	}
	if (rc == -1) {
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
 * The record to start from: the state_dir's file, or the cluster's
 * (the leader's copy in etcd), which says who wrote it.
 */
int
fo_journal_load(struct failover *fo, struct journal_rec **rec, char *err,
    size_t len)
{
	char	*writer = NULL;
	int	 rc;

	if (fo->env->journal_load == NULL)
		return journal_load(fo->env->state_dir, fo->name, rec, err,
		    len);
	rc = fo->env->journal_load(fo->env->arg, fo->name, rec, &writer,
	    err, len);
	free(fo->writer);
	fo->writer = rc == 0 ? writer : NULL;
	if (rc != 0)
		free(writer);
	return rc;
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

/* The fields of the move in progress go once it has ended. */
void
fo_rec_clear_progress(struct failover *fo)
{
	const char	*k, *v;
	size_t		 i, p;

	for (i = 0; i < FO_NFIELDS; i++)
		if (fo_fields[i].when != FW_SERVICE)
			journal_rec_del(fo->rec, fo_fields[i].key);
	fo->started_at = 0;
	i = 0;
	while (i < journal_rec_count(fo->rec)) {
		journal_rec_at(fo->rec, i, &k, &v);
		for (p = 0; p < sizeof(fo_move_prefixes) /
		    sizeof(fo_move_prefixes[0]); p++)
			if (strncmp(k, fo_move_prefixes[p],
			    strlen(fo_move_prefixes[p])) == 0)
				break;
		if (p < sizeof(fo_move_prefixes) / sizeof(fo_move_prefixes[0]))
			journal_rec_del(fo->rec, k);
		else
			i++;
	}
}

/* An ended move's entry, read back from h.<n>.*. */
static int
fo_history_restore(struct failover *fo, long long n)
{
	struct fo_history	*h = &fo->history[n % FO_HISTORY_MAX];
	char			 key[96];
	const char		*v;
	size_t			 i;
	int			 k, rc = 0;

	for (i = 0; i < FO_NHFIELDS; i++) {
		snprintf(key, sizeof(key), "h.%lld.%s", n, fo_hfields[i].key);
		if (fo_field_restore(fo, &fo_hfields[i], h, key) == -1)
			rc = -1;
	}
	for (k = 0; k < T_MAX; k++) {
		snprintf(key, sizeof(key), "h.%lld.t.%s", n,
		    fo_timing_names[k]);
		v = journal_rec_get(fo->rec, key);
		h->t[k] = v != NULL ? strtod(v, NULL) : -1;
	}
	return rc;
}

static void
fo_history_clear(struct fo_history *h)
{
	size_t	i;
	int	k;

	for (i = 0; i < FO_NHFIELDS; i++)
		if (fo_hfields[i].type == FT_STR)
			fo_set_str((char **)(void *)((char *)h +
			    fo_hfields[i].off), NULL);
	h->started = 0;
	for (k = 0; k < T_MAX; k++)
		h->t[k] = -1;
}

/* What the service's moves left, freed with the engine. */
void
fo_service_free(struct failover *fo)
{
	size_t	i;

	for (i = 0; i < FO_HISTORY_MAX; i++)
		fo_history_clear(&fo->history[i]);
	for (i = 0; i < fo->nident; i++)
		free(fo->ident_vols[i]);
	free(fo->ident_vols);
	fo->ident_vols = NULL;
	fo->nident = 0;
}

/*
 * Ended move n (0 the first), or NULL when the history does not hold
 * it (before the last FO_HISTORY_MAX, or not written).
 */
const struct fo_history *
fo_history_at(const struct failover *fo, long long n)
{
	const struct fo_history *h;

	if (n < 0 || n >= fo->history_next || n < fo->history_next -
	    FO_HISTORY_MAX)
		return NULL;
	h = &fo->history[n % FO_HISTORY_MAX];
	return h->id != NULL ? h : NULL;
}

/* The service's own fields, also after the file was dealt with. */
int
fo_restore_service(struct failover *fo)
{
	char		key[160];
	size_t		i;
	long long	n;
	int		rc = 0;

	for (i = 0; i < FO_NFIELDS; i++)
		if (fo_fields[i].when == FW_SERVICE &&
		    fo_field_restore(fo, &fo_fields[i], fo,
		    fo_fields[i].key) == -1)
			rc = -1;
	for (i = 0; i < fo->nident; i++) {
		fo_ident_key(fo, i, key, sizeof(key));
		if (fo_set_str(&fo->ident_vols[i],
		    journal_rec_get(fo->rec, key)) == -1)
			rc = -1;
	}
	if (fo->history_next < 0)
		fo->history_next = 0;
	for (i = 0; i < FO_HISTORY_MAX; i++)
		fo_history_clear(&fo->history[i]);
	for (n = fo->history_next - FO_HISTORY_MAX; n < fo->history_next;
	    n++)
		if (n >= 0 && fo_history_restore(fo, n) == -1)
			rc = -1;
	return rc;
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

/*
 * Appends the ended move to the history, the oldest beyond
 * FO_HISTORY_MAX forgotten; the record gets the entry now (written
 * once, it never changes) and history.next with the next save.
 */
void
fo_history_add(struct failover *fo, const char *result, const char *why)
{
	long long		 n = fo->history_next;
	struct fo_history	*h = &fo->history[n % FO_HISTORY_MAX];
	char			 key[96], pfx[48];
	const char		*k, *v;
	size_t			 i;
	int			 t;

	fo_history_clear(h);
	/* Out of memory: the entry lacks a field, status shows "-". */
	fo_set_str(&h->id, fo->id);
	fo_set_str(&h->kind, fo_kind_names[fo->kind]);
	fo_set_str(&h->result, result);
	fo_set_str(&h->reason, why);
	fo_set_str(&h->mode, fo->restart ? "restart" : "replace");
	fo_set_str(&h->trigger, fo->manual ? "manual" : "auto");
	fo_set_str(&h->old, fo->old ? fo->old : "-");
	fo_set_str(&h->new, fo->new ? fo->new : "-");
	fo_set_str(&h->az, fo->vol_az ? fo->vol_az : "-");
	h->started = fo->started_at > 0 ? fo->started_at :
	    (long long)time(NULL);
	for (t = 0; t < T_MAX; t++)
		h->t[t] = fo->t[t];
	for (i = 0; i < FO_NHFIELDS; i++) {
		snprintf(key, sizeof(key), "h.%lld.%s", n, fo_hfields[i].key);
		fo_field_save(fo, &fo_hfields[i], h, key);
	}
	for (t = 0; t < T_MAX; t++) {
		snprintf(key, sizeof(key), "h.%lld.t.%s", n,
		    fo_timing_names[t]);
		if (h->t[t] < 0)
			fo_rec_set(fo, key, NULL);
		else
			fo_rec_setf(fo, key, "%.3f", h->t[t]);
	}
	fo->history_next = n + 1;
	/* The entry it took the place of goes from the record too. */
	snprintf(pfx, sizeof(pfx), "h.%lld.", n - FO_HISTORY_MAX);
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
	long long	 now = (long long)time(NULL);

	step = journal_rec_get(fo->rec, "step");
	if (fo_restore_service(fo) == -1) {
		snprintf(err, errlen, "out of memory restoring the service");
		return -1;
	}
	s = fo_step_index(step);
	if (s < 0) {
		if (step == NULL)
			return 0;
		snprintf(err, errlen, "unknown step '%s'", step);
		return -1;
	}
	if (s == FAILOVER_HELD || s == FAILOVER_FAILED ||
	    s == FAILOVER_DONE) {
		fo_resume_step(fo, s);
		return 0;
	}
	if (s < FAILOVER_FENCE_LAUNCH)
		return 0;	/* idle or corroborating: look again */
	if (journal_rec_get(fo->rec, "failover_id") == NULL) {
		snprintf(err, errlen, "step %s without a failover_id", step);
		return -1;
	}
	if (fo_progress_reset(fo) == -1)
		goto oom;
	for (i = 0; i < FO_NFIELDS; i++)
		if (fo_fields[i].when != FW_SERVICE &&
		    fo_field_restore(fo, &fo_fields[i], fo,
		    fo_fields[i].key) == -1)
			goto oom;
	fo->snaps_known = fo->kind == KIND_EVACUATE;
	for (i = 0; i < fo->nvols && fo->kind == KIND_EVACUATE; i++) {
		snprintf(key, sizeof(key), "evac.%s.snap",
		    fo->vols[i].conf_id);
		if (fo_set_str(&fo->vols[i].snap,
		    journal_rec_get(fo->rec, key)) == -1)
			goto oom;
		if (fo->vols[i].snap == NULL)
			fo->snaps_known = 0;
		snprintf(key, sizeof(key), "evac.%s.snap_time",
		    fo->vols[i].conf_id);
		fo->vols[i].snap_time = fo_rec_int(fo, key, 0);
		snprintf(key, sizeof(key), "evac.%s.new",
		    fo->vols[i].conf_id);
		if (journal_rec_get(fo->rec, key) != NULL) {
			if (fo_set_str(&fo->vols[i].id,
			    journal_rec_get(fo->rec, key)) == -1)
				goto oom;
			fo->vols[i].restored = 1;
		}
	}
	if (!fo->snaps_known)
		for (i = 0; i < fo->nvols; i++)
			fo_set_str(&fo->vols[i].snap, NULL);
	/* Stopping: look at it again; stop it again if it runs. */
	if (fo->fence != FENCE_DONE)
		fo->fence = FENCE_STOPPING;
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
	if (fo->started_at <= 0)
		fo->started_at = now;
	fo->started = fo_now(fo) - (double)(now - fo->started_at);
	fo->launch_start = fo_now(fo);
	fo->fenced_at = fo_now(fo);
	fo_resume_step(fo, s);
	return 1;
oom:
	snprintf(err, errlen, "out of memory restoring %s", step);
	return -1;
}
