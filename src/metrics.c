/*
 * The textfile collector's failoverd.prom (metrics.h). Every value is
 * read from its module when the file is written (probe.h, service.h,
 * failover.h, snapshot.h, ec2.h, probe.h), except what only an event
 * tells: the preflight's outcome and the count of each event. The
 * failover counters come from the journal's history: a move is counted
 * once it is recorded there, which is after its last event.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "failoverd/alert.h"
#include "failoverd/probe.h"
#include "failoverd/ec2.h"
#include "failoverd/failover.h"
#include "failoverd/log.h"
#include "failoverd/metrics.h"
#include "failoverd/probe.h"
#include "failoverd/service.h"
#include "failoverd/snapshot.h"

#define METRICS_KINDS	8	/* >= failover_metrics_kind()'s count */

static const char *const metrics_results[] = { "completed", "failed" };
#define METRICS_RESULTS	(sizeof(metrics_results) / sizeof(*metrics_results))

/* What is kept per service name: what only events and deltas tell. */
struct metrics_svc {
	char		*name;
	int		 preflight;	/* -1: no run yet, 0 failed, 1 passed */
	time_t		 preflight_at;
	int		 seen;		/* history_count is a baseline */
	long long	 history_count;
	unsigned long	 moves[METRICS_KINDS][METRICS_RESULTS];
};

struct metrics {
	struct metrics_env	 env;
	char			*dir;		/* NULL: off */
	double			 period;
	int			 do_fsync;
	ev_timer		 soon;		/* a coalesced write */
	ev_timer		 tick;		/* the period */
	ev_tstamp		 last_write;
	double			 cost;		/* seconds the last write took */
	time_t			 started;
	int			 failing;	/* logged once, until it works */
	unsigned long		 write_failures;
	unsigned long		 events[ALERT_EVENT_MAX];
	struct metrics_svc	*svcs;
	size_t			 nsvcs;
};

void
metrics_label_value(struct buf *out, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		if (*s == '\\')
			buf_puts(out, "\\\\");
		else if (*s == '"')
			buf_puts(out, "\\\"");
		else if (*s == '\n')
			buf_puts(out, "\\n");
		else
			buf_append(out, s, 1);
	}
}

int
metrics_write_file(const char *dir, const char *data, size_t len,
    int do_fsync, char *err, size_t errlen)
{
	char		 tmp[PATH_MAX], path[PATH_MAX];
	const char	*step;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd = -1, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s", dir,
	    METRICS_TMP_FILE) >= sizeof(tmp) ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s", dir,
	    METRICS_FILE) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	/*
	 * Created afresh (O_EXCL after an unlink), never followed: the
	 * directory may be writable by node_exporter's user too.
	 */
	step = "unlink";
	if (unlink(tmp) == -1 && errno != ENOENT)
		goto fail;
	step = "create";
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0644);
	if (fd == -1)
		goto fail;
	/* The unit's UMask=0077 would keep node_exporter out. */
	step = "chmod";
	if (fchmod(fd, 0644) == -1)
		goto fail;
	step = "write";
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			goto fail;
		}
		off += (size_t)n;
	}
	step = "fsync";
	if (do_fsync && fsync(fd) == -1)
		goto fail;
	step = "close";
	n = close(fd);
	fd = -1;
	if (n == -1)
		goto fail;
	step = "rename";
	if (rename(tmp, path) == -1)
		goto fail;
	return 0;
fail:
	saved = errno;
	if (strcmp(step, "rename") == 0)
		snprintf(err, errlen, "rename %s to %s: %s", tmp, path,
		    strerror(saved));
	else
		snprintf(err, errlen, "%s %s: %s", step, tmp,
		    strerror(saved));
	if (fd != -1)
		close(fd);
	if (strcmp(step, "unlink") != 0 && strcmp(step, "create") != 0)
		unlink(tmp);
	errno = saved;
	return -1;
}

/* --- what events tell ------------------------------------------------ */

