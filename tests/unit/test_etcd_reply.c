/*
 * The reader of etcd v3 gateway replies (etcd 3.4's JSON, as captured
 * from a real etcd): the fields etcd sends come out right, absent ones
 * read as zero as proto3 means, and anything that is not etcd's reply is
 * an error with a reason, never a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failoverd/etcd.h"

#define HDR "\"header\":{\"cluster_id\":\"14841639068965178418\"," \
	"\"member_id\":\"10276657743932975437\",\"revision\":\"42\"," \
	"\"raft_term\":\"2\"}"

static int
parse(enum etcd_rpc rpc, const char *body, long status,
    struct etcd_result *r, char *err)
{
	return etcd_parse_reply(rpc, body, strlen(body), status, r, err, 256);
}

static void
test_range_reply(void **state)
{
	struct etcd_result r;
	char err[256];

	/* "a/1" = "x", "a/2" = "" (value absent), with a lease. */
	assert_int_equal(parse(ETCD_RPC_RANGE, "{" HDR ",\"kvs\":["
	    "{\"key\":\"YS8x\",\"create_revision\":\"2\",\"mod_revision\":"
	    "\"5\",\"version\":\"2\",\"value\":\"eA==\"},"
	    "{\"key\":\"YS8y\",\"create_revision\":\"3\",\"mod_revision\":"
	    "\"3\",\"version\":\"1\",\"lease\":\"7587870000000000001\"}],"
	    "\"count\":\"2\"}", 200, &r, err), 0);
	assert_int_equal(r.status, ETCD_OK);
	assert_int_equal(r.revision, 42);
	assert_int_equal(r.count, 2);
	assert_int_equal(r.nkvs, 2);
	assert_string_equal(r.kvs[0].key, "a/1");
	assert_int_equal(r.kvs[0].keylen, 3);
	assert_string_equal(r.kvs[0].value, "x");
	assert_int_equal(r.kvs[0].valuelen, 1);
	assert_int_equal(r.kvs[0].create_revision, 2);
	assert_int_equal(r.kvs[0].mod_revision, 5);
	assert_int_equal(r.kvs[0].version, 2);
	assert_int_equal(r.kvs[0].lease, 0);
	assert_string_equal(r.kvs[1].value, "");
	assert_int_equal(r.kvs[1].valuelen, 0);
	assert_int_equal(r.kvs[1].lease, 7587870000000000001LL);
	etcd_result_clear(&r);

	/* No key in range: etcd leaves kvs and count out. */
	assert_int_equal(parse(ETCD_RPC_RANGE, "{" HDR "}", 200, &r, err), 0);
	assert_int_equal(r.nkvs, 0);
	assert_int_equal(r.count, 0);
	etcd_result_clear(&r);
}

static void
test_binary_value_keeps_its_length(void **state)
{
	struct etcd_result r;
	char err[256];

	/* "a\0b" and "ab": padding is not part of the value. */
	assert_int_equal(parse(ETCD_RPC_RANGE, "{" HDR ",\"kvs\":["
	    "{\"key\":\"aw==\",\"value\":\"YQBi\"},"
	    "{\"key\":\"aw==\",\"value\":\"YWI=\"}]}", 200, &r, err), 0);
	assert_int_equal(r.kvs[0].valuelen, 3);
	assert_memory_equal(r.kvs[0].value, "a\0b", 3);
	assert_int_equal(r.kvs[1].valuelen, 2);
	assert_string_equal(r.kvs[1].value, "ab");
	etcd_result_clear(&r);
}

static void
test_txn_reply(void **state)
{
	struct etcd_result r;
	char err[256];

	assert_int_equal(parse(ETCD_RPC_TXN, "{" HDR ",\"succeeded\":true,"
	    "\"responses\":[{\"response_put\":{\"header\":{\"revision\":"
	    "\"42\"}}},{\"response_range\":{\"header\":{},\"kvs\":[{\"key\":"
	    "\"aw==\",\"value\":\"dg==\",\"mod_revision\":\"41\"}],\"count\":"
	    "\"1\"}},{\"response_delete_range\":{\"header\":{},\"deleted\":"
	    "\"3\"}}]}", 200, &r, err), 0);
	assert_int_equal(r.succeeded, 1);
	assert_int_equal(r.nkvs, 1);
	assert_string_equal(r.kvs[0].key, "k");
	assert_string_equal(r.kvs[0].value, "v");
	assert_int_equal(r.kvs[0].mod_revision, 41);
	assert_int_equal(r.deleted, 3);
	etcd_result_clear(&r);

	/* A failed compare: "succeeded" is left out, false. */
	assert_int_equal(parse(ETCD_RPC_TXN, "{" HDR ",\"responses\":[]}",
	    200, &r, err), 0);
	assert_int_equal(r.status, ETCD_OK);
	assert_int_equal(r.succeeded, 0);
	etcd_result_clear(&r);
}

