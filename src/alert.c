/*
 * The event table and the one function that writes an event. Repeats of
 * the same line are rate limited: on-call wants the first
 * line and a count, not a page per second.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "failoverd/alert.h"
#include "failoverd/buf.h"
#include "failoverd/log.h"

static const struct {
	const char	*name;
	int		 severity;
} alert_table[ALERT_EVENT_MAX] = {
	[ALERT_STARTUP]			= { "startup", LOG_NOTICE },
	[ALERT_CONFIG_LOADED]		= { "config_loaded", LOG_NOTICE },
	[ALERT_CONFIG_REJECTED]		= { "config_rejected", LOG_ERR },
	[ALERT_SHUTDOWN]		= { "shutdown", LOG_NOTICE },
	[ALERT_PROBE_DOWN]		= { "probe_down", LOG_WARNING },
	[ALERT_PROBE_UP]		= { "probe_up", LOG_NOTICE },
	[ALERT_HOSTKEY_MISMATCH]	= { "hostkey_mismatch", LOG_CRIT },
	[ALERT_SERVICE_DEGRADED]	= { "service_degraded", LOG_WARNING },
	[ALERT_SERVICE_DOWN]		= { "service_down", LOG_ERR },
	[ALERT_SERVICE_RECOVERED]	= { "service_recovered", LOG_NOTICE },
	[ALERT_AWS_CREDENTIALS]		= { "aws_credentials", LOG_NOTICE },
	[ALERT_AWS_ERROR]		= { "aws_error", LOG_WARNING },
	[ALERT_WATCHDOG_ISOLATED]	= { "watchdog_isolated", LOG_CRIT },
	[ALERT_FAILOVER_HELD]		= { "failover_held", LOG_ERR },
	[ALERT_FAILOVER_STARTED]	= { "failover_started", LOG_ALERT },
	[ALERT_FAILOVER_STEP]		= { "failover_step", LOG_NOTICE },
	[ALERT_FAILOVER_STEP_SLOW]	= { "failover_step_slow", LOG_WARNING },
	[ALERT_FAILOVER_COMPLETED]	= { "failover_completed", LOG_ALERT },
	[ALERT_FAILOVER_FAILED]		= { "failover_failed", LOG_CRIT },
	[ALERT_JOURNAL_CORRUPT]		= { "journal_corrupt", LOG_CRIT },
	[ALERT_CONTROL_COMMAND]		= { "control_command", LOG_NOTICE },
	[ALERT_SNAPSHOT_TAKEN]		= { "snapshot_taken", LOG_NOTICE },
	[ALERT_SNAPSHOT_FAILED]		= { "snapshot_failed", LOG_ERR },
	[ALERT_SNAPSHOT_DELETED]	= { "snapshot_deleted", LOG_NOTICE },
	[ALERT_PREFLIGHT_PASSED]	= { "preflight_passed", LOG_NOTICE },
	[ALERT_PREFLIGHT_FAILED]	= { "preflight_failed", LOG_CRIT },
	[ALERT_BAKE_COMPLETED]		= { "bake_completed", LOG_NOTICE },
	[ALERT_BAKE_FAILED]		= { "bake_failed", LOG_ERR },
	[ALERT_SWITCH_STARTED]		= { "switch_started", LOG_NOTICE },
	[ALERT_SWITCH_COMPLETED]	= { "switch_completed", LOG_NOTICE },
	[ALERT_SWITCH_FAILED]		= { "switch_failed", LOG_ERR },
	[ALERT_SWITCH_ROLLED_BACK]	= { "switch_rolled_back", LOG_CRIT },
	[ALERT_SWITCH_FINISHED]		= { "switch_finished", LOG_NOTICE },
	[ALERT_ROLLBACK_STARTED]	= { "rollback_started", LOG_WARNING },
	[ALERT_ROLLBACK_COMPLETED]	= { "rollback_completed", LOG_NOTICE },
	[ALERT_ROLLBACK_FAILED]		= { "rollback_failed", LOG_CRIT },
	[ALERT_EVACUATION_STARTED]	= { "evacuation_started", LOG_ALERT },
	[ALERT_EVACUATION_COMPLETED]	= { "evacuation_completed", LOG_ALERT },
	[ALERT_JOURNAL_WRITE_FAILED]	= { "journal_write_failed", LOG_CRIT },
	[ALERT_JOURNAL_WRITE_OK]	= { "journal_write_ok", LOG_NOTICE },
	[ALERT_WATCHDOG_UNHEALTHY]	= { "watchdog_unhealthy", LOG_CRIT },
	[ALERT_WATCHDOG_HEALTHY]	= { "watchdog_healthy", LOG_NOTICE },
	[ALERT_WATCHDOG_TILT]		= { "watchdog_tilt", LOG_WARNING },
	[ALERT_WATCHDOG_TILT_OVER]	= { "watchdog_tilt_over", LOG_NOTICE },
	[ALERT_CLUSTER_JOINED]		= { "cluster_joined", LOG_NOTICE },
	[ALERT_CLUSTER_MEMBER_JOINED]	= { "cluster_member_joined", LOG_NOTICE },
	[ALERT_CLUSTER_MEMBER_LEFT]	= { "cluster_member_left", LOG_WARNING },
	[ALERT_CLUSTER_LEADER_GAINED]	= { "cluster_leader_gained", LOG_NOTICE },
	[ALERT_CLUSTER_LEADER_LOST]	= { "cluster_leader_lost", LOG_ERR },
	[ALERT_CLUSTER_LEADER_CHANGED]	= { "cluster_leader_changed", LOG_NOTICE },
	[ALERT_CLUSTER_LEASE_LOST]	= { "cluster_lease_lost", LOG_ERR },
	[ALERT_CLUSTER_QUORUM_LOST]	= { "cluster_quorum_lost", LOG_CRIT },
	[ALERT_CLUSTER_QUORUM_BACK]	= { "cluster_quorum_back", LOG_NOTICE },
	[ALERT_CLUSTER_VERDICT_SPLIT]	= { "cluster_verdict_split", LOG_WARNING },
	[ALERT_CLUSTER_TAKEOVER]	= { "cluster_takeover", LOG_WARNING },
};

#define ALERT_RL_SLOTS	64
#define ALERT_RL_BURST	5
#define ALERT_KV_MAX	32	/* pairs an observer sees */

