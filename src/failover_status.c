/*
 * failoverctl status and history for one service, as text or JSON.
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

/*
 * The data volumes as they are now: after an evacuation, not the ids
 * of the configuration (which says where the service started).
 */
static void
fo_status_volumes(const struct failover *fo, struct buf *out, int json)
{
	const struct service_conf	*sc = fo_conf(fo);
	const char			*id;
	size_t				 i;

	if (json)
		buf_puts(out, ",\"volumes\":[");
	for (i = 0; i < sc->nvolumes; i++) {
		id = fo_vol_id(fo, sc->volumes[i].id);
		if (json) {
			buf_printf(out, "%s{\"id\":", i ? "," : "");
			buf_json_str(out, id);
			buf_puts(out, ",\"configured\":");
			buf_json_str(out, sc->volumes[i].id);
			buf_puts(out, ",\"device\":");
			buf_json_str(out, sc->volumes[i].device);
			buf_puts(out, "}");
		} else if (strcmp(id, sc->volumes[i].id) != 0) {
			buf_printf(out, "  volume %s: %s (restored by an "
			    "evacuation from %s, the configured one)\n",
			    sc->volumes[i].device, id, sc->volumes[i].id);
		}
	}
	if (json)
		buf_puts(out, "]");
}

void
failover_status(const struct failover *fo, struct buf *out, int json)
{
	double in = fo_now(fo) - fo->step_start;

	if (!json) {
		buf_printf(out, "  instance %s  az %s  eip %s%s\n",
		    fo->eip_instance ? fo->eip_instance : "-",
		    fo->vol_az ? fo->vol_az : "-",
		    fo->eip_ip ? fo->eip_ip : "-",
		    fo->aws_ok ? "" : "  (EC2 not reachable yet)");
		if (fo_active(fo))
			buf_printf(out, "  %s %s in progress: step %s "
			    "for %.1fs, old %s new %s%s%s%s%s\n",
			    fo_kind_names[fo->kind], fo->id,
			    failover_step_str(fo->step), in,
			    fo->old ? fo->old : "-", fo->new ? fo->new : "-",
			    fo->restart ? " (restart in place)" : "",
			    fo_precheck_waiting(fo) ? " (checking it on its "
			    "private address " : "",
			    fo_precheck_waiting(fo) ? fo->new_ip : "",
			    fo_precheck_waiting(fo) ? ")" : "");
		else if (fo->step == FAILOVER_DONE && fo->id != NULL)
			buf_printf(out, "  failover: none; the last one, %s, "
			    "completed (failoverctl history)\n", fo->id);
		else
			buf_printf(out, "  failover: %s%s%s%s\n",
			    fo->step == FAILOVER_IDLE ? "none" :
			    failover_step_str(fo->step),
			    fo->hold_reason ? " (" : "",
			    fo->hold_reason ? fo->hold_reason : "",
			    fo->hold_reason ? ")" : "");
		if (fo->paused)
			buf_puts(out, "  paused: no automatic failover\n");
		fo_status_volumes(fo, out, 0);
		if (fo->switch_kept != NULL)
			buf_printf(out, "  kept: %s, production before the "
			    "last switch, stopped (failoverctl rollback %s, or "
			    "switch %s --finish)\n",
			    fo->switch_kept, fo->name,
			    fo->name);
		return;
	}
	buf_puts(out, "\"instance\":");
	if (fo->eip_instance)
		buf_json_str(out, fo->eip_instance);
	else
		buf_puts(out, "null");
	buf_puts(out, ",\"az\":");
	if (fo->vol_az)
		buf_json_str(out, fo->vol_az);
	else
		buf_puts(out, "null");
	buf_puts(out, ",\"eip\":");
	if (fo->eip_ip)
		buf_json_str(out, fo->eip_ip);
	else
		buf_puts(out, "null");
	buf_printf(out, ",\"aws_ok\":%s,\"paused\":%s,\"step\":",
	    fo->aws_ok ? "true" : "false", fo->paused ? "true" : "false");
	buf_json_str(out, failover_step_str(fo->step));
	buf_puts(out, ",\"hold_reason\":");
	buf_json_str(out, fo->hold_reason ? fo->hold_reason : "");
	fo_status_volumes(fo, out, 1);
	buf_puts(out, ",\"kept_instance\":");
	if (fo->switch_kept != NULL)
		buf_json_str(out, fo->switch_kept);
	else
		buf_puts(out, "null");
	buf_puts(out, ",\"failover\":");
	if (!fo_active(fo)) {
		buf_puts(out, "null");
		return;
	}
	buf_puts(out, "{\"id\":");
	buf_json_str(out, fo->id);
	buf_puts(out, ",\"kind\":");
	buf_json_str(out, fo_kind_names[fo->kind]);
	buf_printf(out, ",\"checking_private\":%s",
	    fo_precheck_waiting(fo) ? "true" : "false");
	buf_puts(out, ",\"step\":");
	buf_json_str(out, failover_step_str(fo->step));
	buf_printf(out, ",\"step_for\":%.1f,\"old\":", in);
	if (fo->old)
		buf_json_str(out, fo->old);
	else
		buf_puts(out, "null");
	buf_puts(out, ",\"new\":");
	if (fo->new)
		buf_json_str(out, fo->new);
	else
		buf_puts(out, "null");
	buf_printf(out, ",\"restart_in_place\":%s}",
	    fo->restart ? "true" : "false");
}

