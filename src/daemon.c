/*
 * The running daemon: configuration in force, services with their
 * failover engines, the EC2 client, the control socket.
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failoverd/admission.h"
#include "failoverd/alert.h"
#include "failoverd/bake.h"
#include "failoverd/buf.h"
#include "failoverd/cluster.h"
#include "failoverd/commands.h"
#include "failoverd/control.h"
#include "failoverd/creds.h"
#include "failoverd/curlev.h"
#include "failoverd/daemon.h"
#include "failoverd/ec2.h"
#include "failoverd/events.h"
#include "failoverd/failover.h"
#include "failoverd/hostkey.h"
#include "failoverd/log.h"
#include "failoverd/metrics.h"
#include "failoverd/redact.h"
#include "failoverd/preflight.h"
#include "failoverd/service.h"
#include "failoverd/snapshot.h"
#include "failoverd/statelock.h"
#include "failoverd/tilt.h"

#define DAEMON_CONF_ERRLEN	8192
/*
 * Services that all went DOWN within this many seconds of each other
 * point at the watchdog's own network rather than at the instances.
 */
#define DAEMON_ISOLATION_WINDOW	5.0

/*
 * A service's upkeep, beside its probes (service.c) and its failover
 * engine: the snapshot schedule, the preflight proof that a failover
 * would work, and the AMI bake. One per service, index for index with
 * d->services and d->failovers.
 */
struct daemon_upkeep {
	struct snapshot		*snapshot;
	struct preflight	*preflight;
	struct bake		*bake;
};

struct daemon {
	struct ev_loop		*loop;
	struct config		*conf;
	struct curlev		*curl;
	struct probe_sched	*probes;	/* every probe's line and grid */
	struct admission	*preflights;	/* preflight_line_new */
	struct control		*control;
	struct events		*events;	/* failoverctl events */
	struct service		**services;
	struct failover		**failovers;	/* one per service */
	struct daemon_upkeep	*upkeeps;	/* one per service */
	size_t			 nservices;
	struct service_env	 env;
	struct creds_provider	*creds;
	struct ec2_client	*ec2;
	char			 ec2_error[512];
	struct failover_env	 fenv;
	struct tilt		*tilt;		/* the stall and clock guard */
	struct metrics		*metrics;
	struct cluster		*cluster;	/* NULL: a single watchdog */
	int			 leading;	/* on_leader's last word */
	void			(*reload_hook)(void *);
	void			*reload_arg;
	/* statelock.h: the lock of the state_dir of lock_dev, lock_ino */
	int			 lock_fd;
	dev_t			 lock_dev;
	ino_t			 lock_ino;
	/* daemon_lock_state_dir's new one, until daemon_lock_commit */
	dev_t			 lock_next_dev;
	ino_t			 lock_next_ino;
};

static void daemon_on_event_line(const char *line, void *arg);
static int daemon_str_equal(const char *a, const char *b);
static int daemon_may_act(void *arg, char *why, size_t len);
static int daemon_on_request(void *arg, const struct control_peer *peer,
    int argc, char **argv, struct buf *out);

static struct service *
daemon_find(struct daemon *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->nservices; i++)
		if (strcmp(service_name(d->services[i]), name) == 0)
			return d->services[i];
	return NULL;
}

static struct failover *
daemon_failover(struct daemon *d, const struct service *svc)
{
	size_t i;

	for (i = 0; i < d->nservices; i++)
		if (d->services[i] == svc)
			return d->failovers[i];
	return NULL;
}

static struct daemon_upkeep *
daemon_upkeep(struct daemon *d, const struct service *svc)
{
	size_t i;

	for (i = 0; i < d->nservices; i++)
		if (d->services[i] == svc)
			return &d->upkeeps[i];
	return NULL;
}

static void
daemon_upkeep_free(struct daemon_upkeep *pr)
{
	snapshot_free(pr->snapshot);
	preflight_free(pr->preflight);
	bake_free(pr->bake);
	memset(pr, 0, sizeof(*pr));
}

static const char *
daemon_volume_id(void *arg, const struct service *svc, const char *conf_id)
{
	struct failover *fo = daemon_failover(arg, svc);

	return fo != NULL ? failover_volume_id(fo, conf_id) : conf_id;
}

static const char *
daemon_subnet(void *arg, const struct service *svc)
{
	struct failover *fo = daemon_failover(arg, svc);

	return fo != NULL ? failover_subnet(fo) :
	    service_conf(svc)->launch.subnet;
}

/* A new service's snapshot schedule, preflight (run now) and bake. */
static int
daemon_upkeep_new(struct daemon *d, struct service *svc,
    const struct config *conf, struct daemon_upkeep *pr)
{
	struct snapshot_env	se = { d->loop, d->ec2, conf->state_dir,
				    daemon_volume_id, d, d->cluster != NULL ?
				    daemon_may_act : NULL };
	struct preflight_env	pe = { d->loop, d->ec2, daemon_volume_id,
				    daemon_subnet, d, d->preflights };
	struct bake_env		be = { d->loop, d->ec2, conf->state_dir };

	pr->snapshot = snapshot_new(&se, svc);
	pr->preflight = preflight_new(&pe, svc);
	pr->bake = bake_new(&be, svc);
	if (pr->snapshot == NULL || pr->preflight == NULL ||
	    pr->bake == NULL) {
		daemon_upkeep_free(pr);
		return -1;
	}
	return 0;
}

/*
 * Proves at start that a failover would work; loud if not. Called once
 * the service is among d's, where its identity is looked up.
 */
static void
daemon_upkeep_begin(struct daemon_upkeep *pr)
{
	struct buf out;

	buf_init(&out);
	/* The AMI the next failover launches: bake --use's, if any. */
	if (preflight_start(pr->preflight, bake_replacement_ami(pr->bake),
	    &out) == -1)
		log_warnx("%s", buf_str(&out));
	buf_free(&out);
}

