/*
 * ec2: the EC2 Query API over libcurl multi on the loop.
 *
 * One call runs as a small machine driven by two timers: "wait" (start,
 * backoff) and "deadline" (the caller's bound, covering every attempt
 * and page). Calls waiting for the call budget wait in ONE queue of the
 * client, in order, behind one timer: with thousands of calls queued
 * (every service's preflight at start) a timer per call woke them all
 * whenever a token might be free, O(calls) per token. Each attempt
 * signs afresh, because a retry may come after a credential refresh or
 * a clock-skew correction; between attempts a call holds no signed
 * request, no headers and no curl handle. A create that has no
 * ClientToken is not simply sent again after an attempt whose fate is
 * unknown: its effect is looked for first (ec2_request_set_effect_lookup).
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <ev.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "failoverd/buf.h"
#include "failoverd/conf.h"
#include "failoverd/creds.h"
#include "failoverd/curlev.h"
#include "failoverd/ec2.h"
#include "failoverd/log.h"
#include "failoverd/redact.h"
#include "failoverd/sigv4.h"
#include "ec2_priv.h"

#define EC2_API_VERSION		"2016-11-15"
#define EC2_CONTENT_TYPE	\
	"application/x-www-form-urlencoded; charset=utf-8"
#define BACKOFF_BASE		0.1	/* seconds, first retry's ceiling */
#define BACKOFF_CAP		20.0
#define MAX_ATTEMPTS		20
/*
 * The largest reply failoverd asks for is one service's DescribeSnapshots
 * (not paginated): the configuration lets a service keep at most 2,000
 * snapshots over all its volumes, and a snapshot item with failoverd's
 * tags is about 1.5 KB of XML: about 3 MB. Everything else is filtered
 * to a few instances, volumes or addresses (an instance is ~8 KB). The
 * reply is parsed whole, on the loop: 4 MiB of snapshot items parsed in
 * about 0.3 s and 54 MB on a two-core machine at a load of 12, where the
 * old 32 MiB cap allowed seconds and 450 MB.
 */
#define MAX_REPLY		(4 * 1024 * 1024)
#define DEFAULT_DEADLINE	60.0
/*
 * A clock this far off the endpoint's (by its Date) is worth a
 * correction; less is latency and Date's one-second grain. SigV4
 * tolerates five minutes, so a smaller error never caused a refusal.
 */
#define SKEW_SLACK		30
/* How long a lost create may take to show in Describe (eventual
 * consistency) before it is taken as not done, and the first wait. */
#define EFFECT_SETTLE		8.0
#define EFFECT_POLL		1.0

struct ec2_param {
	char	*key;
	char	*value;
};

struct ec2_request {
	enum ec2_action		 action;
	struct ec2_param	*params;
	size_t			 nparams;
	size_t			 cap;
	int			 nfilters;
	int			 ntagspecs;
	int			 dry_run;
	int			 after_mutation;
	int			 oom;
	/* Finds what this request creates, when its reply is lost. */
	struct ec2_request	*effect;
	char			*dup_code;
	int			 dup_only;	/* look only after dup_code */
};

struct ec2_client {
	struct ev_loop		*loop;
	struct curlev		*cl;
	struct creds_provider	*creds;
	char			*endpoint;
	char			*region;
	char			*host;		/* the Host header we sign */
	char			*path;
	char			*ca_file;
	double			 default_deadline;

	/* The call budget: a token bucket, like EC2's own. */
	double			 rate;		/* 0: unlimited */
	double			 burst;
	double			 tokens;
	ev_tstamp		 refilled;
	/* Calls waiting for a token, oldest first, and their one timer. */
	struct ec2_call		*budget_head;
	struct ec2_call		*budget_tail;
	ev_timer		 budget_w;

	/* Seconds to add to our clock when signing (from Date). */
	time_t			 skew;

	struct ec2_stats	 stats;

	struct ec2_call		*calls;

	int			(*gate)(void *, char *, size_t);
	void			*gate_arg;
};

struct ec2_call {
	struct ec2_call		*next;
	struct ec2_call		*prev;
	struct ec2_client	*c;
	struct ec2_request	*req;
	struct ec2_result	*res;
	ec2_done_cb		 cb;
	void			*arg;

	double			 timeout;
	ev_tstamp		 deadline;
	ev_timer		 deadline_w;
	ev_timer		 wait_w;
	struct creds_wait	*cw;
	/* In the client's budget queue. */
	struct ec2_call		*budget_next;
	struct ec2_call		*budget_prev;
	int			 budget_queued;
	ev_tstamp		 budget_since;

	CURL			*easy;
	struct curl_slist	*hdrs;
	char			*body;
	struct buf		 reply;
	char			 curlerr[CURL_ERROR_SIZE];
	time_t			 server_date;
	char			 amzn_request_id[128];

	unsigned int		 attempts;	/* all pages */
	unsigned int		 tries;		/* this page */
	int			 skew_retried;
	int			 creds_retried;
	/*
	 * Effect lookup (ec2_request_set_effect_lookup): an attempt's fate
	 * is unknown (unsure), so the next transfer is the lookup (look);
	 * dup: it follows the "already exists" answer of a later attempt.
	 */
	int			 unsure;
	int			 was_unsure;
	int			 look;
	int			 dup;
	ev_tstamp		 unsure_since;
	double			 look_wait;
	/* NextToken of the next page */
	char			*page_token;
	unsigned int		 pages;
};

static void	budget_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* --- requests ------------------------------------------------------ */

struct ec2_request *
ec2_request_new(enum ec2_action action)
{
	struct ec2_request *req;

	if ((unsigned int)action >= EC2_ACTION_COUNT)
		return NULL;
	req = calloc(1, sizeof(*req));
	if (req == NULL)
		return NULL;
	req->action = action;
	return req;
}

void
ec2_request_free(struct ec2_request *req)
{
	size_t i;

	if (req == NULL)
		return;
	for (i = 0; i < req->nparams; i++) {
		free(req->params[i].key);
		/* UserData may carry secrets of the user's own. */
		if (req->params[i].value != NULL) {
			OPENSSL_cleanse(req->params[i].value,
			    strlen(req->params[i].value));
			free(req->params[i].value);
		}
	}
	free(req->params);
	ec2_request_free(req->effect);
	free(req->dup_code);
	free(req);
}

