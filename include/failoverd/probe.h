/*
 * probe: one health check of a service, run again and again on the loop.
 *
 * This file owns what every probe type shares: the schedule (interval,
 * spread first start on the daemon's grid, never overlapping itself,
 * waiting its turn in the daemon's line of checks), the one deadline that
 * bounds a whole check, haproxy-style fall/rise counting, and the last
 * result (reason, latency). The types (probe_http.c, probe_ssh.c) only
 * run one check and report how it ended through probe_done(); they never
 * log where they fail, they fill a struct probe_result.
 */
#ifndef FAILOVERD_PROBE_H
#define FAILOVERD_PROBE_H

#include <ev.h>

#include "failoverd/buf.h"
#include "failoverd/conf.h"
#include "failoverd/curlev.h"

enum probe_state {
	PROBE_UNKNOWN,		/* neither fall nor rise reached yet */
	PROBE_UP,
	PROBE_DOWN
};

/* How a check ended. Text in probe_reason_str(), one table. */
enum probe_reason {
	PROBE_OK,
	PROBE_ERR_NO_TARGET,		/* no address to check yet */
	PROBE_ERR_RESOLVE,
	PROBE_ERR_CONNECT_REFUSED,
	PROBE_ERR_CONNECT,		/* unreachable, reset, ... */
	PROBE_ERR_TIMEOUT,		/* timeout_in=STAGE */
	PROBE_ERR_TLS,
	PROBE_ERR_HTTP,			/* any other transfer error */
	PROBE_ERR_HTTP_STATUS,		/* status=N */
	PROBE_ERR_HTTP_BODY,
	PROBE_ERR_BANNER,
	PROBE_ERR_KEX,
	PROBE_ERR_HOSTKEY_MISMATCH,
	PROBE_ERR_HOSTKEY_UNKNOWN,
	PROBE_ERR_KNOWN_HOSTS,		/* known_hosts unreadable */
	PROBE_ERR_AUTH,
	PROBE_ERR_COMMAND,		/* channel or exec failed */
	PROBE_ERR_COMMAND_EXIT,		/* command_exit=N */
	PROBE_ERR_COMMAND_OUTPUT,	/* expect_output not found */
	PROBE_ERR_INTERNAL,
	/*
	 * The watchdog's own fault (no descriptor, no memory, no local
	 * port): the check learnt nothing about the target. Like
	 * PROBE_ERR_INTERNAL it is not counted (probe_result_is_local).
	 */
	PROBE_ERR_LOCAL,
	PROBE_REASON_MAX
};

/* Where a check was when it ended; names the stage of a timeout. */
enum probe_stage {
	PROBE_STAGE_CONNECT,
	PROBE_STAGE_TLS,
	PROBE_STAGE_RESPONSE,
	PROBE_STAGE_BANNER,
	PROBE_STAGE_KEX,
	PROBE_STAGE_HOSTKEY,
	PROBE_STAGE_AUTH,
	PROBE_STAGE_COMMAND,
	PROBE_STAGE_CLOSE,
	PROBE_STAGE_MAX
};

struct probe_result {
	enum probe_reason reason;
	enum probe_stage  stage;	/* for PROBE_ERR_TIMEOUT */
	int		  code;		/* HTTP status, exit status */
	char		  detail[160];	/* library's words, for debug */
};

/* Fall/rise bookkeeping, pure so that it can be tested alone. */
struct probe_health {
	enum probe_state state;
	int		 ok_streak;	/* consecutive successes */
	int		 fail_streak;	/* consecutive failures */
};

struct probe;

/* Told when a probe's state changes (after it is logged). */
typedef void (*probe_state_cb)(struct probe *p, enum probe_state from,
    enum probe_state to, void *arg);

const char	*probe_state_str(enum probe_state s);
const char	*probe_reason_str(enum probe_reason r);
const char	*probe_stage_str(enum probe_stage s);
/* "ok", "connect_refused", "timeout_in=banner", "command_exit=3", ... */
void		 probe_result_fmt(const struct probe_result *res, char *out,
		    size_t len);
void		 probe_result_set(struct probe_result *res,
		    enum probe_reason reason, enum probe_stage stage, int code,
		    const char *detail);

/*
 * 1 for a result that says nothing about the target (PROBE_ERR_LOCAL,
 * PROBE_ERR_INTERNAL): never counted toward fall or rise.
 */
int		 probe_result_is_local(const struct probe_result *res);

/*
 * Counts one result; returns the new state. The state moves to DOWN after
 * fall consecutive failures and to UP after rise consecutive successes;
 * from UNKNOWN, whichever comes first.
 */
