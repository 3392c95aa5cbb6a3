/*
 * What every probe shares, after relayd's hce.c: a schedule, one deadline
 * per check, fall/rise, and one function (probe_finish) that records a
 * result and logs a state change. The types only run a check.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "failoverd/admission.h"
#include "failoverd/alert.h"
#include "failoverd/log.h"
#include "failoverd/probe.h"
#include "failoverd/probe_http.h"
#include "failoverd/probe_ssh.h"
#include "failoverd/selfcheck.h"

/*
 * Checks start on a grid, in absolute time, shared by every probe, so
 * that the checks due in the same grid step start on one wakeup of the
 * loop. In this VM a wakeup costs about as much as a request; with a
 * timer of its own per check, 1,000 services at 1 s cost ~117 us of CPU
 * a check, on a 20 ms grid ~86 us (tests/bench/README.md, "Third
 * round"). The step is sized for ~PROBE_GRID_BATCH checks a wakeup
 * (probe_grid_for): at 100 services at 1 s a 20 ms grid shares a wakeup
 * between 2 checks (~184 us a check), a 200 ms one between 20 (~90 us).
 * It stays within PROBE_GRID_MIN and PROBE_GRID_MAX and a quarter of
 * the shortest interval: a check starts at most one step later than its
 * spread said, which moves its phase, not its interval, so detection
 * bounds hold; and a batch of ~20 checks takes ~2 ms of the loop, so
 * jitter stays small.
 */
#define PROBE_GRID_MIN		0.02
#define PROBE_GRID_MAX		0.2
#define PROBE_GRID_BATCH	20.0

double
probe_grid_for(double rate, double min_interval)
{
	double grid = PROBE_GRID_MAX;

	if (rate > 0 && PROBE_GRID_BATCH / rate < grid)
		grid = PROBE_GRID_BATCH / rate;
	if (min_interval > 0 && min_interval / 4 < grid)
		grid = min_interval / 4;
	return grid > PROBE_GRID_MIN ? grid : PROBE_GRID_MIN;
}

/* The cap reached is logged at most this often, seconds. */
#define PROBE_SCHED_WARN_EVERY	60.0

/*
 * What the probes of a daemon share (probe.h): the line that lets at
 * most probe_max_in_flight checks (HTTP or SSH) run at once, so that a
 * loop that cannot keep up makes the schedule slip instead of memory
 * grow with checks in flight, and the grid their checks start on.
 *
 * probe_max_in_flight is 256 by default. Figures from 10,000 services
 * at 1 s on a 2-core machine (tests/bench/README.md, "Third round"): a
 * check in flight holds ~15 KB (RSS rises by that per place from a cap
 * of 1 to 1,024: its easy handle, curl's connection and request state,
 * receive, body and error buffers), so 256 bound them to ~4 MB, where
 * uncapped thousands piled up (230 MB). The loop ran ~10,500 checks/s
 * at 256, as at 64; at 1,024 each check cost more (curl walks its
 * in-flight lists) and fewer ran. Not smaller: a blackholed target
 * holds its place for the whole timeout, and 256 leave room for 128
 * such checks a second at the default 2 s timeout (1,000 services at
 * 1 s with 10% blackholed and 0.5 s timeouts need ~50) before healthy
 * checks queue behind them.
 */
struct probe_sched {
	struct ev_loop		*loop;
	struct admission	*line;
	double			 grid;		/* 0: the finest */
	double			 warned;	/* ev_now, cap reached */
};

