/*
 * A service at runtime: its probes and the verdict they add up to.
 * Probes report state changes here; service_set_verdict() is the one
 * place the verdict changes, logs its event and tells the daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "failoverd/alert.h"
#include "failoverd/log.h"
#include "failoverd/probe.h"
#include "failoverd/service.h"

struct service {
	struct service_env	 env;
	const struct service_conf *conf;
	char			*name;	/* ours: outlives any one config */
	struct probe		**probes;
	size_t			 nprobes;
	enum service_verdict	 verdict;
	time_t			 verdict_since;	/* wall clock, for people */
	char			*target;
	char			*learned_hosts;
	int			 started;

	/* service_check_start(): the same probes, on another address. */
	struct probe		**check;
	size_t			 ncheck;
	char			*check_target;
	enum service_verdict	 check_verdict;
};

static const char *service_verdict_names[] = {
	[SERVICE_UNKNOWN]	= "unknown",
	[SERVICE_HEALTHY]	= "healthy",
	[SERVICE_DEGRADED]	= "degraded",
	[SERVICE_DOWN]		= "down",
};

static const char *service_policy_names[] = {
	[POLICY_WHEN_ALL]	= "all",
	[POLICY_WHEN_ANY]	= "any",
	[POLICY_WHEN_LIST]	= "list",
};

const char *
service_verdict_str(enum service_verdict v)
{
	if ((unsigned int)v > SERVICE_DOWN)
		return "?";
	return service_verdict_names[v];
}

static const char *
service_policy_str(enum policy_when w)
{
	if ((unsigned int)w > POLICY_WHEN_LIST)
		return "?";
	return service_policy_names[w];
}

static int
service_policy_lists(const struct policy_conf *pol, const char *name)
{
	size_t i;

	for (i = 0; i < pol->nfailover_probes; i++)
		if (strcmp(pol->failover_probes[i], name) == 0)
			return 1;
	return 0;
}

enum service_verdict
service_verdict_compute(const struct policy_conf *pol,
    const char *const *names, const enum probe_state *states, size_t n)
{
	size_t	i;
	int	in_set, set = 0, set_down = 0, any_down = 0, unknown = 0;

	for (i = 0; i < n; i++) {
		if (states[i] == PROBE_DOWN)
			any_down = 1;
		if (states[i] == PROBE_UNKNOWN)
			unknown = 1;
		in_set = pol->when != POLICY_WHEN_LIST ||
		    service_policy_lists(pol, names[i]);
		if (!in_set)
			continue;
		set++;
		if (states[i] == PROBE_DOWN)
			set_down++;
	}
	if (set > 0) {
		if (pol->when == POLICY_WHEN_ANY && set_down > 0)
			return SERVICE_DOWN;
		if (pol->when != POLICY_WHEN_ANY && set_down == set)
			return SERVICE_DOWN;
	}
	if (any_down)
		return SERVICE_DEGRADED;
	if (unknown)
		return SERVICE_UNKNOWN;
	return SERVICE_HEALTHY;
}

/* "ssh: timeout_in=banner, http: status=500" for the down probes. */
static void
service_reasons(const struct service *svc, char *out, size_t len)
{
	size_t	i, off = 0;
	int	n;

	out[0] = '\0';
	for (i = 0; i < svc->nprobes; i++) {
		if (probe_state(svc->probes[i]) != PROBE_DOWN)
			continue;
		n = snprintf(out + off, len - off, "%s%s: %s",
		    off > 0 ? ", " : "", probe_name(svc->probes[i]),
		    probe_last_reason(svc->probes[i]));
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += n;
	}
}

static void
service_set_verdict(struct service *svc, enum service_verdict to)
{
	enum service_verdict	 from = svc->verdict;
	char			 reasons[1024];

	if (from == to)
		return;
	svc->verdict = to;
	svc->verdict_since = time(NULL);
	service_reasons(svc, reasons, sizeof(reasons));
	switch (to) {
	case SERVICE_DOWN:
		alert_emit(ALERT_SERVICE_DOWN, svc->name,
		    "from", service_verdict_str(from),
		    "policy", service_policy_str(svc->conf->policy.when),
		    "reasons", reasons, NULL);
		break;
	case SERVICE_DEGRADED:
		alert_emit(ALERT_SERVICE_DEGRADED, svc->name,
		    "from", service_verdict_str(from),
		    "reasons", reasons, NULL);
		break;
	case SERVICE_HEALTHY:
		if (from == SERVICE_UNKNOWN) {
			log_info("service %s: healthy", svc->name);
			break;
		}
		alert_emit(ALERT_SERVICE_RECOVERED, svc->name,
		    "from", service_verdict_str(from), NULL);
		break;
	default:
		log_info("service %s: [%s] -> [%s]", svc->name,
		    service_verdict_str(from), service_verdict_str(to));
		break;
	}
	if (svc->env.on_verdict != NULL)
		svc->env.on_verdict(svc, from, to, svc->env.arg);
}