static const char *
daemon_replacement_ami(void *arg, const struct service *svc)
{
	struct daemon_upkeep *pr = daemon_upkeep(arg, svc);

	return pr != NULL && pr->bake != NULL ?
	    bake_replacement_ami(pr->bake) : NULL;
}

static void
daemon_on_check(struct service *svc, enum service_verdict to, void *arg)
{
	struct failover *fo = daemon_failover(arg, svc);

	if (fo != NULL)
		failover_on_check(fo, to);
}

static void
daemon_on_verdict(struct service *svc, enum service_verdict from,
    enum service_verdict to, void *arg)
{
	struct daemon	*d = arg;
	struct failover	*fo = daemon_failover(d, svc);

	/*
	 * In a cluster this member's verdict is one vote: the engine moves
	 * on the quorum's (daemon_on_quorum_verdict). A replacement in
	 * VERIFY is still judged by this member's own probes (the
	 * engine's tick reads them).
	 */
	if (d->cluster != NULL) {
		cluster_set_verdict(d->cluster, service_name(svc), to);
		return;
	}
	if (fo != NULL)
		failover_on_verdict(fo, from, to);
}

/*
 * The loop stalled or the clock jumped (tilt.h): a probe's streak may
 * straddle the stall, so every count starts again and a verdict needs
 * fresh checks.
 */
static void
daemon_on_tilt(void *arg, enum tilt_reason why, double seconds)
{
	struct daemon	*d = arg;
	size_t		 i;

	for (i = 0; i < d->nservices; i++)
		service_reset_probes(d->services[i]);
}

static void
daemon_on_tilt_over(void *arg, double held)
{
	struct daemon	*d = arg;
	size_t		 i;

	for (i = 0; i < d->nservices; i++)
		failover_tilt_over(d->failovers[i], held);
}

/*
 * The watchdog looks cut off when every service it watches is DOWN and
 * they all went down within a few seconds of each other. With a single
 * service this cannot be told from an application failure, so one
 * service is never "isolated": we fail it over (README, "Watchdog
 * isolation"). 1: isolated; 0: not; -1: some services are still up but
 * may follow within the window: ask again.
 */
static int
daemon_isolated(void *arg)
{
	struct daemon	*d = arg;
	double		 lo = 0, hi = 0, t;
	size_t		 i;
	int		 all = 1;

	if (d->nservices < 2)
		return 0;
	for (i = 0; i < d->nservices; i++) {
		t = failover_down_since(d->failovers[i]);
		if (t == 0) {
			all = 0;
			continue;
		}
		if (lo == 0 || t < lo)
			lo = t;
		if (t > hi)
			hi = t;
	}
	if (!all)
		return ev_now(d->loop) - lo <= DAEMON_ISOLATION_WINDOW ?
		    -1 : 0;
	return hi - lo <= DAEMON_ISOLATION_WINDOW;
}

/* --- the cluster (cluster.h): the engine's hooks and its callbacks --- */

static int
daemon_may_act(void *arg, char *why, size_t len)
{
	struct daemon *d = arg;

	return d->cluster != NULL && cluster_may_act(d->cluster, why, len);
}

static enum service_verdict
daemon_quorum_verdict(void *arg, const struct service *svc)
{
	struct daemon *d = arg;

	return cluster_verdict(d->cluster, service_name(svc));
}

/*
 * A follower's engine starts empty: the record in etcd is the leader's
 * to act on; the follower only learns the instance it probes.
 */
static int
daemon_journal_load(void *arg, const char *service, struct journal_rec **rec,
    char **writer, char *err, size_t len)
{
	struct daemon *d = arg;

	if (!d->leading)
		return 1;
	return cluster_journal_load(d->cluster, service, rec, writer, err,
	    len);
}

static int
daemon_journal_save(void *arg, const char *service,
    const struct journal_rec *rec, char *err, size_t len)
{
	struct daemon *d = arg;

	return cluster_journal_save(d->cluster, service, rec, err, len);
}

/*
 * Every engine again, from what etcd holds (leading) or from nothing
 * (not): freeing one cancels its calls in flight, so a member that
 * stops leading stops at once.
 */
static void
daemon_rebuild_engines(struct daemon *d)
{
	struct failover		*fo;
	enum service_verdict	 v;
	const char		*w;
	enum failover_step	 s;
	size_t			 i;

	for (i = 0; i < d->nservices; i++) {
		failover_free(d->failovers[i]);
		d->failovers[i] = NULL;
		fo = failover_new(&d->fenv, d->services[i]);
		if (fo == NULL) {
			/* Without an engine nothing can act on it: fatal. */
			fatalx("service %s: out of memory rebuilding its "
			    "failover engine", service_name(d->services[i]));
		}
		d->failovers[i] = fo;
		s = failover_step(fo);
		w = failover_writer(fo);
		if (d->leading && w != NULL &&
		    strcmp(w, cluster_name(d->cluster)) != 0 &&
		    s >= FAILOVER_FENCE_LAUNCH && s <= FAILOVER_VERIFY)
			alert_emit(ALERT_CLUSTER_TAKEOVER,
			    service_name(d->services[i]), "failover_id",
			    failover_id(fo) ? failover_id(fo) : "-", "step",
			    failover_step_str(s), "from", w, "action",
			    "resumed here with the same id and ClientTokens",
			    NULL);
		/* The quorum may have said DOWN before this member led. */
		v = cluster_verdict(d->cluster, service_name(d->services[i]));
		if (d->leading && v != SERVICE_HEALTHY &&
		    v != SERVICE_UNKNOWN)
			failover_on_verdict(fo, SERVICE_UNKNOWN, v);
	}
}

static void
daemon_on_leader(void *arg, int leader)
{
	struct daemon *d = arg;

	d->leading = leader;
	log_info("cluster: member %s %s", cluster_name(d->cluster), leader ?
	    "leads: the engines resume from the journals in etcd" :
	    "does not lead: its engines stop acting");
	daemon_rebuild_engines(d);
}