static void
test_lease_replies(void **state)
{
	struct etcd_result r;
	char err[256];

	assert_int_equal(parse(ETCD_RPC_GRANT, "{" HDR ",\"ID\":"
	    "\"7587870000000000001\",\"TTL\":\"10\"}", 200, &r, err), 0);
	assert_int_equal(r.lease_id, 7587870000000000001LL);
	assert_int_equal(r.ttl, 10);
	etcd_result_clear(&r);

	assert_int_equal(parse(ETCD_RPC_KEEPALIVE, "{\"result\":{" HDR
	    ",\"ID\":\"5\",\"TTL\":\"10\"}}\n", 200, &r, err), 0);
	assert_int_equal(r.status, ETCD_OK);
	assert_int_equal(r.ttl, 10);
	etcd_result_clear(&r);

	/* An expired lease: etcd answers with no TTL. */
	assert_int_equal(parse(ETCD_RPC_KEEPALIVE, "{\"result\":{" HDR
	    ",\"ID\":\"5\"}}", 200, &r, err), 0);
	assert_int_equal(r.status, ETCD_E_NOLEASE);
	assert_non_null(strstr(err, "lease 5 has expired"));
	etcd_result_clear(&r);

	/* A grant without an ID is no grant. */
	assert_int_equal(parse(ETCD_RPC_GRANT, "{" HDR ",\"TTL\":\"10\"}",
	    200, &r, err), -1);
	etcd_result_clear(&r);
}

static void
test_etcd_errors(void **state)
{
	struct etcd_result r;
	char err[256];

	assert_int_equal(parse(ETCD_RPC_PUT, "{\"error\":\"etcdserver: "
	    "requested lease not found\",\"code\":5,\"message\":\"etcdserver: "
	    "requested lease not found\"}", 404, &r, err), 1);
	assert_int_equal(r.status, ETCD_E_REFUSED);
	assert_int_equal(r.code, 5);
	assert_non_null(strstr(err, "requested lease not found"));
	assert_non_null(strstr(err, "HTTP 404"));
	etcd_result_clear(&r);

	/* The streamed form, on keepalive. */
	assert_int_equal(parse(ETCD_RPC_KEEPALIVE, "{\"error\":{\"grpc_code\":"
	    "14,\"http_code\":503,\"message\":\"etcdserver: no leader\","
	    "\"http_status\":\"Service Unavailable\"}}", 200, &r, err), 1);
	assert_int_equal(r.code, 14);
	assert_non_null(strstr(err, "no leader"));
	etcd_result_clear(&r);
}

static void
test_not_etcd_is_an_error(void **state)
{
	static const struct {
		enum etcd_rpc	 rpc;
		long		 status;
		const char	*body;
		const char	*why;
	} bad[] = {
		{ ETCD_RPC_RANGE, 200, "<html>hello</html>", "not a JSON" },
		{ ETCD_RPC_RANGE, 200, "", "not a JSON" },
		{ ETCD_RPC_RANGE, 200, "[1,2]", "not an object" },
		{ ETCD_RPC_RANGE, 200, "{}", "header" },
		{ ETCD_RPC_PUT, 200, "{\"header\":7}", "header" },
		{ ETCD_RPC_RANGE, 500, "{}", "HTTP 500" },
		{ ETCD_RPC_RANGE, 200, "{" HDR ",\"kvs\":\"x\"}", "array" },
		{ ETCD_RPC_RANGE, 200, "{" HDR ",\"kvs\":[7]}", "object" },
		{ ETCD_RPC_RANGE, 200, "{" HDR ",\"kvs\":[{}]}", "\"key\"" },
		{ ETCD_RPC_RANGE, 200, "{" HDR ",\"kvs\":[{\"key\":\"a\"}]}",
		    "base64" },
		{ ETCD_RPC_RANGE, 200, "{" HDR ",\"kvs\":[{\"key\":\"!!!!\"}]}",
		    "base64" },
		{ ETCD_RPC_RANGE, 200, "{" HDR ",\"kvs\":[{\"key\":\"aw==\","
		    "\"version\":\"12x\"}]}", "int64" },
		{ ETCD_RPC_RANGE, 200, "{" HDR ",\"count\":"
		    "\"99999999999999999999\"}", "int64" },
		{ ETCD_RPC_RANGE, 200, "{" HDR ",\"count\":true}", "int64" },
		{ ETCD_RPC_TXN, 200, "{" HDR ",\"succeeded\":\"yes\"}",
		    "boolean" },
		{ ETCD_RPC_TXN, 200, "{" HDR ",\"responses\":[{"
		    "\"response_range\":[]}]}", "object" },
		{ ETCD_RPC_KEEPALIVE, 200, "{" HDR ",\"TTL\":\"5\"}",
		    "result" },
		{ ETCD_RPC_RANGE, 200, "{\"header\":{},\"header\":{}}",
		    "duplicate" },
	};
	struct etcd_result r;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(bad[i].rpc, bad[i].body, bad[i].status,
		    &r, err), -1);
		assert_int_equal(r.status, ETCD_E_UNAVAILABLE);
		assert_int_equal(r.nkvs, 0);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("case %zu: '%s' does not say '%s'", i, err,
			    bad[i].why);
		etcd_result_clear(&r);
	}
}

