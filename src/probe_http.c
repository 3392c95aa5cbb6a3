/*
 * The HTTP probe, run on the shared curlev. The target address is always
 * reached through CURLOPT_CONNECT_TO, so the URL keeps the site's name
 * (Host header, TLS SNI and certificate check) while the connection goes
 * to the Elastic IP, and no DNS is needed.
 *
 * A probe holds an easy handle only while a check runs, taken from and
 * given back to curlev's idle handles: a handle with its buffers is some
 * 25 KB, which at 10,000 probes was most of the daemon's memory.
 *
 * Each check has its own DNS cache (a curl share), holding the one
 * address it connects to. In the multi handle's cache, shared by all,
 * there was one entry per target, and curl's lookup walks a hash of 7
 * chains: a check cost O(services). Names the EC2 client resolves stay
 * in the multi's cache, which no longer holds thousands of addresses.
 * The share lives only while the check runs: kept per probe, it and its
 * one cached address were ~1 KB per probe (massif, 1,000 services), 10
 * MB at 10,000; made per check it costs a calloc and a free.
 */
#include <sys/socket.h>

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failoverd/log.h"
#include "failoverd/probe_http.h"
#include "failoverd/selfcheck.h"

/* Enough for any health page; the rest is read and dropped. */
/* curl's receive buffer for a check, bytes (curl's minimum is 1024). */
#define PROBE_HTTP_RECV_BUF	2048L
#define PROBE_HTTP_BODY_MAX	(64 * 1024)
/* The body buffer starts at this and grows, doubling, to the max. */
#define PROBE_HTTP_BODY_MIN	512

struct probe_http {
	struct probe		*probe;
	struct curlev		*curl;
	CURL			*easy;		/* while running */
	CURLSH			*dns;		/* the check's DNS cache */
	struct curl_slist	*headers;
	struct curl_slist	*connect_to;	/* to connect_target */
	char			*connect_target;
	regex_t			 re;
	int			 have_re;
	int			 running;
	int			 https;
	/*
	 * The body and curl's error buffer exist only while a check runs:
	 * with thousands of probes, idle ones must hold next to nothing.
	 */
	char			*body;
	size_t			 body_len;
	size_t			 body_cap;	/* bytes, with the NUL */
	char			*errbuf;	/* CURL_ERROR_SIZE */
	/*
	 * errno of a socket() that failed in this check (0: none), and a
	 * body buffer that could not grow: the watchdog's faults, told
	 * apart from the target's (probe_http_local).
	 */
	int			 sock_errno;
	int			 oom;
};

static size_t
probe_http_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct probe_http	*h = arg;
	size_t			 len = size * nmemb, room, cap;
	char			*grown;

	room = PROBE_HTTP_BODY_MAX - h->body_len;
	if (len < room)
		room = len;
	if (h->body_len + room + 1 > h->body_cap) {
		cap = h->body_cap;
		while (cap < h->body_len + room + 1)
			cap *= 2;
		if (cap > PROBE_HTTP_BODY_MAX + 1)
			cap = PROBE_HTTP_BODY_MAX + 1;
		grown = realloc(h->body, cap);
		if (grown == NULL) {
			h->oom = 1;
			return 0;	/* curl fails the check: write error */
		}
		h->body = grown;
		h->body_cap = cap;
	}
	memcpy(h->body + h->body_len, data, room);
	h->body_len += room;
	h->body[h->body_len] = '\0';
	return len;
}

struct probe_http *
probe_http_new(struct probe *p, struct curlev *cl,
    const struct probe_conf *conf, char *err, size_t errlen)
{
	struct probe_http	*h;
	struct curl_slist	*l;
	char			 msg[256];
	size_t			 i;
	int			 rc;

	h = calloc(1, sizeof(*h));
	if (h == NULL)
		goto oom;
	h->probe = p;
	h->curl = cl;
	if (conf->http.expect_body_regex != NULL) {
		/* Compiled once here, never per check. */
		rc = regcomp(&h->re, conf->http.expect_body_regex,
		    REG_EXTENDED | REG_NOSUB);
		if (rc != 0) {
			regerror(rc, &h->re, msg, sizeof(msg));
			snprintf(err, errlen, "probe %s: expect_body_regex: "
			    "%s", conf->name, msg);
			goto fail;
		}
		h->have_re = 1;
	}
	for (i = 0; i < conf->http.nheaders; i++) {
		l = curl_slist_append(h->headers, conf->http.headers[i]);
		if (l == NULL)
			goto oom;
		h->headers = l;
	}
	if (!conf->http.tls_verify)
		log_warnx("probe %s: tls_verify is off: a check trusts any "
		    "certificate", conf->name);
	return h;
oom:
	snprintf(err, errlen, "probe %s: out of memory", conf->name);
fail:
	probe_http_free(h);
	return NULL;
}