static struct metrics_svc *
metrics_svc(struct metrics *m, const char *name)
{
	struct metrics_svc	*n;
	size_t			 i;

	for (i = 0; i < m->nsvcs; i++)
		if (strcmp(m->svcs[i].name, name) == 0)
			return &m->svcs[i];
	n = reallocarray(m->svcs, m->nsvcs + 1, sizeof(*n));
	if (n == NULL)
		return NULL;
	m->svcs = n;
	n = &m->svcs[m->nsvcs];
	memset(n, 0, sizeof(*n));
	n->name = strdup(name);
	if (n->name == NULL)
		return NULL;
	n->preflight = -1;
	m->nsvcs++;
	return n;
}

static void
metrics_on_event(enum alert_event ev, const char *service,
    const char *const *kv, size_t nkv, const char *line, void *arg)
{
	struct metrics		*m = arg;
	struct metrics_svc	*ms;

	if (ev < ALERT_EVENT_MAX)
		m->events[ev]++;
	if ((ev == ALERT_PREFLIGHT_PASSED || ev == ALERT_PREFLIGHT_FAILED) &&
	    service != NULL) {
		ms = metrics_svc(m, service);
		if (ms != NULL) {
			ms->preflight = ev == ALERT_PREFLIGHT_PASSED;
			ms->preflight_at = time(NULL);
		}
	}
	metrics_touch(m);
}

/*
 * Moves the journal recorded since the last look, counted by the last
 * one's kind and result (two moves never end within one write's gap).
 * The first look only sets the baseline: a counter starts at 0 with
 * the daemon, as Prometheus expects of a restarted process.
 */
static void
metrics_count_moves(struct metrics_svc *ms,
    const struct failover_metrics_last *last)
{
	size_t	k, r;

	if (!ms->seen) {
		ms->seen = 1;
		ms->history_count = last->count;
		return;
	}
	if (last->count <= ms->history_count || last->kind == NULL ||
	    last->result == NULL) {
		ms->history_count = last->count;
		return;
	}
	for (k = 0; k < METRICS_KINDS && failover_metrics_kind(k) != NULL;
	    k++)
		if (strcmp(failover_metrics_kind(k), last->kind) == 0)
			break;
	for (r = 0; r < METRICS_RESULTS; r++)
		if (strcmp(metrics_results[r], last->result) == 0)
			break;
	if (k < METRICS_KINDS && failover_metrics_kind(k) != NULL &&
	    r < METRICS_RESULTS)
		ms->moves[k][r] += (unsigned long)(last->count -
		    ms->history_count);
	ms->history_count = last->count;
}

/* --- the text -------------------------------------------------------- */

static void
metrics_family(struct buf *out, const char *name, const char *type,
    const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* name{k1="v1",...} -- the labels as NULL-ended key, value pairs. */
static void
metrics_sample_start(struct buf *out, const char *name, const char *k1,
    const char *v1, const char *k2, const char *v2, const char *k3,
    const char *v3)
{
	const char	*k[3] = { k1, k2, k3 }, *v[3] = { v1, v2, v3 };
	int		 i;

	buf_puts(out, name);
	for (i = 0; i < 3 && k[i] != NULL; i++) {
		buf_printf(out, "%s%s=\"", i == 0 ? "{" : ",", k[i]);
		metrics_label_value(out, v[i]);
		buf_puts(out, "\"");
	}
	if (k1 != NULL)
		buf_puts(out, "}");
}

#define SAMPLE_D(out, name, val, ...) do {				\
	metrics_sample_start(out, name, __VA_ARGS__);			\
	buf_printf(out, " %.9g\n", (double)(val));			\
} while (0)
#define SAMPLE_U(out, name, val, ...) do {				\
	metrics_sample_start(out, name, __VA_ARGS__);			\
	buf_printf(out, " %lu\n", (unsigned long)(val));		\
} while (0)
#define SAMPLE_T(out, name, val, ...) do {				\
	metrics_sample_start(out, name, __VA_ARGS__);			\
	buf_printf(out, " %lld\n", (long long)(val));			\
} while (0)
#define NOLABEL	NULL, NULL, NULL, NULL, NULL, NULL