int
ec2_request_set_effect_lookup(struct ec2_request *req,
    struct ec2_request *lookup, const char *dup_code)
{
	if (lookup == NULL || lookup->oom ||
	    (lookup->action != EC2_DESCRIBE_SNAPSHOTS &&
	    lookup->action != EC2_DESCRIBE_IMAGES &&
	    lookup->action != EC2_DESCRIBE_VOLUMES)) {
		ec2_request_free(lookup);
		req->oom = 1;
		return -1;
	}
	ec2_request_free(req->effect);
	req->effect = lookup;
	free(req->dup_code);
	req->dup_code = NULL;
	if (dup_code != NULL && (req->dup_code = strdup(dup_code)) == NULL) {
		req->oom = 1;
		return -1;
	}
	return 0;
}

int
ec2_request_add(struct ec2_request *req, const char *key, const char *value)
{
	struct ec2_param *p;
	size_t cap;

	if (req->oom)
		return -1;
	if (req->nparams == req->cap) {
		cap = req->cap ? req->cap * 2 : 16;
		p = realloc(req->params, cap * sizeof(*p));
		if (p == NULL)
			goto oom;
		req->params = p;
		req->cap = cap;
	}
	p = &req->params[req->nparams];
	p->key = strdup(key);
	p->value = strdup(value);
	if (p->key == NULL || p->value == NULL) {
		free(p->key);
		free(p->value);
		goto oom;
	}
	req->nparams++;
	return 0;
oom:
	req->oom = 1;
	return -1;
}

int
ec2_request_addf(struct ec2_request *req, const char *key, const char *fmt,
    ...)
{
	va_list ap;
	char *v;
	int rc, n;

	va_start(ap, fmt);
	n = vasprintf(&v, fmt, ap);
	va_end(ap);
	if (n == -1) {
		req->oom = 1;
		return -1;
	}
	rc = ec2_request_add(req, key, v);
	free(v);
	return rc;
}

int
ec2_request_add_list(struct ec2_request *req, const char *prefix,
    const char *const *values, size_t n)
{
	char *key;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		if (asprintf(&key, "%s.%zu", prefix, i + 1) == -1) {
			req->oom = 1;
			return -1;
		}
		rc = ec2_request_add(req, key, values[i]);
		free(key);
		if (rc < 0)
			return -1;
	}
	return 0;
}

int
ec2_request_add_filter(struct ec2_request *req, const char *name,
    const char *const *values, size_t n)
{
	char key[256];
	int f = ++req->nfilters;

	snprintf(key, sizeof(key), "Filter.%d.Name", f);
	if (ec2_request_add(req, key, name) < 0)
		return -1;
	snprintf(key, sizeof(key), "Filter.%d.Value", f);
	return ec2_request_add_list(req, key, values, n);
}

int
ec2_request_add_tag_spec(struct ec2_request *req, const char *resource_type,
    const struct ec2_tag *tags, size_t n)
{
	char key[256];
	int t = ++req->ntagspecs;
	size_t i;

	snprintf(key, sizeof(key), "TagSpecification.%d.ResourceType", t);
	if (ec2_request_add(req, key, resource_type) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "TagSpecification.%d.Tag.%zu.Key",
		    t, i + 1);
		if (ec2_request_add(req, key, tags[i].key) < 0)
			return -1;
		snprintf(key, sizeof(key),
		    "TagSpecification.%d.Tag.%zu.Value", t, i + 1);
		if (ec2_request_add(req, key, tags[i].value ?
		    tags[i].value : "") < 0)
			return -1;
	}
	return 0;
}

void
ec2_request_set_dry_run(struct ec2_request *req, int on)
{
	req->dry_run = on;
}

void
ec2_request_set_after_mutation(struct ec2_request *req, int on)
{
	req->after_mutation = on;
}

enum ec2_action
ec2_request_action(const struct ec2_request *req)
{
	return req->action;
}

static int
is_describe(enum ec2_action a)
{
	return strncmp(ec2_action_str(a), "Describe", 8) == 0;
}

int
ec2_action_mutates(enum ec2_action a)
{
	return !is_describe(a) && a != EC2_GET_CONSOLE_OUTPUT;
}

/* Action=...&Version=...&k=v... with every key and value escaped. */
static char *
request_body(CURL *easy, const struct ec2_request *req,
    const char *page_token)
{
	struct buf b;
	char *k, *v;
	size_t i;

	buf_init(&b);
	buf_printf(&b, "Action=%s&Version=%s", ec2_action_str(req->action),
	    EC2_API_VERSION);
	for (i = 0; i < req->nparams; i++) {
		k = curl_easy_escape(easy, req->params[i].key, 0);
		v = curl_easy_escape(easy, req->params[i].value, 0);
		if (k == NULL || v == NULL)
			b.oom = 1;
		else
			buf_printf(&b, "&%s=%s", k, v);
		curl_free(k);
		if (v != NULL) {
			OPENSSL_cleanse(v, strlen(v));
			curl_free(v);
		}
	}
	if (req->dry_run)
		buf_puts(&b, "&DryRun=true");
	if (page_token != NULL) {
		v = curl_easy_escape(easy, page_token, 0);
		if (v == NULL)
			b.oom = 1;
		else
			buf_printf(&b, "&NextToken=%s", v);
		curl_free(v);
	}
	if (b.oom || b.data == NULL) {
		buf_cleanse(&b);
		return NULL;
	}
	return b.data;
}

/* --- the client ---------------------------------------------------- */

static int
getenv_set(const char *name, const char **out)
{
	const char *v = getenv(name);

	if (v == NULL || *v == '\0')
		return 0;
	*out = v;
	return 1;
}

/*
 * The partitions of botocore's endpoints.json (and partitions.json): a
 * region's prefix picks the DNS suffix and the dual-stack one (NULL:
 * the partition has no dual-stack endpoints). The commercial partition
 * comes last and takes every other region.
 */
static const struct ec2_partition {
	const char	*prefix;
	const char	*dns;
	const char	*dualstack;
	int		 fips_is_plain;	/* GovCloud: EC2 is FIPS already */
} ec2_partitions[] = {
	{ "us-gov-",	"amazonaws.com",	"api.aws",	1 },
	{ "us-isob-",	"sc2s.sgov.gov",	NULL,		0 },
	{ "us-iso-",	"c2s.ic.gov",		NULL,		0 },
	{ "cn-",	"amazonaws.com.cn",
	    "api.amazonwebservices.com.cn",			0 },
	{ "",		"amazonaws.com",	"api.aws",	0 },
};

