/*
 * sigv4: AWS Signature Version 4, following
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 * and checked against the aws-c-auth test suite (tests/data/sigv4).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "failoverd/buf.h"
#include "failoverd/sigv4.h"

struct sbuf {
	char	*s;
	size_t	 len;
	size_t	 cap;
	int	 oom;
};

static void
sbuf_addn(struct sbuf *b, const char *s, size_t n)
{
	char *p;
	size_t cap;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->s, cap);
		if (p == NULL) {
			b->oom = 1;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
sbuf_add(struct sbuf *b, const char *s)
{
	sbuf_addn(b, s, strlen(s));
}

static void
sbuf_addc(struct sbuf *b, char c)
{
	sbuf_addn(b, &c, 1);
}

/* Takes the string out of the buffer; NULL if any append failed. */
static char *
sbuf_take(struct sbuf *b)
{
	char *s;

	if (b->oom) {
		free(b->s);
		return NULL;
	}
	if (b->s == NULL)
		return strdup("");
	s = b->s;
	b->s = NULL;
	return s;
}

static void
hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

void
sigv4_sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(data, len, md);
	hex_encode(md, sizeof(md), hex);
}

static int
is_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* RFC 3986 encoding as SigV4 wants it: uppercase hex, '/' kept on demand. */
static void
uri_encode(struct sbuf *b, const char *s, size_t n, int keep_slash)
{
	static const char hx[] = "0123456789ABCDEF";
	unsigned char c;
	char esc[3];
	size_t i;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (is_unreserved(c) || (keep_slash && c == '/')) {
			sbuf_addc(b, (char)c);
			continue;
		}
		esc[0] = '%';
		esc[1] = hx[c >> 4];
		esc[2] = hx[c & 0xf];
		sbuf_addn(b, esc, 3);
	}
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into a new string; invalid escapes stay as is. */
static char *
uri_decode(const char *s, size_t n)
{
	char *out;
	size_t i, o = 0;
	int hi, lo;

	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n) {
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi >= 0 && lo >= 0) {
				out[o++] = (char)(hi << 4 | lo);
				i += 2;
				continue;
			}
		}
		out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

/*
 * Canonical URI. With normalisation, "." and ".." segments and empty
 * segments go away (RFC 3986 5.2.4 plus slash collapsing), keeping a
 * trailing slash; the result is then encoded once.
 */
static void
canonical_uri(struct sbuf *b, const char *path, int normalize)
{
	const char **seg = NULL;
	size_t *seglen = NULL;
	size_t nseg = 0, i, len, n;
	const char *p, *e;
	int trailing;

	if (path == NULL || *path == '\0') {
		sbuf_addc(b, '/');
		return;
	}
	if (!normalize) {
		uri_encode(b, path, strlen(path), 1);
		return;
	}
	len = strlen(path);
	seg = calloc(len + 1, sizeof(*seg));
	seglen = calloc(len + 1, sizeof(*seglen));
	if (seg == NULL || seglen == NULL) {
		b->oom = 1;
		goto out;
	}
	trailing = 0;
	for (p = path; *p != '\0'; p = e) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		e = strchr(p, '/');
		if (e == NULL)
			e = p + strlen(p);
		n = (size_t)(e - p);
		trailing = (*e == '/');
		if (n == 1 && p[0] == '.') {
			trailing = 1;
			continue;
		}
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (nseg > 0)
				nseg--;
			trailing = 1;
			continue;
		}
		seg[nseg] = p;
		seglen[nseg] = n;
		nseg++;
	}
	for (i = 0; i < nseg; i++) {
		sbuf_addc(b, '/');
		uri_encode(b, seg[i], seglen[i], 0);
	}
	if (nseg == 0 || trailing)
		sbuf_addc(b, '/');
out:
	free(seg);
	free(seglen);
}

struct qparam {
	char	*key;	/* encoded */
	char	*val;	/* encoded */
};

static int
qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c;

	c = strcmp(x->key, y->key);
	if (c != 0)
		return c;
	return strcmp(x->val, y->val);
}

static char *
encode_dup(const char *s, size_t n)
{
	struct sbuf b = { 0 };
	char *dec;

	dec = uri_decode(s, n);
	if (dec == NULL)
		return NULL;
	uri_encode(&b, dec, strlen(dec), 0);
	free(dec);
	return sbuf_take(&b);
}