static size_t
metrics_services(struct metrics *m, struct metrics_service **out)
{
	struct metrics_service	 one, *v = NULL, *n;
	size_t			 i;

	for (i = 0; m->env.service_at(m->env.arg, i, &one) == 0; i++) {
		n = reallocarray(v, i + 1, sizeof(*v));
		if (n == NULL)
			break;
		v = n;
		v[i] = one;
	}
	*out = v;
	return v != NULL ? i : 0;
}

/* The probe families, in the order metrics_probe_sample knows them. */
struct metrics_fam {
	const char	*name, *type, *help;
};

static const struct metrics_fam metrics_probe_fams[] = {
	{ "failoverd_probe_state", "gauge",
	  "The probe's state after fall/rise: 1 for the one it has." },
	{ "failoverd_probe_latency_seconds", "gauge",
	  "How long the probe's last check took." },
	{ "failoverd_probe_checks_total", "counter",
	  "Checks the probe made (the watchdog's own faults are none)." },
	{ "failoverd_probe_failures_total", "counter",
	  "Checks of the probe that failed." },
};

#define NPROBE_FAMS \
	(sizeof(metrics_probe_fams) / sizeof(*metrics_probe_fams))

static void
metrics_probe_sample(struct buf *out, size_t f, const char *name,
    const char *service, const struct probe *p)
{
	static const enum probe_state states[] = { PROBE_UNKNOWN, PROBE_UP,
		PROBE_DOWN };
	size_t k;

	switch (f) {
	case 0:
		for (k = 0; k < sizeof(states) / sizeof(*states); k++)
			SAMPLE_U(out, name, probe_state(p) == states[k],
			    "service", service, "probe", probe_name(p),
			    "state", probe_state_str(states[k]));
		break;
	case 1:
		if (probe_latency(p) >= 0)
			SAMPLE_D(out, name, probe_latency(p), "service",
			    service, "probe", probe_name(p), NULL, NULL);
		break;
	case 2:
		SAMPLE_U(out, name, probe_checks(p), "service", service,
		    "probe", probe_name(p), NULL, NULL);
		break;
	default:
		SAMPLE_U(out, name, probe_failures(p), "service", service,
		    "probe", probe_name(p), NULL, NULL);
		break;
	}
}

static void
metrics_render_services(struct metrics *m, struct buf *out,
    const struct metrics_service *sv, size_t n)
{
	static const enum service_verdict verdicts[] = { SERVICE_UNKNOWN,
		SERVICE_HEALTHY, SERVICE_DEGRADED, SERVICE_DOWN };
	const struct metrics_fam *fam;
	const struct probe	*p;
	size_t			 i, j, k, f;

	metrics_family(out, "failoverd_service_verdict", "gauge",
	    "The service's verdict: 1 for the one it has, 0 for the others.");
	for (i = 0; i < n; i++)
		for (k = 0; k < sizeof(verdicts) / sizeof(*verdicts); k++)
			SAMPLE_U(out, "failoverd_service_verdict",
			    service_verdict(sv[i].svc) == verdicts[k],
			    "service", service_name(sv[i].svc), "verdict",
			    service_verdict_str(verdicts[k]), NULL, NULL);

	for (f = 0; f < NPROBE_FAMS; f++) {
		fam = &metrics_probe_fams[f];
		metrics_family(out, fam->name, fam->type, fam->help);
		for (i = 0; i < n; i++)
			for (j = 0; j < service_nprobes(sv[i].svc); j++) {
				p = service_probe(sv[i].svc, j);
				metrics_probe_sample(out, f, fam->name,
				    service_name(sv[i].svc), p);
			}
	}
}