/*
 * Gives the easy handle back, detached from the check's DNS cache, and
 * drops the check's buffers and cache.
 */
static void
probe_http_release(struct probe_http *h)
{
	if (h->easy != NULL) {
		curl_easy_setopt(h->easy, CURLOPT_SHARE, NULL);
		curlev_easy_put(h->curl, h->easy);
		h->easy = NULL;
	}
	if (h->dns != NULL) {
		curl_share_cleanup(h->dns);
		h->dns = NULL;
	}
	free(h->body);
	h->body = NULL;
	h->body_len = h->body_cap = 0;
	free(h->errbuf);
	h->errbuf = NULL;
}

void
probe_http_free(struct probe_http *h)
{
	if (h == NULL)
		return;
	if (h->running)
		curlev_remove(h->curl, h->easy);
	probe_http_release(h);
	curl_slist_free_all(h->headers);
	curl_slist_free_all(h->connect_to);
	free(h->connect_target);
	if (h->have_re)
		regfree(&h->re);
	free(h);
}

static int
probe_http_status_ok(const struct http_conf *c, long status)
{
	size_t i;

	if (c->nexpect_status == 0)
		return status >= 200 && status <= 399;
	for (i = 0; i < c->nexpect_status; i++)
		if (status >= c->expect_status[i].lo &&
		    status <= c->expect_status[i].hi)
			return 1;
	return 0;
}

/* How far a transfer got, to name the stage of a failure or timeout. */
static enum probe_stage
probe_http_stage(struct probe_http *h)
{
	curl_off_t connect = 0, app = 0;

	curl_easy_getinfo(h->easy, CURLINFO_CONNECT_TIME_T, &connect);
	if (connect == 0)
		return PROBE_STAGE_CONNECT;
	curl_easy_getinfo(h->easy, CURLINFO_APPCONNECT_TIME_T, &app);
	if (h->https && app == 0)
		return PROBE_STAGE_TLS;
	return PROBE_STAGE_RESPONSE;
}

/*
 * curl says only "couldn't connect" when socket() fails; opening it here
 * keeps its errno, so that EMFILE is the watchdog's fault, not the
 * target's.
 */
static curl_socket_t
probe_http_open_socket(void *arg, curlsocktype purpose,
    struct curl_sockaddr *addr)
{
	struct probe_http	*h = arg;
	int			 fd;

	fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC,
	    addr->protocol);
	if (fd == -1) {
		h->sock_errno = errno;
		return CURL_SOCKET_BAD;
	}
	return fd;
}

/*
 * 1 when the check failed for want of something of the watchdog's own,
 * with res set to PROBE_ERR_LOCAL: it says nothing about the target.
 */
static int
probe_http_local(struct probe_http *h, CURL *easy, CURLcode rc,
    struct probe_result *res)
{
	long		 oserr = 0;
	char		 detail[160];

	if (h->sock_errno != 0) {
		snprintf(detail, sizeof(detail), "socket: %s",
		    strerror(h->sock_errno));
		goto local;
	}
	switch (rc) {
	case CURLE_OUT_OF_MEMORY:
	case CURLE_FAILED_INIT:
		snprintf(detail, sizeof(detail), "curl: %s",
		    curl_easy_strerror(rc));
		goto local;
	case CURLE_WRITE_ERROR:
		if (!h->oom)
			return 0;
		snprintf(detail, sizeof(detail), "body: out of memory");
		goto local;
	case CURLE_INTERFACE_FAILED:
		/* The source address: binding never reaches the target. */
		curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &oserr);
		snprintf(detail, sizeof(detail), "bind %s: %s",
		    probe_conf(h->probe)->source_address != NULL ?
		    probe_conf(h->probe)->source_address : "?",
		    oserr != 0 ? strerror((int)oserr) :
		    curl_easy_strerror(rc));
		goto local;
	case CURLE_COULDNT_CONNECT:
		/* EADDRNOTAVAIL: no local port left; EMFILE, ENOBUFS. */
		curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &oserr);
		if (!selfcheck_errno_is_local((int)oserr))
			return 0;
		snprintf(detail, sizeof(detail), "connect: %s",
		    strerror((int)oserr));
		goto local;
	default:
		return 0;
	}
