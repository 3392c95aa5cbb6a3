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

void
failover_history(const struct failover *fo, struct buf *out, int json)
{
	static const char *fields[] = { "id", "result", "kind", "trigger",
		"mode", "old", "new", "az", "reason" };
	long long	next = fo_rec_int(fo, "history.next", 0), i;
	char		key[96], when[32];
	const char	*v;
	size_t		f;
	int		k, first = 1;
	time_t		started;
	struct tm	tm;

	for (i = next - FO_HISTORY_MAX; i < next; i++) {
		snprintf(key, sizeof(key), "h.%lld.id", i);
		if (i < 0 || journal_rec_get(fo->rec, key) == NULL)
			continue;
		snprintf(key, sizeof(key), "h.%lld.started", i);
		started = (time_t)fo_rec_int(fo, key, 0);
		gmtime_r(&started, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (json) {
			buf_printf(out, "%s{\"service\":", first ? "" : ",");
			buf_json_str(out, fo->name);
			buf_puts(out, ",\"started\":");
			buf_json_str(out, when);
			for (f = 0; f < sizeof(fields) / sizeof(*fields);
			    f++) {
				snprintf(key, sizeof(key), "h.%lld.%s", i,
				    fields[f]);
				v = journal_rec_get(fo->rec, key);
				buf_printf(out, ",\"%s\":", fields[f]);
				if (v != NULL)
					buf_json_str(out, v);
				else
					buf_puts(out, "null");
			}
			buf_puts(out, ",\"timings\":{");
			for (k = 0; k < T_MAX; k++) {
				snprintf(key, sizeof(key), "h.%lld.t.%s", i,
				    fo_timing_names[k]);
				v = journal_rec_get(fo->rec, key);
				buf_printf(out, "%s\"%s\":%s", k ? "," : "",
				    fo_timing_names[k], v ? v : "null");
			}
			buf_puts(out, "}}");
			first = 0;
			continue;
		}
		snprintf(key, sizeof(key), "h.%lld.id", i);
		buf_printf(out, "%s %s %s", when, fo->name,
		    journal_rec_get(fo->rec, key));
		for (f = 1; f < sizeof(fields) / sizeof(*fields); f++) {
			snprintf(key, sizeof(key), "h.%lld.%s", i, fields[f]);
			v = journal_rec_get(fo->rec, key);
			if (v != NULL)
				buf_printf(out, " %s=%s", fields[f], v);
		}
		buf_puts(out, "\n   ");
		for (k = 0; k < T_MAX; k++) {
			snprintf(key, sizeof(key), "h.%lld.t.%s", i,
			    fo_timing_names[k]);
			v = journal_rec_get(fo->rec, key);
			if (v != NULL)
				buf_printf(out, " %s=%ss", fo_timing_names[k],
				    v);
		}
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
	char		 key[96];
	const char	*v;
	long long	 i;
	int		 k;

	memset(out, 0, sizeof(*out));
	out->count = fo_rec_int(fo, "history.next", 0);
	for (k = 0; k < T_MAX; k++) {
		out->timing_names[k] = fo_timing_names[k];
		out->timings[k] = -1;
	}
	if (out->count <= 0)
		return;
	i = out->count - 1;
	snprintf(key, sizeof(key), "h.%lld.kind", i);
	out->kind = journal_rec_get(fo->rec, key);
	snprintf(key, sizeof(key), "h.%lld.result", i);
	out->result = journal_rec_get(fo->rec, key);
	snprintf(key, sizeof(key), "h.%lld.started", i);
	out->started = fo_rec_int(fo, key, 0);
	for (k = 0; k < T_MAX; k++) {
		snprintf(key, sizeof(key), "h.%lld.t.%s", i,
		    fo_timing_names[k]);
		v = journal_rec_get(fo->rec, key);
		if (v != NULL)
			out->timings[k] = strtod(v, NULL);
	}
}
