/*
 * journal: durable per-service state (see include/failoverd/journal.h).
 *
 * The checksum covers every byte before the end line, so a file cut at
 * any point, or with any byte changed, is refused rather than read as
 * a shorter or different record: a journal that says less than what
 * happened would make the engine repeat a step (a second instance, a
 * second attach).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "failoverd/buf.h"
#include "failoverd/journal.h"
#include "failoverd/log.h"

#define JOURNAL_HEADER		"failoverd-journal 1"
#define JOURNAL_HEADER_PREFIX	"failoverd-journal "
#define JOURNAL_END		"end sha256="
#define JOURNAL_SUFFIX		".journal"
#define JOURNAL_TMP_SUFFIX	".journal.tmp"
/* Room for ".journal.tmp" within NAME_MAX. */
#define JOURNAL_SERVICE_MAX	200
#define SHA256_HEX_LEN		64

struct journal_field {
	char	*key;
	char	*value;
};

struct journal_rec {
	struct journal_field	*fields;
	size_t			 n;
	size_t			 cap;
	unsigned long long	 seq;
};

/* Successful saves of this process, for the test-only crash hook. */
static unsigned long	journal_saves;

struct journal_rec *
journal_rec_new(void)
{
	return calloc(1, sizeof(struct journal_rec));
}

void
journal_rec_free(struct journal_rec *rec)
{
	size_t i;

	if (rec == NULL)
		return;
	for (i = 0; i < rec->n; i++) {
		free(rec->fields[i].key);
		free(rec->fields[i].value);
	}
	free(rec->fields);
	free(rec);
}