static void
metrics_render_failovers(struct metrics *m, struct buf *out,
    const struct metrics_service *sv, size_t n)
{
	struct failover_metrics_last	*last;
	struct metrics_svc		*ms;
	const char			*sname, *kind;
	enum failover_step		 st, s;
	size_t				 i, k, r;

	last = calloc(n ? n : 1, sizeof(*last));
	if (last == NULL)
		return;
	for (i = 0; i < n; i++)
		if (sv[i].fo != NULL) {
			failover_metrics_last(sv[i].fo, &last[i]);
			ms = metrics_svc(m, service_name(sv[i].svc));
			if (ms != NULL)
				metrics_count_moves(ms, &last[i]);
		}

	metrics_family(out, "failoverd_failover_step", "gauge",
	    "The failover engine's step: 1 for the one it is in.");
	for (i = 0; i < n; i++) {
		if (sv[i].fo == NULL)
			continue;
		st = failover_step(sv[i].fo);
		for (s = FAILOVER_IDLE; s < FAILOVER_STEP_MAX; s++)
			SAMPLE_U(out, "failoverd_failover_step", st == s,
			    "service", service_name(sv[i].svc), "step",
			    failover_step_str(s), NULL, NULL);
	}
	metrics_family(out, "failoverd_failovers_total", "counter",
	    "Moves (failover, switch, rollback, evacuation) that ended, by "
	    "kind and result, since the daemon started.");
	for (i = 0; i < n; i++) {
		ms = sv[i].fo != NULL ? metrics_svc(m,
		    service_name(sv[i].svc)) : NULL;
		if (ms == NULL)
			continue;
		for (k = 0; k < METRICS_KINDS; k++) {
			kind = failover_metrics_kind(k);
			if (kind == NULL)
				break;
			for (r = 0; r < METRICS_RESULTS; r++)
				SAMPLE_U(out, "failoverd_failovers_total",
				    ms->moves[k][r], "service", ms->name,
				    "kind", kind, "result",
				    metrics_results[r]);
		}
	}
	metrics_family(out, "failoverd_last_failover_info", "gauge",
	    "The last recorded move's kind and result (value 1).");
	for (i = 0; i < n; i++)
		if (last[i].kind != NULL && last[i].result != NULL)
			SAMPLE_U(out, "failoverd_last_failover_info", 1,
			    "service", service_name(sv[i].svc), "kind",
			    last[i].kind, "result", last[i].result);
	metrics_family(out,
	    "failoverd_last_failover_start_timestamp_seconds", "gauge",
	    "When the last recorded move started, in seconds since 1970.");
	for (i = 0; i < n; i++)
		if (last[i].started > 0)
			SAMPLE_T(out,
			    "failoverd_last_failover_start_timestamp_seconds",
			    last[i].started, "service",
			    service_name(sv[i].svc), NULL, NULL, NULL, NULL);
	metrics_family(out, "failoverd_last_failover_step_seconds", "gauge",
	    "Each step's time in the last recorded move (detect, fence, "
	    "launch, detach, attach, associate, verify, total); launch runs "
	    "beside fence and detach.");
	for (i = 0; i < n; i++) {
		sname = service_name(sv[i].svc);
		for (k = 0; k < FAILOVER_METRICS_TIMINGS; k++)
			if (last[i].timings[k] >= 0 &&
			    last[i].timing_names[k] != NULL &&
			    strcmp(last[i].timing_names[k],
			    "critical_path") != 0)
				SAMPLE_D(out,
				    "failoverd_last_failover_step_seconds",
				    last[i].timings[k], "service", sname,
				    "step", last[i].timing_names[k], NULL,
				    NULL);
	}
	metrics_family(out, "failoverd_last_failover_critical_path_seconds",
	    "gauge", "The last recorded move's critical path: "
	    "max(launch, fence + detach) + attach + associate + verify.");
	for (i = 0; i < n; i++)
		for (k = 0; k < FAILOVER_METRICS_TIMINGS; k++)
			if (last[i].timings[k] >= 0 &&
			    last[i].timing_names[k] != NULL &&
			    strcmp(last[i].timing_names[k],
			    "critical_path") == 0)
				SAMPLE_D(out, "failoverd_last_failover_"
				    "critical_path_seconds",
				    last[i].timings[k], "service",
				    service_name(sv[i].svc), NULL, NULL, NULL,
				    NULL);
	free(last);
}

struct metrics_snap_arg {
	struct buf	*out;
	const char	*service;
};

static void
metrics_snapshot_volume(const char *volume, time_t taken, void *arg)
{
	struct metrics_snap_arg *a = arg;

	SAMPLE_T(a->out, "failoverd_snapshot_last_success_timestamp_seconds",
	    taken, "service", a->service, "volume", volume, NULL, NULL);
}