/* Canonical query: decoded, re-encoded, sorted by key then value. */
static int
canonical_query(struct sbuf *b, const char *query)
{
	struct qparam *qp = NULL;
	size_t nq = 0, cap, i;
	const char *p, *amp, *eq;
	int rc = -1;

	if (query == NULL || *query == '\0')
		return 0;
	cap = 1;
	for (p = query; *p != '\0'; p++)
		if (*p == '&')
			cap++;
	qp = calloc(cap, sizeof(*qp));
	if (qp == NULL)
		return -1;
	for (p = query; p != NULL; p = amp ? amp + 1 : NULL) {
		amp = strchr(p, '&');
		i = amp ? (size_t)(amp - p) : strlen(p);
		if (i == 0)
			continue;
		eq = memchr(p, '=', i);
		if (eq != NULL) {
			qp[nq].key = encode_dup(p, (size_t)(eq - p));
			qp[nq].val = encode_dup(eq + 1,
			    i - (size_t)(eq - p) - 1);
		} else {
			qp[nq].key = encode_dup(p, i);
			qp[nq].val = strdup("");
		}
		nq++;
		if (qp[nq - 1].key == NULL || qp[nq - 1].val == NULL)
			goto out;
	}
	qsort(qp, nq, sizeof(*qp), qparam_cmp);
	for (i = 0; i < nq; i++) {
		if (i > 0)
			sbuf_addc(b, '&');
		sbuf_add(b, qp[i].key);
		sbuf_addc(b, '=');
		sbuf_add(b, qp[i].val);
	}
	rc = 0;
out:
	for (i = 0; i < nq; i++) {
		free(qp[i].key);
		free(qp[i].val);
	}
	free(qp);
	return rc;
}

struct chdr {
	char	*name;		/* lowercase */
	char	*value;		/* trimmed, spaces collapsed, dups joined */
	size_t	 order;
};

static int
chdr_cmp(const void *a, const void *b)
{
	const struct chdr *x = a, *y = b;
	int c;

	c = strcmp(x->name, y->name);
	if (c != 0)
		return c;
	/* Keep the order of appearance for repeated names. */
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Trims and collapses runs of whitespace into one space. */
static char *
trim_value(const char *v)
{
	char *out, *o;
	int space = 0;

	out = malloc(strlen(v) + 1);
	if (out == NULL)
		return NULL;
	o = out;
	while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
		v++;
	for (; *v != '\0'; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
			space = 1;
			continue;
		}
		if (space)
			*o++ = ' ';
		space = 0;
		*o++ = *v;
	}
	*o = '\0';
	return out;
}

static int
chdr_add(struct chdr *h, size_t *n, const char *name, const char *value)
{
	char *p;

	h[*n].name = strdup(name);
	h[*n].value = trim_value(value);
	h[*n].order = *n;
	(*n)++;
	if (h[*n - 1].name == NULL || h[*n - 1].value == NULL)
		return -1;
	for (p = h[*n - 1].name; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

static int
hmac(const void *key, size_t keylen, const char *msg, unsigned char *out)
{
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg,
	    strlen(msg), out, &len) == NULL)
		return -1;
	return 0;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), ...)) */
static int
derive_signature(const struct sigv4_input *in, const char *date,
    const char *sts, char hex[65])
{
	unsigned char k[SHA256_DIGEST_LENGTH], k2[SHA256_DIGEST_LENGTH];
	unsigned char sig[SHA256_DIGEST_LENGTH];
	char *secret;
	size_t slen;
	int rc = -1;

	slen = strlen(in->secret_access_key) + 5;
	secret = malloc(slen);
	if (secret == NULL)
		return -1;
	snprintf(secret, slen, "AWS4%s", in->secret_access_key);
	if (hmac(secret, slen - 1, date, k) < 0 ||
	    hmac(k, sizeof(k), in->region, k2) < 0 ||
	    hmac(k2, sizeof(k2), in->service, k) < 0 ||
	    hmac(k, sizeof(k), "aws4_request", k2) < 0 ||
	    hmac(k2, sizeof(k2), sts, sig) < 0)
		goto out;
	hex_encode(sig, sizeof(sig), hex);
	rc = 0;
out:
	OPENSSL_cleanse(secret, slen);
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(k2, sizeof(k2));
	OPENSSL_cleanse(sig, sizeof(sig));
	free(secret);
	return rc;
}