static int
journal_key_chars_ok(const char *key, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		char c = key[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

int
journal_key_valid(const char *key)
{
	if (key == NULL || strcmp(key, "seq") == 0)
		return 0;
	return journal_key_chars_ok(key, strlen(key));
}

int
journal_service_valid(const char *service)
{
	size_t i, len;

	if (service == NULL)
		return 0;
	len = strlen(service);
	if (len == 0 || len > JOURNAL_SERVICE_MAX)
		return 0;
	/* "." and ".." name directories, not services. */
	if (strcmp(service, ".") == 0 || strcmp(service, "..") == 0)
		return 0;
	for (i = 0; i < len; i++) {
		char c = service[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		    c == '-'))
			return 0;
	}
	return 1;
}

static ssize_t
journal_rec_find(const struct journal_rec *rec, const char *key)
{
	size_t i;

	for (i = 0; i < rec->n; i++)
		if (strcmp(rec->fields[i].key, key) == 0)
			return (ssize_t)i;
	return -1;
}

/* Appends without looking for the key; takes ownership of key, value. */
static int
journal_rec_append(struct journal_rec *rec, char *key, char *value)
{
	struct journal_field *f;
	size_t cap;

	if (rec->n == rec->cap) {
		cap = rec->cap ? rec->cap * 2 : 16;
		f = reallocarray(rec->fields, cap, sizeof(*f));
		if (f == NULL) {
			errno = ENOMEM;
			return -1;
		}
		rec->fields = f;
		rec->cap = cap;
	}
	rec->fields[rec->n].key = key;
	rec->fields[rec->n].value = value;
	rec->n++;
	return 0;
}

int
journal_rec_set(struct journal_rec *rec, const char *key, const char *value)
{
	ssize_t	 i;
	char	*k, *v;

	if (!journal_key_valid(key) || value == NULL) {
		errno = EINVAL;
		return -1;
	}
	v = strdup(value);
	if (v == NULL)
		return -1;
	i = journal_rec_find(rec, key);
	if (i >= 0) {
		free(rec->fields[i].value);
		rec->fields[i].value = v;
		return 0;
	}
	k = strdup(key);
	if (k == NULL || journal_rec_append(rec, k, v) == -1) {
		free(k);
		free(v);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int
journal_rec_set_int(struct journal_rec *rec, const char *key,
    long long value)
{
	char num[32];

	snprintf(num, sizeof(num), "%lld", value);
	return journal_rec_set(rec, key, num);
}

const char *
journal_rec_get(const struct journal_rec *rec, const char *key)
{
	ssize_t i;

	if (key == NULL)
		return NULL;
	i = journal_rec_find(rec, key);
	return i >= 0 ? rec->fields[i].value : NULL;
}

int
journal_rec_get_int(const struct journal_rec *rec, const char *key,
    long long *out, char *err, size_t errlen)
{
	const char	*v;
	char		*end;
	long long	 n;

	v = journal_rec_get(rec, key);
	if (v == NULL)
		return 1;
	errno = 0;
	n = strtoll(v, &end, 10);
	/* strtoll skips blanks and takes '+'; a number we wrote has none. */
	if (!(*v == '-' || (*v >= '0' && *v <= '9')) || *end != '\0' ||
	    errno == ERANGE) {
		errf(err, errlen, "key '%s': bad number '%.64s'",
		    key, v);
		return -1;
	}
	*out = n;
	return 0;
}

void
journal_rec_del(struct journal_rec *rec, const char *key)
{
	ssize_t i;

	if (key == NULL)
		return;
	i = journal_rec_find(rec, key);
	if (i < 0)
		return;
	free(rec->fields[i].key);
	free(rec->fields[i].value);
	memmove(&rec->fields[i], &rec->fields[i + 1],
	    (rec->n - (size_t)i - 1) * sizeof(rec->fields[0]));
	rec->n--;
}

size_t
journal_rec_count(const struct journal_rec *rec)
{
	return rec->n;
}

void
journal_rec_at(const struct journal_rec *rec, size_t i, const char **key,
    const char **value)
{
	if (i >= rec->n) {
		*key = NULL;
		*value = NULL;
		return;
	}
	*key = rec->fields[i].key;
	*value = rec->fields[i].value;
}

unsigned long long
journal_rec_seq(const struct journal_rec *rec)
{
	return rec->seq;
}

static int
journal_sha256_hex(const void *data, size_t len, char hex[65])
{
	static const char	 digits[] = "0123456789abcdef";
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 mdlen, i;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32)
		return -1;
	for (i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0x0f];
	}
	hex[2 * mdlen] = '\0';
	return 0;
}

static int
journal_needs_escape(unsigned char c)
{
	return c == '%' || c < 0x20;
}

int
journal_format(const struct journal_rec *rec, unsigned long long seq,
    struct buf *out)
{
	const unsigned char	*p, *run;
	size_t			 start, i;
	char			 hex[65];

	start = out->len;
	buf_printf(out, JOURNAL_HEADER "\nseq=%llu\n", seq);
	for (i = 0; i < rec->n; i++) {
		buf_puts(out, rec->fields[i].key);
		buf_puts(out, "=");
		p = (const unsigned char *)rec->fields[i].value;
		for (run = p; *p != '\0'; p++) {
			if (!journal_needs_escape(*p))
				continue;
			buf_append(out, run, (size_t)(p - run));
			buf_printf(out, "%%%02X", *p);
			run = p + 1;
		}
		buf_append(out, run, (size_t)(p - run));
		buf_puts(out, "\n");
	}
	if (out->oom)
		return -1;
	if (journal_sha256_hex(out->data + start, out->len - start, hex) == -1)
		return -1;
	buf_printf(out, JOURNAL_END "%s\n", hex);
	return out->oom ? -1 : 0;
}

static int
journal_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses "seq=N\n"-style digits; 0 or -1 (empty, not digits, overflow). */
static int
journal_parse_seq(const char *p, size_t len, unsigned long long *seq)
{
	unsigned long long n = 0;
	size_t i;

	if (len == 0 || len > 20)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned d;

		if (p[i] < '0' || p[i] > '9')
			return -1;
		d = (unsigned)(p[i] - '0');
		if (n > (ULLONG_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*seq = n;
	return 0;
}

struct journal_keyline {
	const char	*key;
	size_t		 line;
};

static int
journal_keyline_cmp(const void *a, const void *b)
{
	const struct journal_keyline *x = a, *y = b;
	int c;

	c = strcmp(x->key, y->key);
	if (c != 0)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

/*
 * Keys are checked for repeats once, after the parse, by sorting: a
 * linear search per line would make a long (or hostile) file quadratic.
 */
static int
journal_check_dups(const struct journal_rec *rec, const char *name,
    char *err, size_t errlen)
{
	struct journal_keyline	*kl;
	size_t			 i;

	if (rec->n < 2)
		return 0;
	kl = calloc(rec->n, sizeof(*kl));
	if (kl == NULL) {
		errf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	for (i = 0; i < rec->n; i++) {
		kl[i].key = rec->fields[i].key;
		kl[i].line = i + 3;	/* header and seq come first */
	}
	qsort(kl, rec->n, sizeof(*kl), journal_keyline_cmp);
	for (i = 1; i < rec->n; i++) {
		if (strcmp(kl[i - 1].key, kl[i].key) == 0) {
			errf(err, errlen,
			    "%s:%zu: duplicate key '%.64s' "
			    "(first on line %zu)",
			    name, kl[i].line, kl[i].key, kl[i - 1].line);
			free(kl);
			return -1;
		}
	}
	free(kl);
	return 0;
}

/* One "key=value" line (without its '\n') into rec. */
static int
journal_parse_field(struct journal_rec *rec, const char *p, size_t len,
    const char *name, size_t line, char *err, size_t errlen)
{
	const char	*eq;
	char		*key = NULL, *value = NULL;
	size_t		 klen, i, o;
	int		 hi, lo;

	for (i = 0; i < len; i++) {
		if ((unsigned char)p[i] < 0x20) {
			errf(err, errlen,
			    "%s:%zu: raw control byte 0x%02x", name, line,
			    (unsigned char)p[i]);
			return -1;
		}
	}
	eq = memchr(p, '=', len);
	if (eq == NULL) {
		errf(err, errlen, "%s:%zu: no '='", name, line);
		return -1;
	}
	klen = (size_t)(eq - p);
	if (!journal_key_chars_ok(p, klen)) {
		errf(err, errlen,
		    "%s:%zu: bad key (must be [a-z0-9_.-]+)", name, line);
		return -1;
	}
	if (klen == 3 && memcmp(p, "seq", 3) == 0) {
		errf(err, errlen, "%s:%zu: key 'seq' is reserved",
		    name, line);
		return -1;
	}
	key = strndup(p, klen);
	value = malloc(len - klen);
	if (key == NULL || value == NULL)
		goto oom;
	o = 0;
	for (i = klen + 1; i < len; i++) {
		if (p[i] != '%') {
			value[o++] = p[i];
			continue;
		}
		hi = i + 2 < len ? journal_hexval(p[i + 1]) : -1;
		lo = i + 2 < len ? journal_hexval(p[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			errf(err, errlen,
			    "%s:%zu: bad escape in value of '%s'", name, line,
			    key);
			goto fail;
		}
		if (hi == 0 && lo == 0) {
			errf(err, errlen,
			    "%s:%zu: escaped NUL in value of '%s'", name, line,
			    key);
			goto fail;
		}
		value[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	value[o] = '\0';
	if (journal_rec_append(rec, key, value) == -1)
		goto oom;
	return 0;
oom:
	errf(err, errlen, "%s:%zu: out of memory", name, line);
fail:
	free(key);
	free(value);
	return -1;
}

static size_t
journal_count_lines(const char *p, const char *end)
{
	size_t n = 0;

	for (; p < end; p++)
		if (*p == '\n')
			n++;
	return n;
}

int
journal_parse(const void *data, size_t len, const char *name,
    struct journal_rec **out, char *err, size_t errlen)
{
	const char		*buf = data, *end, *last, *p, *nl;
	struct journal_rec	*rec = NULL;
	size_t			 line, llen, elen;
	char			 hex[65];

	*out = NULL;
	if (len == 0) {
		errf(err, errlen, "%s:1: truncated: empty file", name);
		return -1;
	}
	if (len > JOURNAL_MAX_SIZE) {
		errf(err, errlen, "%s: too large (%zu bytes)", name,
		    len);
		return -1;
	}
	end = buf + len;
	if (end[-1] != '\n') {
		errf(err, errlen, "%s:%zu: truncated: no end line",
		    name, journal_count_lines(buf, end) + 1);
		return -1;
	}

	/* The end line is the last one; everything before it is hashed. */
	last = end - 1;
	while (last > buf && last[-1] != '\n')
		last--;
	line = journal_count_lines(buf, last) + 1;
	llen = (size_t)(end - last) - 1;
	if (llen < 4 || memcmp(last, "end ", 4) != 0) {
		/* A damaged '\n' glued the end line to the one before. */
		elen = strlen(JOURNAL_END) + SHA256_HEX_LEN;
		if (llen > elen && memcmp(last + llen - elen, JOURNAL_END,
		    strlen(JOURNAL_END)) == 0)
			errf(err, errlen, "%s:%zu: bad end line", name,
			    line);
		else
			errf(err, errlen,
			    "%s:%zu: truncated: no end line", name, line + 1);
		return -1;
	}
	if (llen != strlen(JOURNAL_END) + SHA256_HEX_LEN ||
	    memcmp(last, JOURNAL_END, strlen(JOURNAL_END)) != 0) {
		errf(err, errlen, "%s:%zu: bad end line", name, line);
		return -1;
	}
	if (journal_sha256_hex(buf, (size_t)(last - buf), hex) == -1) {
		errf(err, errlen, "%s: cannot compute SHA-256", name);
		return -1;
	}
	if (memcmp(last + strlen(JOURNAL_END), hex, SHA256_HEX_LEN) != 0) {
		errf(err, errlen, "%s:%zu: checksum mismatch", name,
		    line);
		return -1;
	}

	rec = journal_rec_new();
	if (rec == NULL) {
		errf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	for (p = buf, line = 1; p < last; p = nl + 1, line++) {
		nl = memchr(p, '\n', (size_t)(last - p));
		llen = (size_t)(nl - p);
		if (line == 1) {
			if (llen == strlen(JOURNAL_HEADER) &&
			    memcmp(p, JOURNAL_HEADER, llen) == 0)
				continue;
			if (llen > strlen(JOURNAL_HEADER_PREFIX) &&
			    memcmp(p, JOURNAL_HEADER_PREFIX,
			    strlen(JOURNAL_HEADER_PREFIX)) == 0)
				errf(err, errlen,
				    "%s:1: bad header: unsupported version",
				    name);
			else
				errf(err, errlen, "%s:1: bad header",
				    name);
			goto fail;
		}
		if (line == 2) {
			if (llen < 4 || memcmp(p, "seq=", 4) != 0 ||
			    journal_parse_seq(p + 4, llen - 4,
			    &rec->seq) == -1) {
				errf(err, errlen,
				    "%s:2: bad seq line", name);
				goto fail;
			}
			continue;
		}
		if (journal_parse_field(rec, p, llen, name, line, err,
		    errlen) == -1)
			goto fail;
	}
	if (line == 1) {
		errf(err, errlen, "%s:1: bad header", name);
		goto fail;
	}
	if (line == 2) {
		errf(err, errlen, "%s:2: no seq line", name);
		goto fail;
	}
	if (journal_check_dups(rec, name, err, errlen) == -1)
		goto fail;
	*out = rec;
	return 0;
fail:
	journal_rec_free(rec);
	return -1;
}

/*
 * The seq of the journal about to be replaced, from its first two
 * lines. A file whose seq cannot be read gives 0: the caller then
 * counts from the record's own seq.
 */
static int
journal_read_seq(int dfd, const char *path, const char *file,
    unsigned long long *seq, char *err, size_t errlen)
{
	char		 head[128];
	const char	*p, *nl;
	ssize_t		 n;
	size_t		 got = 0, hlen;
	int		 fd;

	*seq = 0;
	fd = openat(dfd, file, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		errf(err, errlen, "%s: open: %s", path,
		    strerror(errno));
		return -1;
	}
	while (got < sizeof(head)) {
		n = read(fd, head + got, sizeof(head) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			errf(err, errlen, "%s: read: %s", path,
			    strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	hlen = strlen(JOURNAL_HEADER "\nseq=");
	if (got < hlen || memcmp(head, JOURNAL_HEADER "\nseq=", hlen) != 0)
		return 0;
	p = head + hlen;
	nl = memchr(p, '\n', got - hlen);
	if (nl == NULL || journal_parse_seq(p, (size_t)(nl - p), seq) == -1)
		*seq = 0;
	return 0;
}

static int
journal_write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Test-only (issue 9): die right after the k-th save so the drills can
 * restart the daemon from every point a failover can stop at.
 */
static void
journal_crash_hook(const char *path)
{
	const char	*s;
	char		*end;
	unsigned long	 k;

	journal_saves++;
	s = getenv(JOURNAL_CRASH_ENV);
	if (s == NULL || *s == '\0')
		return;
	errno = 0;
	k = strtoul(s, &end, 10);
	if (*end != '\0' || errno != 0 || k == 0 || k != journal_saves)
		return;
	log_warnx("%s: %s=%lu: aborting after journal write (test hook)",
	    path, JOURNAL_CRASH_ENV, k);
	abort();
}

int
journal_save(const char *dir, const char *service,
    const struct journal_rec *rec, char *err, size_t errlen)
{
	char			 file[256], tmp[256], path[PATH_MAX];
	char			 tmppath[PATH_MAX];
	struct buf		 b;
	unsigned long long	 oldseq, seq;
	int			 dfd = -1, fd = -1, tmp_made = 0, rc = -1;

	buf_init(&b);
	if (!journal_service_valid(service)) {
		errf(err, errlen, "service name '%.64s': must be "
		    "[A-Za-z0-9_.-]+ (at most %d characters)",
		    service ? service : "(null)", JOURNAL_SERVICE_MAX);
		return -1;
	}
	snprintf(file, sizeof(file), "%s" JOURNAL_SUFFIX, service);
	snprintf(tmp, sizeof(tmp), "%s" JOURNAL_TMP_SUFFIX, service);
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    sizeof(path) ||
	    (size_t)snprintf(tmppath, sizeof(tmppath), "%s/%s", dir, tmp) >=
	    sizeof(tmppath)) {
		errf(err, errlen, "%s: path too long", dir);
		return -1;
	}

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1) {
		errf(err, errlen, "%s: open directory: %s", dir,
		    strerror(errno));
		goto fail;
	}
	if (journal_read_seq(dfd, path, file, &oldseq, err, errlen) == -1)
		goto fail;
	seq = oldseq > rec->seq ? oldseq : rec->seq;
	if (seq == ULLONG_MAX) {
		errf(err, errlen, "%s: seq overflow", path);
		goto fail;
	}
	seq++;
	if (journal_format(rec, seq, &b) == -1) {
		errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}

	/* A stale temporary file is a crash's leftover: never read it. */
	if (unlinkat(dfd, tmp, 0) == -1 && errno != ENOENT) {
		errf(err, errlen, "%s: remove stale file: %s",
		    tmppath, strerror(errno));
		goto fail;
	}
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd == -1) {
		errf(err, errlen, "%s: create: %s", tmppath,
		    strerror(errno));
		goto fail;
	}
	tmp_made = 1;
	if (journal_write_all(fd, b.data, b.len) == -1) {
		errf(err, errlen, "%s: write: %s", tmppath,
		    strerror(errno));
		goto fail;
	}
	if (fsync(fd) == -1) {
		errf(err, errlen, "%s: fsync: %s", tmppath,
		    strerror(errno));
		goto fail;
	}
	/* close can report a delayed write error (NFS): check it. */
	if (close(fd) == -1) {
		fd = -1;
		errf(err, errlen, "%s: close: %s", tmppath,
		    strerror(errno));
		goto fail;
	}
	fd = -1;
	if (renameat(dfd, tmp, dfd, file) == -1) {
		errf(err, errlen, "%s: rename from %s: %s", path, tmp,
		    strerror(errno));
		goto fail;
	}
	tmp_made = 0;
	/* Without this the rename itself may not survive a power cut. */
	if (fsync(dfd) == -1) {
		errf(err, errlen, "%s: fsync directory: %s", dir,
		    strerror(errno));
		goto fail;
	}
	rc = 0;
fail:
	if (fd != -1)
		close(fd);
	if (tmp_made)
		unlinkat(dfd, tmp, 0);
	if (dfd != -1)
		close(dfd);
	buf_free(&b);
	if (rc == 0)
		journal_crash_hook(path);
	return rc;
}

int
journal_load(const char *dir, const char *service,
    struct journal_rec **out, char *err, size_t errlen)
{
	char		 file[256], path[PATH_MAX];
	struct stat	 st;
	char		*data = NULL;
	size_t		 got = 0, cap;
	ssize_t		 n;
	int		 dfd = -1, fd = -1, rc = -1;

	*out = NULL;
	if (!journal_service_valid(service)) {
		errf(err, errlen, "service name '%.64s': must be "
		    "[A-Za-z0-9_.-]+ (at most %d characters)",
		    service ? service : "(null)", JOURNAL_SERVICE_MAX);
		return -1;
	}
	snprintf(file, sizeof(file), "%s" JOURNAL_SUFFIX, service);
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    sizeof(path)) {
		errf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	/*
	 * A missing directory is an error, not a fresh service: treating
	 * lost state as "nothing happened" could start a second failover.
	 */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1) {
		errf(err, errlen, "%s: open directory: %s", dir,
		    strerror(errno));
		goto fail;
	}
	fd = openat(dfd, file, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT) {
			rc = 1;
			goto fail;
		}
		errf(err, errlen, "%s: open: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) == -1) {
		errf(err, errlen, "%s: fstat: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		errf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	/* Read to the end, whatever fstat said, up to one byte too many. */
	cap = (size_t)st.st_size + 1;
	if (cap > JOURNAL_MAX_SIZE + 1)
		cap = JOURNAL_MAX_SIZE + 1;
	data = malloc(cap);
	if (data == NULL) {
		errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while (got < cap) {
		n = read(fd, data + got, cap - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			errf(err, errlen, "%s: read: %s", path,
			    strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > JOURNAL_MAX_SIZE) {
		errf(err, errlen, "%s: too large (over %u bytes)",
		    path, JOURNAL_MAX_SIZE);
		goto fail;
	}
	rc = journal_parse(data, got, path, out, err, errlen);
fail:
	free(data);
	if (fd != -1)
		close(fd);
	if (dfd != -1)
		close(dfd);
	return rc;
}