static void
metrics_render_upkeep(struct metrics *m, struct buf *out,
    const struct metrics_service *sv, size_t n)
{
	struct metrics_snap_arg	 a;
	struct metrics_svc	*ms;
	size_t			 i;

	metrics_family(out,
	    "failoverd_snapshot_last_success_timestamp_seconds", "gauge",
	    "Start of the newest completed snapshot of each data volume, as "
	    "last described, in seconds since 1970.");
	for (i = 0; i < n; i++)
		if (sv[i].snapshot != NULL) {
			a.out = out;
			a.service = service_name(sv[i].svc);
			snapshot_newest_each(sv[i].snapshot,
			    metrics_snapshot_volume, &a);
		}
	metrics_family(out,
	    "failoverd_snapshot_run_last_success_timestamp_seconds", "gauge",
	    "When a scheduled or manual run last took a snapshot of every "
	    "volume, in seconds since 1970.");
	for (i = 0; i < n; i++)
		if (sv[i].snapshot != NULL &&
		    snapshot_last_ok(sv[i].snapshot) > 0)
			SAMPLE_T(out, "failoverd_snapshot_run_last_success_"
			    "timestamp_seconds",
			    snapshot_last_ok(sv[i].snapshot), "service",
			    service_name(sv[i].svc), NULL, NULL, NULL, NULL);
	metrics_family(out, "failoverd_preflight_success", "gauge",
	    "1 when the last preflight proved a failover would work, 0 when "
	    "it did not; absent before the first run.");
	for (i = 0; i < n; i++) {
		ms = metrics_svc(m, service_name(sv[i].svc));
		if (ms != NULL && ms->preflight != -1)
			SAMPLE_U(out, "failoverd_preflight_success",
			    ms->preflight, "service", ms->name, NULL, NULL,
			    NULL, NULL);
	}
	metrics_family(out, "failoverd_preflight_last_run_timestamp_seconds",
	    "gauge", "When the last preflight ended, in seconds since 1970.");
	for (i = 0; i < n; i++) {
		ms = metrics_svc(m, service_name(sv[i].svc));
		if (ms != NULL && ms->preflight != -1)
			SAMPLE_T(out,
			    "failoverd_preflight_last_run_timestamp_seconds",
			    ms->preflight_at, "service", ms->name, NULL, NULL,
			    NULL, NULL);
	}
}

static void
metrics_render_ec2(struct metrics *m, struct buf *out)
{
	struct ec2_stats	*st;
	const char		*action;
	unsigned long		 any;
	int			 a, s;

	if (m->env.ec2 == NULL)
		return;
	st = malloc(sizeof(*st));
	if (st == NULL)
		return;
	ec2_client_stats(m->env.ec2, st);
	metrics_family(out, "failoverd_ec2_calls_total", "counter",
	    "EC2 API calls that ended, by action and outcome (retries "
	    "inside a call are one call).");
	for (a = 0; a < EC2_ACTION_COUNT; a++)
		for (s = 0; s < EC2_STATUS_COUNT; s++)
			if (st->calls[a][s] > 0)
				SAMPLE_U(out, "failoverd_ec2_calls_total",
				    st->calls[a][s], "action",
				    ec2_action_str(a), "outcome",
				    ec2_status_str(s), NULL, NULL);
	metrics_family(out, "failoverd_ec2_retries_total", "counter",
	    "EC2 attempts sent again after throttling, a 5xx or a dropped "
	    "connection, by action.");
	for (a = 0; a < EC2_ACTION_COUNT; a++) {
		action = ec2_action_str(a);
		for (any = 0, s = 0; s < EC2_STATUS_COUNT; s++)
			any += st->calls[a][s];
		if (any > 0 || st->retries[a] > 0)
			SAMPLE_U(out, "failoverd_ec2_retries_total",
			    st->retries[a], "action", action, NULL, NULL,
			    NULL, NULL);
	}
	metrics_family(out, "failoverd_ec2_throttles_total", "counter",
	    "EC2 answers that said slow down (RequestLimitExceeded and "
	    "kin, HTTP 429), by action.");
	for (a = 0; a < EC2_ACTION_COUNT; a++) {
		for (any = 0, s = 0; s < EC2_STATUS_COUNT; s++)
			any += st->calls[a][s];
		if (any > 0 || st->throttles[a] > 0)
			SAMPLE_U(out, "failoverd_ec2_throttles_total",
			    st->throttles[a], "action", ec2_action_str(a),
			    NULL, NULL, NULL, NULL);
	}
	metrics_family(out, "failoverd_ec2_budget_wait_seconds_total",
	    "counter", "Time EC2 calls spent waiting for a token of the "
	    "call budget (aws.calls_per_second), summed over calls.");
	SAMPLE_D(out, "failoverd_ec2_budget_wait_seconds_total",
	    st->budget_wait, NOLABEL);
	metrics_family(out, "failoverd_ec2_budget_waiting_calls", "gauge",
	    "EC2 calls waiting for a token now.");
	SAMPLE_U(out, "failoverd_ec2_budget_waiting_calls",
	    st->budget_waiting, NOLABEL);
	if (st->budget_tokens >= 0) {
		metrics_family(out, "failoverd_ec2_budget_tokens", "gauge",
		    "Tokens left in the call budget's bucket (aws.burst at "
		    "most).");
		SAMPLE_D(out, "failoverd_ec2_budget_tokens",
		    st->budget_tokens, NOLABEL);
	}
	free(st);
}

