/*
 * journal: durable per-service state, so that a crash or a restart
 * resumes a failover where it stood.
 *
 * A record is an ordered set of key -> string fields; the failover
 * engine decides what they mean (step=detach, new_instance=i-...,
 * volume.vol-abc.state=attached, ...). journal_save writes it to
 * <dir>/<service>.journal through a temporary file, fsync, rename and
 * an fsync of the directory, so the file on disk is always either the
 * previous record or the new one, never a mix.
 *
 * The file is text that a person can read:
 *
 *	failoverd-journal 1
 *	seq=42
 *	step=detach
 *	old_instance=i-0abc
 *	note=two%0Alines
 *	end sha256=<hex SHA-256 of every byte before this line>
 *
 * Values are escaped as %XX for '%', '\n', '\r' and bytes below 0x20.
 * seq grows by one with every save of the service. A truncated or
 * corrupt file is refused with the file, the line and what is wrong;
 * it is never guessed at and never rewritten by journal_load: the
 * caller holds the service for a person.
 *
 * Test-only crash hook (issue 9, crash at every point): when the
 * environment variable FAILOVERD_CRASH_AFTER_JOURNAL_WRITE=k is set to
 * a positive number, the process calls abort() right after the k-th
 * successful journal_save of the process, counted across all services.
 * Production never sets it.
 */
#ifndef FAILOVERD_JOURNAL_H
#define FAILOVERD_JOURNAL_H

#include <stddef.h>

struct buf;
struct journal_rec;

#define JOURNAL_CRASH_ENV	"FAILOVERD_CRASH_AFTER_JOURNAL_WRITE"

/* Files larger than this are refused by the loader as corrupt. */
#define JOURNAL_MAX_SIZE	(16u * 1024 * 1024)

struct journal_rec *journal_rec_new(void);
void	journal_rec_free(struct journal_rec *rec);

/*
 * Keys are [a-z0-9_.-]+ and "seq" is reserved for the file's own
 * sequence number. Values are any C string. Setting an existing key
 * replaces its value in place (the order of keys is kept).
 * 0, or -1 with errno EINVAL (bad key) or ENOMEM.
 */
int	journal_rec_set(struct journal_rec *rec, const char *key,
	    const char *value);
int	journal_rec_set_int(struct journal_rec *rec, const char *key,
	    long long value);
/* The value, or NULL if the key is absent; valid until the next change. */
const char *journal_rec_get(const struct journal_rec *rec, const char *key);
/*
 * 0 with *out set; 1 if the key is absent; -1 if the value is not a
 * decimal number in range, with "key 'k': bad number 'v'" in err.
 */
int	journal_rec_get_int(const struct journal_rec *rec, const char *key,
	    long long *out, char *err, size_t errlen);
/* Removing an absent key does nothing. */
void	journal_rec_del(struct journal_rec *rec, const char *key);

/* Iteration in key order of insertion: for (i = 0; i < count; i++). */
size_t	journal_rec_count(const struct journal_rec *rec);
void	journal_rec_at(const struct journal_rec *rec, size_t i,
	    const char **key, const char **value);

/*
 * The sequence number the record was loaded with (0 for a new record).
 * journal_save writes one more than the greater of this and the seq of
 * the file it replaces.
 */
unsigned long long journal_rec_seq(const struct journal_rec *rec);

/* 1 if key is [a-z0-9_.-]+ and not reserved. */
int	journal_key_valid(const char *key);
/* 1 if service is [A-Za-z0-9_.-]+ (no '/'), short enough for a file. */
int	journal_service_valid(const char *service);

/*
 * Writes <dir>/<service>.journal durably (see above). 0, or -1 with
 * "path: what: reason" in err. A stale <service>.journal.tmp left by a
 * crash is removed; a failed save removes its own temporary file and
 * leaves the previous journal as it was.
 *
 * Only the seq line of the file being replaced is read, so a caller
 * that failed to load a corrupt journal must not save over it unless a
 * person decided so.
 */
int	journal_save(const char *dir, const char *service,
	    const struct journal_rec *rec, char *err, size_t errlen);

/*
 * 0 with a new record in *out; 1 if there is no journal (a fresh
 * service); -1 with "path:line: what" in err for a truncated or corrupt
 * file, or "path: what: reason" when it cannot be read.
 */
int	journal_load(const char *dir, const char *service,
	    struct journal_rec **out, char *err, size_t errlen);

/*
 * Internal, exposed for the unit tests and the fuzz harness: parse a
 * journal held in memory (name is used in error messages) and produce
 * the exact bytes journal_save writes for rec with the given seq.
 * journal_parse: 0 with *out set, or -1 with err. journal_format: 0, or
 * -1 when out of memory.
 */
int	journal_parse(const void *data, size_t len, const char *name,
	    struct journal_rec **out, char *err, size_t errlen);
int	journal_format(const struct journal_rec *rec, unsigned long long seq,
	    struct buf *out);

#endif
