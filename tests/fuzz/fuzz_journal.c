/*
 * libFuzzer harness for the journal loader (issue 9): arbitrary bytes
 * must be refused with a message or parsed, never crash; and whatever
 * parses must survive a format/parse round trip unchanged, since the
 * daemon rewrites what it loaded.
 *
 * Build: cmake -DCMAKE_C_COMPILER=clang -DFOD_FUZZ=ON; run:
 * fuzz_journal -max_total_time=60 NEWDIR tests/fuzz/corpus/journal
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "failoverd/buf.h"
#include "failoverd/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct journal_rec	*rec = NULL, *back = NULL;
	struct buf		 b;
	const char		*k1, *v1, *k2, *v2;
	char			 err[512];
	size_t			 i;

	err[0] = '\0';
	if (journal_parse(data, size, "fuzz", &rec, err, sizeof(err)) != 0) {
		/* A refusal always says why. */
		if (rec != NULL || err[0] == '\0')
			abort();
		return 0;
	}
	buf_init(&b);
	if (journal_format(rec, journal_rec_seq(rec), &b) != 0)
		abort();
	if (journal_parse(b.data, b.len, "again", &back, err,
	    sizeof(err)) != 0)
		abort();
	if (journal_rec_seq(back) != journal_rec_seq(rec) ||
	    journal_rec_count(back) != journal_rec_count(rec))
		abort();
	for (i = 0; i < journal_rec_count(rec); i++) {
		journal_rec_at(rec, i, &k1, &v1);
		journal_rec_at(back, i, &k2, &v2);
		if (strcmp(k1, k2) != 0 || strcmp(v1, v2) != 0)
			abort();
		if (journal_rec_get(back, k1) != v2)
			abort();
	}
	journal_rec_free(back);
	journal_rec_free(rec);
	buf_free(&b);
	return 0;
}