enum probe_state probe_health_record(struct probe_health *h, int ok,
		    int fall, int rise);

/*
 * Seconds into the interval at which a probe first fires: a multiple of
 * grid, the step on which checks start together (probe.c).
 */
double		 probe_spread(const char *service, const char *probe,
		    double interval, double grid);
/*
 * The grid step for a daemon whose probes run rate checks a second,
 * the shortest interval being min_interval (0: unknown): sized for ~20
 * checks a wakeup, 20 ms to 200 ms, at most a quarter of the interval.
 */
double		 probe_grid_for(double rate, double min_interval);

/*
 * The probes' schedule, one per daemon and shared by all its probes:
 * at most max_in_flight checks (HTTP or SSH) run at once, daemon-wide,
 * the others wait their turn first come, first served (admission.h),
 * so that a loop that cannot keep up makes the schedule slip instead of
 * memory grow with checks in flight; a check's one deadline starts
 * with the check, so waiting never fails it. Checks start on a grid
 * sized for the load. EC2 and IMDS transfers never wait here.
 */
struct probe_sched;

struct probe_sched *probe_sched_new(struct ev_loop *loop,
		    unsigned int max_in_flight);
/* After every probe on it. */
void		 probe_sched_free(struct probe_sched *s);
/* probe_max_in_flight, at start and on reload (0 counts as 1). */
void		 probe_sched_set_max_in_flight(struct probe_sched *s,
		    unsigned int max);
/*
 * rate: checks a second of every probe, min_interval: the shortest
 * (probe_grid_for). Probes started from now on go on the new grid;
 * running ones keep theirs. Until set, the finest grid.
 */
void		 probe_sched_set_load(struct probe_sched *s, double rate,
		    double min_interval);
unsigned int	 probe_sched_max_in_flight(const struct probe_sched *s);
unsigned int	 probe_sched_in_flight(const struct probe_sched *s);
unsigned int	 probe_sched_waiting(const struct probe_sched *s);

/*
 * A probe of service `service` (borrowed: it must outlive the probe) on
 * the given loop, its checks scheduled by sched; conf is borrowed too,
 * until probe_set_conf. Returns NULL and a message in err when the
 * settings cannot be used (e.g. a bad regex).
 */
struct probe	*probe_new(struct ev_loop *loop, struct curlev *curl,
		    struct probe_sched *sched, const char *service,
		    const struct probe_conf *conf, probe_state_cb cb, void *arg,
		    char *err, size_t errlen);
void		 probe_free(struct probe *p);

/*
 * Address to check when the probe has no `address` of its own (the
 * Elastic IP); NULL stops such a probe after its current check.
 */
void		 probe_set_target(struct probe *p, const char *address);
/*
 * A known_hosts-format file of host keys the failover engine learnt for
 * the replacement instance (from its console output); ssh checks accept
 * a key found there or in the probe's known_hosts. NULL: none.
 */
void		 probe_set_learned_hosts(struct probe *p, const char *path);
const char	*probe_learned_hosts(const struct probe *p);
/*
 * Forgets fall/rise progress: the probe is UNKNOWN again and must pass
 * (or fail) its rise (fall) count anew. Nobody is told; the caller
 * re-evaluates. Used when the failover engine verifies a replacement.
 */
void		 probe_reset(struct probe *p);
void		 probe_start(struct probe *p);
void		 probe_stop(struct probe *p);
/* Adopts an equal conf from a reloaded config (the old one goes away). */
void		 probe_set_conf(struct probe *p,
		    const struct probe_conf *conf);

const struct probe_conf *probe_conf(const struct probe *p);
const char	*probe_name(const struct probe *p);
enum probe_state probe_state(const struct probe *p);
const struct probe_result *probe_last_result(const struct probe *p);
/* The last result as text, "ok" or the reason; "" before any check. */
const char	*probe_last_reason(const struct probe *p);
/* The address checked, or NULL. */
const char	*probe_target(const struct probe *p);
/*
 * Checks counted since the probe was made (a local fault is no check),
 * the failed ones among them, and the last one's latency in seconds
 * (-1 before the first).
 */
unsigned long	 probe_checks(const struct probe *p);
unsigned long	 probe_failures(const struct probe *p);
double		 probe_latency(const struct probe *p);

/* One line of text, or one JSON object, for failoverctl status. */
void		 probe_status(const struct probe *p, struct buf *out,
		    int json);

/* Called by the probe types, once per check, when a check ends. */
void		 probe_done(struct probe *p, const struct probe_result *res);

#endif