void
metrics_render(struct metrics *m, struct buf *out)
{
	struct metrics_service	*sv;
	size_t			 n, i;

	n = metrics_services(m, &sv);
	metrics_family(out, "failoverd_build_info", "gauge",
	    "failoverd's version (value 1).");
	SAMPLE_U(out, "failoverd_build_info", 1, "version", FOD_VERSION,
	    NULL, NULL, NULL, NULL);
	metrics_family(out, "failoverd_start_time_seconds", "gauge",
	    "When the daemon started, in seconds since 1970.");
	SAMPLE_T(out, "failoverd_start_time_seconds", m->started, NOLABEL);
	metrics_render_services(m, out, sv, n);
	metrics_render_failovers(m, out, sv, n);
	metrics_render_upkeep(m, out, sv, n);
	metrics_render_ec2(m, out);
	if (m->env.probes != NULL) {
		metrics_family(out, "failoverd_checks_in_flight", "gauge",
		    "Probe checks running now, daemon-wide.");
		SAMPLE_U(out, "failoverd_checks_in_flight",
		    probe_sched_in_flight(m->env.probes), NOLABEL);
		metrics_family(out, "failoverd_checks_waiting", "gauge",
		    "Probe checks due but waiting for a slot "
		    "(probe_max_in_flight).");
		SAMPLE_U(out, "failoverd_checks_waiting",
		    probe_sched_waiting(m->env.probes), NOLABEL);
		metrics_family(out, "failoverd_checks_max_in_flight", "gauge",
		    "probe_max_in_flight: checks that may run at once.");
		SAMPLE_U(out, "failoverd_checks_max_in_flight",
		    probe_sched_max_in_flight(m->env.probes), NOLABEL);
	}
	metrics_family(out, "failoverd_events_total", "counter",
	    "Events logged (event=NAME lines), before any rate limit folds "
	    "repeats.");
	for (i = 0; i < ALERT_EVENT_MAX; i++)
		if (m->events[i] > 0)
			SAMPLE_U(out, "failoverd_events_total", m->events[i],
			    "event", alert_event_name(i), NULL, NULL, NULL,
			    NULL);
	metrics_family(out, "failoverd_metrics_write_failures_total",
	    "counter", "Writes of this file that failed (and were tried "
	    "again).");
	SAMPLE_U(out, "failoverd_metrics_write_failures_total",
	    m->write_failures, NOLABEL);
	free(sv);
}

/* --- writing ---------------------------------------------------------- */