static void
daemon_on_quorum_verdict(void *arg, const char *service,
    enum service_verdict from, enum service_verdict to)
{
	struct daemon	*d = arg;
	struct service	*svc = daemon_find(d, service);
	struct failover	*fo;

	if (svc != NULL && (fo = daemon_failover(d, svc)) != NULL)
		failover_on_verdict(fo, from, to);
}

static void
daemon_on_journal(void *arg, const char *service, int ok)
{
	struct daemon	*d = arg;
	struct service	*svc = daemon_find(d, service);
	struct failover	*fo;

	if (ok && svc != NULL && (fo = daemon_failover(d, svc)) != NULL)
		failover_journal_written(fo);
}

static const struct cluster_ops daemon_cluster_ops = {
	daemon_on_leader, daemon_on_quorum_verdict, daemon_on_journal
};

static int
daemon_cluster_services(const struct config *conf, const char ***names)
{
	size_t i;

	*names = calloc(conf->nservices + 1, sizeof(**names));
	if (*names == NULL)
		return -1;
	for (i = 0; i < conf->nservices; i++)
		(*names)[i] = conf->services[i].name;
	return 0;
}

/*
 * Joins the cluster of conf's cluster group: the engine's hooks, and
 * the EC2 gate that keeps every other mutating call (snapshots, bakes)
 * to the leader as well. The isolation heuristic is off: the quorum of
 * members, each its own vantage point, replaces it.
 */
static int
daemon_open_cluster(struct daemon *d, const struct config *conf, char *err,
    size_t errlen)
{
	const char	**names;
	char		  cerr[512];

	if (conf->cluster == NULL)
		return 0;
	if (daemon_cluster_services(conf, &names) == -1) {
		errf(err, errlen, "cluster: out of memory");
		return -1;
	}
	d->cluster = cluster_new(d->loop, d->curl, conf->cluster,
	    (const char *const *)names, conf->nservices, &daemon_cluster_ops,
	    d, cerr, sizeof(cerr));
	free(names);
	if (d->cluster == NULL) {
		errf(err, errlen, "cluster: %s", cerr);
		return -1;
	}
	d->fenv.isolated = NULL;
	d->fenv.journal_load = daemon_journal_load;
	d->fenv.journal_save = daemon_journal_save;
	d->fenv.may_act = daemon_may_act;
	d->fenv.verdict = daemon_quorum_verdict;
	if (d->ec2 != NULL)
		ec2_set_gate(d->ec2, daemon_may_act, d);
	return 0;
}

static int
daemon_strv_equal(char **a, size_t na, char **b, size_t nb)
{
	size_t i;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++)
		if (!daemon_str_equal(a[i], b[i]))
			return 0;
	return 1;
}

static int
daemon_cluster_equal(const struct cluster_conf *a,
    const struct cluster_conf *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return daemon_str_equal(a->name, b->name) &&
	    daemon_strv_equal(a->members, a->nmembers, b->members,
	    b->nmembers) &&
	    daemon_strv_equal(a->endpoints, a->nendpoints, b->endpoints,
	    b->nendpoints) &&
	    daemon_str_equal(a->prefix, b->prefix) &&
	    a->lease_ttl == b->lease_ttl && a->quorum == b->quorum &&
	    a->timeout == b->timeout &&
	    daemon_str_equal(a->ca_file, b->ca_file) &&
	    daemon_str_equal(a->cert_file, b->cert_file) &&
	    daemon_str_equal(a->key_file, b->key_file);
}

static int
daemon_metrics_service_at(void *arg, size_t i, struct metrics_service *out)
{
	struct daemon *d = arg;

	if (i >= d->nservices)
		return -1;
	out->svc = d->services[i];
	out->fo = d->failovers[i];
	out->snapshot = d->upkeeps[i].snapshot;
	return 0;
}

/*
 * The EC2 client. Failing here (no region...) is not fatal: the daemon
 * keeps monitoring and says why it cannot fail over.
 */
static void
daemon_open_aws(struct daemon *d, const struct config *conf)
{
	char	shown[512];

	d->creds = creds_provider_new(d->loop, d->curl, &conf->aws);
	if (d->creds == NULL) {
		snprintf(d->ec2_error, sizeof(d->ec2_error),
		    "credentials provider: out of memory");
		goto fail;
	}
	d->ec2 = ec2_client_new(d->loop, d->curl, d->creds, &conf->aws,
	    d->ec2_error, sizeof(d->ec2_error));
	if (d->ec2 == NULL)
		goto fail;
	log_info("aws: EC2 endpoint %s, region %s",
	    redact_url(ec2_client_endpoint(d->ec2), shown, sizeof(shown)),
	    ec2_client_region(d->ec2));
	return;
fail:
	alert_emit(ALERT_AWS_ERROR, NULL, "error", d->ec2_error, "action",
	    "monitoring only: no failover until this is fixed and failoverd "
	    "restarted", NULL);
}

/*
 * Takes the lock of conf's state_dir into *fd, or sets *fd to -1 when
 * it is the directory locked already (a second flock of it would fail
 * against our own). daemon_lock_commit makes it the daemon's.
 */
static int
daemon_lock_state_dir(struct daemon *d, const struct config *conf,
    int *fd, char *err, size_t errlen)
{
	struct stat	st;
	char		path[PATH_MAX];

	*fd = -1;
	if (stat(conf->state_dir, &st) == -1) {
		return errf(err, errlen, "state_dir %s: %s", conf->state_dir,
		    strerror(errno));
	}
	if (d->lock_fd != -1 && st.st_dev == d->lock_dev &&
	    st.st_ino == d->lock_ino)
		return 0;
	*fd = statelock_take(conf->state_dir, err, errlen);
	if (*fd == -1)
		return -1;
	snprintf(path, sizeof(path), "%s/" HOSTKEY_SECRET_NAME,
	    conf->state_dir);
	/* A cluster's shared secret is the administrator's to make. */
	if ((conf->cluster == NULL || conf->cluster->host_key_secret ==
	    NULL) && hostkey_secret_ensure(path, err, errlen) == -1) {
		statelock_release(*fd);
		*fd = -1;
		return -1;
	}
	d->lock_next_dev = st.st_dev;
	d->lock_next_ino = st.st_ino;
	return 0;
}