/* The policy's verdict over a set of probes; -1 when out of memory. */
static int
service_compute(const struct service *svc, struct probe **probes, size_t n,
    enum service_verdict *out)
{
	const char		**names;
	enum probe_state	 *states;
	size_t			  i;
	int			  rc = -1;

	names = calloc(n + 1, sizeof(*names));
	states = calloc(n + 1, sizeof(*states));
	if (names == NULL || states == NULL) {
		log_warn("service %s: verdict", svc->name);
		goto done;
	}
	for (i = 0; i < n; i++) {
		names[i] = probe_name(probes[i]);
		states[i] = probe_state(probes[i]);
	}
	*out = service_verdict_compute(&svc->conf->policy, names, states, n);
	rc = 0;
done:
	free(names);
	free(states);
	return rc;
}

static void
service_evaluate(struct service *svc)
{
	enum service_verdict v;

	if (service_compute(svc, svc->probes, svc->nprobes, &v) == 0)
		service_set_verdict(svc, v);
}

static void
service_on_probe(struct probe *p, enum probe_state from,
    enum probe_state to, void *arg)
{
	service_evaluate(arg);
}

static void
service_check_evaluate(struct service *svc)
{
	enum service_verdict v;

	if (svc->check == NULL || service_compute(svc, svc->check,
	    svc->ncheck, &v) == -1 || v == svc->check_verdict)
		return;
	log_info("service %s: check of %s: [%s] -> [%s]", svc->name,
	    svc->check_target, service_verdict_str(svc->check_verdict),
	    service_verdict_str(v));
	svc->check_verdict = v;
	if (svc->env.on_check != NULL)
		svc->env.on_check(svc, v, svc->env.arg);
}

static void
service_on_check_probe(struct probe *p, enum probe_state from,
    enum probe_state to, void *arg)
{
	service_check_evaluate(arg);
}

static struct probe *
service_probe_make(struct service *svc, const struct probe_conf *pc,
    probe_state_cb cb, const char *target)
{
	struct probe	*p;
	char		 err[512];

	p = probe_new(svc->env.loop, svc->env.curl, svc->env.probes,
	    svc->name, pc, cb, svc, err, sizeof(err));
	if (p == NULL) {
		log_warnx("service %s: %s", svc->name, err);
		return NULL;
	}
	if (target != NULL)
		probe_set_target(p, target);
	if (svc->learned_hosts != NULL)
		probe_set_learned_hosts(p, svc->learned_hosts);
	return p;
}

static struct probe *
service_probe_new(struct service *svc, const struct probe_conf *pc)
{
	return service_probe_make(svc, pc, service_on_probe, svc->target);
}

static void
service_check_free_probes(struct service *svc)
{
	size_t i;

	for (i = 0; i < svc->ncheck; i++)
		probe_free(svc->check[i]);
	free(svc->check);
	svc->check = NULL;
	svc->ncheck = 0;
}

/* (Re)builds the check's probes from the service's configuration. */
static int
service_check_build(struct service *svc)
{
	const struct service_conf	*conf = svc->conf;
	size_t				 i;

	service_check_free_probes(svc);
	svc->check_verdict = SERVICE_UNKNOWN;
	svc->check = calloc(conf->nprobes + 1, sizeof(*svc->check));
	if (svc->check == NULL) {
		log_warn("service %s: check", svc->name);
		return -1;
	}
	for (i = 0; i < conf->nprobes; i++) {
		svc->check[i] = service_probe_make(svc, &conf->probes[i],
		    service_on_check_probe, svc->check_target);
		if (svc->check[i] == NULL) {
			service_check_free_probes(svc);
			return -1;
		}
		svc->ncheck++;
	}
	for (i = 0; i < svc->ncheck; i++)
		probe_start(svc->check[i]);
	return 0;
}