local:
	probe_result_set(res, PROBE_ERR_LOCAL, PROBE_STAGE_CONNECT, 0,
	    detail);
	return 1;
}

static void
probe_http_on_done(CURL *easy, CURLcode rc, void *arg)
{
	struct probe_http	*h = arg;
	const struct probe_conf	*conf = probe_conf(h->probe);
	struct probe_result	 res;
	long			 status = 0, oserr = 0;
	const char		*detail;

	h->running = 0;
	detail = h->errbuf[0] != '\0' ? h->errbuf : curl_easy_strerror(rc);
	probe_result_set(&res, PROBE_OK, PROBE_STAGE_RESPONSE, 0, NULL);
	if (rc != CURLE_OK && probe_http_local(h, easy, rc, &res)) {
		probe_http_release(h);
		probe_done(h->probe, &res);
		return;
	}
	switch (rc) {
	case CURLE_OK:
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		res.code = (int)status;
		if (!probe_http_status_ok(&conf->http, status))
			probe_result_set(&res, PROBE_ERR_HTTP_STATUS,
			    PROBE_STAGE_RESPONSE, (int)status, NULL);
		else if (conf->http.expect_body != NULL &&
		    strstr(h->body, conf->http.expect_body) == NULL)
			probe_result_set(&res, PROBE_ERR_HTTP_BODY,
			    PROBE_STAGE_RESPONSE, (int)status,
			    conf->http.expect_body);
		else if (h->have_re &&
		    regexec(&h->re, h->body, 0, NULL, 0) != 0)
			probe_result_set(&res, PROBE_ERR_HTTP_BODY,
			    PROBE_STAGE_RESPONSE, (int)status,
			    conf->http.expect_body_regex);
		break;
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &oserr);
		probe_result_set(&res, oserr == ECONNREFUSED ?
		    PROBE_ERR_CONNECT_REFUSED : PROBE_ERR_CONNECT,
		    PROBE_STAGE_CONNECT, 0, detail);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		probe_result_set(&res, PROBE_ERR_RESOLVE, PROBE_STAGE_CONNECT,
		    0, detail);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		probe_result_set(&res, PROBE_ERR_TIMEOUT, probe_http_stage(h),
		    0, detail);
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		probe_result_set(&res, PROBE_ERR_TLS, PROBE_STAGE_TLS, 0,
		    detail);
		break;
	default:
		probe_result_set(&res, PROBE_ERR_HTTP, probe_http_stage(h), 0,
		    detail);
		break;
	}
	probe_http_release(h);
	probe_done(h->probe, &res);
}