/* The old directory's lock goes once the new one is in use. */
static void
daemon_lock_commit(struct daemon *d, int fd)
{
	if (fd == -1)
		return;
	statelock_release(d->lock_fd);
	d->lock_fd = fd;
	d->lock_dev = d->lock_next_dev;
	d->lock_ino = d->lock_next_ino;
}

static int
daemon_open_control(struct daemon *d, const struct config *conf, char *err,
    size_t errlen)
{
	struct control *ctl;

	/*
	 * Same path: the socket stays (and clients with it); a new one
	 * would find ours listening there and refuse to replace it.
	 */
	if (d->control != NULL &&
	    strcmp(control_path(d->control), conf->control_socket) == 0)
		return control_set_access(d->control, conf->control_mode,
		    conf->control_group, err, errlen);
	ctl = control_new(d->loop, conf->control_socket, conf->control_mode,
	    conf->control_group, daemon_on_request, d, err, errlen);
	if (ctl == NULL)
		return -1;
	control_free(d->control);
	d->control = ctl;
	return 0;
}

/*
 * Builds the service list for conf: services that exist by name adopt
 * their new definition (keeping what did not change), new ones start,
 * vanished ones stop. Only called with a fully validated conf.
 */
/*
 * Checks start on a shared grid sized for the load (probe_grid_for):
 * new probes of a reload go on the new one, running ones keep theirs.
 */
static void
daemon_set_probe_grid(struct daemon *d, const struct config *conf)
{
	const struct probe_conf	*pc;
	double			 rate = 0, shortest = 0;
	size_t			 i, j;

	for (i = 0; i < conf->nservices; i++)
		for (j = 0; j < conf->services[i].nprobes; j++) {
			pc = &conf->services[i].probes[j];
			rate += 1.0 / pc->interval;
			if (shortest == 0 || pc->interval < shortest)
				shortest = pc->interval;
		}
	probe_sched_set_load(d->probes, rate, shortest);
}

static int
daemon_apply(struct daemon *d, struct config *conf)
{
	struct service	**next, *svc;
	struct failover	**nextfo;
	struct daemon_upkeep *nextpr;
	unsigned char	 *fresh;
	size_t		  i, j;

	next = calloc(conf->nservices + 1, sizeof(*next));
	nextfo = calloc(conf->nservices + 1, sizeof(*nextfo));
	nextpr = calloc(conf->nservices + 1, sizeof(*nextpr));
	fresh = calloc(conf->nservices + 1, 1);
	if (next == NULL || nextfo == NULL || nextpr == NULL ||
	    fresh == NULL) {
		free(next);
		free(nextfo);
		free(nextpr);
		free(fresh);
		return -1;
	}
	/* The journals are found in the new state_dir from now on. */
	d->fenv.state_dir = conf->state_dir;
	d->fenv.hostkey_secret = conf->cluster != NULL ?
	    conf->cluster->host_key_secret : NULL;
	daemon_set_probe_grid(d, conf);
	for (i = 0; i < conf->nservices; i++) {
		svc = daemon_find(d, conf->services[i].name);
		if (svc != NULL) {
			service_update(svc, &conf->services[i]);
			nextfo[i] = daemon_failover(d, svc);
			nextpr[i] = *daemon_upkeep(d, svc);
			snapshot_reschedule(nextpr[i].snapshot);
		} else {
			svc = service_new(&d->env, &conf->services[i]);
			if (svc == NULL)
				goto fail;
			nextfo[i] = failover_new(&d->fenv, svc);
			if (nextfo[i] == NULL) {
				service_free(svc);
				goto fail;
			}
			if (daemon_upkeep_new(d, svc, conf,
			    &nextpr[i]) == -1) {
				failover_free(nextfo[i]);
				service_free(svc);
				goto fail;
			}
			service_start(svc);
			fresh[i] = 1;
		}
		next[i] = svc;
	}
	for (i = 0; i < d->nservices; i++) {
		for (j = 0; j < conf->nservices; j++)
			if (next[j] == d->services[i])
				break;
		if (j == conf->nservices) {
			log_info("service %s removed from the configuration, "
			    "no longer watched",
			    service_name(d->services[i]));
			daemon_upkeep_free(&d->upkeeps[i]);
			failover_free(d->failovers[i]);
			service_free(d->services[i]);
		}
	}
	free(d->services);
	free(d->failovers);
	free(d->upkeeps);
	d->upkeeps = nextpr;
	d->services = next;
	d->failovers = nextfo;
	d->nservices = conf->nservices;
	for (i = 0; i < d->nservices; i++)
		if (fresh[i])
			daemon_upkeep_begin(&d->upkeeps[i]);
	free(fresh);
	return 0;
fail:
	/* New services made so far go; adopted ones stay with d. */
	for (j = 0; j < i; j++)
		if (daemon_find(d, service_name(next[j])) != next[j]) {
			daemon_upkeep_free(&nextpr[j]);
			failover_free(nextfo[j]);
			service_free(next[j]);
		}
	if (d->conf != NULL) {
		d->fenv.state_dir = d->conf->state_dir;
		d->fenv.hostkey_secret = d->conf->cluster != NULL ?
		    d->conf->cluster->host_key_secret : NULL;
	}
	free(next);
	free(nextfo);
	free(nextpr);
	free(fresh);
	return -1;
}

