/*
 * etcd: an asynchronous client of etcd v3's HTTP/JSON gateway (etcd 3.4:
 * POST /v3/kv/range, /v3/kv/put, /v3/kv/deleterange, /v3/kv/txn,
 * /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke), on the
 * daemon's loop through curlev. The foundation of the cluster mode
 * (issue 15): leases, keep-alives and transactions with compare.
 *
 * Every call ends in exactly one callback with a typed result, from the
 * loop, never from inside the function that started it. A callback may
 * start calls and cancel others; etcd_free is for outside callbacks.
 *
 * Endpoints are tried in turn, starting with the one that last answered.
 * A read (get, keepalive: repeating it changes nothing) moves on to the
 * next endpoint on any failure. A write (put, delete, txn, grant,
 * revoke) moves on only when the endpoint certainly did not apply it:
 * nothing was sent (connection refused, TLS handshake failed), or the
 * reply was not etcd's (a foreign server). A write sent to etcd that got
 * no answer ends in ETCD_E_UNKNOWN: it may have been applied, and only
 * the caller knows how to find out (read the key back; a fenced txn
 * repeated would fail its compare and lie).
 */
#ifndef FAILOVERD_ETCD_H
#define FAILOVERD_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct curlev;
struct etcd_client;
struct etcd_call;

struct etcd_config {
	const char *const *endpoints;	/* "http://127.0.0.1:2379", ... */
	size_t		 nendpoints;
	const char	*ca_file;	/* https: the CA; NULL: system's */
	const char	*cert_file;	/* client certificate (PEM), or NULL */
	const char	*key_file;	/* its private key (PEM), or NULL */
	double		 timeout;	/* seconds per call, all endpoints;
					   each attempt has its share */
};

enum etcd_status {
	ETCD_OK,
	ETCD_E_UNAVAILABLE,	/* no endpoint answered as etcd */
	ETCD_E_REFUSED,		/* etcd answered with an error */
	ETCD_E_UNKNOWN,		/* a write got no answer: maybe applied */
	ETCD_E_NOLEASE,		/* keepalive: the lease expired or is gone */
};

struct etcd_kv {
	char		*key;		/* NUL-terminated; keylen bytes */
	size_t		 keylen;
	char		*value;		/* NUL-terminated; valuelen bytes */
	size_t		 valuelen;
	int64_t		 create_revision;
	int64_t		 mod_revision;
	int64_t		 version;
	int64_t		 lease;
};

/*
 * What a call gave; valid only during the callback. For a txn, kvs are
 * those of its range operations in order, deleted the sum of its
 * deletes.
 */
struct etcd_result {
	enum etcd_status status;
	const char	*error;		/* ETCD_OK: NULL; else names the
					   endpoint(s) and what failed */
	const char	*endpoint;	/* the endpoint that answered */
	int		 code;		/* etcd's gRPC code when REFUSED */
	int64_t		 revision;	/* the store's, header.revision */
	int		 succeeded;	/* txn: the compares held */
	struct etcd_kv	*kvs;
	size_t		 nkvs;
	int64_t		 count;		/* range: keys in range */
	int64_t		 deleted;
	int64_t		 lease_id;	/* grant, keepalive */
	int64_t		 ttl;		/* grant, keepalive: seconds */
};

typedef void (*etcd_cb)(const struct etcd_result *res, void *arg);

/* Compares of a txn (etcdserverpb.Compare). */
enum etcd_target {
	ETCD_VALUE,
	ETCD_CREATE_REVISION,
	ETCD_MOD_REVISION,
	ETCD_VERSION,
};

enum etcd_cmp_result {
	ETCD_EQUAL,
	ETCD_NOT_EQUAL,
	ETCD_LESS,
	ETCD_GREATER,
};

struct etcd_cmp {
	const char		*key;
	enum etcd_target	 target;
	enum etcd_cmp_result	 result;
	int64_t			 n;		/* revision or version */
	const void		*value;		/* ETCD_VALUE */
	size_t			 valuelen;
};

enum etcd_op_kind {
	ETCD_OP_PUT,
	ETCD_OP_DELETE,
	ETCD_OP_RANGE,
};

#define ETCD_PREFIX	0x1	/* get/delete every key starting with key */

struct etcd_op {
	enum etcd_op_kind	 kind;
	const char		*key;
	int			 flags;		/* DELETE, RANGE: ETCD_PREFIX */
	const void		*value;		/* PUT */
	size_t			 valuelen;
	int64_t			 lease;		/* PUT: 0 for none */
};

struct etcd_txn {
	const struct etcd_cmp	*cmp;
	size_t			 ncmp;
	const struct etcd_op	*success;
	size_t			 nsuccess;
	const struct etcd_op	*failure;
	size_t			 nfailure;
};