int
service_check_start(struct service *svc, const char *address)
{
	char *copy;

	copy = strdup(address);
	if (copy == NULL) {
		log_warn("service %s: check", svc->name);
		return -1;
	}
	service_check_stop(svc);
	svc->check_target = copy;
	if (service_check_build(svc) == -1) {
		service_check_stop(svc);
		return -1;
	}
	log_info("service %s: checking %s with the service's probes; "
	    "production stays watched on %s", svc->name, address,
	    svc->target != NULL ? svc->target : "(no address yet)");
	return 0;
}

void
service_check_stop(struct service *svc)
{
	service_check_free_probes(svc);
	free(svc->check_target);
	svc->check_target = NULL;
	svc->check_verdict = SERVICE_UNKNOWN;
}

enum service_verdict
service_check_verdict(const struct service *svc)
{
	return svc->check != NULL ? svc->check_verdict : SERVICE_UNKNOWN;
}

const char *
service_check_target(const struct service *svc)
{
	return svc->check_target;
}

struct service *
service_new(const struct service_env *env, const struct service_conf *conf)
{
	struct service	*svc;
	size_t		 i;

	svc = calloc(1, sizeof(*svc));
	if (svc == NULL) {
		log_warn("service %s", conf->name);
		return NULL;
	}
	svc->env = *env;
	svc->conf = conf;
	svc->verdict = SERVICE_UNKNOWN;
	svc->verdict_since = time(NULL);
	svc->name = strdup(conf->name);
	svc->probes = calloc(conf->nprobes + 1, sizeof(*svc->probes));
	if (svc->name == NULL || svc->probes == NULL) {
		log_warn("service %s", conf->name);
		goto fail;
	}
	for (i = 0; i < conf->nprobes; i++) {
		svc->probes[i] = service_probe_new(svc, &conf->probes[i]);
		if (svc->probes[i] == NULL)
			goto fail;
		svc->nprobes++;
	}
	return svc;
fail:
	service_free(svc);
	return NULL;
}

void
service_free(struct service *svc)
{
	size_t i;

	if (svc == NULL)
		return;
	service_check_stop(svc);
	for (i = 0; i < svc->nprobes; i++)
		probe_free(svc->probes[i]);
	free(svc->probes);
	free(svc->target);
	free(svc->learned_hosts);
	free(svc->name);
	free(svc);
}

void
service_start(struct service *svc)
{
	size_t i;

	svc->started = 1;
	for (i = 0; i < svc->nprobes; i++)
		probe_start(svc->probes[i]);
}

/*
 * Builds the new probe list first and swaps it in whole, so that a
 * probe that cannot be built (bad regex) leaves the service as it was.
 */
int
service_update(struct service *svc, const struct service_conf *conf)
{
	struct probe	**probes, **old = svc->probes;
	char		 *kept;
	size_t		  i, j;

	probes = calloc(conf->nprobes + 1, sizeof(*probes));
	kept = calloc(svc->nprobes + 1, 1);
	if (probes == NULL || kept == NULL) {
		log_warn("service %s: reload", svc->name);
		free(probes);
		free(kept);
		return -1;
	}
	for (i = 0; i < conf->nprobes; i++) {
		for (j = 0; j < svc->nprobes; j++) {
			if (kept[j] || strcmp(probe_name(old[j]),
			    conf->probes[i].name) != 0)
				continue;
			if (conf_probe_equal(probe_conf(old[j]),
			    &conf->probes[i])) {
				kept[j] = 1;
				probes[i] = old[j];
			}
			break;
		}
		if (probes[i] != NULL)
			continue;
		probes[i] = service_probe_new(svc, &conf->probes[i]);
		if (probes[i] == NULL)
			goto fail;
	}

	for (i = 0; i < conf->nprobes; i++)
		for (j = 0; j < svc->nprobes; j++)
			if (probes[i] == old[j])
				probe_set_conf(probes[i], &conf->probes[i]);
	for (j = 0; j < svc->nprobes; j++) {
		if (kept[j])
			continue;
		log_info("service %s: probe %s %s", svc->name,
		    probe_name(old[j]), "restarts with its new settings");
		probe_free(old[j]);
	}
	svc->probes = probes;
	svc->nprobes = conf->nprobes;
	svc->conf = conf;
	free(old);
	free(kept);
	if (svc->started)
		for (i = 0; i < svc->nprobes; i++)
			probe_start(svc->probes[i]);
	/* The check's probes borrowed the old settings: start it anew. */
	if (svc->check_target != NULL && service_check_build(svc) == -1)
		service_check_stop(svc);
	service_evaluate(svc);
	return 0;
fail:
	for (i = 0; i < conf->nprobes; i++) {
		for (j = 0; j < svc->nprobes; j++)
			if (probes[i] == old[j])
				break;
		if (j == svc->nprobes)
			probe_free(probes[i]);
	}
	free(probes);
	free(kept);
	return -1;
}

