/*
 * libFuzzer harness for the credential replies: whatever IMDS, a
 * container agent, a credential_process or STS sends back, the readers
 * give credentials or an error, never a crash, and what they hand out
 * is readable.
 *
 * Input: byte 0 picks the reader (IMDS/container JSON, process JSON,
 * STS XML), the rest is the reply.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "failoverd/creds.h"
#include "failoverd/sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void
touch(const char *s)
{
	if (s != NULL)
		sink += strlen(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum creds_source json_src[] = {
		CREDS_SRC_IMDS, CREDS_SRC_CONTAINER, CREDS_SRC_PROCESS,
	};
	struct sts_creds sc;
	struct creds *c;
	const char *body;
	char err[256];
	unsigned int pick;

	if (size < 1)
		return 0;
	pick = data[0] % 4;
	body = (const char *)data + 1;
	size--;
	if (pick < 3) {
		c = creds_parse_json(json_src[pick], body, size, err,
		    sizeof(err));
		if (c != NULL) {
			touch(creds_access_key_id(c));
			touch(creds_secret_access_key(c));
			touch(creds_session_token(c));
			creds_free(c);
		} else {
			touch(err);
		}
		return 0;
	}
	if (sts_parse_reply(body, size, 200, &sc, err, sizeof(err)) == 0) {
		touch(sc.access_key_id);
		touch(sc.secret_access_key);
		touch(sc.session_token);
		touch(sc.arn);
		sts_creds_clear(&sc);
	} else {
		touch(err);
	}
	return 0;
}