/* NULL with err set when the configuration is unusable. */
struct etcd_client *etcd_new(struct ev_loop *loop, struct curlev *cl,
		    const struct etcd_config *cfg, char *err, size_t errlen);
/* Cancels the calls in flight; their callbacks are not called. */
void		 etcd_free(struct etcd_client *c);

/*
 * The calls. Arguments are copied: the caller's memory may go as soon
 * as they return. NULL when out of memory (no callback then).
 */
struct etcd_call *etcd_get(struct etcd_client *c, const char *key,
		    int flags, etcd_cb cb, void *arg);
struct etcd_call *etcd_put(struct etcd_client *c, const char *key,
		    const void *value, size_t valuelen, int64_t lease,
		    etcd_cb cb, void *arg);
struct etcd_call *etcd_delete(struct etcd_client *c, const char *key,
		    int flags, etcd_cb cb, void *arg);
struct etcd_call *etcd_txn(struct etcd_client *c, const struct etcd_txn *t,
		    etcd_cb cb, void *arg);
struct etcd_call *etcd_lease_grant(struct etcd_client *c, int64_t ttl,
		    etcd_cb cb, void *arg);
struct etcd_call *etcd_lease_keepalive(struct etcd_client *c, int64_t id,
		    etcd_cb cb, void *arg);
struct etcd_call *etcd_lease_revoke(struct etcd_client *c, int64_t id,
		    etcd_cb cb, void *arg);
/* Stops a call in flight; its callback is not called. */
void		 etcd_cancel(struct etcd_call *call);

/*
 * Watch (POST /v3/watch, a stream that stays open): the callback runs
 * once when etcd has created the watch (created), once per batch of
 * events, and a last time with a status other than ETCD_OK when the
 * watch is over (the stream broke, etcd canceled it: compacted, with
 * compact_revision set). The watch is then gone; to go on, watch again
 * from the last revision seen + 1. Endpoints are tried in turn until one
 * creates the watch.
 */
struct etcd_watch;

enum etcd_event_type {
	ETCD_EV_PUT,
	ETCD_EV_DELETE,
};

struct etcd_event {
	enum etcd_event_type	 type;
	struct etcd_kv		 kv;	/* DELETE: key and mod_revision */
};

struct etcd_watch_result {
	enum etcd_status	 status;
	const char		*error;
	const char		*endpoint;
	int			 code;
	int64_t			 revision;
	int			 created;
	int64_t			 compact_revision;
	struct etcd_event	*events;
	size_t			 nevents;
};

typedef void (*etcd_watch_cb)(const struct etcd_watch_result *res,
		    void *arg);

/* From start_revision (0: from now). NULL when out of memory. */
struct etcd_watch *etcd_watch(struct etcd_client *c, const char *key,
		    int flags, int64_t start_revision, etcd_watch_cb cb,
		    void *arg);
/* Ends a watch; its callback is not called again. */
void		 etcd_watch_cancel(struct etcd_watch *w);

/*
 * One message of the watch stream (a line), like etcd_parse_reply:
 * 0 with out filled, 1 when etcd ended the watch (canceled, error),
 * -1 when it is not etcd's. Free with etcd_watch_result_clear.
 */
int		 etcd_parse_watch(const char *line, size_t len,
		    struct etcd_watch_result *out, char *err, size_t errlen);
void		 etcd_watch_result_clear(struct etcd_watch_result *r);

/* Calls in flight, for status and tests. */
unsigned int	 etcd_running(const struct etcd_client *c);

/* --- the reply parser, pure, for the unit tests and the fuzzer --- */

enum etcd_rpc {
	ETCD_RPC_RANGE,
	ETCD_RPC_PUT,
	ETCD_RPC_DELETE,
	ETCD_RPC_TXN,
	ETCD_RPC_GRANT,
	ETCD_RPC_KEEPALIVE,
	ETCD_RPC_REVOKE,
};

/*
 * Reads a gateway reply of HTTP status http_status into out:
 *   0: an etcd success (out->status ETCD_OK or ETCD_E_NOLEASE);
 *   1: an etcd error (out->status ETCD_E_REFUSED, code, err its message);
 *  -1: not etcd's reply (err says why; out->status ETCD_E_UNAVAILABLE).
 * Free with etcd_result_clear in every case.
 */
int		 etcd_parse_reply(enum etcd_rpc rpc, const char *body,
		    size_t len, long http_status, struct etcd_result *out,
		    char *err, size_t errlen);
void		 etcd_result_clear(struct etcd_result *r);

/* The range_end selecting every key with prefix key (etcdctl's). */
size_t		 etcd_prefix_end(const char *key, size_t keylen, char *out);

#endif