/* A repeat is the same event with the same fields: same line, same key. */
struct alert_rl {
	unsigned long	 key;
	double		 window_start;
	unsigned int	 count;
	unsigned int	 folded;
};

static struct alert_rl	alert_rl[ALERT_RL_SLOTS];
static double		alert_rl_window = 60.0;

const char *
alert_event_name(enum alert_event ev)
{
	if (ev >= ALERT_EVENT_MAX)
		return "unknown";
	return alert_table[ev].name;
}

int
alert_event_severity(enum alert_event ev)
{
	if (ev >= ALERT_EVENT_MAX)
		return LOG_ERR;
	return alert_table[ev].severity;
}

static struct {
	alert_observer_fn	*fn;
	void			*arg;
} alert_observers[ALERT_OBSERVERS];

int
alert_observe(alert_observer_fn *fn, void *arg)
{
	size_t	i;

	for (i = 0; i < ALERT_OBSERVERS; i++)
		if (alert_observers[i].fn == NULL) {
			alert_observers[i].fn = fn;
			alert_observers[i].arg = arg;
			return 0;
		}
	return -1;
}

void
alert_unobserve(alert_observer_fn *fn, void *arg)
{
	size_t	i;

	for (i = 0; i < ALERT_OBSERVERS; i++)
		if (alert_observers[i].fn == fn &&
		    alert_observers[i].arg == arg)
			alert_observers[i].fn = NULL;
}

void
alert_set_rate_limit(double seconds)
{
	alert_rl_window = seconds;
}

static double
alert_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Returns the number of folded repeats to report with this line, or -1
 * when this line is itself folded.
 */
static unsigned long
alert_hash(const char *s)
{
	unsigned long h = 5381;

	while (*s != '\0')
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static int
alert_rate_check(const char *line)
{
	struct alert_rl	*slot = NULL, *oldest = &alert_rl[0];
	double		 now = alert_now();
	unsigned long	 key = alert_hash(line);
	int		 folded;
	size_t		 i;

	if (alert_rl_window <= 0)
		return 0;
	for (i = 0; i < ALERT_RL_SLOTS; i++) {
		if (alert_rl[i].count > 0 && alert_rl[i].key == key) {
			slot = &alert_rl[i];
			break;
		}
		if (alert_rl[i].window_start < oldest->window_start)
			oldest = &alert_rl[i];
	}
	if (slot == NULL || now - slot->window_start >= alert_rl_window) {
		folded = slot ? (int)slot->folded : 0;
		if (slot == NULL)
			slot = oldest;
		slot->key = key;
		slot->window_start = now;
		slot->count = 1;
		slot->folded = 0;
		return folded;
	}
	if (++slot->count > ALERT_RL_BURST) {
		slot->folded++;
		return -1;
	}
	return 0;
}

static void
alert_append(char *buf, size_t len, size_t *off, const char *key,
    const char *value)
{
	const char	*p;
	int		 quote = value[0] == '\0';

	for (p = value; *p != '\0'; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' ||
		    (unsigned char)*p < 0x20 || *p == 0x7f)
			quote = 1;
	if (*off + 2 >= len)
		return;
	buf_fmt_at(buf, len, off, " %s=%s", key, quote ? "\"" : "");
	for (p = value; *p != '\0' && *off + 3 < len; p++) {
		if (*p == '"' || *p == '\\')
			buf[(*off)++] = '\\';
		/* Control bytes stay: log.c escapes them (\n, \x1b). */
		buf[(*off)++] = *p;
	}
	if (quote && *off + 1 < len)
		buf[(*off)++] = '"';
	buf[*off] = '\0';
}

void
alert_emit(enum alert_event ev, const char *service, ...)
{
	char		 buf[3072];
	char		 num[32];
	const char	*kv[2 * ALERT_KV_MAX];
	size_t		 off, nkv = 0, i;
	va_list		 ap;
	const char	*key, *value;
	int		 folded;

	off = 0;
	buf_fmt_at(buf, sizeof(buf), &off, "event=%s", alert_event_name(ev));
	if (service != NULL)
		alert_append(buf, sizeof(buf), &off, "service", service);
	va_start(ap, service);
	for (;;) {
		key = va_arg(ap, const char *);
		if (key == NULL)
			break;
		value = va_arg(ap, const char *);
		alert_append(buf, sizeof(buf), &off, key,
		    value ? value : "");
		if (nkv < ALERT_KV_MAX) {
			kv[2 * nkv] = key;
			kv[2 * nkv + 1] = value ? value : "";
			nkv++;
		}
	}
	va_end(ap);
	for (i = 0; i < ALERT_OBSERVERS; i++)
		if (alert_observers[i].fn != NULL)
			alert_observers[i].fn(ev, service, kv, nkv, buf,
			    alert_observers[i].arg);
	folded = alert_rate_check(buf);
	if (folded < 0)
		return;
	if (folded > 0) {
		snprintf(num, sizeof(num), "%d", folded);
		alert_append(buf, sizeof(buf), &off, "repeats_folded", num);
	}
	log_msg(alert_event_severity(ev), "%s", buf);
}