int
ec2_endpoint_for(const char *region, int fips, int dualstack, char *out,
    size_t outlen, char *err, size_t errlen)
{
	const struct ec2_partition *p;
	const char *svc, *dns, *c;
	size_t i;
	int n;

	if (region == NULL || *region == '\0') {
		snprintf(err, errlen, "no region");
		return -1;
	}
	for (c = region; *c != '\0'; c++) {
		if (!islower((unsigned char)*c) &&
		    !isdigit((unsigned char)*c) && *c != '-') {
			snprintf(err, errlen, "region '%s': only a-z, 0-9 "
			    "and '-'", region);
			return -1;
		}
	}
	p = &ec2_partitions[0];
	for (i = 0; i < sizeof(ec2_partitions) / sizeof(ec2_partitions[0]);
	    i++) {
		p = &ec2_partitions[i];
		if (strncmp(region, p->prefix, strlen(p->prefix)) == 0)
			break;
	}
	if (dualstack && p->dualstack == NULL) {
		snprintf(err, errlen, "region %s: its partition has no "
		    "dual-stack endpoints", region);
		return -1;
	}
	dns = dualstack ? p->dualstack : p->dns;
	svc = fips && !(p->fips_is_plain && !dualstack) ? "ec2-fips" : "ec2";
	n = snprintf(out, outlen, "https://%s.%s.%s", svc, region, dns);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "region '%s': too long", region);
		return -1;
	}
	return 0;
}

static int
env_set(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0';
}

/* An SDK boolean setting: unset is 0; anything but true/false is -1. */
static int
env_bool(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL || *v == '\0' || strcasecmp(v, "false") == 0)
		return 0;
	if (strcasecmp(v, "true") == 0)
		return 1;
	return -1;
}