/* The same checks `failoverd -t` makes (conf_check_start). */
static int
daemon_check_state_dir(const struct config *conf, char *err, size_t errlen)
{
	return conf_check_start(conf, err, errlen);
}

struct daemon *
daemon_new(struct ev_loop *loop, struct config *conf, char *err,
    size_t errlen)
{
	struct daemon		*d;
	struct tilt_env		 te;
	struct metrics_env	 menv;
	int			 lock_fd;

	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	d->loop = loop;
	d->lock_fd = -1;
	/* First: the startup's own events are part of the story. */
	d->events = events_new(EVENTS_KEEP, daemon_on_event_line, d);
	if (d->events == NULL)
		log_warnx("events: not kept in memory (out of memory or no "
		    "alert observer free); failoverctl events is empty");
	if (daemon_check_state_dir(conf, err, errlen) == -1)
		goto fail;
	/* Before the control socket and any journal are touched. */
	if (daemon_lock_state_dir(d, conf, &lock_fd, err, errlen) == -1)
		goto fail;
	daemon_lock_commit(d, lock_fd);
	d->curl = curlev_new(loop);
	if (d->curl == NULL) {
		errf(err, errlen, "curl multi handle: out of memory");
		goto fail;
	}
	d->probes = probe_sched_new(loop,
	    (unsigned int)conf->probe_max_in_flight);
	if (d->probes == NULL) {
		errf(err, errlen, "probe schedule: out of memory");
		goto fail;
	}
	d->preflights = preflight_line_new(loop);
	if (d->preflights == NULL) {
		errf(err, errlen, "preflight line: out of memory");
		goto fail;
	}
	d->env.loop = loop;
	d->env.curl = d->curl;
	d->env.probes = d->probes;
	d->env.on_verdict = daemon_on_verdict;
	d->env.on_check = daemon_on_check;
	d->env.arg = d;
	if (daemon_open_control(d, conf, err, errlen) == -1)
		goto fail;
	daemon_open_aws(d, conf);
	te.loop = loop;
	te.period = conf->tilt_period;
	te.on_tilt = daemon_on_tilt;
	te.on_over = daemon_on_tilt_over;
	te.arg = d;
	d->tilt = tilt_new(&te);
	if (d->tilt == NULL) {
		errf(err, errlen, "out of memory");
		goto fail;
	}
	d->fenv.tilt = d->tilt;
	d->fenv.loop = loop;
	d->fenv.ec2 = d->ec2;
	d->fenv.ec2_error = d->ec2_error;
	d->fenv.isolated = daemon_isolated;
	d->fenv.replacement_ami = daemon_replacement_ami;
	d->fenv.arg = d;
	/* Before the services: their engines take the cluster's hooks. */
	if (daemon_open_cluster(d, conf, err, errlen) == -1)
		goto fail;
	/* Before the services: it counts their first events too. */
	menv.loop = loop;
	menv.probes = d->probes;
	menv.ec2 = d->ec2;
	menv.service_at = daemon_metrics_service_at;
	menv.arg = d;
	d->metrics = metrics_new(&menv, &conf->metrics);
	if (d->metrics == NULL) {
		errf(err, errlen, "metrics: out of memory");
		goto fail;
	}
	if (daemon_apply(d, conf) == -1) {
		errf(err, errlen, "cannot create the services");
		goto fail;
	}
	d->conf = conf;
	return d;
fail:
	cluster_free(d->cluster);
	tilt_free(d->tilt);
	metrics_free(d->metrics);
	control_free(d->control);
	events_free(d->events);
	ec2_client_free(d->ec2);
	creds_provider_free(d->creds);
	admission_free(d->preflights);
	probe_sched_free(d->probes);
	curlev_free(d->curl);
	statelock_release(d->lock_fd);
	free(d);
	return NULL;
}

int
daemon_leave(struct daemon *d, void (*done)(void *), void *arg)
{
	if (d->cluster == NULL)
		return -1;
	return cluster_leave(d->cluster, done, arg);
}

void
daemon_free(struct daemon *d)
{
	size_t i;

	if (d == NULL)
		return;
	/* First: it reads the services when it writes. */
	metrics_free(d->metrics);
	for (i = 0; i < d->nservices; i++) {
		daemon_upkeep_free(&d->upkeeps[i]);
		failover_free(d->failovers[i]);
		service_free(d->services[i]);
	}
	free(d->services);
	free(d->failovers);
	free(d->upkeeps);
	/* After the engines: they no longer ask it anything. */
	cluster_free(d->cluster);
	tilt_free(d->tilt);
	control_free(d->control);
	events_free(d->events);
	ec2_client_free(d->ec2);
	creds_provider_free(d->creds);
	admission_free(d->preflights);
	probe_sched_free(d->probes);
	curlev_free(d->curl);
	conf_free(d->conf);
	statelock_release(d->lock_fd);
	free(d);
}

