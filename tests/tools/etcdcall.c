/*
 * etcdcall: a test driver for the etcd client. Runs operations one after
 * the other on a libev loop, the way the daemon does, and prints each
 * typed result as one JSON line for tests/e2e/test_etcd.py.
 *
 *   etcdcall [options] OP [ARG...] [, OP [ARG...]]...
 *
 *   get KEY | getp PREFIX | del KEY | delp PREFIX | put KEY VALUE [LEASE]
 *   grant TTL | keepalive LEASE | revoke LEASE | sleep SECONDS
 *   txn JSON   {"compare": [{"key": K, "target": "value|create|mod|
 *              version", "result": "=|!=|<|>", "n": N, "value": V}],
 *              "success": [OP], "failure": [OP]} with OP one of
 *              {"put": K, "value": V, "lease": L}, {"del": K},
 *              {"get": K}, and "prefix": true for del and get
 *
 *   watch KEY REV N | watchp PREFIX REV N: a watch from revision REV
 *              (0: now); the next operation starts once etcd created
 *              it, and its lines ("op": "watch") come as events do,
 *              until N events have (then it is canceled) or it ends
 *
 *   LEASE "@" is the lease the last grant of this run gave.
 *
 *   --endpoint URL     (repeatable) an etcd endpoint, tried in order
 *   --timeout S        each call's timeout (default 10)
 *   --cacert F, --cert F, --key F: TLS
 *
 * Exit status: 0 when every call ended ETCD_OK, 1 if one did not, 2 on
 * usage errors.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>

#include <ev.h>
#include <jansson.h>

#include "failoverd/curlev.h"
#include "failoverd/etcd.h"

struct run {
	struct ev_loop		*loop;
	struct etcd_client	*etcd;
	char			**argv;
	int			 argc;
	int			 i;		/* next word of argv */
	int64_t			 lease;		/* the last grant's */
	int			 failed;
	ev_timer		 sleep;
	const char		*op;
	int			 done;		/* no operation left */
	struct etcd_watch	*watch;
	long			 watch_left;	/* events until it ends */
	int			 watch_waiting;	/* for etcd to create it */
};

static void	run_next(struct run *r);

static const char *const status_name[] = {
	[ETCD_OK] = "ok",
	[ETCD_E_UNAVAILABLE] = "unavailable",
	[ETCD_E_REFUSED] = "refused",
	[ETCD_E_UNKNOWN] = "unknown",
	[ETCD_E_NOLEASE] = "nolease",
};

static void
usage(void)
{
	fprintf(stderr, "usage: etcdcall [--endpoint URL]... [--timeout S] "
	    "[--cacert F] [--cert F --key F] OP [ARG...] [, OP ...]\n");
	exit(2);
}

static json_t *
bytes_json(const char *p, size_t len)
{
	json_t *s = json_stringn(p, len);

	return s != NULL ? s : json_null();
}

static void
on_result(const struct etcd_result *res, void *arg)
{
	struct run *r = arg;
	json_t *o, *kvs, *kv;
	char *line;
	size_t i;

	o = json_pack("{s:s, s:s}", "op", r->op, "status",
	    status_name[res->status]);
	if (res->error != NULL)
		json_object_set_new(o, "error", json_string(res->error));
	if (res->endpoint != NULL)
		json_object_set_new(o, "endpoint", json_string(res->endpoint));
	if (res->status == ETCD_E_REFUSED)
		json_object_set_new(o, "code", json_integer(res->code));
	json_object_set_new(o, "revision", json_integer(res->revision));
	if (res->status == ETCD_OK) {
		kvs = json_array();
		for (i = 0; i < res->nkvs; i++) {
			kv = json_pack("{s:o, s:o, s:I, s:I, s:I, s:I}",
			    "key", bytes_json(res->kvs[i].key,
			    res->kvs[i].keylen),
			    "value", bytes_json(res->kvs[i].value,
			    res->kvs[i].valuelen),
			    "create_revision",
			    (json_int_t)res->kvs[i].create_revision,
			    "mod_revision",
			    (json_int_t)res->kvs[i].mod_revision,
			    "version", (json_int_t)res->kvs[i].version,
			    "lease", (json_int_t)res->kvs[i].lease);
			json_array_append_new(kvs, kv);
		}
		json_object_set_new(o, "kvs", kvs);
		json_object_set_new(o, "count", json_integer(res->count));
		json_object_set_new(o, "deleted", json_integer(res->deleted));
		json_object_set_new(o, "succeeded",
		    json_boolean(res->succeeded));
		json_object_set_new(o, "lease", json_integer(res->lease_id));
		json_object_set_new(o, "ttl", json_integer(res->ttl));
		if (!strcmp(r->op, "grant"))
			r->lease = res->lease_id;
	} else
		r->failed = 1;
	line = json_dumps(o, JSON_COMPACT);
	printf("%s\n", line != NULL ? line : "{}");
	fflush(stdout);
	free(line);
	json_decref(o);
	run_next(r);
}

