/*
 * libFuzzer harness for the etcd gateway reply reader (issue 15): any
 * body, of any RPC and HTTP status, is read or refused with a reason,
 * never a crash, and what comes out is consistent (a failure holds no
 * kvs; every key and value is NUL-terminated at its length).
 *
 * Input: byte 0 picks the RPC (0xff: a watch stream message), byte 1
 * the HTTP status, the rest is the body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "failoverd/etcd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 200, 400, 404, 500, 503, 302 };
	struct etcd_result r;
	char err[256];
	size_t i;
	int rc;

	struct etcd_watch_result w;

	if (size < 2)
		return 0;
	err[0] = '\0';
	if (data[0] == 0xff) {
		/* A message of the watch stream. */
		rc = etcd_parse_watch((const char *)data + 2, size - 2, &w, err,
		    sizeof(err));
		if (rc < -1 || rc > 1 || (rc != 0 && err[0] == '\0') ||
		    (rc == -1 && w.nevents != 0))
			abort();
		for (i = 0; i < w.nevents; i++)
			if (w.events[i].kv.key[w.events[i].kv.keylen] != '\0')
				abort();
		etcd_watch_result_clear(&w);
		return 0;
	}
	rc = etcd_parse_reply((enum etcd_rpc)(data[0] % 7), (const char *)data +
	    2, size - 2, statuses[data[1] % 6], &r, err, sizeof(err));
	if (rc < -1 || rc > 1)
		abort();
	if (rc != 0 && err[0] == '\0')
		abort();
	if (rc == -1 && (r.status != ETCD_E_UNAVAILABLE || r.nkvs != 0))
		abort();
	if (rc == 1 && r.status != ETCD_E_REFUSED)
		abort();
	if (rc == 0 && r.status != ETCD_OK && r.status != ETCD_E_NOLEASE)
		abort();
	for (i = 0; i < r.nkvs; i++)
		if (r.kvs[i].key[r.kvs[i].keylen] != '\0' ||
		    r.kvs[i].value[r.kvs[i].valuelen] != '\0')
			abort();
	etcd_result_clear(&r);
	return 0;
}