struct ec2_client *
ec2_client_new(struct ev_loop *loop, struct curlev *cl,
    struct creds_provider *creds, const struct aws_conf *conf,
    char *err, size_t errlen)
{
	struct ec2_client *c;
	const char *region = NULL, *ep = NULL, *ca = NULL, *why;
	char *host = NULL, *port = NULL, *upath = NULL, *scheme = NULL;
	char shown[512];
	char def[256], eperr[512];
	int fips, dual, cfips, cdual;
	CURLU *u = NULL;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->loop = loop;
	c->cl = cl;
	c->creds = creds;

	if (conf != NULL && conf->region != NULL && *conf->region != '\0')
		region = conf->region;
	else if (!getenv_set("AWS_REGION", &region))
		getenv_set("AWS_DEFAULT_REGION", &region);
	if (region == NULL) {
		snprintf(err, errlen, "aws.region: not set, and neither "
		    "AWS_REGION nor AWS_DEFAULT_REGION is");
		goto fail;
	}
	c->region = strdup(region);

	why = "aws.endpoint";
	if (conf != NULL && conf->endpoint != NULL && *conf->endpoint != '\0')
		ep = conf->endpoint;
	else if (getenv_set("AWS_ENDPOINT_URL_EC2", &ep))
		why = "AWS_ENDPOINT_URL_EC2";
	else if (getenv_set("AWS_ENDPOINT_URL", &ep))
		why = "AWS_ENDPOINT_URL";
	if (ep != NULL) {
		c->endpoint = strdup(ep);
	} else {
		/* As the AWS SDKs: an explicit endpoint wins over these. */
		why = "the region's endpoint";
		if (creds_config_endpoint_flags(conf ? conf->profile : NULL,
		    &cfips, &cdual, eperr, sizeof(eperr)) == -1) {
			snprintf(err, errlen, "%s", eperr);
			goto fail;
		}
		/* The environment before the shared config file. */
		fips = env_bool("AWS_USE_FIPS_ENDPOINT");
		dual = env_bool("AWS_USE_DUALSTACK_ENDPOINT");
		if (fips == -1 || dual == -1) {
			snprintf(err, errlen, "%s: must be true or false",
			    fips == -1 ? "AWS_USE_FIPS_ENDPOINT" :
			    "AWS_USE_DUALSTACK_ENDPOINT");
			goto fail;
		}
		if (fips == 0 && !env_set("AWS_USE_FIPS_ENDPOINT"))
			fips = cfips;
		if (dual == 0 && !env_set("AWS_USE_DUALSTACK_ENDPOINT"))
			dual = cdual;
		if (ec2_endpoint_for(region, fips, dual, def, sizeof(def),
		    eperr, sizeof(eperr)) == -1) {
			snprintf(err, errlen, "aws.region: %s", eperr);
			goto fail;
		}
		if (fips || dual)
			why = fips && dual ? "the region's FIPS dual-stack "
			    "endpoint" : fips ? "the region's FIPS endpoint" :
			    "the region's dual-stack endpoint";
		c->endpoint = strdup(def);
	}
	if (c->region == NULL || c->endpoint == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	/* The Host we sign must be the one curl sends: take the URL's. */
	u = curl_url();
	if (u == NULL || curl_url_set(u, CURLUPART_URL, c->endpoint, 0) !=
	    CURLUE_OK || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) !=
	    CURLUE_OK || curl_url_get(u, CURLUPART_HOST, &host, 0) !=
	    CURLUE_OK) {
		snprintf(err, errlen, "%s: '%s' is not a URL", why,
		    c->endpoint);
		goto fail;
	}
	if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
		snprintf(err, errlen, "%s: '%s': only http and https", why,
		    c->endpoint);
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL;
	if (curl_url_get(u, CURLUPART_PATH, &upath, 0) != CURLUE_OK)
		upath = NULL;
	if (port != NULL) {
		if (asprintf(&c->host, "%s:%s", host, port) == -1)
			c->host = NULL;
	} else {
		c->host = strdup(host);
	}
	c->path = strdup(upath != NULL && *upath != '\0' ? upath : "/");
	if (c->host == NULL || c->path == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	if (conf != NULL && conf->ca_file != NULL && *conf->ca_file != '\0')
		ca = conf->ca_file;
	else
		getenv_set("AWS_CA_BUNDLE", &ca);
	if (ca != NULL && (c->ca_file = strdup(ca)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	c->default_deadline = DEFAULT_DEADLINE;
	if (conf != NULL) {
		c->rate = conf->calls_per_second;
		c->burst = conf->burst > 0 ? conf->burst : 1;
		if (conf->call_timeout > 0)
			c->default_deadline = conf->call_timeout;
	}
	c->tokens = c->burst;
	c->refilled = ev_now(loop);
	ev_timer_init(&c->budget_w, budget_cb, 0.0, 0.0);
	c->budget_w.data = c;
	log_info("ec2: region %s, endpoint %s (%s)", c->region,
	    redact_url(c->endpoint, shown, sizeof(shown)), why);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(upath);
	curl_url_cleanup(u);
	return c;
fail:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(upath);
	curl_url_cleanup(u);
	ec2_client_free(c);
	return NULL;
}

static void	call_free(struct ec2_call *call);

void
ec2_client_free(struct ec2_client *c)
{
	if (c == NULL)
		return;
	while (c->calls != NULL)
		call_free(c->calls);
	ev_timer_stop(c->loop, &c->budget_w);
	free(c->endpoint);
	free(c->region);
	free(c->host);
	free(c->path);
	free(c->ca_file);
	free(c);
}

const char *
ec2_client_endpoint(const struct ec2_client *c)
{
	return c->endpoint;
}

const char *
ec2_client_region(const struct ec2_client *c)
{
	return c->region;
}

/* --- one call ------------------------------------------------------ */

static void	call_step(struct ec2_call *call);
static void	call_send(struct ec2_call *call, const struct creds *cr);
static void	call_creds(struct ec2_call *call);
static void	budget_arm(struct ec2_client *c);

static void
call_stop_transfer(struct ec2_call *call)
{
	if (call->easy != NULL) {
		curlev_remove(call->c->cl, call->easy);
		curl_easy_cleanup(call->easy);
		call->easy = NULL;
	}
	curl_slist_free_all(call->hdrs);
	call->hdrs = NULL;
	if (call->body != NULL) {
		OPENSSL_cleanse(call->body, strlen(call->body));
		free(call->body);
		call->body = NULL;
	}
	buf_free(&call->reply);
}

static void
budget_refill(struct ec2_client *c)
{
	ev_tstamp now = ev_now(c->loop);

	c->tokens += (now - c->refilled) * c->rate;
	if (c->tokens > c->burst)
		c->tokens = c->burst;
	c->refilled = now;
}

/* Takes a token from the bucket, or says how long to wait for one. */
static double
budget_take(struct ec2_client *c)
{
	if (c->rate <= 0)
		return 0.0;
	budget_refill(c);
	if (c->tokens >= 1.0) {
		c->tokens -= 1.0;
		return 0.0;
	}
	return (1.0 - c->tokens) / c->rate;
}

int
ec2_budget_spare(struct ec2_client *c, double reserve)
{
	if (c->budget_head != NULL)
		return 0;
	if (c->rate <= 0)
		return 1;
	budget_refill(c);
	return c->tokens >= 1.0 + reserve;
}

static void
budget_unqueue(struct ec2_call *call)
{
	struct ec2_client *c = call->c;

	if (call->budget_prev != NULL)
		call->budget_prev->budget_next = call->budget_next;
	else
		c->budget_head = call->budget_next;
	if (call->budget_next != NULL)
		call->budget_next->budget_prev = call->budget_prev;
	else
		c->budget_tail = call->budget_prev;
	call->budget_next = call->budget_prev = NULL;
	call->budget_queued = 0;
	if (c->budget_head == NULL)
		ev_timer_stop(c->loop, &c->budget_w);
}

void
ec2_client_stats(struct ec2_client *c, struct ec2_stats *out)
{
	struct ec2_call *call;

	*out = c->stats;
	out->budget_waiting = 0;
	for (call = c->budget_head; call != NULL; call = call->budget_next)
		out->budget_waiting++;
	out->budget_tokens = -1;
	if (c->rate > 0) {
		budget_refill(c);
		out->budget_tokens = c->tokens;
	}
}

/* Hands tokens to the queue's oldest calls, then sleeps till the next. */
static void
budget_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ec2_client *c = w->data;
	struct ec2_call *call;

	while (c->budget_head != NULL) {
		if (budget_take(c) > 0)
			break;
		call = c->budget_head;
		budget_unqueue(call);
		c->stats.budget_wait += ev_now(loop) - call->budget_since;
		/* May end the call, and its callback may queue or cancel. */
		call_creds(call);
	}
	budget_arm(c);
}

static void
budget_arm(struct ec2_client *c)
{
	double wait;

	ev_timer_stop(c->loop, &c->budget_w);
	if (c->budget_head == NULL)
		return;
	wait = 0.0;
	if (c->rate > 0) {
		budget_refill(c);
		wait = (1.0 - c->tokens) / c->rate;
	}
	ev_timer_set(&c->budget_w, wait > 0 ? wait : 0.0, 0.0);
	ev_timer_start(c->loop, &c->budget_w);
}

static void
budget_queue(struct ec2_call *call)
{
	struct ec2_client *c = call->c;

	call->budget_next = NULL;
	call->budget_prev = c->budget_tail;
	call->budget_queued = 1;
	call->budget_since = ev_now(c->loop);
	if (c->budget_tail != NULL)
		c->budget_tail->budget_next = call;
	else
		c->budget_head = call;
	c->budget_tail = call;
	if (!ev_is_active(&c->budget_w))
		budget_arm(c);
}

static void
call_free(struct ec2_call *call)
{
	struct ec2_client *c = call->c;

	ev_timer_stop(c->loop, &call->deadline_w);
	ev_timer_stop(c->loop, &call->wait_w);
	if (call->cw != NULL)
		creds_wait_cancel(c->creds, call->cw);
	if (call->budget_queued)
		budget_unqueue(call);
	call_stop_transfer(call);
	if (call->prev != NULL)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	ec2_request_free(call->req);
	ec2_result_free(call->res);
	free(call->page_token);
	free(call);
}

/* The one place a call ends: the result goes to the callback. */
static void
call_finish(struct ec2_call *call)
{
	struct ec2_result *res = call->res;
	ec2_done_cb cb = call->cb;
	void *arg = call->arg;

	call->res = NULL;
	res->attempts = call->attempts;
	if (res->status < EC2_STATUS_COUNT)
		call->c->stats.calls[res->action][res->status]++;
	if (res->request_id == NULL && call->amzn_request_id[0] != '\0')
		res->request_id = strdup(call->amzn_request_id);
	if (res->status != EC2_OK) {
		/* Items of earlier pages are no answer to a failed call. */
		ec2_result_clear(res);
	}
	ec2_result_finish(res);
	if (res->status == EC2_OK || res->status == EC2_DRY_RUN_OK)
		log_debug("ec2: %s done after %u attempt(s)",
		    ec2_action_str(res->action), res->attempts);
	else
		log_debug("ec2: %s", ec2_result_error(res));
	call_free(call);
	cb(res, arg);
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ec2_call *call = w->data;
	struct ec2_result *res = call->res;
	char *last = NULL;

	if (res->status != EC2_OK && res->message != NULL &&
	    asprintf(&last, "%s%s%s", res->code ? res->code : "",
	    res->code ? ": " : "", res->message) == -1)
		last = NULL;
	if (res->status == EC2_OK && call->curlerr[0] != '\0')
		last = strdup(call->curlerr);
	ec2_result_set_error(res, EC2_ERR_TIMEOUT,
	    res->status == EC2_ERR_AWS ? res->code : NULL,
	    "no answer within the %.1fs deadline%s%s%s", call->timeout,
	    last ? " (last error: " : "", last ? last : "", last ? ")" : "");
	free(last);
	res->retryable = 1;
	call_finish(call);
}

static void
wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	call_step(w->data);
}

static void
call_wait(struct ec2_call *call, double after)
{
	ev_timer_stop(call->c->loop, &call->wait_w);
	ev_timer_set(&call->wait_w, after > 0 ? after : 0.0, 0.0);
	ev_timer_start(call->c->loop, &call->wait_w);
}

static double
rand01(void)
{
	unsigned int r;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (unsigned int)random();
	return (double)r / (double)UINT32_MAX;
}

static const char *const retryable_codes[] = {
	"RequestLimitExceeded", "Throttling", "ThrottlingException",
	"ThrottledException", "RequestThrottled",
	"RequestThrottledException", "TooManyRequestsException",
	"BandwidthLimitExceeded", "EC2ThrottledException",
	"PriorRequestNotComplete",
	"SlowDown", "InternalError", "InternalFailure", "Unavailable",
	"ServiceUnavailable", "ServiceUnavailableException",
	"RequestTimeout", "RequestTimeoutException",
	"IDPCommunicationError", "TransactionInProgressException",
};

/*
 * Server errors ("Error codes for the Amazon EC2 API") that say no
 * capacity: 5xx, yet an answer, not a passing trouble. The caller
 * decides (another zone, later, restart in place); retrying here would
 * spend its deadline on the same answer.
 */
static const char *const capacity_codes[] = {
	"InsufficientInstanceCapacity", "InsufficientCapacity",
	"InsufficientHostCapacity", "InsufficientReservedInstanceCapacity",
	"InsufficientAddressCapacity", "InsufficientVolumeCapacity",
	"InsufficientCapacityOnHost",
};

/* Refused before anything was done: no effect to look for. */
static const char *const refused_codes[] = {
	"RequestLimitExceeded", "Throttling", "ThrottlingException",
	"RequestThrottled", "RequestThrottledException",
	"TooManyRequestsException", "EC2ThrottledException", "SlowDown",
	"BandwidthLimitExceeded",
};

#define NCODES(a)	(sizeof(a) / sizeof((a)[0]))

static int
code_in(const char *code, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; code != NULL && i < n; i++)
		if (strcmp(code, list[i]) == 0)
			return 1;
	return 0;
}

