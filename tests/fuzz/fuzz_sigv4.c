/*
 * libFuzzer harness for SigV4 canonicalization (issue 9): an arbitrary
 * request (method, raw path, raw query, headers, body, region, service)
 * must be signed or refused with a message, never crash; a signature is
 * 64 lowercase hex digits, the same for the same input, and the
 * secret key never shows in what the signer returns.
 *
 * Input: lines "method\npath\nquery\nregion\nservice\nflags\n" then
 * "Name:value" header lines up to an empty line, then the payload.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "failoverd/sigv4.h"

#define FUZZ_MAX_HEADERS	32
#define FUZZ_SECRET		"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Cuts the next line off *p (in place); NULL at the end of the input. */
static char *
next_line(char **p, char *end)
{
	char *s = *p, *nl;

	if (s >= end)
		return NULL;
	nl = memchr(s, '\n', (size_t)(end - s));
	if (nl == NULL)
		nl = end;
	*nl = '\0';
	*p = nl + 1;
	return s;
}

static void
check_result(const struct sigv4_result *r, int secret_hidden)
{
	size_t i;

	if (strlen(r->signature) != 64)
		abort();
	for (i = 0; i < 64; i++)
		if (strchr("0123456789abcdef", r->signature[i]) == NULL)
			abort();
	if (secret_hidden && (strstr(r->canonical_request, FUZZ_SECRET) !=
	    NULL ||
	    strstr(r->string_to_sign, FUZZ_SECRET) != NULL ||
	    strstr(r->authorization, FUZZ_SECRET) != NULL))
		abort();
	if (strstr(r->authorization, r->signature) == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sigv4_header	 hdr[FUZZ_MAX_HEADERS];
	struct sigv4_input	 in;
	struct sigv4_result	 r1, r2;
	char			*copy, *p, *end, *line, *colon, *fl;
	char			 err[256];
	int			 rc1, rc2;

	copy = malloc(size + 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	p = copy;
	end = copy + size;
	memset(&in, 0, sizeof(in));
	in.method = next_line(&p, end);
	in.path = next_line(&p, end);
	in.query = next_line(&p, end);
	in.region = next_line(&p, end);
	in.service = next_line(&p, end);
	fl = next_line(&p, end);
	if (fl == NULL)
		goto out;
	if (in.query[0] == '-')
		in.query = NULL;
	in.flags = (unsigned int)fl[0] & 0x07;
	while (in.nheaders < FUZZ_MAX_HEADERS) {
		line = next_line(&p, end);
		if (line == NULL || line[0] == '\0')
			break;
		colon = strchr(line, ':');
		if (colon == NULL)
			continue;
		*colon = '\0';
		hdr[in.nheaders].name = line;
		hdr[in.nheaders].value = colon + 1;
		in.nheaders++;
	}
	in.headers = hdr;
	in.payload = p < end ? p : "";
	in.payload_len = p < end ? (size_t)(end - p) : 0;
	in.when = 1440938160;	/* 20150830T123600Z, the suite's time */
	in.access_key_id = "AKIDEXAMPLE";
	in.secret_access_key = FUZZ_SECRET;
	in.session_token = (in.flags & 0x04) ? "FQoGZXIvYXdzEXAMPLETOKEN" :
	    NULL;

	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	err[0] = '\0';
	rc1 = sigv4_sign(&in, &r1, err, sizeof(err));
	if (rc1 != 0) {
		if (rc1 != -1 || err[0] == '\0')
			abort();
		goto out;
	}
	/* Header values are signed verbatim: only a secret not given in the
	 * request must stay out of what the signer returns. */
	check_result(&r1, memmem(data, size, FUZZ_SECRET,
	    strlen(FUZZ_SECRET)) == NULL);
	rc2 = sigv4_sign(&in, &r2, err, sizeof(err));
	if (rc2 != 0 || strcmp(r1.signature, r2.signature) != 0 ||
	    strcmp(r1.canonical_request, r2.canonical_request) != 0)
		abort();
	sigv4_result_free(&r2);
	sigv4_result_free(&r1);
out:
	free(copy);
	return 0;
}
