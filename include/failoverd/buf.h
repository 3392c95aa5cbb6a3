/*
 * buf: a growable byte buffer for replies, requests and status text.
 * One owner; buf_free wipes nothing, use buf_cleanse for secrets.
 */
#ifndef FAILOVERD_BUF_H
#define FAILOVERD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*data;		/* always NUL-terminated when len > 0 */
	size_t	 len;
	size_t	 cap;
	int	 oom;		/* an append failed; the content is short */
};

void	buf_init(struct buf *b);
void	buf_free(struct buf *b);
void	buf_cleanse(struct buf *b);	/* wipe, then free */
void	buf_reset(struct buf *b);
int	buf_append(struct buf *b, const void *data, size_t len);
int	buf_puts(struct buf *b, const char *s);
int	buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/*
 * Appends s as a JSON string literal, quotes included. NULL gives null
 * too, but say so with buf_json_str_or_null where it is meant.
 */
int	buf_json_str(struct buf *b, const char *s);
/* s as a JSON string, or null when s is NULL (no value known). */
int	buf_json_str_or_null(struct buf *b, const char *s);
/*
 * Formats into the fixed buffer dst of len bytes at *off, truncating:
 * *off never passes len - 1 (what snprintf returns is how much it WANTED
 * to write; added untruncated, it walks past the buffer).
 */
void	buf_fmt_at(char *dst, size_t len, size_t *off, const char *fmt,
	    ...) __attribute__((format(printf, 4, 5)));
void	buf_vfmt_at(char *dst, size_t len, size_t *off, const char *fmt,
	    va_list ap) __attribute__((format(printf, 4, 0)));
/* The content as a C string ("" when empty). */
const char *buf_str(const struct buf *b);

/*
 * Formats a message for a person into the caller's err buffer of errlen
 * bytes (truncating); returns -1, so a failing path reads
 * `return errf(err, errlen, "what: %s", why);`.
 */
int	errf(char *err, size_t errlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