const char *
service_name(const struct service *svc)
{
	return svc->name;
}

const struct service_conf *
service_conf(const struct service *svc)
{
	return svc->conf;
}

enum service_verdict
service_verdict(const struct service *svc)
{
	return svc->verdict;
}

size_t
service_nprobes(const struct service *svc)
{
	return svc->nprobes;
}

const struct probe *
service_probe(const struct service *svc, size_t i)
{
	return i < svc->nprobes ? svc->probes[i] : NULL;
}

void
service_set_target(struct service *svc, const char *address)
{
	char	*copy = NULL;
	size_t	 i;

	if (address != NULL) {
		copy = strdup(address);
		if (copy == NULL) {
			log_warn("service %s: target", svc->name);
			return;
		}
	}
	free(svc->target);
	svc->target = copy;
	for (i = 0; i < svc->nprobes; i++)
		probe_set_target(svc->probes[i], address);
}

void
service_set_learned_hosts(struct service *svc, const char *path)
{
	size_t i;

	free(svc->learned_hosts);
	svc->learned_hosts = path != NULL ? strdup(path) : NULL;
	for (i = 0; i < svc->nprobes; i++)
		probe_set_learned_hosts(svc->probes[i], path);
	for (i = 0; i < svc->ncheck; i++)
		probe_set_learned_hosts(svc->check[i], path);
}

const char *
service_learned_hosts(const struct service *svc)
{
	return svc->learned_hosts;
}

void
service_reset_probes(struct service *svc)
{
	size_t i;

	for (i = 0; i < svc->nprobes; i++)
		probe_reset(svc->probes[i]);
	service_evaluate(svc);
}

void
service_status(const struct service *svc, struct buf *out, int json)
{
	size_t i;

	if (!json) {
		buf_printf(out, "service %s: %s (for %.0fs) target %s "
		    "policy %s\n", svc->name,
		    service_verdict_str(svc->verdict),
		    difftime(time(NULL), svc->verdict_since),
		    svc->target ? svc->target : "-",
		    service_policy_str(svc->conf->policy.when));
		for (i = 0; i < svc->nprobes; i++)
			probe_status(svc->probes[i], out, 0);
		if (svc->check == NULL)
			return;
		buf_printf(out, "  checking %s (not production): %s\n",
		    svc->check_target,
		    service_verdict_str(svc->check_verdict));
		for (i = 0; i < svc->ncheck; i++)
			probe_status(svc->check[i], out, 0);
		return;
	}
	buf_puts(out, "{\"name\":");
	buf_json_str(out, svc->name);
	buf_puts(out, ",\"verdict\":");
	buf_json_str(out, service_verdict_str(svc->verdict));
	buf_printf(out, ",\"verdict_for\":%.0f,\"target\":",
	    difftime(time(NULL), svc->verdict_since));
	buf_json_str_or_null(out, svc->target);
	buf_puts(out, ",\"policy\":");
	buf_json_str(out, service_policy_str(svc->conf->policy.when));
	buf_puts(out, ",\"probes\":[");
	for (i = 0; i < svc->nprobes; i++) {
		if (i > 0)
			buf_puts(out, ",");
		probe_status(svc->probes[i], out, 1);
	}
	buf_puts(out, "]");
	if (svc->check != NULL) {
		buf_puts(out, ",\"check\":{\"target\":");
		buf_json_str(out, svc->check_target);
		buf_puts(out, ",\"verdict\":");
		buf_json_str(out, service_verdict_str(svc->check_verdict));
		buf_puts(out, ",\"probes\":[");
		for (i = 0; i < svc->ncheck; i++) {
			if (i > 0)
				buf_puts(out, ",");
			probe_status(svc->check[i], out, 1);
		}
		buf_puts(out, "]}");
	}
	buf_puts(out, "}");
}