static int
curl_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

/* Whether a failed transfer may have delivered the request. */
static int
curl_maybe_sent(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
		return 0;
	default:
		return 1;
	}
}

/*
 * Retries with capped exponential backoff and full jitter (AWS's
 * "Exponential Backoff And Jitter"), as long as the wait ends before the
 * deadline; otherwise the last error is the answer.
 */
static void
call_retry_later(struct ec2_call *call, const char *why)
{
	double ceiling, delay, left;

	call->res->retryable = 1;
	ceiling = BACKOFF_BASE * pow(2.0, (double)(call->tries - 1));
	if (ceiling > BACKOFF_CAP)
		ceiling = BACKOFF_CAP;
	delay = rand01() * ceiling;
	left = call->deadline - ev_now(call->c->loop);
	if (call->tries >= MAX_ATTEMPTS || delay >= left) {
		call_finish(call);
		return;
	}
	call->c->stats.retries[call->req->action]++;
	log_info("ec2: %s: %s, retry %u in %.2fs",
	    ec2_action_str(call->req->action), why, call->tries, delay);
	call_wait(call, delay);
}

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct ec2_call *call = arg;
	size_t n = size * nmemb;

	if (call->reply.len + n > MAX_REPLY)
		return 0;
	if (buf_append(&call->reply, ptr, n) < 0)
		return 0;
	return n;
}

static size_t
header_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct ec2_call *call = arg;
	size_t n = size * nmemb, vlen;
	char line[256], *v;
	struct tm tm;
	const char *e;

	if (n >= sizeof(line))
		return n;
	memcpy(line, ptr, n);
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	v = strchr(line, ':');
	if (v == NULL)
		return n;
	*v++ = '\0';
	while (*v == ' ')
		v++;
	if (strcasecmp(line, "Date") == 0) {
		memset(&tm, 0, sizeof(tm));
		e = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		if (e != NULL)
			call->server_date = timegm(&tm);
	} else if (strcasecmp(line, "x-amzn-requestid") == 0 ||
	    strcasecmp(line, "x-amz-request-id") == 0) {
		vlen = strlen(v);
		if (vlen < sizeof(call->amzn_request_id))
			memcpy(call->amzn_request_id, v, vlen + 1);
	}
	return n;
}

static void	call_done(CURL *easy, CURLcode rc, void *arg);

static int
add_header(struct ec2_call *call, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
add_header(struct ec2_call *call, const char *fmt, ...)
{
	struct curl_slist *l;
	va_list ap;
	char *h;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&h, fmt, ap);
	va_end(ap);
	if (n == -1)
		return -1;
	l = curl_slist_append(call->hdrs, h);
	OPENSSL_cleanse(h, (size_t)n);
	free(h);
	if (l == NULL)
		return -1;
	call->hdrs = l;
	return 0;
}

