/*
 * etcd v3 over its HTTP/JSON gateway (grpc-gateway): every RPC is a POST
 * of the request message as JSON, the reply the response message. Keys
 * and values are bytes, so base64 in JSON; int64 fields are strings;
 * fields at their zero value are left out (proto3), so an absent field
 * reads as 0. An error is {"error": "...", "code": N, "message": "..."}
 * with an HTTP status >= 400; on the streamed keepalive it comes as
 * {"error": {"grpc_code": N, "message": "..."}} and a reply as
 * {"result": {...}}.
 *
 * One call, one chain of attempts:
 *
 *   call_start -> attempt(endpoint i) -> call_on_done
 *                   ^                       |  not etcd / not sent
 *                   +--- next endpoint -----+
 *                                           |  etcd's answer, or out
 *                                           v  of endpoints or time
 *                                       call_finish -> callback
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "failoverd/buf.h"
#include "failoverd/curlev.h"
#include "failoverd/etcd.h"

#define ETCD_MAX_REPLY		((size_t)32 << 20)
#define ETCD_MAX_ENDPOINTS	16

struct etcd_client {
	struct ev_loop	*loop;
	struct curlev	*cl;
	char		**endpoints;
	size_t		 nendpoints;
	size_t		 cur;		/* the endpoint that last answered */
	char		*ca_file;
	char		*cert_file;
	char		*key_file;
	double		 timeout;
	struct etcd_call *calls;	/* in flight */
	unsigned int	 ncalls;
	struct etcd_watch *watches;
};

struct etcd_call {
	struct etcd_client *c;
	struct etcd_call *next, *prev;
	enum etcd_rpc	 rpc;
	int		 write;		/* repeating it may change etcd */
	char		*body;		/* the request, JSON */
	CURL		*easy;
	struct buf	 reply;
	int		 overflow;
	size_t		 tried;		/* attempts made */
	size_t		 at;		/* endpoint of the current attempt */
	ev_tstamp	 deadline;
	struct buf	 errs;		/* "endpoint: what; ..." */
	char		 curlerr[CURL_ERROR_SIZE];	/* curl's detail */
	etcd_cb		 cb;
	void		*arg;
};

static const char *const rpc_path[] = {
	[ETCD_RPC_RANGE] = "/v3/kv/range",
	[ETCD_RPC_PUT] = "/v3/kv/put",
	[ETCD_RPC_DELETE] = "/v3/kv/deleterange",
	[ETCD_RPC_TXN] = "/v3/kv/txn",
	[ETCD_RPC_GRANT] = "/v3/lease/grant",
	[ETCD_RPC_KEEPALIVE] = "/v3/lease/keepalive",
	[ETCD_RPC_REVOKE] = "/v3/lease/revoke",
};

/* --- JSON and base64 --- */

static json_t *
b64_json(const void *p, size_t len)
{
	unsigned char *out;
	json_t *s;

	if (len > (size_t)1 << 28)
		return NULL;
	out = malloc(4 * ((len + 2) / 3) + 1);
	if (out == NULL)
		return NULL;
	EVP_EncodeBlock(out, p, (int)len);
	s = json_string((char *)out);
	free(out);
	return s;
}

/* A base64 string member decoded, NUL-terminated; -1 with err set. */
static int
b64_member(json_t *obj, const char *name, int required, char **out,
    size_t *outlen, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, name);
	const char *s;
	size_t len, pad = 0;
	int n;

	*out = NULL;
	*outlen = 0;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return errf(err, errlen, "no \"%s\"", name);
		*out = strdup("");
		return *out == NULL ? errf(err, errlen, "out of memory") : 0;
	}
	if (!json_is_string(v))
		return errf(err, errlen, "\"%s\" is not a string", name);
	s = json_string_value(v);
	len = json_string_length(v);
	if (len % 4 != 0 || strlen(s) != len || len > (size_t)1 << 30)
		return errf(err, errlen, "\"%s\" is not base64", name);
	*out = malloc(len / 4 * 3 + 1);
	if (*out == NULL)
		return errf(err, errlen, "out of memory");
	n = EVP_DecodeBlock((unsigned char *)*out, (const unsigned char *)s,
	    (int)len);
	if (n < 0) {
		free(*out);
		*out = NULL;
		return errf(err, errlen, "\"%s\" is not base64", name);
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (len > 0 && s[len - 1] == '=')
		pad++;
	if (len > 1 && s[len - 2] == '=')
		pad++;
	*outlen = (size_t)n - pad;
	(*out)[*outlen] = '\0';
	return 0;
}

/* An int64 member: a JSON string of digits, or a number; absent is 0. */
static int
i64_member(json_t *obj, const char *name, int64_t *out, char *err,
    size_t errlen)
{
	json_t *v = json_object_get(obj, name);
	const char *s;
	char *end;
	long long n;

	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return errf(err, errlen, "\"%s\" is not an int64", name);
	s = json_string_value(v);
	errno = 0;
	n = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 ||
	    strlen(s) != json_string_length(v))
		return errf(err, errlen, "\"%s\" is not an int64: \"%.32s\"",
		    name, s);
	*out = n;
	return 0;
}

static json_t *
i64_json(int64_t n)
{
	char s[32];

	snprintf(s, sizeof(s), "%" PRId64, n);
	return json_string(s);
}