static int
daemon_str_equal(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int
daemon_aws_equal(const struct aws_conf *a, const struct aws_conf *b)
{
	return daemon_str_equal(a->region, b->region) &&
	    daemon_str_equal(a->endpoint, b->endpoint) &&
	    daemon_str_equal(a->imds_endpoint, b->imds_endpoint) &&
	    daemon_str_equal(a->sts_endpoint, b->sts_endpoint) &&
	    daemon_str_equal(a->container_endpoint, b->container_endpoint) &&
	    a->credential_process_timeout == b->credential_process_timeout &&
	    daemon_str_equal(a->profile, b->profile) &&
	    daemon_str_equal(a->ca_file, b->ca_file) &&
	    a->calls_per_second == b->calls_per_second &&
	    a->burst == b->burst && a->call_timeout == b->call_timeout;
}

int
daemon_reload(struct daemon *d)
{
	struct config	*conf;
	char		*err, cerr[512];
	char		*line, *save = NULL;
	int		 lock_fd = -1;

	err = calloc(1, DAEMON_CONF_ERRLEN);
	if (err == NULL)
		return -1;
	conf = conf_load(d->conf->path, err, DAEMON_CONF_ERRLEN);
	if (conf == NULL) {
		alert_emit(ALERT_CONFIG_REJECTED, NULL, "file", d->conf->path,
		    "action", "kept the running configuration", NULL);
		for (line = strtok_r(err, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			log_warnx("config: %s", line);
		free(err);
		return -1;
	}
	free(err);
	if (daemon_check_state_dir(conf, cerr, sizeof(cerr)) == -1)
		goto reject;
	if (daemon_lock_state_dir(d, conf, &lock_fd, cerr,
	    sizeof(cerr)) == -1)
		goto reject;
	if (strcmp(conf->control_socket, d->conf->control_socket) != 0 ||
	    conf->control_mode != d->conf->control_mode ||
	    (conf->control_group == NULL) !=
	    (d->conf->control_group == NULL) ||
	    (conf->control_group != NULL &&
	    strcmp(conf->control_group, d->conf->control_group) != 0)) {
		if (daemon_open_control(d, conf, cerr, sizeof(cerr)) == -1)
			goto reject;
	}
	/*
	 * Another cluster group would be another member (or none): its
	 * lease, leadership and journals are not this one's to carry over.
	 */
	if (!daemon_cluster_equal(conf->cluster, d->conf->cluster)) {
		snprintf(cerr, sizeof(cerr), "the cluster group changed; "
		    "restart failoverd to apply it (a member's identity, "
		    "etcd and lease are set at start)");
		goto reject;
	}
	/* Before the engines: a new one asks the cluster for its journal. */
	if (d->cluster != NULL) {
		const char **names;

		if (daemon_cluster_services(conf, &names) == -1 ||
		    cluster_set_services(d->cluster,
		    (const char *const *)names, conf->nservices) == -1) {
			free(names);
			snprintf(cerr, sizeof(cerr), "cluster: out of memory");
			goto reject;
		}
		free(names);
	}
	if (daemon_apply(d, conf) == -1) {
		snprintf(cerr, sizeof(cerr), "cannot create the services");
		goto reject;
	}
	log_set_facility(conf->syslog_facility);
	log_set_debug(conf->debug);
	probe_sched_set_max_in_flight(d->probes,
	    (unsigned int)conf->probe_max_in_flight);
	tilt_set_period(d->tilt, conf->tilt_period);
	metrics_set_conf(d->metrics, &conf->metrics);
	if (!daemon_aws_equal(&conf->aws, &d->conf->aws))
		log_warnx("reload: the aws settings changed; the EC2 client "
		    "keeps the old ones until failoverd restarts (failovers "
		    "in flight hold calls on it)");
	conf_free(d->conf);
	d->conf = conf;
	daemon_lock_commit(d, lock_fd);
	return 0;
reject:
	statelock_release(lock_fd);
	alert_emit(ALERT_CONFIG_REJECTED, NULL, "file", conf->path,
	    "reason", cerr, "action", "kept the running configuration", NULL);
	conf_free(conf);
	return -1;
}

const struct config *
daemon_config(const struct daemon *d)
{
	return d->conf;
}

void
daemon_set_reload_hook(struct daemon *d, void (*hook)(void *), void *arg)
{
	d->reload_hook = hook;
	d->reload_arg = arg;
}

void
daemon_status_line(const struct daemon *d, char *out, size_t len)
{
	size_t	counts[SERVICE_DOWN + 1] = { 0 };
	size_t	i;

	for (i = 0; i < d->nservices; i++)
		counts[service_verdict(d->services[i])]++;
	snprintf(out, len, "%zu services: %zu healthy, %zu degraded, "
	    "%zu down, %zu unknown", d->nservices, counts[SERVICE_HEALTHY],
	    counts[SERVICE_DEGRADED], counts[SERVICE_DOWN],
	    counts[SERVICE_UNKNOWN]);
}

/* The control commands. */

static int
daemon_has_flag(int argc, char **argv, const char *flag)
{
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], flag) == 0)
			return 1;
	return 0;
}

/* The one service named in argv, or NULL (all); -1 if unknown. */
static int
daemon_cmd_service(struct daemon *d, int argc, char **argv,
    struct service **svc, struct buf *out)
{
	const char	*only = NULL;
	int		 i;

	for (i = 1; i < argc; i++)
		if (argv[i][0] != '-')
			only = argv[i];
	*svc = NULL;
	if (only == NULL)
		return 0;
	*svc = daemon_find(d, only);
	if (*svc == NULL) {
		buf_printf(out, "no service named %s", only);
		return -1;
	}
	return 0;
}

/* status --json's "cluster": this member, its role, the leader. */
static void
daemon_cluster_role_json(struct daemon *d, struct buf *out)
{
	const char *leader = cluster_leader(d->cluster);

	/* Member names are [A-Za-z0-9_.-] (conf.c): nothing to escape. */
	buf_printf(out, ",\"cluster\":{\"member\":\"%s\",\"role\":\"%s\","
	    "\"leader\":", cluster_name(d->cluster), d->leading ? "leader" :
	    "follower");
	if (leader != NULL)
		buf_printf(out, "\"%s\"}", leader);
	else
		buf_puts(out, "null}");
}

