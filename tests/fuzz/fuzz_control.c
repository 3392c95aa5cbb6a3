/*
 * libFuzzer harness for the control-socket protocol (issue 9): whatever
 * a local client sends, control_parse_request() either waits for more,
 * refuses it with a reason, or hands the daemon words that are
 * non-empty, free of blanks and newlines, and at most CONTROL_MAX_ARGS.
 *
 * The input is fed the way the socket delivers it: in chunks, so the
 * "no newline yet" path and the "too long" limit are both reached.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "failoverd/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_words(int argc, char **argv, const char *req, size_t len)
{
	int i;

	if (argc < 1 || argc > CONTROL_MAX_ARGS)
		abort();
	for (i = 0; i < argc; i++) {
		if (argv[i] < req || argv[i] >= req + len)
			abort();
		if (argv[i][0] == '\0' || strpbrk(argv[i], " \t\n") != NULL)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		 req[CONTROL_MAX_REQUEST];
	char		*argv[CONTROL_MAX_ARGS];
	const char	*why;
	size_t		 len = 0, chunk, off = 0;
	int		 argc, rc;

	/* The first byte picks the read size, as the kernel would. */
	if (size == 0)
		return 0;
	chunk = (size_t)data[0] % 64 + 1;
	data++;
	size--;
	for (;;) {
		size_t n = size - off;

		if (n > chunk)
			n = chunk;
		if (n > sizeof(req) - 1 - len)
			n = sizeof(req) - 1 - len;
		memcpy(req + len, data + off, n);
		len += n;
		off += n;
		rc = control_parse_request(req, len, &argc, argv, &why);
		if (rc == 1)
			break;
		if (rc != 0)
			abort();
		/* Waiting for more is only right while there is room. */
		if (len >= sizeof(req) - 1)
			abort();
		if (off == size)
			return 0;	/* the client hung up */
	}
	if (why != NULL) {
		if (argc != 0 || why[0] == '\0')
			abort();
		return 0;
	}
	check_words(argc, argv, req, len);
	return 0;
}