struct probe_sched *
probe_sched_new(struct ev_loop *loop, unsigned int max_in_flight)
{
	struct probe_sched *s;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->loop = loop;
	s->line = admission_new(loop, max_in_flight);
	if (s->line == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void
probe_sched_free(struct probe_sched *s)
{
	if (s == NULL)
		return;
	admission_free(s->line);
	free(s);
}

void
probe_sched_set_max_in_flight(struct probe_sched *s, unsigned int max)
{
	admission_set_limit(s->line, max);
}

void
probe_sched_set_load(struct probe_sched *s, double rate,
    double min_interval)
{
	s->grid = probe_grid_for(rate, min_interval);
}

unsigned int
probe_sched_max_in_flight(const struct probe_sched *s)
{
	return admission_limit(s->line);
}

unsigned int
probe_sched_in_flight(const struct probe_sched *s)
{
	return admission_in_use(s->line);
}

unsigned int
probe_sched_waiting(const struct probe_sched *s)
{
	return admission_waiting(s->line);
}

/* A check due now must wait: the loop is not keeping up. */
static void
probe_sched_warn(struct probe_sched *s)
{
	double now = ev_now(s->loop);

	if (s->warned != 0 && now - s->warned < PROBE_SCHED_WARN_EVERY)
		return;
	s->warned = now;
	log_warnx("probes: %u checks in flight, the most at once: checks "
	    "due now wait their turn and start late (%u waiting)",
	    admission_in_use(s->line), admission_waiting(s->line));
}

struct probe {
	struct ev_loop		*loop;
	struct curlev		*curl;
	struct probe_sched	*shared;	/* line and grid */
	const char		*service;
	const struct probe_conf	*conf;
	probe_state_cb		 cb;
	void			*cb_arg;
	char			*target;	/* the service's address */
	char			*learned_hosts;	/* file, or NULL */

	ev_timer		 sched;		/* start of each check */
	ev_timer		 deadline;	/* end of the current check */
	struct admission_ticket	 line;		/* in the probes' line */
	int			 started;
	int			 running;	/* holds a place */
	double			 check_start;	/* ev_now */
	double			 planned;	/* next start, ev_now */
	double			 due;		/* of the check now due */
	double			 late;		/* of the last start, s */

	struct probe_health	 health;
	struct probe_result	 last;
	/*
	 * probe_result_fmt's text: at most "command_exit=-2147483648" (24);
	 * not more, at 10,000 probes each byte here is 10 KB.
	 */
	char			 last_text[48];
	double			 latency;	/* seconds, last check */
	time_t			 last_wall;	/* for people only */
	unsigned long		 checks;
	unsigned long		 failures;

	struct probe_http	*http;
	struct probe_ssh	*ssh;
};

static const char *probe_state_names[] = {
	[PROBE_UNKNOWN]	= "unknown",
	[PROBE_UP]	= "up",
	[PROBE_DOWN]	= "down",
};

static const char *probe_reason_names[PROBE_REASON_MAX] = {
	[PROBE_OK]			= "ok",
	[PROBE_ERR_NO_TARGET]		= "no_target",
	[PROBE_ERR_RESOLVE]		= "resolve",
	[PROBE_ERR_CONNECT_REFUSED]	= "connect_refused",
	[PROBE_ERR_CONNECT]		= "connect",
	[PROBE_ERR_TIMEOUT]		= "timeout_in",
	[PROBE_ERR_TLS]			= "tls",
	[PROBE_ERR_HTTP]		= "http",
	[PROBE_ERR_HTTP_STATUS]		= "status",
	[PROBE_ERR_HTTP_BODY]		= "body_mismatch",
	[PROBE_ERR_BANNER]		= "banner",
	[PROBE_ERR_KEX]			= "kex",
	[PROBE_ERR_HOSTKEY_MISMATCH]	= "hostkey_mismatch",
	[PROBE_ERR_HOSTKEY_UNKNOWN]	= "hostkey_unknown",
	[PROBE_ERR_KNOWN_HOSTS]		= "known_hosts",
	[PROBE_ERR_AUTH]		= "auth",
	[PROBE_ERR_COMMAND]		= "command",
	[PROBE_ERR_COMMAND_EXIT]	= "command_exit",
	[PROBE_ERR_COMMAND_OUTPUT]	= "output_mismatch",
	[PROBE_ERR_INTERNAL]		= "internal",
	[PROBE_ERR_LOCAL]		= "local",
};

static const char *probe_stage_names[PROBE_STAGE_MAX] = {
	[PROBE_STAGE_CONNECT]	= "connect",
	[PROBE_STAGE_TLS]	= "tls",
	[PROBE_STAGE_RESPONSE]	= "response",
	[PROBE_STAGE_BANNER]	= "banner",
	[PROBE_STAGE_KEX]	= "kex",
	[PROBE_STAGE_HOSTKEY]	= "hostkey",
	[PROBE_STAGE_AUTH]	= "auth",
	[PROBE_STAGE_COMMAND]	= "command",
	[PROBE_STAGE_CLOSE]	= "close",
};

const char *
probe_state_str(enum probe_state s)
{
	if ((unsigned int)s > PROBE_DOWN)
		return "?";
	return probe_state_names[s];
}

const char *
probe_reason_str(enum probe_reason r)
{
	if ((unsigned int)r >= PROBE_REASON_MAX)
		return "?";
	return probe_reason_names[r];
}

const char *
probe_stage_str(enum probe_stage s)
{
	if ((unsigned int)s >= PROBE_STAGE_MAX)
		return "?";
	return probe_stage_names[s];
}

void
probe_result_set(struct probe_result *res, enum probe_reason reason,
    enum probe_stage stage, int code, const char *detail)
{
	res->reason = reason;
	res->stage = stage;
	res->code = code;
	snprintf(res->detail, sizeof(res->detail), "%s",
	    detail ? detail : "");
}

void
probe_result_fmt(const struct probe_result *res, char *out, size_t len)
{
	switch (res->reason) {
	case PROBE_ERR_TIMEOUT:
		snprintf(out, len, "timeout_in=%s",
		    probe_stage_str(res->stage));
		break;
	case PROBE_ERR_HTTP_STATUS:
	case PROBE_ERR_COMMAND_EXIT:
		snprintf(out, len, "%s=%d", probe_reason_str(res->reason),
		    res->code);
		break;
	default:
		snprintf(out, len, "%s", probe_reason_str(res->reason));
		break;
	}
}

int
probe_result_is_local(const struct probe_result *res)
{
	return res->reason == PROBE_ERR_LOCAL ||
	    res->reason == PROBE_ERR_INTERNAL;
}

/*
 * A check the watchdog could not run: shown in status, told to on-call
 * as the watchdog's fault (selfcheck.c), and counted for nothing. Were
 * it counted, running out of descriptors would fail production over.
 */
static void
probe_finish_local(struct probe *p, const struct probe_result *res)
{
	char what[160];

	p->last = *res;
	probe_result_fmt(res, p->last_text, sizeof(p->last_text));
	snprintf(what, sizeof(what), "probe %s/%s", p->service,
	    p->conf->name);
	selfcheck_fault(SELFCHECK_PROBES, what,
	    res->detail[0] != '\0' ? res->detail : p->last_text);
}

enum probe_state
probe_health_record(struct probe_health *h, int ok, int fall, int rise)
{
	if (fall < 1)
		fall = 1;
	if (rise < 1)
		rise = 1;
	if (ok) {
		h->fail_streak = 0;
		if (h->ok_streak < rise)
			h->ok_streak++;
		if (h->state != PROBE_UP && h->ok_streak >= rise)
			h->state = PROBE_UP;
	} else {
		h->ok_streak = 0;
		if (h->fail_streak < fall)
			h->fail_streak++;
		if (h->state != PROBE_DOWN && h->fail_streak >= fall)
			h->state = PROBE_DOWN;
	}
	return h->state;
}

double
probe_spread(const char *service, const char *probe, double interval,
    double grid)
{
	uint32_t	 hash = 2166136261u;	/* FNV-1a */
	const char	*p;
	double		 t;

	for (p = service; *p != '\0'; p++)
		hash = (hash ^ (unsigned char)*p) * 16777619u;
	hash = (hash ^ '/') * 16777619u;
	for (p = probe; *p != '\0'; p++)
		hash = (hash ^ (unsigned char)*p) * 16777619u;
	/* Deterministic, so a restart keeps the same phases. */
	t = interval * (hash % 1000u) / 1000.0;
	return grid * (double)(long long)(t / grid);
}

const struct probe_conf *
probe_conf(const struct probe *p)
{
	return p->conf;
}

const char *
probe_name(const struct probe *p)
{
	return p->conf->name;
}

enum probe_state
probe_state(const struct probe *p)
{
	return p->health.state;
}

const struct probe_result *
probe_last_result(const struct probe *p)
{
	return &p->last;
}

const char *
probe_last_reason(const struct probe *p)
{
	return p->last_text;
}

unsigned long
probe_checks(const struct probe *p)
{
	return p->checks;
}

unsigned long
probe_failures(const struct probe *p)
{
	return p->failures;
}

double
probe_latency(const struct probe *p)
{
	return p->checks > 0 ? p->latency : -1.0;
}

const char *
probe_target(const struct probe *p)
{
	if (p->conf->address != NULL)
		return p->conf->address;
	return p->target;
}

/*
 * The one place a check's result lands: counters, fall/rise, and the
 * probe_down/probe_up events, which are logged only on a change.
 */
static void
probe_finish(struct probe *p, const struct probe_result *res)
{
	enum probe_state	 from = p->health.state, to;
	const char		*target = probe_target(p);
	char			 latency[32];

	ev_timer_stop(p->loop, &p->deadline);
	p->running = 0;
	/* Another check may start, from the loop, once this one is done. */
	admission_leave(p->shared->line, &p->line);
	ev_now_update(p->loop);
	p->latency = ev_now(p->loop) - p->check_start;
	p->last_wall = time(NULL);
	if (probe_result_is_local(res)) {
		probe_finish_local(p, res);
		return;
	}
	/* A check reached its target: the watchdog can run checks. */
	selfcheck_ok(SELFCHECK_PROBES);
	p->last = *res;
	probe_result_fmt(res, p->last_text, sizeof(p->last_text));
	p->checks++;
	if (res->reason != PROBE_OK)
		p->failures++;
	to = probe_health_record(&p->health, res->reason == PROBE_OK,
	    p->conf->fall, p->conf->rise);

	/* late: how far the start missed its schedule (the benchmarks). */
	log_debug("probe %s/%s: check %s latency=%.0fms late=%.3fms%s%s",
	    p->service, p->conf->name, p->last_text, p->latency * 1000.0,
	    p->late * 1000.0, res->detail[0] != '\0' ? " detail=" : "",
	    res->detail);
	if (from == to)
		return;

	snprintf(latency, sizeof(latency), "%.0f", p->latency * 1000.0);
	if (to == PROBE_DOWN)
		alert_emit(ALERT_PROBE_DOWN, p->service,
		    "probe", p->conf->name,
		    "type", probe_type_str(p->conf->type),
		    "target", target ? target : "",
		    "reason", p->last_text, NULL);
	else if (from == PROBE_DOWN)
		alert_emit(ALERT_PROBE_UP, p->service, "probe", p->conf->name,
		    "type", probe_type_str(p->conf->type),
		    "target", target ? target : "",
		    "latency_ms", latency, NULL);
	else
		/* unknown -> up at start is news to nobody on call. */
		log_info("probe %s/%s: up (target %s)", p->service,
		    p->conf->name, target ? target : "");
	if (p->cb != NULL)
		p->cb(p, from, to, p->cb_arg);
}

void
probe_done(struct probe *p, const struct probe_result *res)
{
	if (!p->running)
		return;
	probe_finish(p, res);
}

/* One deadline for every stage of a check, as relayd does. */
static void
probe_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct probe		*p = w->data;
	struct probe_result	 res;

	if (!p->running)
		return;
	probe_result_set(&res, PROBE_ERR_TIMEOUT, PROBE_STAGE_CONNECT, 0,
	    NULL);
	if (p->http != NULL)
		probe_http_abort(p->http, &res);
	else if (p->ssh != NULL)
		probe_ssh_abort(p->ssh, &res);
	res.reason = PROBE_ERR_TIMEOUT;
	probe_finish(p, &res);
}

/*
 * Runs a check that holds a place in the probes' line: at once when its
 * time came with a place free, or later, its turn come. Its deadline
 * starts now, with the check, so waiting in line never fails it.
 */
static void
probe_begin(struct probe *p)
{
	struct probe_result	 res;
	const char		*target = probe_target(p);
	int			 rc = -1;
	double			 now = ev_now(p->loop);

	/* late: how far the start missed its schedule (the benchmarks). */
	p->late = now - p->due;
	if (target == NULL) {
		/* The address went away while the check waited. */
		admission_leave(p->shared->line, &p->line);
		probe_result_set(&p->last, PROBE_ERR_NO_TARGET,
		    PROBE_STAGE_CONNECT, 0, NULL);
		probe_result_fmt(&p->last, p->last_text,
		    sizeof(p->last_text));
		return;
	}
	p->running = 1;
	p->check_start = now;
	probe_result_set(&res, PROBE_ERR_INTERNAL, PROBE_STAGE_CONNECT, 0,
	    NULL);
	if (p->http != NULL)
		rc = probe_http_start(p->http, p->conf, target, &res);
	else if (p->ssh != NULL)
		rc = probe_ssh_start(p->ssh, p->conf, target, &res);
	if (rc == -1) {
		probe_finish(p, &res);
		return;
	}
	ev_timer_set(&p->deadline, p->conf->timeout, 0.);
	ev_timer_start(p->loop, &p->deadline);
}

/* The probe's turn in the line came: the place is its. */
static void
probe_on_turn(void *arg)
{
	struct probe *p = arg;

	/* Other checks may have run since the loop last read the clock. */
	ev_now_update(p->loop);
	probe_begin(p);
}

static void
probe_on_sched(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct probe		*p = w->data;
	double			 now;

	ev_now_update(loop);
	now = ev_now(loop);
	/* As libev does: the next start is a period on, unless missed. */
	if (!p->running && !admission_ticket_waiting(&p->line))
		p->due = p->planned;
	p->planned += p->conf->interval;
	if (p->planned < now)
		p->planned = now;
	if (p->running || admission_ticket_waiting(&p->line)) {
		/*
		 * Cannot happen while timeout < interval and the loop keeps
		 * up; never overlap, never queue a probe twice.
		 */
		log_debug("probe %s/%s: previous check still %s",
		    p->service, p->conf->name,
		    p->running ? "running" : "waiting for its turn");
		return;
	}
	if (probe_target(p) == NULL) {
		probe_result_set(&p->last, PROBE_ERR_NO_TARGET,
		    PROBE_STAGE_CONNECT, 0, NULL);
		probe_result_fmt(&p->last, p->last_text,
		    sizeof(p->last_text));
		return;
	}
	/* With the cap reached the check waits; the schedule slips. */
	if (admission_enter(p->shared->line, &p->line))
		probe_begin(p);
	else
		probe_sched_warn(p->shared);
}

struct probe *
probe_new(struct ev_loop *loop, struct curlev *curl,
    struct probe_sched *sched, const char *service,
    const struct probe_conf *conf, probe_state_cb cb, void *arg, char *err,
    size_t errlen)
{
	struct probe *p;

	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		snprintf(err, errlen, "probe %s/%s: out of memory", service,
		    conf->name);
		return NULL;
	}
	p->loop = loop;
	p->curl = curl;
	p->shared = sched;
	p->service = service;
	p->conf = conf;
	p->cb = cb;
	p->cb_arg = arg;
	p->health.state = PROBE_UNKNOWN;
	ev_timer_init(&p->sched, probe_on_sched, 0., 0.);
	p->sched.data = p;
	ev_timer_init(&p->deadline, probe_on_deadline, 0., 0.);
	p->deadline.data = p;
	admission_ticket_init(&p->line, probe_on_turn, p);
	switch (conf->type) {
	case PROBE_HTTP:
		p->http = probe_http_new(p, curl, conf, err, errlen);
		if (p->http == NULL)
			goto fail;
		break;
	case PROBE_SSH:
		p->ssh = probe_ssh_new(p, loop, service, conf, err, errlen);
		if (p->ssh == NULL)
			goto fail;
		break;
	default:
		snprintf(err, errlen, "probe %s/%s: unknown type", service,
		    conf->name);
		goto fail;
	}
	return p;
fail:
	free(p);
	return NULL;
}