static int
daemon_cmd_status(struct daemon *d, int argc, char **argv, struct buf *out)
{
	struct service	*only;
	int		 json = daemon_has_flag(argc, argv, "--json");
	int		 first = 1;
	size_t		 n;

	if (daemon_cmd_service(d, argc, argv, &only, out) == -1)
		return -1;
	if (json)
		buf_puts(out, "{\"services\":[");
	for (n = 0; n < d->nservices; n++) {
		if (only != NULL && d->services[n] != only)
			continue;
		if (json && !first)
			buf_puts(out, ",");
		service_status(d->services[n], out, json);
		if (json && out->len > 0 && out->data[out->len - 1] == '}') {
			/* Reopen the service's object for its failover. */
			out->data[--out->len] = '\0';
			buf_puts(out, ",");
			failover_status(d->failovers[n], out, 1);
			buf_puts(out, ",");
			bake_status(d->upkeeps[n].bake, out, 1);
			buf_puts(out, "}");
		} else if (!json) {
			failover_status(d->failovers[n], out, 0);
			bake_status(d->upkeeps[n].bake, out, 0);
		}
		first = 0;
	}
	/* Daemon-wide: is the machine keeping up with the schedule? */
	if (json) {
		buf_printf(out, "],\"checks\":{\"in_flight\":%u,"
		    "\"waiting\":%u,\"max_in_flight\":%u},"
		    "\"tilt_left\":%.0f",
		    probe_sched_in_flight(d->probes),
		    probe_sched_waiting(d->probes),
		    probe_sched_max_in_flight(d->probes), tilt_left(d->tilt));
		if (d->cluster != NULL)
			daemon_cluster_role_json(d, out);
		buf_puts(out, "}\n");
		return 0;
	}
	if (d->cluster != NULL) {
		const char *leader = cluster_leader(d->cluster);

		buf_printf(out, "cluster: member %s, %s; leader %s\n",
		    cluster_name(d->cluster), d->leading ? "leader" :
		    "follower", leader ? leader : "none now");
	}
	if (tilt_active(d->tilt))
		buf_printf(out, "watchdog: TILT (its loop stalled or its "
		    "clock jumped): no failover starts for %.0fs\n",
		    tilt_left(d->tilt));
	if (first)
		buf_puts(out, "no services configured\n");
	else if (only == NULL)
		buf_printf(out, "checks: %u in flight, %u waiting "
		    "(probe_max_in_flight %u)\n",
		    probe_sched_in_flight(d->probes),
		    probe_sched_waiting(d->probes),
		    probe_sched_max_in_flight(d->probes));
	return 0;
}

static int
daemon_cmd_cluster(struct daemon *d, int argc, char **argv, struct buf *out)
{
	if (d->cluster == NULL) {
		buf_printf(out, "not in a cluster: no cluster group in %s",
		    d->conf->path);
		return -1;
	}
	cluster_status(d->cluster, out, daemon_has_flag(argc, argv, "--json"));
	return 0;
}

/*
 * In a cluster only the leader acts: a command that would is refused
 * elsewhere, naming the leader, so the person runs it where its outcome
 * shows (members share etcd, not their control sockets). 0: go on.
 */
static int
daemon_refuse_follower(struct daemon *d, const struct command *cmd,
    struct buf *out)
{
	const char	*leader;
	char		 why[300];

	if (d->cluster == NULL || cluster_may_act(d->cluster, why,
	    sizeof(why)))
		return 0;
	switch (cmd->id) {
	case COMMAND_FAILOVER:
	case COMMAND_PAUSE:
	case COMMAND_RESUME:
	case COMMAND_SWITCH:
	case COMMAND_ROLLBACK:
	case COMMAND_SNAPSHOT:
	case COMMAND_BAKE:
		break;
	default:
		return 0;
	}
	leader = cluster_leader(d->cluster);
	if (leader != NULL && strcmp(leader, cluster_name(d->cluster)) != 0)
		buf_printf(out, "refused: this member (%s) is not the "
		    "cluster's leader; the leader is %s: run it there",
		    cluster_name(d->cluster), leader);
	else
		buf_printf(out, "refused: this member (%s) may not act now "
		    "and there is no leader that may (%s): try again when "
		    "failoverctl cluster shows one", cluster_name(d->cluster),
		    why);
	return -1;
}

static int
daemon_cmd_history(struct daemon *d, int argc, char **argv, struct buf *out)
{
	struct service	*only;
	int		 json = daemon_has_flag(argc, argv, "--json");
	size_t		 n, before;

	if (daemon_cmd_service(d, argc, argv, &only, out) == -1)
		return -1;
	if (json)
		buf_puts(out, "{\"failovers\":[");
	before = out->len;
	for (n = 0; n < d->nservices; n++) {
		if (only != NULL && d->services[n] != only)
			continue;
		if (json && out->len > before &&
		    out->data[out->len - 1] == '}')
			buf_puts(out, ",");
		failover_history(d->failovers[n], out, json);
	}
	if (json)
		buf_puts(out, "]}\n");
	else if (out->len == before)
		buf_puts(out, "no failovers yet\n");
	return 0;
}

/* failover SERVICE, pause SERVICE, resume SERVICE. */
static int
daemon_cmd_act(struct daemon *d, int argc, char **argv, struct buf *out)
{
	struct service	*svc;
	struct failover	*fo;

	if (daemon_cmd_service(d, argc, argv, &svc, out) == -1)
		return -1;
	if (svc == NULL) {
		buf_printf(out, "usage: %s SERVICE", argv[0]);
		return -1;
	}
	fo = daemon_failover(d, svc);
	if (strcmp(argv[0], "failover") == 0)
		return failover_manual(fo, out);
	return failover_pause(fo, strcmp(argv[0], "pause") == 0, out);
}

/*
 * switch SERVICE --ami AMI, switch SERVICE --finish, rollback SERVICE.
 * The move runs on after the answer; status and the log follow it.
 */
static int
daemon_cmd_switch(struct daemon *d, int argc, char **argv,
    struct buf *out)
{
	struct service	*svc;
	const char	*ami = NULL;
	int		 finish = 0, i;