/* The next word of the current operation, or NULL. */
static const char *
word(struct run *r)
{
	if (r->i >= r->argc || strcmp(r->argv[r->i], ",") == 0)
		return NULL;
	return r->argv[r->i++];
}

static const char *
need(struct run *r)
{
	const char *w = word(r);

	if (w == NULL) {
		fprintf(stderr, "etcdcall: %s: missing argument\n", r->op);
		exit(2);
	}
	return w;
}

static int64_t
lease_arg(struct run *r, const char *s)
{
	return strcmp(s, "@") == 0 ? r->lease : strtoll(s, NULL, 10);
}

static int
op_parse(struct run *r, json_t *j, struct etcd_op *op)
{
	json_t *v;
	const char *k;

	memset(op, 0, sizeof(*op));
	if (json_is_true(json_object_get(j, "prefix")))
		op->flags = ETCD_PREFIX;
	if ((k = json_string_value(json_object_get(j, "put"))) != NULL) {
		op->kind = ETCD_OP_PUT;
		op->value = json_string_value(json_object_get(j, "value"));
		op->valuelen = op->value != NULL ? strlen(op->value) : 0;
		v = json_object_get(j, "lease");
		if (json_is_string(v))
			op->lease = lease_arg(r, json_string_value(v));
		else
			op->lease = json_integer_value(v);
	} else if ((k = json_string_value(json_object_get(j, "del"))) !=
	    NULL)
		op->kind = ETCD_OP_DELETE;
	else if ((k = json_string_value(json_object_get(j, "get"))) != NULL)
		op->kind = ETCD_OP_RANGE;
	else
		return -1;
	op->key = k;
	return 0;
}

static struct etcd_op *
ops_parse(struct run *r, json_t *a, size_t *n)
{
	struct etcd_op *ops;
	json_t *j;
	size_t i;

	*n = json_array_size(a);
	ops = calloc(*n + 1, sizeof(*ops));
	if (ops == NULL)
		return NULL;
	json_array_foreach(a, i, j)
		if (op_parse(r, j, &ops[i]) < 0) {
			free(ops);
			return NULL;
		}
	return ops;
}