size_t
etcd_prefix_end(const char *key, size_t keylen, char *out)
{
	size_t i;

	/* Drop trailing 0xff bytes, add one to the last other byte. */
	for (i = keylen; i > 0; i--) {
		if ((unsigned char)key[i - 1] != 0xff) {
			memcpy(out, key, i);
			out[i - 1] = (char)((unsigned char)key[i - 1] + 1);
			return i;
		}
	}
	/* No upper bound: every key from key on ("\0" means all). */
	out[0] = '\0';
	return 1;
}

/* Sets "key" (and "range_end" for a prefix) in obj; -1 when no memory. */
static int
set_key(json_t *obj, const char *key, int flags)
{
	size_t len = strlen(key), elen;
	char *end;
	int rc;

	if (json_object_set_new(obj, "key", b64_json(key, len)) < 0)
		return -1;
	if (!(flags & ETCD_PREFIX))
		return 0;
	end = malloc(len + 1);
	if (end == NULL)
		return -1;
	elen = etcd_prefix_end(key, len, end);
	rc = json_object_set_new(obj, "range_end", b64_json(end, elen));
	free(end);
	return rc;
}

static json_t *
op_json(const struct etcd_op *op)
{
	json_t *o = json_object(), *w = json_object();
	const char *name = NULL;

	if (o == NULL || w == NULL || op->key == NULL)
		goto fail;
	if (set_key(o, op->key, op->kind == ETCD_OP_PUT ? 0 : op->flags) < 0)
		goto fail;
	switch (op->kind) {
	case ETCD_OP_PUT:
		name = "request_put";
		if (json_object_set_new(o, "value", b64_json(op->value != NULL ?
		    op->value : "", op->valuelen)) < 0 || (op->lease != 0 &&
		    json_object_set_new(o, "lease", i64_json(op->lease)) < 0))
			goto fail;
		break;
	case ETCD_OP_DELETE:
		name = "request_delete_range";
		break;
	case ETCD_OP_RANGE:
		name = "request_range";
		break;
	}
	if (name == NULL || json_object_set_new(w, name, o) < 0) {
		o = NULL;
		goto fail;
	}
	return w;
fail:
	json_decref(o);
	json_decref(w);
	return NULL;
}