/* An entry's field f, by the name history shows it under. */
static const char *
fo_history_field(const struct fo_history *h, size_t f)
{
	const char *v[] = { h->id, h->result, h->kind, h->trigger, h->mode,
		h->old, h->new, h->az, h->reason };

	return f < sizeof(v) / sizeof(v[0]) ? v[f] : NULL;
}

void
failover_history(const struct failover *fo, struct buf *out, int json)
{
	static const char *fields[] = { "id", "result", "kind", "trigger",
		"mode", "old", "new", "az", "reason" };
	const struct fo_history	*h;
	long long	i;
	char		when[32];
	const char	*v;
	size_t		f;
	int		k, first = 1;
	time_t		started;
	struct tm	tm;

	for (i = fo->history_next - FO_HISTORY_MAX; i < fo->history_next;
	    i++) {
		if ((h = fo_history_at(fo, i)) == NULL)
			continue;
		started = (time_t)h->started;
		gmtime_r(&started, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (json) {
			buf_printf(out, "%s{\"service\":", first ? "" : ",");
			buf_json_str(out, fo->name);
			buf_puts(out, ",\"started\":");
			buf_json_str(out, when);
			for (f = 0; f < sizeof(fields) / sizeof(*fields);
			    f++) {
				v = fo_history_field(h, f);
				buf_printf(out, ",\"%s\":", fields[f]);
				if (v != NULL)
					buf_json_str(out, v);
				else
					buf_puts(out, "null");
			}
			buf_puts(out, ",\"timings\":{");
			for (k = 0; k < T_MAX; k++) {
				buf_printf(out, "%s\"%s\":", k ? "," : "",
				    fo_timing_names[k]);
				if (h->t[k] < 0)
					buf_puts(out, "null");
				else
					buf_printf(out, "%.3f", h->t[k]);
			}
			buf_puts(out, "}}");
			first = 0;
			continue;
		}
		buf_printf(out, "%s %s %s", when, fo->name, h->id);
		for (f = 1; f < sizeof(fields) / sizeof(*fields); f++) {
			v = fo_history_field(h, f);
			if (v != NULL)
				buf_printf(out, " %s=%s", fields[f], v);
		}
		buf_puts(out, "\n   ");
		for (k = 0; k < T_MAX; k++)
			if (h->t[k] >= 0)
				buf_printf(out, " %s=%.3fs",
				    fo_timing_names[k], h->t[k]);
		buf_puts(out, "\n");
	}
}

/* --- for the metrics (metrics.c reads, never changes) ----------------- */

_Static_assert(T_MAX == FAILOVER_METRICS_TIMINGS,
    "failover.h's FAILOVER_METRICS_TIMINGS is fo_timing_names' size");

const char *
failover_metrics_kind(size_t i)
{
	return i < KIND_MAX ? fo_kind_names[i] : NULL;
}

void
failover_metrics_last(const struct failover *fo,
    struct failover_metrics_last *out)
{
	const struct fo_history	*h;
	int			 k;

	memset(out, 0, sizeof(*out));
	out->count = fo->history_next;
	for (k = 0; k < T_MAX; k++) {
		out->timing_names[k] = fo_timing_names[k];
		out->timings[k] = -1;
	}
	if ((h = fo_history_at(fo, out->count - 1)) == NULL)
		return;
	out->kind = h->kind;
	out->result = h->result;
	out->started = h->started;
	for (k = 0; k < T_MAX; k++)
		out->timings[k] = h->t[k];
}
