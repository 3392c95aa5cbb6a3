#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "failoverd/buf.h"

void
buf_init(struct buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void
buf_cleanse(struct buf *b)
{
	if (b->data != NULL)
		OPENSSL_cleanse(b->data, b->cap);
	buf_free(b);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

static int
buf_reserve(struct buf *b, size_t more)
{
	size_t	 want, cap;
	char	*p;

	if (b->oom)
		return -1;
	want = b->len + more + 1;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL) {
		b->oom = 1;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int
buf_append(struct buf *b, const void *data, size_t len)
{
	if (buf_reserve(b, len) == -1)
		return -1;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n) == -1)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_json_str_or_null(struct buf *b, const char *s)
{
	if (s == NULL)
		return buf_puts(b, "null");
	return buf_json_str(b, s);
}

int
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int
buf_json_str(struct buf *b, const char *s)
{
	const unsigned char *p;

	if (s == NULL)
		return buf_puts(b, "null");
	buf_puts(b, "\"");
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		switch (*p) {
		case '"':	buf_puts(b, "\\\""); break;
		case '\\':	buf_puts(b, "\\\\"); break;
		case '\n':	buf_puts(b, "\\n"); break;
		case '\r':	buf_puts(b, "\\r"); break;
		case '\t':	buf_puts(b, "\\t"); break;
		default:
			if (*p < 0x20)
				buf_printf(b, "\\u%04x", *p);
			else
				buf_append(b, p, 1);
		}
	}
	return buf_puts(b, "\"");
}

const char *
buf_str(const struct buf *b)
{
	return b->data != NULL ? b->data : "";
}

void
buf_vfmt_at(char *dst, size_t len, size_t *off, const char *fmt, va_list ap)
{
	int n;

	if (len == 0)
		return;
	if (*off >= len - 1) {
		*off = len - 1;
		dst[*off] = '\0';
		return;
	}
	n = vsnprintf(dst + *off, len - *off, fmt, ap);
	if (n < 0)
		dst[*off] = '\0';
	else if ((size_t)n >= len - *off)
		*off = len - 1;
	else
		*off += (size_t)n;
}

void
buf_fmt_at(char *dst, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vfmt_at(dst, len, off, fmt, ap);
	va_end(ap);
}