void
probe_start(struct probe *p)
{
	double first, now = ev_now(p->loop), grid;

	if (p->started)
		return;
	p->started = 1;
	/* Unset (0) means the finest. */
	grid = p->shared->grid;
	if (grid < PROBE_GRID_MIN)
		grid = PROBE_GRID_MIN;
	first = probe_spread(p->service, p->conf->name, p->conf->interval,
	    grid);
	/*
	 * Onto the grid in absolute time, so that probes started apart (a
	 * reload) share wakeups with the others.
	 */
	first += grid - (now - grid * (double)(long long)(now / grid));
	/* A repeating timer keeps a fixed rate, whatever a check takes. */
	ev_timer_set(&p->sched, first, p->conf->interval);
	ev_timer_start(p->loop, &p->sched);
	p->planned = now + first;
}

static void
probe_cancel(struct probe *p)
{
	struct probe_result res;

	ev_timer_stop(p->loop, &p->deadline);
	admission_cancel(p->shared->line, &p->line);
	if (!p->running)
		return;
	/* Abort tears the check down without reporting it. */
	if (p->http != NULL)
		probe_http_abort(p->http, &res);
	else if (p->ssh != NULL)
		probe_ssh_abort(p->ssh, &res);
	p->running = 0;
	admission_leave(p->shared->line, &p->line);
}

