/*
 * service: one watched service at runtime: its probes, its verdict, and
 * (later) its failover. Configuration stays in struct service_conf; this
 * is the state that lives beside it.
 */
#ifndef FAILOVERD_SERVICE_H
#define FAILOVERD_SERVICE_H

#include <ev.h>

#include "failoverd/buf.h"
#include "failoverd/conf.h"
#include "failoverd/curlev.h"
#include "failoverd/probe.h"

enum service_verdict {
	SERVICE_UNKNOWN,	/* not every probe has reached fall or rise */
	SERVICE_HEALTHY,
	SERVICE_DEGRADED,	/* some probes down, not the policy's set */
	SERVICE_DOWN		/* the policy's probes are down */
};

struct service;

/* What every service shares, owned by the daemon. */
struct service_env {
	struct ev_loop	*loop;
	struct curlev	*curl;
	struct probe_sched *probes;	/* every probe's schedule */
	/* Told of every verdict change; the failover engine listens here. */
	void		(*on_verdict)(struct service *svc,
			    enum service_verdict from, enum service_verdict to,
			    void *arg);
	/* Told of every verdict a service_check_start() set reaches. */
	void		(*on_check)(struct service *svc,
			    enum service_verdict to, void *arg);
	void		*arg;
};

struct service	*service_new(const struct service_env *env,
		    const struct service_conf *conf);
void		 service_free(struct service *svc);
void		 service_start(struct service *svc);

/*
 * Adopts a reloaded definition of the same service. Probes whose settings
 * are equal keep their counters, state and schedule; others restart.
 */
int		 service_update(struct service *svc,
		    const struct service_conf *conf);

const char	*service_name(const struct service *svc);
const struct service_conf *service_conf(const struct service *svc);
enum service_verdict service_verdict(const struct service *svc);
const char	*service_verdict_str(enum service_verdict v);
/* The service's own probes (not a check's), in configuration order. */
size_t		 service_nprobes(const struct service *svc);
const struct probe *service_probe(const struct service *svc, size_t i);

/*
 * The address probes without their own `address` check: the Elastic IP's
 * public address, learnt from EC2. NULL stops those probes.
 */
void		 service_set_target(struct service *svc, const char *address);

/* Learned host keys (probe_set_learned_hosts) for every probe. */
void		 service_set_learned_hosts(struct service *svc,
		    const char *path);
/* The path set above, or NULL; for the snapshot hooks' SSH. */
const char	*service_learned_hosts(const struct service *svc);

/*
 * Every probe starts counting afresh (probe_reset); the verdict becomes
 * UNKNOWN and turns HEALTHY only when each probe has passed rise
 * checks in a row. The failover engine's VERIFY waits for that.
 */
void		 service_reset_probes(struct service *svc);

/*
 * A second set of the service's probes, aimed at address (a release
 * switch's new instance, on its private address), while the service's
 * own probes go on watching production: production is never left
 * unwatched for a check. The set starts UNKNOWN; each verdict it
 * reaches goes to env.on_check, never to on_verdict, and it raises no
 * service_down. One check per service; starting another replaces it.
 * A reload rebuilds it with the new probe settings.
 */
int		 service_check_start(struct service *svc,
		    const char *address);
void		 service_check_stop(struct service *svc);
enum service_verdict service_check_verdict(const struct service *svc);
/* The address being checked, or NULL when no check runs. */
const char	*service_check_target(const struct service *svc);

/* Status for failoverctl: text for people, JSON for scripts. */
void		 service_status(const struct service *svc, struct buf *out,
		    int json);

/*
 * The verdict alone, pure: names[i] and states[i] are the service's
 * probes. DOWN when the policy's probes are down (all of them, any one,
 * or all of the listed ones), DEGRADED when some probe is down, UNKNOWN
 * while a probe has not reached fall or rise, else HEALTHY.
 */
enum service_verdict service_verdict_compute(const struct policy_conf *pol,
		    const char *const *names, const enum probe_state *states,
		    size_t n);

#endif
