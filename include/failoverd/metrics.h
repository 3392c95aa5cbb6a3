/*
 * metrics: the daemon's state for Prometheus, as a file that Debian's
 * prometheus-node-exporter serves through its textfile collector
 * (--collector.textfile.directory, /var/lib/prometheus/node-exporter
 * by default): failoverd opens no port of its own.
 *
 * The file, <textfile_dir>/failoverd.prom, is in Prometheus's text
 * exposition format (failoverd_ prefix, base units, _total counters,
 * HELP and TYPE lines) and is replaced atomically: a temporary file in
 * the same directory, renamed over it. It is written every period, and
 * soon after any event (alert.h) changes a value, at most once per
 * METRICS_MIN_GAP, or per ten times what the last write took when that
 * is longer: the file never takes more than a tenth of the loop. Values
 * that move on every check or call (latencies, counts) wait for the
 * period. A write that fails is the watchdog's own trouble: logged
 * once, tried again at the next period, never counted against a
 * service. The series are listed in failoverd(8).
 */
#ifndef FAILOVERD_METRICS_H
#define FAILOVERD_METRICS_H

#include <stddef.h>

#include <ev.h>

#include "failoverd/buf.h"
#include "failoverd/conf.h"

struct probe_sched;
struct ec2_client;
struct failover;
struct service;
struct snapshot;
struct metrics;

#define METRICS_FILE		"failoverd.prom"
/* Not *.prom, so node_exporter never reads a half-written file. */
#define METRICS_TMP_FILE	".failoverd.prom.tmp"
#define METRICS_MIN_GAP		0.1	/* seconds between two writes */

/* One service as the metrics read it; fo and snapshot may be NULL. */
struct metrics_service {
	const struct service	*svc;
	const struct failover	*fo;
	const struct snapshot	*snapshot;
};

struct metrics_env {
	struct ev_loop		*loop;
	struct probe_sched	*probes;	/* the probes' line */
	struct ec2_client	*ec2;		/* NULL: AWS not usable */
	/* Fills out with the i-th service; -1 past the last one. */
	int			(*service_at)(void *arg, size_t i,
				    struct metrics_service *out);
	void			*arg;
};

/*
 * Starts watching events at once; writes only while conf has a
 * textfile_dir. NULL when out of memory or when alert.h has no room
 * for another observer.
 */
struct metrics	*metrics_new(const struct metrics_env *env,
		    const struct metrics_conf *conf);
/* Removes the file: a stopped daemon publishes nothing stale. */
void		 metrics_free(struct metrics *m);
/* A reload's settings; a new directory gets the file, the old loses it. */
void		 metrics_set_conf(struct metrics *m,
		    const struct metrics_conf *conf);
/* A value changed: write soon, coalesced with any other change. */
void		 metrics_touch(struct metrics *m);

/* The exposition text as it would be written now. */
void		 metrics_render(struct metrics *m, struct buf *out);

/*
 * Appends s as a label value of the text format: backslash, double
 * quote and newline escaped (quotes not included). Pure.
 */
void		 metrics_label_value(struct buf *out, const char *s);

/*
 * Replaces dir/METRICS_FILE with len bytes of data: written to
 * METRICS_TMP_FILE (created afresh, mode 0644 whatever the umask, for
 * node_exporter's user), fsync'ed when asked, renamed over the file.
 * -1 with errno and the failing step in err; no temporary is left.
 */
int		 metrics_write_file(const char *dir, const char *data,
		    size_t len, int do_fsync, char *err, size_t errlen);

#endif
