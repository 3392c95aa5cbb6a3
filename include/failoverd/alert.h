/*
 * alert: the fixed vocabulary of events a person on call reads in syslog.
 *
 * Every event has one name and one severity, listed once in alert.c and
 * documented in the README's event table. A line reads
 *   event=service_down service=web instance=i-0abc reason="http: refused"
 * so that `grep event=` gives the story of a night.
 */
#ifndef FAILOVERD_ALERT_H
#define FAILOVERD_ALERT_H

#include <stddef.h>

enum alert_event {
	ALERT_STARTUP,
	ALERT_CONFIG_LOADED,
	ALERT_CONFIG_REJECTED,
	ALERT_SHUTDOWN,
	ALERT_PROBE_DOWN,
	ALERT_PROBE_UP,
	ALERT_HOSTKEY_MISMATCH,
	ALERT_SERVICE_DEGRADED,
	ALERT_SERVICE_DOWN,
	ALERT_SERVICE_RECOVERED,
	ALERT_AWS_CREDENTIALS,
	ALERT_AWS_ERROR,
	ALERT_WATCHDOG_ISOLATED,
	ALERT_FAILOVER_HELD,
	ALERT_FAILOVER_STARTED,
	ALERT_FAILOVER_STEP,
	ALERT_FAILOVER_STEP_SLOW,
	ALERT_FAILOVER_COMPLETED,
	ALERT_FAILOVER_FAILED,
	ALERT_JOURNAL_CORRUPT,
	ALERT_CONTROL_COMMAND,
	ALERT_SNAPSHOT_TAKEN,
	ALERT_SNAPSHOT_FAILED,
	ALERT_SNAPSHOT_DELETED,
	ALERT_PREFLIGHT_PASSED,
	ALERT_PREFLIGHT_FAILED,
	ALERT_BAKE_COMPLETED,
	ALERT_BAKE_FAILED,
	ALERT_SWITCH_STARTED,
	ALERT_SWITCH_COMPLETED,
	ALERT_SWITCH_FAILED,
	ALERT_SWITCH_ROLLED_BACK,
	ALERT_SWITCH_FINISHED,
	ALERT_ROLLBACK_STARTED,
	ALERT_ROLLBACK_COMPLETED,
	ALERT_ROLLBACK_FAILED,
	ALERT_EVACUATION_STARTED,
	ALERT_EVACUATION_COMPLETED,
	ALERT_JOURNAL_WRITE_FAILED,
	ALERT_JOURNAL_WRITE_OK,
	ALERT_WATCHDOG_UNHEALTHY,
	ALERT_WATCHDOG_HEALTHY,
	ALERT_WATCHDOG_TILT,
	ALERT_WATCHDOG_TILT_OVER,
	/* the cluster (cluster.h, issue 15) */
	ALERT_CLUSTER_JOINED,		/* this member holds a lease */
	ALERT_CLUSTER_MEMBER_JOINED,	/* another member appeared */
	ALERT_CLUSTER_MEMBER_LEFT,	/* another member's lease ended */
	ALERT_CLUSTER_LEADER_GAINED,	/* this member leads: it acts */
	ALERT_CLUSTER_LEADER_LOST,	/* this member stopped acting */
	ALERT_CLUSTER_LEADER_CHANGED,	/* another member leads now */
	ALERT_CLUSTER_LEASE_LOST,	/* this member's lease is gone */
	ALERT_CLUSTER_QUORUM_LOST,	/* no leader can act */
	ALERT_CLUSTER_QUORUM_BACK,
	ALERT_CLUSTER_VERDICT_SPLIT,	/* members disagree on a service */
	ALERT_CLUSTER_TAKEOVER,		/* a failover taken over */
	ALERT_EVENT_MAX
};

const char	*alert_event_name(enum alert_event ev);
int		 alert_event_severity(enum alert_event ev);

/*
 * Logs one event. The variadic part is key, value string pairs ended by
 * NULL; values with spaces, quotes or '=' are quoted and escaped here, so
 * callers never build quoting by hand. service may be NULL.
 */
void		 alert_emit(enum alert_event ev, const char *service, ...)
		    __attribute__((sentinel));

/*
 * Repeats of one line (same event, service and fields) past the fifth
 * inside this many seconds are folded into a count; 0 turns this off.
 */
void		 alert_set_rate_limit(double seconds);

/*
 * Observers see every event as it is emitted, before the rate limit
 * folds repeats (a counter must count them all): the event, its service
 * (or NULL), the key/value pairs (kv[0] = kv[1], ...; nkv pairs) and the
 * line as logged. They run on the loop and must not block or emit.
 * Returns -1 when ALERT_OBSERVERS are already registered.
 */
#define ALERT_OBSERVERS	4
typedef void	 alert_observer_fn(enum alert_event ev, const char *service,
		    const char *const *kv, size_t nkv, const char *line,
		    void *arg);
int		 alert_observe(alert_observer_fn *fn, void *arg);
/* Removes every registration of fn with arg. */
void		 alert_unobserve(alert_observer_fn *fn, void *arg);

#endif