static struct etcd_call *
txn_start(struct run *r, const char *spec)
{
	static const char *const targets[] = { "value", "create", "mod",
	    "version" };
	static const char *const results[] = { "=", "!=", "<", ">" };
	struct etcd_txn t;
	struct etcd_cmp *cmp = NULL;
	struct etcd_op *succ = NULL, *fail = NULL;
	struct etcd_call *call = NULL;
	json_error_t je;
	json_t *j, *c;
	const char *s;
	size_t i, k;

	memset(&t, 0, sizeof(t));
	j = json_loads(spec, 0, &je);
	if (j == NULL) {
		fprintf(stderr, "etcdcall: txn: %s\n", je.text);
		exit(2);
	}
	t.ncmp = json_array_size(json_object_get(j, "compare"));
	cmp = calloc(t.ncmp + 1, sizeof(*cmp));
	json_array_foreach(json_object_get(j, "compare"), i, c) {
		cmp[i].key = json_string_value(json_object_get(c, "key"));
		s = json_string_value(json_object_get(c, "target"));
		for (k = 0; s != NULL && k < 4; k++)
			if (strcmp(s, targets[k]) == 0)
				cmp[i].target = (enum etcd_target)k;
		s = json_string_value(json_object_get(c, "result"));
		for (k = 0; s != NULL && k < 4; k++)
			if (strcmp(s, results[k]) == 0)
				cmp[i].result = (enum etcd_cmp_result)k;
		cmp[i].n = json_integer_value(json_object_get(c, "n"));
		cmp[i].value = json_string_value(json_object_get(c, "value"));
		cmp[i].valuelen = cmp[i].value != NULL ?
		    strlen(cmp[i].value) : 0;
	}
	t.cmp = cmp;
	succ = ops_parse(r, json_object_get(j, "success"), &t.nsuccess);
	fail = ops_parse(r, json_object_get(j, "failure"), &t.nfailure);
	if (succ == NULL || fail == NULL) {
		fprintf(stderr, "etcdcall: txn: bad operation\n");
		exit(2);
	}
	t.success = succ;
	t.failure = fail;
	call = etcd_txn(r->etcd, &t, on_result, r);
	/* The client copied everything: the spec can go now. */
	free(cmp);
	free(succ);
	free(fail);
	json_decref(j);
	return call;
}

static void
kv_key_json(json_t *o, const struct etcd_kv *kv)
{
	json_object_set_new(o, "key", bytes_json(kv->key, kv->keylen));
	json_object_set_new(o, "value", bytes_json(kv->value, kv->valuelen));
	json_object_set_new(o, "mod_revision",
	    json_integer(kv->mod_revision));
}

static void
on_watch(const struct etcd_watch_result *res, void *arg)
{
	struct run *r = arg;
	json_t *o, *evs, *ev;
	char *line;
	size_t i;

	o = json_pack("{s:s, s:s, s:b, s:I}", "op", "watch", "status",
	    status_name[res->status], "created", res->created, "revision",
	    (json_int_t)res->revision);
	if (res->error != NULL)
		json_object_set_new(o, "error", json_string(res->error));
	if (res->endpoint != NULL)
		json_object_set_new(o, "endpoint", json_string(res->endpoint));
	if (res->compact_revision != 0)
		json_object_set_new(o, "compact_revision",
		    json_integer(res->compact_revision));
	evs = json_array();
	for (i = 0; i < res->nevents; i++) {
		ev = json_pack("{s:s}", "type", res->events[i].type ==
		    ETCD_EV_PUT ? "PUT" : "DELETE");
		kv_key_json(ev, &res->events[i].kv);
		json_array_append_new(evs, ev);
	}
	json_object_set_new(o, "events", evs);
	line = json_dumps(o, JSON_COMPACT);
	printf("%s\n", line != NULL ? line : "{}");
	fflush(stdout);
	free(line);
	json_decref(o);
	r->watch_left -= (long)res->nevents;
	if (res->status != ETCD_OK) {
		/* The watch is over and gone. */
		r->failed = 1;
		r->watch = NULL;
	} else if (r->watch_left <= 0) {
		etcd_watch_cancel(r->watch);
		r->watch = NULL;
	}
	if (r->watch_waiting && (res->created || r->watch == NULL)) {
		r->watch_waiting = 0;
		run_next(r);
	} else if (r->watch == NULL && r->done)
		ev_break(r->loop, EVBREAK_ALL);
}

static void
on_slept(struct ev_loop *loop, ev_timer *w, int revents)
{
	/* A line for every operation: the test counts them. */
	printf("{\"op\":\"sleep\",\"status\":\"ok\"}\n");
	fflush(stdout);
	run_next(w->data);
}