static int
watch(const char *line, struct etcd_watch_result *w, char *err)
{
	return etcd_parse_watch(line, strlen(line), w, err, 256);
}

static void
test_watch_messages(void **state)
{
	struct etcd_watch_result w;
	char err[256];

	assert_int_equal(watch("{\"result\":{" HDR ",\"created\":true}}",
	    &w, err), 0);
	assert_int_equal(w.created, 1);
	assert_int_equal(w.revision, 42);
	etcd_watch_result_clear(&w);

	/* PUT is the enum's zero: etcd leaves "type" out. */
	assert_int_equal(watch("{\"result\":{" HDR ",\"events\":["
	    "{\"kv\":{\"key\":\"aw==\",\"value\":\"dg==\",\"mod_revision\":"
	    "\"43\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"aw==\","
	    "\"mod_revision\":\"44\"}}]}}", &w, err), 0);
	assert_int_equal(w.status, ETCD_OK);
	assert_int_equal(w.created, 0);
	assert_int_equal(w.nevents, 2);
	assert_int_equal(w.events[0].type, ETCD_EV_PUT);
	assert_string_equal(w.events[0].kv.value, "v");
	assert_int_equal(w.events[1].type, ETCD_EV_DELETE);
	assert_int_equal(w.events[1].kv.mod_revision, 44);
	etcd_watch_result_clear(&w);

	/* Compacted: etcd cancels the watch and says from where. */
	assert_int_equal(watch("{\"result\":{" HDR ",\"canceled\":true,"
	    "\"compact_revision\":\"10\"}}", &w, err), 1);
	assert_int_equal(w.status, ETCD_E_REFUSED);
	assert_int_equal(w.compact_revision, 10);
	assert_non_null(strstr(err, "before revision 10 is compacted"));
	etcd_watch_result_clear(&w);

	assert_int_equal(watch("{\"error\":{\"grpc_code\":14,\"message\":"
	    "\"etcdserver: no leader\"}}", &w, err), 1);
	assert_int_equal(w.code, 14);
	etcd_watch_result_clear(&w);

	assert_int_equal(watch("<html>", &w, err), -1);
	etcd_watch_result_clear(&w);
	assert_int_equal(watch("{\"result\":{}}", &w, err), -1);
	etcd_watch_result_clear(&w);
	assert_int_equal(watch("{\"result\":{" HDR ",\"events\":[{\"type\":"
	    "\"EXPLODE\",\"kv\":{\"key\":\"aw==\"}}]}}", &w, err), -1);
	assert_non_null(strstr(err, "unknown event type"));
	assert_int_equal(w.nevents, 0);
	etcd_watch_result_clear(&w);
}

static void
test_prefix_end(void **state)
{
	char out[8];

	assert_int_equal(etcd_prefix_end("a/", 2, out), 2);
	assert_memory_equal(out, "a0", 2);
	assert_int_equal(etcd_prefix_end("a\xff", 2, out), 1);
	assert_memory_equal(out, "b", 1);
	/* Nothing above: from key to the end of the keyspace. */
	assert_int_equal(etcd_prefix_end("\xff\xff", 2, out), 1);
	assert_int_equal(out[0], '\0');
	assert_int_equal(etcd_prefix_end("", 0, out), 1);
	assert_int_equal(out[0], '\0');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range_reply),
		cmocka_unit_test(test_binary_value_keeps_its_length),
		cmocka_unit_test(test_txn_reply),
		cmocka_unit_test(test_lease_replies),
		cmocka_unit_test(test_etcd_errors),
		cmocka_unit_test(test_not_etcd_is_an_error),
		cmocka_unit_test(test_watch_messages),
		cmocka_unit_test(test_prefix_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