int
sigv4_sign(const struct sigv4_input *in, struct sigv4_result *out,
    char *err, size_t errlen)
{
	struct sbuf cr = { 0 }, sts = { 0 }, sh = { 0 }, az = { 0 };
	struct chdr *h = NULL;
	size_t nh = 0, i;
	struct tm tm;
	char date[9], crhash[65], scope[256], sig[65];
	int rc = -1, have_host = 0;

	memset(out, 0, sizeof(*out));
	if (in->method == NULL || in->region == NULL || in->service == NULL ||
	    in->access_key_id == NULL || in->secret_access_key == NULL) {
		errf(err, errlen, "sigv4: method, region, service and "
		    "credentials are required");
		return -1;
	}
	if (gmtime_r(&in->when, &tm) == NULL) {
		errf(err, errlen, "sigv4: time out of range");
		return -1;
	}
	strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm);
	memcpy(date, out->amz_date, 8);
	date[8] = '\0';
	sigv4_sha256_hex(in->payload ? in->payload : "", in->payload_len,
	    out->payload_hash);

	h = calloc(in->nheaders + 3, sizeof(*h));
	if (h == NULL)
		goto oom;
	for (i = 0; i < in->nheaders; i++) {
		if (strcasecmp(in->headers[i].name, "host") == 0)
			have_host = 1;
		if (chdr_add(h, &nh, in->headers[i].name,
		    in->headers[i].value) < 0)
			goto oom;
	}
	if (!have_host) {
		errf(err, errlen, "sigv4: the request has no Host header");
		goto fail;
	}
	if (chdr_add(h, &nh, "x-amz-date", out->amz_date) < 0)
		goto oom;
	if (in->session_token != NULL && !(in->flags & SIGV4_OMIT_TOKEN) &&
	    chdr_add(h, &nh, "x-amz-security-token", in->session_token) < 0)
		goto oom;
	if ((in->flags & SIGV4_SIGN_BODY) &&
	    chdr_add(h, &nh, "x-amz-content-sha256", out->payload_hash) < 0)
		goto oom;
	qsort(h, nh, sizeof(*h), chdr_cmp);

	sbuf_add(&cr, in->method);
	sbuf_addc(&cr, '\n');
	canonical_uri(&cr, in->path, in->flags & SIGV4_NORMALIZE_PATH);
	sbuf_addc(&cr, '\n');
	if (canonical_query(&cr, in->query) < 0)
		goto oom;
	sbuf_addc(&cr, '\n');
	for (i = 0; i < nh; i++) {
		if (i > 0 && strcmp(h[i].name, h[i - 1].name) == 0) {
			/* Repeated header: values join with ',' in order. */
			sbuf_addc(&cr, ',');
			sbuf_add(&cr, h[i].value);
			continue;
		}
		if (i > 0) {
			sbuf_addc(&cr, '\n');
			sbuf_addc(&sh, ';');
		}
		sbuf_add(&cr, h[i].name);
		sbuf_addc(&cr, ':');
		sbuf_add(&cr, h[i].value);
		sbuf_add(&sh, h[i].name);
	}
	sbuf_add(&cr, "\n\n");
	sbuf_add(&cr, sh.s ? sh.s : "");
	sbuf_addc(&cr, '\n');
	sbuf_add(&cr, out->payload_hash);
	if (cr.oom || sh.oom)
		goto oom;

	snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date,
	    in->region, in->service);
	sigv4_sha256_hex(cr.s, cr.len, crhash);
	sbuf_add(&sts, "AWS4-HMAC-SHA256\n");
	sbuf_add(&sts, out->amz_date);
	sbuf_addc(&sts, '\n');
	sbuf_add(&sts, scope);
	sbuf_addc(&sts, '\n');
	sbuf_add(&sts, crhash);
	if (sts.oom)
		goto oom;
	if (derive_signature(in, date, sts.s, sig) < 0) {
		errf(err, errlen, "sigv4: HMAC failed");
		goto fail;
	}

	sbuf_add(&az, "AWS4-HMAC-SHA256 Credential=");
	sbuf_add(&az, in->access_key_id);
	sbuf_addc(&az, '/');
	sbuf_add(&az, scope);
	sbuf_add(&az, ", SignedHeaders=");
	sbuf_add(&az, sh.s);
	sbuf_add(&az, ", Signature=");
	sbuf_add(&az, sig);

	out->canonical_request = sbuf_take(&cr);
	out->string_to_sign = sbuf_take(&sts);
	out->authorization = sbuf_take(&az);
	out->signature = strdup(sig);
	if (out->canonical_request == NULL || out->string_to_sign == NULL ||
	    out->authorization == NULL || out->signature == NULL)
		goto oom;
	rc = 0;
	goto done;
oom:
	errf(err, errlen, "sigv4: out of memory");
fail:
	sigv4_result_free(out);
done:
	for (i = 0; i < nh; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
	free(cr.s);
	free(sts.s);
	free(sh.s);
	free(az.s);
	return rc;
}

void
sigv4_result_free(struct sigv4_result *res)
{
	if (res == NULL)
		return;
	free(res->canonical_request);
	free(res->string_to_sign);
	free(res->signature);
	free(res->authorization);
	res->canonical_request = NULL;
	res->string_to_sign = NULL;
	res->signature = NULL;
	res->authorization = NULL;
}