static void
run_next(struct run *r)
{
	struct etcd_call *call = NULL;
	const char *k, *v, *l;

	/* Skip what is left of the last operation and its comma. */
	if (r->op != NULL) {
		while (word(r) != NULL)
			;
		if (r->i < r->argc && strcmp(r->argv[r->i], ",") == 0)
			r->i++;
	}
	if (r->i >= r->argc) {
		/* Done when the watch, if any, is over too. */
		r->done = 1;
		if (r->watch == NULL)
			ev_break(r->loop, EVBREAK_ALL);
		return;
	}
	r->op = r->argv[r->i++];
	if (!strcmp(r->op, "get") || !strcmp(r->op, "getp"))
		call = etcd_get(r->etcd, need(r), r->op[3] == 'p' ?
		    ETCD_PREFIX : 0, on_result, r);
	else if (!strcmp(r->op, "del") || !strcmp(r->op, "delp"))
		call = etcd_delete(r->etcd, need(r), r->op[3] == 'p' ?
		    ETCD_PREFIX : 0, on_result, r);
	else if (!strcmp(r->op, "put")) {
		k = need(r);
		v = need(r);
		l = word(r);
		call = etcd_put(r->etcd, k, v, strlen(v), l != NULL ?
		    lease_arg(r, l) : 0, on_result, r);
	} else if (!strcmp(r->op, "grant"))
		call = etcd_lease_grant(r->etcd, strtoll(need(r), NULL, 10),
		    on_result, r);
	else if (!strcmp(r->op, "keepalive"))
		call = etcd_lease_keepalive(r->etcd, lease_arg(r, need(r)),
		    on_result, r);
	else if (!strcmp(r->op, "revoke"))
		call = etcd_lease_revoke(r->etcd, lease_arg(r, need(r)),
		    on_result, r);
	else if (!strcmp(r->op, "watch") || !strcmp(r->op, "watchp")) {
		if (r->watch != NULL) {
			fprintf(stderr, "etcdcall: one watch at a time\n");
			exit(2);
		}
		k = need(r);
		v = need(r);
		r->watch_left = strtol(need(r), NULL, 10);
		r->watch_waiting = 1;
		r->watch = etcd_watch(r->etcd, k, r->op[5] == 'p' ?
		    ETCD_PREFIX : 0, strtoll(v, NULL, 10), on_watch, r);
		if (r->watch == NULL) {
			fprintf(stderr, "etcdcall: watch: could not start\n");
			exit(1);
		}
		return;
	} else if (!strcmp(r->op, "txn"))
		call = txn_start(r, need(r));
	else if (!strcmp(r->op, "sleep")) {
		ev_timer_init(&r->sleep, on_slept, strtod(need(r), NULL), 0.);
		r->sleep.data = r;
		ev_timer_start(r->loop, &r->sleep);
		return;
	} else {
		fprintf(stderr, "etcdcall: unknown operation '%s'\n", r->op);
		exit(2);
	}
	if (call == NULL) {
		fprintf(stderr, "etcdcall: %s: could not start\n", r->op);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "endpoint", required_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 't' },
		{ "cacert", required_argument, NULL, 'C' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	struct etcd_config cfg;
	const char *eps[16];
	struct curlev *cl;
	struct run r;
	char err[256];
	int ch;

	memset(&cfg, 0, sizeof(cfg));
	memset(&r, 0, sizeof(r));
	cfg.timeout = 10;
	cfg.endpoints = eps;
	while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			if (cfg.nendpoints == 16)
				usage();
			eps[cfg.nendpoints++] = optarg;
			break;
		case 't':
			cfg.timeout = strtod(optarg, NULL);
			break;
		case 'C':
			cfg.ca_file = optarg;
			break;
		case 'c':
			cfg.cert_file = optarg;
			break;
		case 'k':
			cfg.key_file = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	r.loop = EV_DEFAULT;
	r.argv = argv + optind;
	r.argc = argc - optind;
	cl = curlev_new(r.loop);
	r.etcd = cl != NULL ? etcd_new(r.loop, cl, &cfg, err, sizeof(err)) :
	    NULL;
	if (r.etcd == NULL) {
		fprintf(stderr, "etcdcall: %s\n", cl != NULL ? err :
		    "out of memory");
		return 2;
	}
	run_next(&r);
	ev_run(r.loop, 0);
	etcd_free(r.etcd);
	curlev_free(cl);
	curl_global_cleanup();
	return r.failed ? 1 : 0;
}