static double
metrics_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
metrics_write(struct metrics *m)
{
	struct buf	out;
	char		err[PATH_MAX + 128];
	double		t0;

	ev_timer_stop(m->env.loop, &m->soon);
	if (m->dir == NULL)
		return;
	m->last_write = ev_now(m->env.loop);
	t0 = metrics_mono();
	buf_init(&out);
	metrics_render(m, &out);
	if (out.oom) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (metrics_write_file(m->dir, out.data, out.len, m->do_fsync, err,
	    sizeof(err)) == -1)
		goto fail;
	m->cost = metrics_mono() - t0;
	buf_free(&out);
	if (m->failing)
		log_info("metrics: %s/%s written again", m->dir,
		    METRICS_FILE);
	m->failing = 0;
	return;
fail:
	buf_free(&out);
	m->write_failures++;
	/* Once: a full disk must not fill the log, nor page anybody. */
	if (!m->failing)
		log_warnx("metrics: cannot write %s/%s: %s (trying again "
		    "every %gs; the services are not affected)", m->dir,
		    METRICS_FILE, err, m->period);
	m->failing = 1;
}

static void
metrics_soon_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	metrics_write(w->data);
}

static void
metrics_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	metrics_write(w->data);
}

/*
 * The gap after a write is at least METRICS_MIN_GAP and ten times what
 * that write took: with thousands of probes and events coming fast,
 * the file never takes more than a tenth of the loop.
 */
void
metrics_touch(struct metrics *m)
{
	double gap, wait;

	if (m == NULL || m->dir == NULL || ev_is_active(&m->soon))
		return;
	gap = m->cost * 10 > METRICS_MIN_GAP ? m->cost * 10 : METRICS_MIN_GAP;
	wait = m->last_write + gap - ev_now(m->env.loop);
	ev_timer_set(&m->soon, wait > 0 ? wait : 0.0, 0.0);
	ev_timer_start(m->env.loop, &m->soon);
}

static void
metrics_remove_file(const char *dir)
{
	char path[PATH_MAX];

	if (dir == NULL || (size_t)snprintf(path, sizeof(path), "%s/%s",
	    dir, METRICS_FILE) >= sizeof(path))
		return;
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("metrics: unlink %s", path);
}

void
metrics_set_conf(struct metrics *m, const struct metrics_conf *conf)
{
	char *dir = NULL;

	if (conf->textfile_dir != NULL) {
		dir = strdup(conf->textfile_dir);
		if (dir == NULL) {
			log_warnx("metrics: out of memory; settings unchanged");
			return;
		}
	}
	if (m->dir != NULL && (dir == NULL || strcmp(dir, m->dir) != 0))
		metrics_remove_file(m->dir);
	free(m->dir);
	m->dir = dir;
	m->period = conf->period > 0 ? conf->period : 15.0;
	m->do_fsync = conf->fsync;
	m->failing = 0;
	ev_timer_stop(m->env.loop, &m->tick);
	ev_timer_stop(m->env.loop, &m->soon);
	if (m->dir == NULL)
		return;
	ev_timer_set(&m->tick, m->period, m->period);
	ev_timer_start(m->env.loop, &m->tick);
	/* The first file as soon as the loop runs, not a period later. */
	m->last_write = 0;
	metrics_touch(m);
}

struct metrics *
metrics_new(const struct metrics_env *env, const struct metrics_conf *conf)
{
	struct metrics *m;

	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->env = *env;
	m->started = time(NULL);
	ev_timer_init(&m->soon, metrics_soon_cb, 0.0, 0.0);
	m->soon.data = m;
	ev_timer_init(&m->tick, metrics_tick_cb, 0.0, 0.0);
	m->tick.data = m;
	if (alert_observe(metrics_on_event, m) == -1) {
		free(m);
		return NULL;
	}
	metrics_set_conf(m, conf);
	return m;
}

void
metrics_free(struct metrics *m)
{
	size_t i;

	if (m == NULL)
		return;
	alert_unobserve(metrics_on_event, m);
	ev_timer_stop(m->env.loop, &m->soon);
	ev_timer_stop(m->env.loop, &m->tick);
	metrics_remove_file(m->dir);
	for (i = 0; i < m->nsvcs; i++)
		free(m->svcs[i].name);
	free(m->svcs);
	free(m->dir);
	free(m);
}