void
probe_stop(struct probe *p)
{
	ev_timer_stop(p->loop, &p->sched);
	probe_cancel(p);
	p->started = 0;
}

void
probe_set_target(struct probe *p, const char *address)
{
	char *copy = NULL;

	if (address != NULL && p->target != NULL &&
	    strcmp(address, p->target) == 0)
		return;
	if (address != NULL) {
		copy = strdup(address);
		if (copy == NULL) {
			log_warn("probe %s/%s: target", p->service,
			    p->conf->name);
			return;
		}
	}
	/* A check of the old address says nothing about the new one. */
	if (p->conf->address == NULL)
		probe_cancel(p);
	free(p->target);
	p->target = copy;
}

void
probe_set_learned_hosts(struct probe *p, const char *path)
{
	char *copy = NULL;

	if (path != NULL) {
		copy = strdup(path);
		if (copy == NULL) {
			log_warn("probe %s/%s: learned hosts", p->service,
			    p->conf->name);
			return;
		}
	}
	free(p->learned_hosts);
	p->learned_hosts = copy;
}

const char *
probe_learned_hosts(const struct probe *p)
{
	return p->learned_hosts;
}

void
probe_reset(struct probe *p)
{
	/* A check in flight began before the reset: it must not count. */
	probe_cancel(p);
	p->health.state = PROBE_UNKNOWN;
	p->health.ok_streak = 0;
	p->health.fail_streak = 0;
}