static json_t *
cmp_json(const struct etcd_cmp *cmp)
{
	static const char *const target[] = {
		[ETCD_VALUE] = "VALUE", [ETCD_CREATE_REVISION] = "CREATE",
		[ETCD_MOD_REVISION] = "MOD", [ETCD_VERSION] = "VERSION",
	};
	static const char *const field[] = {
		[ETCD_CREATE_REVISION] = "create_revision",
		[ETCD_MOD_REVISION] = "mod_revision",
		[ETCD_VERSION] = "version",
	};
	static const char *const result[] = {
		[ETCD_EQUAL] = "EQUAL", [ETCD_NOT_EQUAL] = "NOT_EQUAL",
		[ETCD_LESS] = "LESS", [ETCD_GREATER] = "GREATER",
	};
	json_t *o = json_object();

	if (o == NULL || cmp->key == NULL ||
	    (unsigned)cmp->target > ETCD_VERSION ||
	    (unsigned)cmp->result > ETCD_GREATER ||
	    set_key(o, cmp->key, 0) < 0 ||
	    json_object_set_new(o, "target",
	    json_string(target[cmp->target])) < 0 ||
	    json_object_set_new(o, "result",
	    json_string(result[cmp->result])) < 0)
		goto fail;
	if (cmp->target == ETCD_VALUE) {
		if (json_object_set_new(o, "value", b64_json(cmp->value !=
		    NULL ? cmp->value : "", cmp->valuelen)) < 0)
			goto fail;
	} else if (json_object_set_new(o, field[cmp->target],
	    i64_json(cmp->n)) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *
ops_json(const struct etcd_op *ops, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a != NULL && i < n; i++)
		if (json_array_append_new(a, op_json(&ops[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* --- the reply parser --- */

void
etcd_result_clear(struct etcd_result *r)
{
	size_t i;

	for (i = 0; i < r->nkvs; i++) {
		free(r->kvs[i].key);
		free(r->kvs[i].value);
	}
	free(r->kvs);
	memset(r, 0, sizeof(*r));
}

/* One mvccpb.KeyValue into k (zeroed by the caller). */
static int
parse_kv(json_t *kv, struct etcd_kv *k, char *err, size_t errlen)
{
	if (!json_is_object(kv))
		return errf(err, errlen, "a kv is not an object");
	if (b64_member(kv, "key", 1, &k->key, &k->keylen, err,
	    errlen) < 0 ||
	    b64_member(kv, "value", 0, &k->value, &k->valuelen, err,
	    errlen) < 0 ||
	    i64_member(kv, "create_revision", &k->create_revision, err,
	    errlen) < 0 ||
	    i64_member(kv, "mod_revision", &k->mod_revision, err,
	    errlen) < 0 ||
	    i64_member(kv, "version", &k->version, err, errlen) < 0 ||
	    i64_member(kv, "lease", &k->lease, err, errlen) < 0)
		return -1;
	return 0;
}

static int
parse_kvs(json_t *resp, struct etcd_result *out, char *err, size_t errlen)
{
	json_t *kvs = json_object_get(resp, "kvs"), *kv;
	struct etcd_kv *nkv, *k;
	size_t i, n;
	int64_t count;

	if (i64_member(resp, "count", &count, err, errlen) < 0)
		return -1;
	out->count += count;
	if (kvs == NULL || json_is_null(kvs))
		return 0;
	if (!json_is_array(kvs))
		return errf(err, errlen, "\"kvs\" is not an array");
	n = json_array_size(kvs);
	if (n == 0)
		return 0;
	nkv = reallocarray(out->kvs, out->nkvs + n, sizeof(*nkv));
	if (nkv == NULL)
		return errf(err, errlen, "out of memory");
	out->kvs = nkv;
	json_array_foreach(kvs, i, kv) {
		k = &out->kvs[out->nkvs];
		memset(k, 0, sizeof(*k));
		if (!json_is_object(kv))
			return errf(err, errlen, "a kv is not an object");
		out->nkvs++;
		if (parse_kv(kv, k, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int
parse_txn(json_t *root, struct etcd_result *out, char *err, size_t errlen)
{
	json_t *ok = json_object_get(root, "succeeded");
	json_t *resps = json_object_get(root, "responses"), *r, *v;
	int64_t deleted;
	size_t i;

	if (ok != NULL && !json_is_boolean(ok))
		return errf(err, errlen, "\"succeeded\" is not a boolean");
	out->succeeded = json_is_true(ok);
	if (resps == NULL || json_is_null(resps))
		return 0;
	if (!json_is_array(resps))
		return errf(err, errlen, "\"responses\" is not an array");
	json_array_foreach(resps, i, r) {
		if (!json_is_object(r))
			return errf(err, errlen, "a response is not an object");
		if ((v = json_object_get(r, "response_range")) != NULL) {
			if (!json_is_object(v))
				return errf(err, errlen, "\"response_range\" "
				    "is not an object");
			if (parse_kvs(v, out, err, errlen) < 0)
				return -1;
		} else if ((v = json_object_get(r,
		    "response_delete_range")) != NULL) {
			if (!json_is_object(v))
				return errf(err, errlen, "\"response_delete_"
				    "range\" is not an object");
			if (i64_member(v, "deleted", &deleted, err,
			    errlen) < 0)
				return -1;
			out->deleted += deleted;
		}
	}
	return 0;
}

/* etcd's error reply: 1 with out and err set, 0 when obj is none. */
static int
parse_error(json_t *root, long http_status, struct etcd_result *out,
    char *err, size_t errlen)
{
	json_t *e = json_object_get(root, "error"), *m, *code;

	if (json_is_object(e)) {		/* the streamed form */
		m = json_object_get(e, "message");
		code = json_object_get(e, "grpc_code");
	} else if (json_is_string(e)) {
		m = json_object_get(root, "message");
		if (!json_is_string(m))
			m = e;
		code = json_object_get(root, "code");
	} else
		return 0;
	if (!json_is_string(m) || (code != NULL && !json_is_integer(code)))
		return 0;
	out->status = ETCD_E_REFUSED;
	out->code = code != NULL ? (int)json_integer_value(code) : 0;
	errf(err, errlen, "etcd refused: %.200s (code %d, HTTP %ld)",
	    json_string_value(m), out->code, http_status);
	return 1;
}

int
etcd_parse_reply(enum etcd_rpc rpc, const char *body, size_t len,
    long http_status, struct etcd_result *out, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root, *r, *hdr;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	out->status = ETCD_E_UNAVAILABLE;
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL)
		return errf(err, errlen, "HTTP %ld, not a JSON reply: %s "
		    "(line %d, column %d)", http_status, je.text, je.line,
		    je.column);
	if (!json_is_object(root)) {
		errf(err, errlen, "HTTP %ld, JSON reply is not an object",
		    http_status);
		goto out;
	}
	if (parse_error(root, http_status, out, err, errlen)) {
		rc = 1;
		goto out;
	}
	if (http_status != 200) {
		errf(err, errlen, "HTTP %ld without an etcd error",
		    http_status);
		goto out;
	}
	r = root;
	if (rpc == ETCD_RPC_KEEPALIVE) {
		r = json_object_get(root, "result");
		if (!json_is_object(r)) {
			errf(err, errlen, "keepalive reply without "
			    "\"result\"");
			goto out;
		}
	}
	/* Every etcd response has its header: what tells etcd from others. */
	hdr = json_object_get(r, "header");
	if (!json_is_object(hdr)) {
		errf(err, errlen, "reply without an etcd \"header\"");
		goto out;
	}
	if (i64_member(hdr, "revision", &out->revision, err, errlen) < 0)
		goto out;
	switch (rpc) {
	case ETCD_RPC_RANGE:
		if (parse_kvs(r, out, err, errlen) < 0)
			goto out;
		break;
	case ETCD_RPC_DELETE:
		if (i64_member(r, "deleted", &out->deleted, err, errlen) < 0)
			goto out;
		break;
	case ETCD_RPC_TXN:
		if (parse_txn(r, out, err, errlen) < 0)
			goto out;
		break;
	case ETCD_RPC_GRANT:
	case ETCD_RPC_KEEPALIVE:
		if (i64_member(r, "ID", &out->lease_id, err, errlen) < 0 ||
		    i64_member(r, "TTL", &out->ttl, err, errlen) < 0)
			goto out;
		if (rpc == ETCD_RPC_GRANT && (out->lease_id == 0 ||
		    out->ttl <= 0)) {
			errf(err, errlen, "lease grant reply without ID and "
			    "TTL");
			goto out;
		}
		break;
	case ETCD_RPC_PUT:
	case ETCD_RPC_REVOKE:
		break;
	}
	out->status = ETCD_OK;
	rc = 0;
	/* etcd answers a keepalive of an unknown lease with TTL 0. */
	if (rpc == ETCD_RPC_KEEPALIVE && out->ttl <= 0) {
		out->status = ETCD_E_NOLEASE;
		errf(err, errlen, "lease %" PRId64 " has expired or does not "
		    "exist", out->lease_id);
	}
out:
	json_decref(root);
	if (rc < 0) {
		etcd_result_clear(out);
		out->status = ETCD_E_UNAVAILABLE;
	}
	return rc;
}

/* --- calls on the loop --- */

struct etcd_client *
etcd_new(struct ev_loop *loop, struct curlev *cl,
    const struct etcd_config *cfg, char *err, size_t errlen)
{
	struct etcd_client *c;
	size_t i;

	if (cfg->nendpoints == 0 || cfg->nendpoints > ETCD_MAX_ENDPOINTS) {
		errf(err, errlen, "etcd: %zu endpoints (1 to %d)",
		    cfg->nendpoints, ETCD_MAX_ENDPOINTS);
		return NULL;
	}
	for (i = 0; i < cfg->nendpoints; i++)
		if (strncmp(cfg->endpoints[i], "http://", 7) != 0 &&
		    strncmp(cfg->endpoints[i], "https://", 8) != 0) {
			errf(err, errlen, "etcd endpoint '%s' is not an "
			    "http:// or https:// URL", cfg->endpoints[i]);
			return NULL;
		}
	if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
		errf(err, errlen, "etcd: a client certificate needs its key "
		    "and a key its certificate");
		return NULL;
	}
	if (!(cfg->timeout > 0)) {
		errf(err, errlen, "etcd: the timeout must be positive");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto nomem;
	c->loop = loop;
	c->cl = cl;
	c->timeout = cfg->timeout;
	c->endpoints = calloc(cfg->nendpoints, sizeof(*c->endpoints));
	if (c->endpoints == NULL)
		goto nomem;
	for (i = 0; i < cfg->nendpoints; i++) {
		/* "http://host:port/" and "http://host:port" alike. */
		c->endpoints[i] = strndup(cfg->endpoints[i],
		    strlen(cfg->endpoints[i]) - (cfg->endpoints[i][
		    strlen(cfg->endpoints[i]) - 1] == '/'));
		if (c->endpoints[i] == NULL)
			goto nomem;
		c->nendpoints++;
	}
	if ((cfg->ca_file != NULL &&
	    (c->ca_file = strdup(cfg->ca_file)) == NULL) ||
	    (cfg->cert_file != NULL &&
	    (c->cert_file = strdup(cfg->cert_file)) == NULL) ||
	    (cfg->key_file != NULL &&
	    (c->key_file = strdup(cfg->key_file)) == NULL))
		goto nomem;
	return c;
nomem:
	errf(err, errlen, "etcd: out of memory");
	etcd_free(c);
	return NULL;
}

static void
call_free(struct etcd_call *call)
{
	struct etcd_client *c = call->c;

	if (call->easy != NULL) {
		curlev_remove(c->cl, call->easy);
		curl_easy_cleanup(call->easy);
	}
	if (call->prev != NULL)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	c->ncalls--;
	free(call->body);
	buf_free(&call->reply);
	buf_free(&call->errs);
	free(call);
}

void
etcd_cancel(struct etcd_call *call)
{
	if (call != NULL)
		call_free(call);
}

static void	watch_free(struct etcd_watch *w);

void
etcd_free(struct etcd_client *c)
{
	size_t i;

	if (c == NULL)
		return;
	while (c->calls != NULL)
		call_free(c->calls);
	while (c->watches != NULL)
		watch_free(c->watches);
	for (i = 0; i < c->nendpoints; i++)
		free(c->endpoints[i]);
	free(c->endpoints);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c);
}

unsigned int
etcd_running(const struct etcd_client *c)
{
	return c->ncalls;
}

static int	call_attempt(struct etcd_call *call);

/*
 * Ends the call: the call is freed first (the callback may start calls
 * or cancel this one's neighbours), then its one callback runs.
 */
static void
call_end(struct etcd_call *call, struct etcd_result *res)
{
	struct etcd_client *c = call->c;
	etcd_cb cb = call->cb;
	void *arg = call->arg;
	char *msg = NULL;

	if (res->status != ETCD_OK) {
		msg = strdup(call->errs.len > 0 && !call->errs.oom ?
		    buf_str(&call->errs) : "etcd: out of memory");
		res->error = msg != NULL ? msg : "etcd: out of memory";
	}
	if (res->status == ETCD_OK || res->status == ETCD_E_REFUSED ||
	    res->status == ETCD_E_NOLEASE) {
		c->cur = call->at;
		res->endpoint = c->endpoints[call->at];
	}
	call_free(call);
	cb(res, arg);
	free(msg);
}

static void
call_fail(struct etcd_call *call, enum etcd_status st)
{
	struct etcd_result res;

	memset(&res, 0, sizeof(res));
	res.status = st;
	call_end(call, &res);
}

static size_t
call_on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct etcd_call *call = arg;
	size_t n = size * nmemb;

	if (call->reply.len + n > ETCD_MAX_REPLY) {
		call->overflow = 1;
		return 0;
	}
	if (buf_append(&call->reply, ptr, n) < 0)
		return 0;
	return n;
}

/* Notes what went wrong with the current endpoint. */
static void
call_note(struct etcd_call *call, const char *what)
{
	buf_printf(&call->errs, "%setcd %s%s: %s", call->errs.len > 0 ?
	    "; " : "", call->c->endpoints[call->at], rpc_path[call->rpc],
	    what);
}

/* Next endpoint if one is left and time remains, else the end. */
static void
call_next(struct etcd_call *call, enum etcd_status st)
{
	if (call->tried < call->c->nendpoints &&
	    ev_now(call->c->loop) < call->deadline) {
		if (call_attempt(call) == 0)
			return;
	}
	call_fail(call, st);
}

static void
call_on_done(CURL *easy, CURLcode cc, void *arg)
{
	struct etcd_call *call = arg;
	struct etcd_result res;
	long status = 0, sent = 0;
	char err[512];
	int rc;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent);
	curl_easy_cleanup(easy);
	call->easy = NULL;
	if (cc != CURLE_OK) {
		/* curl's own detail says which certificate, which host. */
		snprintf(err, sizeof(err), "%s", call->overflow ?
		    "reply larger than 32 MiB" : call->curlerr[0] != '\0' ?
		    call->curlerr : curl_easy_strerror(cc));
		call_note(call, err);
		/* Sent and unanswered: a write may have been applied. */
		if (call->write && sent > 0 && !call->overflow) {
			buf_printf(&call->errs, " (sent, no answer: it may "
			    "have been applied)");
			call_fail(call, ETCD_E_UNKNOWN);
			return;
		}
		call_next(call, ETCD_E_UNAVAILABLE);
		return;
	}
	rc = etcd_parse_reply(call->rpc, buf_str(&call->reply),
	    call->reply.len, status, &res, err, sizeof(err));
	if (rc < 0) {
		/* Not etcd's answer: nothing was applied there. */
		call_note(call, err);
		etcd_result_clear(&res);
		call_next(call, ETCD_E_UNAVAILABLE);
		return;
	}
	if (rc > 0 && !call->write && res.code == 14 &&
	    call->tried < call->c->nendpoints) {
		/* Unavailable (no leader there): another member may do. */
		call_note(call, err);
		etcd_result_clear(&res);
		call_next(call, ETCD_E_UNAVAILABLE);
		return;
	}
	if (res.status != ETCD_OK)
		call_note(call, err);
	call_end(call, &res);
	etcd_result_clear(&res);
}

/*
 * One attempt at the next endpoint, with the time the call has left;
 * -1 with the reason noted when it could not start.
 */
static int
call_attempt(struct etcd_call *call)
{
	struct etcd_client *c = call->c;
	static const char hdr[] = "Content-Type: application/json";
	static struct curl_slist hdrs = { (char *)hdr, NULL };
	char url[1024];
	long left, conn;

	call->at = (c->cur + call->tried) % c->nendpoints;
	call->tried++;
	buf_reset(&call->reply);
	call->overflow = 0;
	left = (long)((call->deadline - ev_now(c->loop)) * 1000);
	if (left < 1)
		left = 1;
	/*
	 * A silent endpoint must leave time for the others: each attempt
	 * has its share of what is left, the last one all of it.
	 */
	conn = left / (long)(c->nendpoints - call->tried + 1);
	if (conn < 1)
		conn = 1;
	snprintf(url, sizeof(url), "%s%s", c->endpoints[call->at],
	    rpc_path[call->rpc]);
	call->easy = curl_easy_init();
	if (call->easy == NULL) {
		call_note(call, "out of memory");
		return -1;
	}
	curl_easy_setopt(call->easy, CURLOPT_URL, url);
	curl_easy_setopt(call->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(call->easy, CURLOPT_POSTFIELDS, call->body);
	curl_easy_setopt(call->easy, CURLOPT_POSTFIELDSIZE,
	    (long)strlen(call->body));
	curl_easy_setopt(call->easy, CURLOPT_HTTPHEADER, &hdrs);
	curl_easy_setopt(call->easy, CURLOPT_WRITEFUNCTION, call_on_data);
	curl_easy_setopt(call->easy, CURLOPT_WRITEDATA, call);
	curl_easy_setopt(call->easy, CURLOPT_TIMEOUT_MS, conn);
	curl_easy_setopt(call->easy, CURLOPT_NOSIGNAL, 1L);
	call->curlerr[0] = '\0';
	curl_easy_setopt(call->easy, CURLOPT_ERRORBUFFER, call->curlerr);
	curl_easy_setopt(call->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(call->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(call->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file != NULL)
		curl_easy_setopt(call->easy, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_file != NULL) {
		curl_easy_setopt(call->easy, CURLOPT_SSLCERT, c->cert_file);
		curl_easy_setopt(call->easy, CURLOPT_SSLKEY, c->key_file);
	}
	if (curlev_add(c->cl, call->easy, call_on_done, call) < 0) {
		curl_easy_cleanup(call->easy);
		call->easy = NULL;
		call_note(call, "curl refused the transfer");
		return -1;
	}
	return 0;
}

/*
 * Starts a call of body (consumed); curlev runs the transfer from the
 * loop, so the callback never runs inside the function that started it.
 */
static struct etcd_call *
call_start(struct etcd_client *c, enum etcd_rpc rpc, json_t *body,
    etcd_cb cb, void *arg)
{
	struct etcd_call *call;

	if (body == NULL)
		return NULL;
	call = calloc(1, sizeof(*call));
	if (call == NULL) {
		json_decref(body);
		return NULL;
	}
	call->body = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (call->body == NULL) {
		free(call);
		return NULL;
	}
	call->c = c;
	call->rpc = rpc;
	call->write = rpc != ETCD_RPC_RANGE && rpc != ETCD_RPC_KEEPALIVE;
	call->cb = cb;
	call->arg = arg;
	buf_init(&call->reply);
	buf_init(&call->errs);
	call->deadline = ev_now(c->loop) + c->timeout;
	call->next = c->calls;
	if (c->calls != NULL)
		c->calls->prev = call;
	c->calls = call;
	c->ncalls++;
	if (call_attempt(call) < 0) {
		call_free(call);
		return NULL;
	}
	return call;
}

struct etcd_call *
etcd_get(struct etcd_client *c, const char *key, int flags, etcd_cb cb,
    void *arg)
{
	json_t *o = json_object();

	if (o == NULL || set_key(o, key, flags) < 0) {
		json_decref(o);
		return NULL;
	}
	return call_start(c, ETCD_RPC_RANGE, o, cb, arg);
}

struct etcd_call *
etcd_put(struct etcd_client *c, const char *key, const void *value,
    size_t valuelen, int64_t lease, etcd_cb cb, void *arg)
{
	json_t *o = json_object();

	if (o == NULL || set_key(o, key, 0) < 0 ||
	    json_object_set_new(o, "value", b64_json(value != NULL ? value :
	    "", valuelen)) < 0 || (lease != 0 &&
	    json_object_set_new(o, "lease", i64_json(lease)) < 0)) {
		json_decref(o);
		return NULL;
	}
	return call_start(c, ETCD_RPC_PUT, o, cb, arg);
}

struct etcd_call *
etcd_delete(struct etcd_client *c, const char *key, int flags, etcd_cb cb,
    void *arg)
{
	json_t *o = json_object();

	if (o == NULL || set_key(o, key, flags) < 0) {
		json_decref(o);
		return NULL;
	}
	return call_start(c, ETCD_RPC_DELETE, o, cb, arg);
}

struct etcd_call *
etcd_txn(struct etcd_client *c, const struct etcd_txn *t, etcd_cb cb,
    void *arg)
{
	json_t *o = json_object(), *cmps = json_array();
	size_t i;

	if (o == NULL || cmps == NULL)
		goto fail;
	for (i = 0; i < t->ncmp; i++)
		if (json_array_append_new(cmps, cmp_json(&t->cmp[i])) < 0)
			goto fail;
	if (json_object_set_new(o, "compare", cmps) < 0) {
		cmps = NULL;
		goto fail;
	}
	cmps = NULL;
	if (json_object_set_new(o, "success", ops_json(t->success,
	    t->nsuccess)) < 0 || json_object_set_new(o, "failure",
	    ops_json(t->failure, t->nfailure)) < 0)
		goto fail;
	return call_start(c, ETCD_RPC_TXN, o, cb, arg);
fail:
	json_decref(cmps);
	json_decref(o);
	return NULL;
}

static struct etcd_call *
lease_call(struct etcd_client *c, enum etcd_rpc rpc, const char *name,
    int64_t n, etcd_cb cb, void *arg)
{
	json_t *o = json_object();

	if (o == NULL || json_object_set_new(o, name, i64_json(n)) < 0) {
		json_decref(o);
		return NULL;
	}
	return call_start(c, rpc, o, cb, arg);
}

struct etcd_call *
etcd_lease_grant(struct etcd_client *c, int64_t ttl, etcd_cb cb, void *arg)
{
	return lease_call(c, ETCD_RPC_GRANT, "TTL", ttl, cb, arg);
}

struct etcd_call *
etcd_lease_keepalive(struct etcd_client *c, int64_t id, etcd_cb cb,
    void *arg)
{
	return lease_call(c, ETCD_RPC_KEEPALIVE, "ID", id, cb, arg);
}

struct etcd_call *
etcd_lease_revoke(struct etcd_client *c, int64_t id, etcd_cb cb, void *arg)
{
	return lease_call(c, ETCD_RPC_REVOKE, "ID", id, cb, arg);
}

/* --- watch: one long-poll stream of newline-separated messages --- */

/*
 * What comes on the stream is queued and delivered from a timer of the
 * loop: from inside curl's write callback, the watcher's callback could
 * not start a call (curl refuses a recursive API call).
 */
struct etcd_watch {
	struct etcd_client *c;
	struct etcd_watch *next, *prev;
	char		*body;
	CURL		*easy;
	struct buf	 in;		/* a message not yet complete */
	size_t		 tried, at;
	int		 created;
	int		 in_cb;		/* the watcher's callback runs */
	int		 canceled;	/* ... and canceled the watch */
	int		 ended;		/* the last result is queued */
	int		 bad;		/* a message was not etcd's */
	struct etcd_watch_result *queue;
	size_t		 nqueue;
	ev_timer	 kick;
	struct buf	 errs;
	char		 curlerr[CURL_ERROR_SIZE];
	etcd_watch_cb	 cb;
	void		*arg;
};

void
etcd_watch_result_clear(struct etcd_watch_result *r)
{
	size_t i;

	for (i = 0; i < r->nevents; i++) {
		free(r->events[i].kv.key);
		free(r->events[i].kv.value);
	}
	free(r->events);
	memset(r, 0, sizeof(*r));
}

int
etcd_parse_watch(const char *line, size_t len, struct etcd_watch_result *out,
    char *err, size_t errlen)
{
	struct etcd_result er;
	json_error_t je;
	json_t *root, *r, *evs, *ev, *v;
	const char *t;
	size_t i;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	out->status = ETCD_E_UNAVAILABLE;
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL)
		return errf(err, errlen, "watch: not a JSON message: %s",
		    je.text);
	memset(&er, 0, sizeof(er));
	if (json_is_object(root) && parse_error(root, 200, &er, err,
	    errlen)) {
		out->status = ETCD_E_REFUSED;
		out->code = er.code;
		rc = 1;
		goto out;
	}
	r = json_object_get(root, "result");
	if (!json_is_object(r) || !json_is_object(json_object_get(r,
	    "header"))) {
		errf(err, errlen, "watch: a message without \"result\" and "
		    "its \"header\"");
		goto out;
	}
	if (i64_member(json_object_get(r, "header"), "revision",
	    &out->revision, err, errlen) < 0 ||
	    i64_member(r, "compact_revision", &out->compact_revision, err,
	    errlen) < 0)
		goto out;
	out->created = json_is_true(json_object_get(r, "created"));
	evs = json_object_get(r, "events");
	if (evs != NULL && !json_is_null(evs)) {
		if (!json_is_array(evs)) {
			errf(err, errlen, "watch: \"events\" is not an array");
			goto out;
		}
		out->events = calloc(json_array_size(evs) + 1,
		    sizeof(*out->events));
		if (out->events == NULL) {
			errf(err, errlen, "out of memory");
			goto out;
		}
		json_array_foreach(evs, i, ev) {
			if (!json_is_object(ev)) {
				errf(err, errlen, "watch: an event is not an "
				    "object");
				goto out;
			}
			out->nevents++;
			/* PUT is the enum's zero: proto3 leaves it out. */
			v = json_object_get(ev, "type");
			t = json_string_value(v);
			if (v == NULL || (t != NULL && !strcmp(t, "PUT")))
				out->events[i].type = ETCD_EV_PUT;
			else if (t != NULL && !strcmp(t, "DELETE"))
				out->events[i].type = ETCD_EV_DELETE;
			else {
				errf(err, errlen, "watch: unknown event "
				    "type");
				goto out;
			}
			if (parse_kv(json_object_get(ev, "kv"),
			    &out->events[i].kv, err, errlen) < 0)
				goto out;
		}
	}
	if (json_is_true(json_object_get(r, "canceled"))) {
		t = json_string_value(json_object_get(r, "cancel_reason"));
		out->status = ETCD_E_REFUSED;
		if (out->compact_revision != 0)
			errf(err, errlen, "etcd canceled the watch: history "
			    "before revision %" PRId64 " is compacted",
			    out->compact_revision);
		else
			errf(err, errlen, "etcd canceled the watch: %.200s",
			    t != NULL ? t : "no reason given");
		rc = 1;
		goto out;
	}
	out->status = ETCD_OK;
	rc = 0;
out:
	json_decref(root);
	if (rc < 0) {
		etcd_watch_result_clear(out);
		out->status = ETCD_E_UNAVAILABLE;
	}
	return rc;
}

static void
watch_free(struct etcd_watch *w)
{
	struct etcd_client *c = w->c;
	size_t i;

	if (w->easy != NULL) {
		curlev_remove(c->cl, w->easy);
		curl_easy_cleanup(w->easy);
	}
	ev_timer_stop(c->loop, &w->kick);
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		c->watches = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	for (i = 0; i < w->nqueue; i++)
		etcd_watch_result_clear(&w->queue[i]);
	free(w->queue);
	free(w->body);
	buf_free(&w->in);
	buf_free(&w->errs);
	free(w);
}

static void
watch_note(struct etcd_watch *w, const char *what)
{
	buf_printf(&w->errs, "%setcd %s/v3/watch: %s", w->errs.len > 0 ?
	    "; " : "", w->c->endpoints[w->at], what);
}

/* Queues res (moved) for the loop to deliver; -1 when out of memory. */
static int
watch_queue(struct etcd_watch *w, struct etcd_watch_result *res)
{
	struct etcd_watch_result *q;

	q = reallocarray(w->queue, w->nqueue + 1, sizeof(*q));
	if (q == NULL) {
		etcd_watch_result_clear(res);
		return -1;
	}
	w->queue = q;
	w->queue[w->nqueue++] = *res;
	memset(res, 0, sizeof(*res));
	ev_timer_start(w->c->loop, &w->kick);
	return 0;
}

/* The final result: the watch is over. */
static void
watch_end(struct etcd_watch *w, enum etcd_status st, int code,
    int64_t compact)
{
	struct etcd_watch_result res;

	memset(&res, 0, sizeof(res));
	res.status = st;
	res.code = code;
	res.compact_revision = compact;
	w->ended = 1;
	if (watch_queue(w, &res) < 0) {
		/* No memory to say it: say it without the queue. */
		res.status = ETCD_E_UNAVAILABLE;
		res.error = "etcd: out of memory";
		w->cb(&res, w->arg);
		w->canceled = 1;
		ev_timer_start(w->c->loop, &w->kick);
	}
}

static void
watch_on_kick(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct etcd_watch *w = t->data;
	struct etcd_watch_result *res;
	size_t i;

	for (i = 0; i < w->nqueue && !w->canceled; i++) {
		res = &w->queue[i];
		res->endpoint = w->c->endpoints[w->at];
		if (res->status != ETCD_OK)
			res->error = w->errs.oom ? "etcd: out of memory" :
			    buf_str(&w->errs);
		w->in_cb = 1;
		w->cb(res, w->arg);
		w->in_cb = 0;
	}
	for (i = 0; i < w->nqueue; i++)
		etcd_watch_result_clear(&w->queue[i]);
	w->nqueue = 0;
	if (w->canceled || w->ended)
		watch_free(w);
}

static size_t
watch_on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct etcd_watch *w = arg;
	struct etcd_watch_result res;
	size_t n = size * nmemb, len;
	char err[512], *nl;
	int rc;

	if (w->ended || w->canceled)
		return 0;
	if (w->in.len + n > ETCD_MAX_REPLY) {
		watch_note(w, "a message larger than 32 MiB");
		w->bad = 1;
		return 0;
	}
	if (buf_append(&w->in, ptr, n) < 0)
		return 0;
	/* grpc-gateway ends each message of a stream with a newline. */
	while (w->in.len > 0 &&
	    (nl = memchr(w->in.data, '\n', w->in.len)) != NULL) {
		len = (size_t)(nl - w->in.data);
		rc = len == 0 ? 0 : etcd_parse_watch(w->in.data, len, &res,
		    err, sizeof(err));
		memmove(w->in.data, nl + 1, w->in.len - len - 1);
		w->in.len -= len + 1;
		w->in.data[w->in.len] = '\0';
		if (len == 0)
			continue;
		if (rc < 0) {
			watch_note(w, err);
			w->bad = 1;
			return 0;
		}
		if (rc > 0) {
			/* etcd ended it (canceled, compacted). */
			watch_note(w, err);
			watch_end(w, res.status, res.code,
			    res.compact_revision);
			etcd_watch_result_clear(&res);
			return 0;
		}
		if (res.created) {
			w->created = 1;
			w->c->cur = w->at;
		}
		if (!res.created && res.nevents == 0) {
			etcd_watch_result_clear(&res);
			continue;
		}
		if (watch_queue(w, &res) < 0) {
			watch_note(w, "out of memory");
			w->bad = 1;
			return 0;
		}
	}
	return n;
}

static int	watch_attempt(struct etcd_watch *w);

static void
watch_on_done(CURL *easy, CURLcode cc, void *arg)
{
	struct etcd_watch *w = arg;

	curl_easy_cleanup(easy);
	w->easy = NULL;
	if (w->ended || w->canceled)
		return;		/* the kick frees it */
	if (!w->bad)
		watch_note(w, cc != CURLE_OK ? (w->curlerr[0] != '\0' ?
		    w->curlerr : curl_easy_strerror(cc)) :
		    "etcd closed the stream");
	if (!w->created && w->tried < w->c->nendpoints &&
	    watch_attempt(w) == 0)
		return;
	watch_end(w, ETCD_E_UNAVAILABLE, 0, 0);
}

static int
watch_attempt(struct etcd_watch *w)
{
	struct etcd_client *c = w->c;
	static const char hdr[] = "Content-Type: application/json";
	static struct curl_slist hdrs = { (char *)hdr, NULL };
	char url[1024];

	w->at = (c->cur + w->tried) % c->nendpoints;
	w->tried++;
	w->bad = 0;
	buf_reset(&w->in);
	snprintf(url, sizeof(url), "%s/v3/watch", c->endpoints[w->at]);
	w->easy = curl_easy_init();
	if (w->easy == NULL)
		return -1;
	curl_easy_setopt(w->easy, CURLOPT_URL, url);
	curl_easy_setopt(w->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(w->easy, CURLOPT_POSTFIELDS, w->body);
	curl_easy_setopt(w->easy, CURLOPT_POSTFIELDSIZE,
	    (long)strlen(w->body));
	curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, &hdrs);
	curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, watch_on_data);
	curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
	/* A stream: no deadline for the whole, one for connecting. */
	curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(c->timeout * 1000 / (double)c->nendpoints) + 1);
	/* A peer that vanished without a word is found out. */
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPINTVL, 5L);
	curl_easy_setopt(w->easy, CURLOPT_NOSIGNAL, 1L);
	w->curlerr[0] = '\0';
	curl_easy_setopt(w->easy, CURLOPT_ERRORBUFFER, w->curlerr);
	curl_easy_setopt(w->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(w->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(w->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file != NULL)
		curl_easy_setopt(w->easy, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_file != NULL) {
		curl_easy_setopt(w->easy, CURLOPT_SSLCERT, c->cert_file);
		curl_easy_setopt(w->easy, CURLOPT_SSLKEY, c->key_file);
	}
	if (curlev_add(c->cl, w->easy, watch_on_done, w) < 0) {
		curl_easy_cleanup(w->easy);
		w->easy = NULL;
		return -1;
	}
	return 0;
}

struct etcd_watch *
etcd_watch(struct etcd_client *c, const char *key, int flags,
    int64_t start_revision, etcd_watch_cb cb, void *arg)
{
	struct etcd_watch *w;
	json_t *o = json_object(), *req = json_object();

	if (o == NULL || req == NULL || set_key(req, key, flags) < 0 ||
	    (start_revision > 0 && json_object_set_new(req,
	    "start_revision", i64_json(start_revision)) < 0) ||
	    json_object_set(o, "create_request", req) < 0) {
		json_decref(o);
		json_decref(req);
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (w != NULL)
		w->body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	json_decref(req);
	if (w == NULL || w->body == NULL) {
		free(w);
		return NULL;
	}
	w->c = c;
	w->cb = cb;
	w->arg = arg;
	ev_timer_init(&w->kick, watch_on_kick, 0., 0.);
	w->kick.data = w;
	buf_init(&w->in);
	buf_init(&w->errs);
	w->next = c->watches;
	if (c->watches != NULL)
		c->watches->prev = w;
	c->watches = w;
	if (watch_attempt(w) < 0) {
		watch_free(w);
		return NULL;
	}
	return w;
}

void
etcd_watch_cancel(struct etcd_watch *w)
{
	if (w == NULL)
		return;
	/* From its own callback: the kick frees it when that returns. */
	if (w->in_cb) {
		w->canceled = 1;
		return;
	}
	watch_free(w);
}