/* Signs and starts one attempt with the credentials current now. */
static void
call_send(struct ec2_call *call, const struct creds *cr)
{
	struct ec2_client *c = call->c;
	struct sigv4_header sh[2];
	struct sigv4_input in;
	struct sigv4_result sig;
	const struct ec2_request *r = call->req;
	char err[256];
	double left;
	const char *tok;

	memset(&sig, 0, sizeof(sig));
	call_stop_transfer(call);
	/*
	 * The gate, at the last moment before the wire: a member deposed
	 * while this call waited (budget, credentials, a retry's backoff)
	 * sends nothing. An effect lookup only reads, and a DryRun (a
	 * preflight's) changes nothing: not gated.
	 */
	if (!call->look && c->gate != NULL && !r->dry_run &&
	    ec2_action_mutates(r->action) &&
	    !c->gate(c->gate_arg, err, sizeof(err))) {
		ec2_result_set_error(call->res, EC2_ERR_GATED, NULL,
		    "not the cluster's leader: %s", err);
		call_finish(call);
		return;
	}
	/* A lookup is no attempt of the call, but bounded as one. */
	if (call->look)
		r = call->req->effect;
	else
		call->attempts++;
	call->tries++;
	call->server_date = 0;
	call->curlerr[0] = '\0';
	call->amzn_request_id[0] = '\0';
	call->easy = curl_easy_init();
	if (call->easy == NULL)
		goto internal;
	call->body = request_body(call->easy, r, call->look ? NULL :
	    call->page_token);
	if (call->body == NULL)
		goto internal;

	sh[0].name = "Host";
	sh[0].value = c->host;
	sh[1].name = "Content-Type";
	sh[1].value = EC2_CONTENT_TYPE;
	memset(&in, 0, sizeof(in));
	in.method = "POST";
	in.path = c->path;
	in.headers = sh;
	in.nheaders = 2;
	in.payload = call->body;
	in.payload_len = strlen(call->body);
	in.region = c->region;
	in.service = "ec2";
	in.when = time(NULL) + c->skew;
	in.access_key_id = creds_access_key_id(cr);
	in.secret_access_key = creds_secret_access_key(cr);
	tok = creds_session_token(cr);
	in.session_token = tok;
	in.flags = SIGV4_NORMALIZE_PATH;
	if (sigv4_sign(&in, &sig, err, sizeof(err)) < 0) {
		ec2_result_set_error(call->res, EC2_ERR_INTERNAL, NULL, "%s",
		    err);
		goto finish;
	}
	if (add_header(call, "Host: %s", c->host) < 0 ||
	    add_header(call, "Content-Type: %s", EC2_CONTENT_TYPE) < 0 ||
	    add_header(call, "X-Amz-Date: %s", sig.amz_date) < 0 ||
	    (tok != NULL &&
	    add_header(call, "X-Amz-Security-Token: %s", tok) < 0) ||
	    add_header(call, "Authorization: %s", sig.authorization) < 0 ||
	    add_header(call, "Expect:") < 0 ||
	    add_header(call, "User-Agent: failoverd/%s", FOD_VERSION) < 0)
		goto internal;
	sigv4_result_free(&sig);

	left = call->deadline - ev_now(c->loop);
	curl_easy_setopt(call->easy, CURLOPT_URL, c->endpoint);
	curl_easy_setopt(call->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(call->easy, CURLOPT_POSTFIELDS, call->body);
	curl_easy_setopt(call->easy, CURLOPT_POSTFIELDSIZE,
	    (long)strlen(call->body));
	curl_easy_setopt(call->easy, CURLOPT_HTTPHEADER, call->hdrs);
	curl_easy_setopt(call->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(call->easy, CURLOPT_WRITEDATA, call);
	curl_easy_setopt(call->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(call->easy, CURLOPT_HEADERDATA, call);
	curl_easy_setopt(call->easy, CURLOPT_ERRORBUFFER, call->curlerr);
	curl_easy_setopt(call->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(call->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(call->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(call->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	/* The deadline timer decides; curl's own bound only backs it up. */
	curl_easy_setopt(call->easy, CURLOPT_TIMEOUT_MS,
	    (long)(left * 1000.0) + 1000L);
	if (c->ca_file != NULL)
		curl_easy_setopt(call->easy, CURLOPT_CAINFO, c->ca_file);
	/*
	 * libcurl silently sends a request again when the kept-alive
	 * connection it reused dies before an answer: a create with no
	 * ClientToken would then be made twice, unseen. A connection of
	 * its own makes that loss visible, and looked for.
	 */
	if (!call->look && call->req->effect != NULL)
		curl_easy_setopt(call->easy, CURLOPT_FRESH_CONNECT, 1L);
	if (call->look)
		log_debug("ec2: %s: %s for what attempt %u may have done",
		    ec2_action_str(call->req->action),
		    ec2_action_str(r->action), call->attempts);
	else
		log_debug("ec2: %s attempt %u%s",
		    ec2_action_str(call->req->action), call->attempts,
		    call->req->dry_run ? " (dry run)" : "");
	if (curlev_add(c->cl, call->easy, call_done, call) < 0)
		goto internal;
	return;
internal:
	ec2_result_set_error(call->res, EC2_ERR_INTERNAL, NULL,
	    "cannot build the HTTP request");
finish:
	sigv4_result_free(&sig);
	call_finish(call);
}

static void
creds_ready(const char *err, void *arg)
{
	struct ec2_call *call = arg;
	const struct creds *cr;

	call->cw = NULL;
	cr = creds_current(call->c->creds);
	if (err != NULL || cr == NULL) {
		ec2_result_set_error(call->res, EC2_ERR_CREDS, NULL, "%s",
		    err ? err : "no credentials");
		call_finish(call);
		return;
	}
	call_send(call, cr);
}

/*
 * The next attempt: budget first, then credentials, then the wire. A
 * call never passes calls already waiting for the budget.
 */
static void
call_step(struct ec2_call *call)
{
	if (call->c->budget_head != NULL || budget_take(call->c) > 0) {
		budget_queue(call);
		return;
	}
	call_creds(call);
}

static void
call_creds(struct ec2_call *call)
{
	const struct creds *cr;

	cr = creds_current(call->c->creds);
	if (cr != NULL) {
		call_send(call, cr);
		return;
	}
	call->cw = creds_wait(call->c->creds, creds_ready, call);
	if (call->cw == NULL) {
		ec2_result_set_error(call->res, EC2_ERR_INTERNAL, NULL,
		    "out of memory");
		call_finish(call);
	}
}

static int
ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int
has_text(const char *s, const char *needle)
{
	return s != NULL && strstr(s, needle) != NULL;
}

/*
 * Whether a refusal is about the request's timestamp. EC2 answers one
 * more than five minutes off with AuthFailure "Signature expired: ..."
 * or "Signature not yet current: ...", more than fifteen with
 * RequestExpired, which also means expired temporary credentials:
 * returns 2 for that one, since only the Date can tell them apart.
 */
static int
skew_refusal(const char *code, const char *message)
{
	if (code == NULL)
		return 0;
	if (strcmp(code, "RequestExpired") == 0)
		return 2;
	if (strcmp(code, "RequestTimeTooSkewed") == 0 ||
	    strcmp(code, "RequestInTheFuture") == 0 ||
	    strcmp(code, "SignatureExpired") == 0)
		return 1;
	if ((strcmp(code, "AuthFailure") == 0 ||
	    strcmp(code, "SignatureDoesNotMatch") == 0 ||
	    strcmp(code, "InvalidSignatureException") == 0) &&
	    (has_text(message, "Signature expired") ||
	    has_text(message, "Signature not yet current")))
		return 1;
	return 0;
}

/*
 * A refusal about time: sign with the endpoint's clock when ours is
 * off it, else (RequestExpired with a good clock) the session token
 * has expired: fetch new credentials. 1 when the call goes on.
 */
static int
call_time_refused(struct ec2_call *call, int kind)
{
	struct ec2_client *c = call->c;
	const char *code = call->res->code;
	const struct creds *cr;
	time_t off;

	if (call->server_date != 0 && !call->skew_retried) {
		off = call->server_date - time(NULL);
		if (labs((long)(off - c->skew)) > SKEW_SLACK || (kind == 1 &&
		    off != c->skew)) {
			call->skew_retried = 1;
			c->skew = off;
			creds_set_clock_offset(c->creds, off);
			log_warnx("ec2: %s: %s; the local clock is %+lds off "
			    "the endpoint's, signing with the corrected time",
			    ec2_action_str(call->req->action), code,
			    -(long)off);
			call_wait(call, 0.0);
			return 1;
		}
	}
	cr = creds_current(c->creds);
	if (kind == 2 && !call->creds_retried && cr != NULL &&
	    creds_expiration(cr) != 0) {
		call->creds_retried = 1;
		log_warnx("ec2: %s: RequestExpired with the clock right: the "
		    "session credentials expired early, fetching new ones",
		    ec2_action_str(call->req->action));
		creds_invalidate(c->creds);
		call_wait(call, 0.0);
		return 1;
	}
	return 0;
}

static const char *
req_param(const struct ec2_request *req, const char *key)
{
	size_t i;

	for (i = 0; i < req->nparams; i++)
		if (strcmp(req->params[i].key, key) == 0)
			return req->params[i].value;
	return NULL;
}

/*
 * What a lookup found of the lost attempt's work: the snapshot or
 * image made, or (AttachVolume) the volume's attachment to this
 * instance at this device, which then becomes the result's. NULL: not
 * done.
 */
static const char *
look_found(const struct ec2_request *req, struct ec2_result *res)
{
	const struct ec2_attachment *a;
	const char *inst, *dev;
	size_t i;

	if (req->action == EC2_ATTACH_VOLUME) {
		inst = req_param(req, "InstanceId");
		dev = req_param(req, "Device");
		if (res->nvolumes == 0 || inst == NULL || dev == NULL)
			return NULL;
		for (i = 0; i < res->volumes[0].nattachments; i++) {
			a = &res->volumes[0].attachments[i];
			if (a->instance_id == NULL || a->device == NULL ||
			    strcmp(a->instance_id, inst) != 0 ||
			    strcmp(a->device, dev) != 0)
				continue;
			res->attachment = *a;
			res->has_attachment = 1;
			return res->volumes[0].volume_id;
		}
		return NULL;
	}
	if (res->nsnapshots > 0)
		return res->snapshots[0].snapshot_id;
	if (res->nimages > 0)
		return res->images[0].image_id;
	return NULL;
}

/* An effect lookup's answer: adopt what it found, look again, or resend. */
static void
look_done(struct ec2_call *call, CURLcode rc, long status)
{
	struct ec2_result *tmp;
	const char *id, *act = ec2_action_str(call->req->action);
	double since;
	char why[300];

	if (rc != CURLE_OK) {
		buf_free(&call->reply);
		snprintf(why, sizeof(why), "looking for its effect: %s",
		    curl_easy_strerror(rc));
		call_retry_later(call, why);
		return;
	}
	tmp = ec2_result_new(call->req->effect->action);
	if (tmp == NULL) {
		buf_free(&call->reply);
		ec2_result_set_error(call->res, EC2_ERR_INTERNAL, NULL,
		    "out of memory");
		call_finish(call);
		return;
	}
	ec2_result_parse_into(tmp, call->reply.data ? call->reply.data : "",
	    call->reply.len, status);
	buf_free(&call->reply);
	if (tmp->status != EC2_OK) {
		ec2_result_finish(tmp);
		snprintf(why, sizeof(why), "looking for its effect: %s",
		    ec2_result_error(tmp));
		if (status >= 500 || status == 429 || code_in(tmp->code,
		    retryable_codes, NCODES(retryable_codes))) {
			ec2_result_free(tmp);
			call_retry_later(call, why);
			return;
		}
		/* Unable to look: a second create is worse than none. */
		log_warnx("ec2: %s: %s; not sending it again", act, why);
		ec2_result_free(tmp);
		call->res->retryable = 1;
		call_finish(call);
		return;
	}
	id = look_found(call->req, tmp);
	if (id != NULL) {
		log_info("ec2: %s: its reply was lost, but it was done: "
		    "found %s", act, id);
		tmp->action = call->req->action;
		if (call->req->action != EC2_ATTACH_VOLUME)
			tmp->id = id;
		ec2_result_free(call->res);
		call->res = tmp;
		call_finish(call);
		return;
	}
	ec2_result_free(tmp);
	since = ev_now(call->c->loop) - call->unsure_since;
	if (since < EFFECT_SETTLE) {
		/* Describe may not show it yet (eventual consistency). */
		call_wait(call, call->look_wait);
		call->look_wait *= 2;
		return;
	}
	call->look = 0;
	call->unsure = 0;
	if (call->dup) {
		/* The name is taken by something that is not ours. */
		call->res->retryable = 0;
		call_finish(call);
		return;
	}
	log_info("ec2: %s: not done by the lost attempt, sending it again",
	    act);
	call_wait(call, 0.0);
}

static void
call_look_setup(struct ec2_call *call)
{
	if (!call->look) {
		call->unsure_since = ev_now(call->c->loop);
		call->look_wait = EFFECT_POLL;
	}
	call->unsure = 1;
	call->look = 1;
}

/* The next transfer looks for the effect of one whose fate is unknown. */
static void
call_look_first(struct ec2_call *call)
{
	call->was_unsure = 1;
	if (call->req->effect != NULL && !call->req->dup_only)
		call_look_setup(call);
}

static void
call_done(CURL *easy, CURLcode rc, void *arg)
{
	struct ec2_call *call = arg;
	struct ec2_client *c = call->c;
	struct ec2_result *res = call->res;
	const char *code;
	long status = 0;
	char why[300];
	int kind;

	/* curlev has let go of the handle. */
	call->easy = NULL;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(easy);
	/* The signed request is spent: hold none while waiting to retry. */
	curl_slist_free_all(call->hdrs);
	call->hdrs = NULL;
	if (call->body != NULL) {
		OPENSSL_cleanse(call->body, strlen(call->body));
		free(call->body);
		call->body = NULL;
	}
	if (call->look) {
		look_done(call, rc, status);
		return;
	}
	/* Only this attempt's answer says whether the call may go on. */
	res->retryable = 0;

	if (rc != CURLE_OK) {
		ec2_result_set_error(res, EC2_ERR_NETWORK, NULL, "%s: %s",
		    c->endpoint, call->curlerr[0] ? call->curlerr :
		    curl_easy_strerror(rc));
		res->http_status = status;
		if (curl_retryable(rc)) {
			if (curl_maybe_sent(rc))
				call_look_first(call);
			snprintf(why, sizeof(why), "%s",
			    curl_easy_strerror(rc));
			call_retry_later(call, why);
		} else {
			call_finish(call);
		}
		return;
	}

	ec2_result_set_error(res, EC2_OK, NULL, NULL);
	ec2_result_parse_into(res, call->reply.data ? call->reply.data : "",
	    call->reply.len, status);
	buf_free(&call->reply);
	code = res->code;

	if (res->status == EC2_OK) {
		if (res->next_token != NULL &&
		    is_describe(call->req->action)) {
			/* The next page; its items add to this result. */
			free(call->page_token);
			call->page_token = res->next_token;
			res->next_token = NULL;
			call->pages++;
			call->tries = 0;
			call_wait(call, 0.0);
			return;
		}
		call_finish(call);
		return;
	}
	if (res->status != EC2_ERR_AWS) {
		/* DryRun answers, unreadable replies: final. */
		if (res->status == EC2_ERR_REPLY && status >= 500) {
			call_look_first(call);
			call_retry_later(call, "unreadable 5xx reply");
			return;
		}
		call_finish(call);
		return;
	}
	if (status == 429 || code_in(code, refused_codes,
	    NCODES(refused_codes)))
		c->stats.throttles[call->req->action]++;
	if (code_in(code, capacity_codes, NCODES(capacity_codes))) {
		call_finish(call);
		return;
	}
	kind = skew_refusal(code, res->message);
	if (kind != 0 && call_time_refused(call, kind))
		return;
	if (code != NULL && call->req->dup_code != NULL &&
	    call->was_unsure && strcmp(code, call->req->dup_code) == 0) {
		/* Maybe the lost attempt's: find it and see if it is ours. */
		call_look_setup(call);
		call->dup = 1;
		call_wait(call, 0.0);
		return;
	}
	if (code != NULL && (strcmp(code, "ExpiredToken") == 0 ||
	    strcmp(code, "AuthFailure") == 0 ||
	    strcmp(code, "InvalidClientTokenId") == 0) &&
	    !call->creds_retried) {
		/* Role credentials may have been rotated under us. */
		call->creds_retried = 1;
		creds_invalidate(c->creds);
		if (creds_current(c->creds) == NULL) {
			call_wait(call, 0.0);
			return;
		}
	}
	if (code_in(code, retryable_codes, NCODES(retryable_codes)) ||
	    status >= 500 || status == 429) {
		if (status >= 500 && !code_in(code, refused_codes,
		    NCODES(refused_codes)))
			call_look_first(call);
		snprintf(why, sizeof(why), "%s (HTTP %ld)",
		    code ? code : "error", status);
		call_retry_later(call, why);
		return;
	}
	if (code != NULL && call->req->after_mutation &&
	    ends_with(code, ".NotFound")) {
		snprintf(why, sizeof(why), "%s just after a change, "
		    "eventual consistency", code);
		call_retry_later(call, why);
		return;
	}
	call_finish(call);
}

/*
 * AttachVolume sent again after a lost reply is refused with
 * VolumeInUse once the first worked: the volume attached to this
 * instance at this device is then the answer.
 */
static void
attach_effect(struct ec2_request *req)
{
	struct ec2_request *look;
	const char *vol = req_param(req, "VolumeId");

	if (vol == NULL)
		return;
	look = ec2_request_new(EC2_DESCRIBE_VOLUMES);
	if (look == NULL || ec2_request_add(look, "VolumeId.1", vol) == -1) {
		ec2_request_free(look);
		return;
	}
	if (ec2_request_set_effect_lookup(req, look, "VolumeInUse") == 0)
		req->dup_only = 1;
}

struct ec2_call *
ec2_call(struct ec2_client *c, struct ec2_request *req, double deadline,
    ec2_done_cb cb, void *arg)
{
	struct ec2_call *call;

	if (req->action == EC2_ATTACH_VOLUME && req->effect == NULL)
		attach_effect(req);
	call = calloc(1, sizeof(*call));
	if (call == NULL || req->oom) {
		free(call);
		ec2_request_free(req);
		return NULL;
	}
	call->res = ec2_result_new(req->action);
	if (call->res == NULL) {
		free(call);
		ec2_request_free(req);
		return NULL;
	}
	call->c = c;
	call->req = req;
	call->cb = cb;
	call->arg = arg;
	call->timeout = deadline > 0 ? deadline : c->default_deadline;
	call->deadline = ev_now(c->loop) + call->timeout;
	buf_init(&call->reply);
	call->next = c->calls;
	if (c->calls != NULL)
		c->calls->prev = call;
	c->calls = call;
	ev_timer_init(&call->deadline_w, deadline_cb, call->timeout, 0.0);
	call->deadline_w.data = call;
	ev_timer_start(c->loop, &call->deadline_w);
	ev_timer_init(&call->wait_w, wait_cb, 0.0, 0.0);
	call->wait_w.data = call;
	/*
	 * Into the budget queue even with tokens to spare: calls go out in
	 * the order they were made, and from the loop, so the callback
	 * never runs inside ec2_call.
	 */
	budget_queue(call);
	return call;
}

void
ec2_call_cancel(struct ec2_call *call)
{
	if (call != NULL)
		call_free(call);
}

void
ec2_set_gate(struct ec2_client *c, int (*gate)(void *, char *, size_t),
    void *arg)
{
	c->gate = gate;
	c->gate_arg = arg;
}