	if (argc < 2 || argv[1][0] == '-')
		goto usage;
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--ami") == 0 && i + 1 < argc)
			ami = argv[++i];
		else if (strcmp(argv[i], "--finish") == 0)
			finish = 1;
		else if (strcmp(argv[i], "--json") != 0)
			goto usage;
	}
	svc = daemon_find(d, argv[1]);
	if (svc == NULL) {
		buf_printf(out, "no service named %s", argv[1]);
		return -1;
	}
	if (strcmp(argv[0], "rollback") == 0) {
		if (ami != NULL || finish)
			goto usage;
		return failover_rollback(daemon_failover(d, svc), out);
	}
	if (finish && ami == NULL)
		return failover_switch_finish(daemon_failover(d, svc), out);
	if (!finish && ami != NULL) {
		char why[256];

		/* A person's string goes no further than this unchecked. */
		if (conf_valid_ami(ami, why, sizeof(why)) == -1) {
			buf_printf(out, "switch %s: %s", argv[1], why);
			return -1;
		}
		return failover_switch(daemon_failover(d, svc), ami, out);
	}
usage:
	buf_printf(out, "usage: %s", strcmp(argv[0], "rollback") == 0 ?
	    "rollback SERVICE" : "switch SERVICE --ami AMI | switch SERVICE "
	    "--finish");
	return -1;
}

/*
 * snapshot SERVICE, snapshots SERVICE, preflight SERVICE [--result],
 * bake SERVICE [--no-reboot] [--use]. The EC2 calls take longer than a
 * control request may: these start the work and answer at once; the
 * outcome is in the log, `snapshots`, `preflight --result` and status.
 */
static int
daemon_cmd_upkeep(struct daemon *d, int argc, char **argv,
    struct buf *out)
{
	struct service		*svc;
	struct daemon_upkeep	*pr;
	int			 json = daemon_has_flag(argc, argv, "--json");

	if (daemon_cmd_service(d, argc, argv, &svc, out) == -1)
		return -1;
	if (svc == NULL) {
		buf_printf(out, "usage: %s SERVICE", argv[0]);
		return -1;
	}
	pr = daemon_upkeep(d, svc);
	if (strcmp(argv[0], "snapshot") == 0)
		return snapshot_take(pr->snapshot, out);
	if (strcmp(argv[0], "snapshots") == 0) {
		snapshot_list(pr->snapshot, out, json);
		return 0;
	}
	if (strcmp(argv[0], "preflight") == 0) {
		if (daemon_has_flag(argc, argv, "--result"))
			return preflight_report(pr->preflight, out, json);
		return preflight_start(pr->preflight,
		    bake_replacement_ami(pr->bake), out);
	}
	return bake_start(pr->bake, daemon_has_flag(argc, argv,
	    "--no-reboot"), daemon_has_flag(argc, argv, "--use"), out);
}

static int
daemon_request_reload(struct daemon *d, struct buf *out)
{
	if (daemon_reload(d) == -1) {
		buf_puts(out, "the new configuration was rejected; the "
		    "running one stays (see the log for each error)");
		return -1;
	}
	if (d->reload_hook != NULL)
		d->reload_hook(d->reload_arg);
	buf_printf(out, "configuration reloaded from %s\n", d->conf->path);
	return 0;
}

static int
daemon_cmd_events(struct daemon *d, int argc, char **argv, struct buf *out)
{
	const struct command	*cmd = command_get(COMMAND_EVENTS);
	int			 follow = command_follows(cmd, argc, argv);

	if (d->events == NULL) {
		buf_puts(out, "no events kept (out of memory at start)");
		return -1;
	}
	/* A stream is lines, the backlog too: one JSON document never
	 * ends. */
	events_render(d->events, out, !follow &&
	    daemon_has_flag(argc, argv, "--json"));
	return follow ? CONTROL_FOLLOW : 0;
}

/* A new event line, for the followers of `failoverctl events -f`. */
static void
daemon_on_event_line(const char *line, void *arg)
{
	struct daemon *d = arg;

	if (d->control != NULL)
		control_follow_line(d->control, line);
}

static int
daemon_on_request(void *arg, const struct control_peer *peer, int argc,
    char **argv, struct buf *out)
{
	struct daemon		*d = arg;
	const struct command	*cmd;
	char			 uid[32], pid[32];

	cmd = command_find(argv[0]);
	if (cmd == NULL) {
		buf_printf(out, "unknown command '%s' (try: ", argv[0]);
		command_names(out);
		buf_puts(out, ")");
		return -1;
	}
	/* Reads are not logged; anything that changes something is. */
	if (command_changes(cmd, argc, argv)) {
		snprintf(uid, sizeof(uid), "%lu", (unsigned long)peer->uid);
		snprintf(pid, sizeof(pid), "%ld", (long)peer->pid);
		alert_emit(ALERT_CONTROL_COMMAND,
		    argc > 1 && argv[1][0] != '-' ? argv[1] : NULL,
		    "command", argv[0], "uid", uid, "pid", pid, NULL);
	}
	if (daemon_refuse_follower(d, cmd, out) == -1)
		return -1;
	switch (cmd->id) {
	case COMMAND_STATUS:
		return daemon_cmd_status(d, argc, argv, out);
	case COMMAND_CLUSTER:
		return daemon_cmd_cluster(d, argc, argv, out);
	case COMMAND_HISTORY:
		return daemon_cmd_history(d, argc, argv, out);
	case COMMAND_EVENTS:
		return daemon_cmd_events(d, argc, argv, out);
	case COMMAND_FAILOVER:
	case COMMAND_PAUSE:
	case COMMAND_RESUME:
		return daemon_cmd_act(d, argc, argv, out);
	case COMMAND_SWITCH:
	case COMMAND_ROLLBACK:
		return daemon_cmd_switch(d, argc, argv, out);
	case COMMAND_SNAPSHOT:
	case COMMAND_SNAPSHOTS:
	case COMMAND_PREFLIGHT:
	case COMMAND_BAKE:
		return daemon_cmd_upkeep(d, argc, argv, out);
	case COMMAND_RELOAD:
		return daemon_request_reload(d, out);
	case COMMAND_PING:
		buf_puts(out, "pong\n");
		return 0;
	default:
		break;
	}
	buf_printf(out, "command '%s' is not served", argv[0]);
	return -1;
}