void
probe_set_conf(struct probe *p, const struct probe_conf *conf)
{
	p->conf = conf;
}

void
probe_status(const struct probe *p, struct buf *out, int json)
{
	const char	*target = probe_target(p);
	double		 ago = -1;

	if (p->checks > 0)
		ago = difftime(time(NULL), p->last_wall);
	if (!json) {
		buf_printf(out, "  probe %-16s %-4s %-21s %-7s %-22s "
		    "%6.0fms checks=%lu failures=%lu streak=%s%d\n",
		    p->conf->name, probe_type_str(p->conf->type),
		    target ? target : "-", probe_state_str(p->health.state),
		    p->last_text[0] ? p->last_text : "-",
		    p->latency * 1000.0, p->checks, p->failures,
		    p->health.fail_streak > 0 ? "-" : "+",
		    p->health.fail_streak > 0 ? p->health.fail_streak :
		    p->health.ok_streak);
		return;
	}
	buf_puts(out, "{\"name\":");
	buf_json_str(out, p->conf->name);
	buf_puts(out, ",\"type\":");
	buf_json_str(out, probe_type_str(p->conf->type));
	buf_puts(out, ",\"target\":");
	buf_json_str_or_null(out, target);
	buf_puts(out, ",\"state\":");
	buf_json_str(out, probe_state_str(p->health.state));
	buf_puts(out, ",\"reason\":");
	buf_json_str(out, p->last_text);
	buf_printf(out, ",\"latency_ms\":%.1f,\"checks\":%lu,"
	    "\"failures\":%lu,\"ok_streak\":%d,\"fail_streak\":%d,"
	    "\"fall\":%d,\"rise\":%d,\"interval\":%g,\"timeout\":%g,"
	    "\"running\":%s,\"waiting\":%s,\"last_check_ago\":%.0f}",
	    p->latency * 1000.0, p->checks, p->failures,
	    p->health.ok_streak, p->health.fail_streak, p->conf->fall,
	    p->conf->rise, p->conf->interval, p->conf->timeout,
	    p->running ? "true" : "false",
	    admission_ticket_waiting(&p->line) ? "true" : "false", ago);
}

void
probe_free(struct probe *p)
{
	if (p == NULL)
		return;
	probe_stop(p);
	probe_http_free(p->http);
	probe_ssh_free(p->ssh);
	free(p->target);
	free(p->learned_hosts);
	free(p);
}
