/*
 * cluster: this watchdog as one member of several sharing an etcd
 * (issue 15). Every member probes every service; one member, the
 * leader, acts; it fails a service over only when a quorum of the live
 * members see it DOWN; its journal lives in etcd and every write of it
 * is fenced by its leadership.
 *
 * The keys, under the configured prefix P (etcd.h does the talking):
 *
 *   P/members/NAME           this member is alive: bound to its lease;
 *                            {"name","host","pid","since"} (JSON)
 *   P/leader                 NAME of the leader: bound to its lease;
 *                            created only where absent (a txn comparing
 *                            its create_revision with 0). Its
 *                            create_revision is the leader's fencing
 *                            token.
 *   P/verdicts/SVC/NAME      NAME's own verdict on SVC ("unknown",
 *                            "healthy", "degraded", "down"): bound to
 *                            NAME's lease, written on change only
 *   P/journal/SVC            SVC's journal record (journal_format), and
 *   P/acting/SVC             NAME of the member that wrote it: both put
 *                            in one txn that holds only while
 *                            create_revision(P/leader) is this member's
 *                            fencing token
 *
 * The member's life, drawn as snapshot.c draws its steps:
 *
 *   grant lease ─> put P/members/NAME ─> read P (range) ─> watch P
 *        ^                                    │
 *        │            campaign: txn create_revision(P/leader) == 0
 *        │                 │ held: read P/journal/, then on_leader(1)
 *        │                 │ not:  follow; campaign again when the
 *        │                 │       watch sees P/leader deleted
 *        │   keepalive every lease_ttl/3 from the loop
 *        └── lease lost (NOLEASE, or no renewal before it would
 *            expire by this host's monotonic clock): on_leader(0) at
 *            once if leading, cluster_lease_lost; revoke what may be
 *            left (best effort), grant again
 *
 * A member may act (cluster_may_act) only while it is the leader and
 * its lease, by the monotonic clock read at that moment (not the
 * loop's cached time: a process stopped with SIGSTOP and continued
 * must not trust a time from before), would not yet have expired
 * since the last keepalive that etcd answered was sent.
 *
 * All callbacks run from the loop, never from inside the function that
 * caused them.
 */
#ifndef FAILOVERD_CLUSTER_H
#define FAILOVERD_CLUSTER_H

#include <stddef.h>

#include <ev.h>

#include "failoverd/service.h"

struct buf;
struct cluster;
struct cluster_conf;
struct curlev;
struct journal_rec;

struct cluster_ops {
	/*
	 * Leadership changed: 1, this member leads and the journals it
	 * read on taking the lead answer cluster_journal_load; 0, it
	 * stopped leading (lease lost, deposed, etcd away past the
	 * lease): stop every mutating call at once.
	 */
	void	(*on_leader)(void *arg, int leader);
	/*
	 * The quorum's verdict on a service changed (cluster_verdict).
	 * Called on every member, leader or not.
	 */
	void	(*on_verdict)(void *arg, const char *service,
		    enum service_verdict from, enum service_verdict to);
	/*
	 * A write started by cluster_journal_save ended: ok 1, the record
	 * is in etcd (the engine may make the call it was written for);
	 * ok 0, it is not (the caller tries again; leadership loss comes
	 * through on_leader).
	 */
	void	(*on_journal)(void *arg, const char *service, int ok);
};

/*
 * services: the names of the services this member watches (copied).
 * NULL with err set when the configuration cannot be used. Starts
 * joining at once; etcd being away is not an error here.
 */
struct cluster	*cluster_new(struct ev_loop *loop, struct curlev *cl,
		    const struct cluster_conf *conf,
		    const char *const *services, size_t nservices,
		    const struct cluster_ops *ops, void *arg, char *err,
		    size_t errlen);
/* Revokes the lease (best effort, without waiting) and frees. */
void		 cluster_free(struct cluster *c);
/*
 * A stop (SIGTERM): this member stops acting at once and revokes its
 * lease, so that its keys (the leader's among them) go now and another
 * member leads without waiting a lease_ttl for them to lapse. done runs
 * from the loop when etcd answered, or after the configured timeout
 * when it does not; then cluster_free. Returns -1 when there is no
 * lease to give back (done is not called).
 */
int		 cluster_leave(struct cluster *c, void (*done)(void *arg),
		    void *arg);

/* A reload's services (copied): verdicts of services gone are deleted. */
int		 cluster_set_services(struct cluster *c,
		    const char *const *services, size_t nservices);

/* This member's name, from the configuration. */
const char	*cluster_name(const struct cluster *c);
/* The leader's name as last seen, or NULL (none, or not known). */
const char	*cluster_leader(const struct cluster *c);
/* 1 when this member leads and may act now (see above), else 0 with
 * why filled (names the leader when there is one). */
int		 cluster_may_act(const struct cluster *c, char *why,
		    size_t len);

/*
 * This member's own verdict on a service: published on change only.
 * Unknown services are ignored.
 */
void		 cluster_set_verdict(struct cluster *c, const char *service,
		    enum service_verdict v);
/*
 * The quorum's verdict, over the live members' published verdicts
 * (this member's own included): DOWN when at least quorum say DOWN;
 * else DEGRADED when at least quorum say DOWN or DEGRADED; else
 * HEALTHY when any says HEALTHY; else UNKNOWN. When some but fewer
 * than quorum say DOWN, the leader emits cluster_verdict_split naming
 * who sees what (once per change).
 */
enum service_verdict cluster_verdict(const struct cluster *c,
		    const char *service);

/*
 * The journal, for the engine (failover_env's journal hooks).
 *
 * load: the record read when this member took the lead: 0 with *out
 * (the caller frees it), 1 none, -1 unreadable (err says why and
 * where). *writer (may be NULL) is the member that wrote it, for
 * cluster_takeover.
 *
 * save: 0 when exactly this record is in etcd already; 1 when a write
 * of it is under way (on_journal tells its end; a second save while
 * one is under way is written after it); -1 when this member may not
 * write (not the leader, err says why).
 */
int		 cluster_journal_load(struct cluster *c, const char *service,
		    struct journal_rec **out, char **writer, char *err,
		    size_t errlen);
int		 cluster_journal_save(struct cluster *c, const char *service,
		    const struct journal_rec *rec, char *err, size_t errlen);

/*
 * failoverctl cluster: the members and their leases, the leader, each
 * member's verdict per service and who acts on which failover; json 1
 * for one JSON object.
 */
void		 cluster_status(const struct cluster *c, struct buf *out,
		    int json);

#endif