/* The URL as configured, or scheme://address:port/path. */
static int
probe_http_url(const struct probe_conf *conf, const char *target,
    char *url, size_t len)
{
	const struct http_conf	*c = &conf->http;
	const char		*scheme = c->scheme ? c->scheme : "http";
	const char		*host = c->host ? c->host : target;
	const char		*path = c->path ? c->path : "/";
	int			 v6 = strchr(host, ':') != NULL;
	int			 n;

	if (c->url != NULL)
		n = snprintf(url, len, "%s", c->url);
	else if (c->port > 0)
		n = snprintf(url, len, "%s://%s%s%s:%d%s%s", scheme,
		    v6 ? "[" : "", host, v6 ? "]" : "", c->port,
		    path[0] == '/' ? "" : "/", path);
	else
		n = snprintf(url, len, "%s://%s%s%s%s%s", scheme,
		    v6 ? "[" : "", host, v6 ? "]" : "",
		    path[0] == '/' ? "" : "/", path);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
probe_http_start(struct probe_http *h, const struct probe_conf *conf,
    const char *target, struct probe_result *res)
{
	const struct http_conf	*c = &conf->http;
	CURL			*e;
	char			 url[2048], to[300], iface[64];
	int			 v6 = strchr(target, ':') != NULL;
	struct curl_slist	*l;

	if (probe_http_url(conf, target, url, sizeof(url)) == -1) {
		probe_result_set(res, PROBE_ERR_INTERNAL, PROBE_STAGE_CONNECT,
		    0, "URL too long");
		return -1;
	}
	h->https = strncmp(url, "https:", 6) == 0;
	/* Any host and port of the URL goes to the target address. */
	if (h->connect_target == NULL ||
	    strcmp(h->connect_target, target) != 0) {
		snprintf(to, sizeof(to), "::%s%s%s:", v6 ? "[" : "", target,
		    v6 ? "]" : "");
		l = curl_slist_append(NULL, to);
		if (l == NULL)
			goto oom;
		curl_slist_free_all(h->connect_to);
		h->connect_to = l;
		free(h->connect_target);
		h->connect_target = strdup(target);
		if (h->connect_target == NULL)
			goto oom;
	}
	if (h->easy == NULL)
		h->easy = curlev_easy_get(h->curl);
	if (h->easy == NULL)
		goto oom;
	e = h->easy;

	if (h->body == NULL) {
		h->body = malloc(PROBE_HTTP_BODY_MIN);
		if (h->body == NULL)
			goto oom;
		h->body_cap = PROBE_HTTP_BODY_MIN;
	}
	if (h->errbuf == NULL) {
		h->errbuf = malloc(CURL_ERROR_SIZE);
		if (h->errbuf == NULL)
			goto oom;
	}
	if (h->dns == NULL) {
		h->dns = curl_share_init();
		if (h->dns == NULL)
			goto oom;
		if (curl_share_setopt(h->dns, CURLSHOPT_SHARE,
		    CURL_LOCK_DATA_DNS) != CURLSHE_OK)
			goto oom;
	}
	h->body_len = 0;
	h->body[0] = '\0';
	h->errbuf[0] = '\0';
	h->sock_errno = 0;
	h->oom = 0;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CONNECT_TO, h->connect_to);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, probe_http_on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "failoverd/" FOD_VERSION);
	if (c->method != NULL && strcmp(c->method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	/* The probe's own deadline bounds the whole check (probe.c). */
	if (c->connect_timeout > 0)
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
		    (long)(c->connect_timeout * 1000.0));
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L);
	if (c->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	/* A check must see a dead listener, not a kept-alive socket. */
	curl_easy_setopt(e, CURLOPT_FRESH_CONNECT,
	    c->reuse_connection ? 0L : 1L);
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE,
	    c->reuse_connection ? 0L : 1L);
	/*
	 * "host!" makes curl take the address as an address: a bare
	 * string may be an interface name. Always set, the handle is
	 * pooled and may carry another probe's.
	 */
	if (conf->source_address != NULL) {
		snprintf(iface, sizeof(iface), "host!%s",
		    conf->source_address);
		curl_easy_setopt(e, CURLOPT_INTERFACE, iface);
	} else
		curl_easy_setopt(e, CURLOPT_INTERFACE, NULL);
	curl_easy_setopt(e, CURLOPT_SHARE, h->dns);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION,
	    probe_http_open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, h);
	/*
	 * The target is an address, cached by curl as if resolved: it never
	 * goes stale, and with a timeout curl prunes the cache (walking it
	 * all) at every transfer.
	 */
	curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, -1L);
	/*
	 * curl's receive buffer is 16 KB per transfer by default; with
	 * thousands of checks in flight that was most of the daemon's
	 * memory. A health page is small and the check keeps at most
	 * PROBE_HTTP_BODY_MAX of it anyway: read it in small pieces.
	 */
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, PROBE_HTTP_RECV_BUF);
	/*
	 * A check goes straight to its target, never through a proxy from
	 * the environment; said here, curl also skips reading the five
	 * proxy variables (getenv, strdup) at every check.
	 */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	/*
	 * A plain HTTP request is one write: Nagle never holds it, and
	 * leaving it on saves a setsockopt per check. TLS keeps NODELAY,
	 * its handshake writes more than once.
	 */
	if (!h->https)
		curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 0L);
	if (curlev_add(h->curl, e, probe_http_on_done, h) == -1) {
		probe_result_set(res, PROBE_ERR_INTERNAL, PROBE_STAGE_CONNECT,
		    0, "curl refused the transfer");
		probe_http_release(h);
		return -1;
	}
	h->running = 1;
	return 0;
oom:
	probe_result_set(res, PROBE_ERR_LOCAL, PROBE_STAGE_CONNECT, 0,
	    "out of memory");
	/* A check that never ran holds nothing until the next one. */
	probe_http_release(h);
	return -1;
}

void
probe_http_abort(struct probe_http *h, struct probe_result *res)
{
	if (!h->running)
		return;
	res->stage = probe_http_stage(h);
	curlev_remove(h->curl, h->easy);
	probe_http_release(h);
	h->running = 0;
}
