/*
 * userdata: a replacement's cloud-init user data (see userdata.h).
 *
 * The document is written twice over: once to count its bytes, once
 * into an allocation of exactly that size, so the private key in it is
 * never copied around by a growing buffer; every copy is wiped.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "failoverd/buf.h"
#include "failoverd/hostkey.h"
#include "failoverd/userdata.h"

#define UD_B64_WIDTH	76	/* RFC 2045's line length */

struct ud_out {
	char	*p;		/* NULL: count only */
	size_t	 len;
};

static void
ud_bytes(struct ud_out *o, const void *data, size_t len)
{
	if (o->p != NULL)
		memcpy(o->p + o->len, data, len);
	o->len += len;
}

static void
ud_puts(struct ud_out *o, const char *s)
{
	ud_bytes(o, s, strlen(s));
}

/* Base64 in lines of UD_B64_WIDTH, each ended by a newline. */
static void
ud_base64(struct ud_out *o, const unsigned char *in, size_t len)
{
	unsigned char	quad[4];
	size_t		i, col = 0, n;

	for (i = 0; i < len; i += 3) {
		n = len - i < 3 ? len - i : 3;
		EVP_EncodeBlock(quad, in + i, (int)n);
		ud_bytes(o, quad, 4);
		col += 4;
		if (col >= UD_B64_WIDTH) {
			ud_puts(o, "\n");
			col = 0;
		}
	}
	if (col > 0)
		ud_puts(o, "\n");
	OPENSSL_cleanse(quad, sizeof(quad));
}

/* Every line of s, indented for a YAML literal block. */
static void
ud_indented(struct ud_out *o, const char *s, const char *indent)
{
	const char *nl;

	for (; *s != '\0'; s = nl + 1) {
		nl = strchr(s, '\n');
		if (nl == NULL)
			nl = s + strlen(s);
		ud_puts(o, indent);
		ud_bytes(o, s, (size_t)(nl - s));
		ud_puts(o, "\n");
		if (*nl == '\0')
			break;
	}
}

/*
 * cloud-init's ssh module (cc_ssh): ssh_keys writes these files and,
 * because keys are given, generates none; ssh_deletekeys removes the
 * image's own first. The key and the public line are base64 and PEM
 * armour only: nothing in them needs YAML quoting.
 */
static void
ud_key_part(struct ud_out *o, const struct hostkey *hk)
{
	ud_puts(o, "#cloud-config\n"
	    "# failoverd: this instance's SSH host key (host_keys = "
	    "\"user_data\")\n"
	    "ssh_deletekeys: true\n"
	    "ssh_keys:\n"
	    "  ed25519_private: |\n");
	ud_indented(o, hostkey_private_pem(hk), "    ");
	ud_puts(o, "  ed25519_public: ");
	ud_puts(o, hostkey_public(hk));
	ud_puts(o, "\n");
}

/* cloud-init takes user data as MIME when its start says so. */
static int
ud_is_mime(const unsigned char *u, size_t len)
{
	size_t	n = len < 4096 ? len : 4096, i;
	char	head[4097];

	if (memchr(u, '\0', len) != NULL)
		return 0;
	for (i = 0; i < n; i++)
		head[i] = (char)tolower(u[i]);
	head[n] = '\0';
	return strstr(head, "mime-version:") != NULL;
}

static void
ud_compose(struct ud_out *o, const unsigned char *user, size_t ulen,
    const struct hostkey *hk, const char *boundary)
{
	if (user == NULL) {
		ud_key_part(o, hk);
		return;
	}
	if (hk == NULL) {
		ud_bytes(o, user, ulen);
		return;
	}
	ud_puts(o, "Content-Type: multipart/mixed; boundary=\"");
	ud_puts(o, boundary);
	ud_puts(o, "\"\nMIME-Version: 1.0\n\n--");
	ud_puts(o, boundary);
	ud_puts(o, "\n");
	if (ud_is_mime(user, ulen)) {
		/* Its headers are the part's: a nested multipart. */
		ud_bytes(o, user, ulen);
		if (ulen > 0 && user[ulen - 1] != '\n')
			ud_puts(o, "\n");
	} else {
		if (ulen >= 2 && user[0] == 0x1f && user[1] == 0x8b)
			ud_puts(o, "Content-Type: application/x-gzip\n");
		else
			ud_puts(o, "Content-Type: text/x-not-multipart\n");
		ud_puts(o, "MIME-Version: 1.0\n"
		    "Content-Transfer-Encoding: base64\n"
		    "Content-Disposition: attachment; "
		    "filename=\"user-data\"\n\n");
		ud_base64(o, user, ulen);
	}
	ud_puts(o, "\n--");
	ud_puts(o, boundary);
	ud_puts(o, "\nContent-Type: text/cloud-config; charset=\"us-ascii\"\n"
	    "MIME-Version: 1.0\n"
	    "Content-Transfer-Encoding: 7bit\n"
	    "Content-Disposition: attachment; "
	    "filename=\"failoverd-host-key.cfg\"\n\n");
	ud_key_part(o, hk);
	ud_puts(o, "\n--");
	ud_puts(o, boundary);
	ud_puts(o, "--\n");
}

int
userdata_compose(const unsigned char *user, size_t ulen,
    const struct hostkey *hk, const char *boundary, char **out,
    size_t *outlen, char *err, size_t errlen)
{
	struct ud_out	o = { NULL, 0 };
	size_t		i, blen = strlen(boundary);

	*out = NULL;
	*outlen = 0;
	if (user == NULL && hk == NULL)
		return 0;
	/* RFC 2046: the boundary must not occur in the parts. */
	for (i = 0; user != NULL && hk != NULL && i + blen <= ulen; i++)
		if (memcmp(user + i, boundary, blen) == 0) {
			errf(err, errlen, "user data: the MIME boundary "
			    "%s occurs in it", boundary);
			return -1;
		}
	ud_compose(&o, user, ulen, hk, boundary);
	o.p = malloc(o.len + 1);
	if (o.p == NULL) {
		return errf(err, errlen, "user data: out of memory");
	}
	*outlen = o.len;
	o.len = 0;
	ud_compose(&o, user, ulen, hk, boundary);
	o.p[o.len] = '\0';
	*out = o.p;
	return 0;
}

/* The user's file, whole, in one allocation of its size. */
static int
ud_read(const char *path, unsigned char **data, size_t *len, char *err,
    size_t errlen)
{
	struct stat	 st;
	unsigned char	*buf = NULL;
	size_t		 got = 0;
	ssize_t		 n;
	int		 fd;

	*data = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1 || fstat(fd, &st) == -1)
		goto sys;
	if (st.st_size > USERDATA_MAX) {
		errf(err, errlen, "%s: %lld bytes, over EC2's user data "
		    "limit of %d", path, (long long)st.st_size, USERDATA_MAX);
		close(fd);
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		goto sys;
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*data = buf;
	*len = got;
	return 0;
sys:
	errf(err, errlen, "%s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	free(buf);
	return -1;
}

/* SHA-256 of the user's data and the key's public half. */
static int
ud_boundary_hash(const unsigned char *user, size_t ulen,
    const struct hostkey *hk, unsigned char *md)
{
	EVP_MD_CTX	*ctx;
	int		 ok;

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    (user == NULL || EVP_DigestUpdate(ctx, user, ulen) == 1) &&
	    (hk == NULL || EVP_DigestUpdate(ctx, hostkey_public(hk),
	    strlen(hostkey_public(hk))) == 1) &&
	    EVP_DigestFinal_ex(ctx, md, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int
userdata_build(const char *user_file, const struct hostkey *hk,
    char **b64, char *err, size_t errlen)
{
	unsigned char	*user = NULL, md[32];
	char		*doc = NULL, boundary[64];
	size_t		 ulen = 0, dlen = 0, i, k;
	int		 rc = -1;

	*b64 = NULL;
	if (user_file != NULL &&
	    ud_read(user_file, &user, &ulen, err, errlen) == -1)
		return -1;
	/*
	 * From the content, not random: a resumed launch must send the
	 * same user data under its ClientToken. A hash of the parts
	 * does not occur in them (and compose checks, RFC 2046).
	 */
	if (ud_boundary_hash(user, ulen, hk, md) == -1) {
		errf(err, errlen, "user data: SHA-256 failed");
		goto done;
	}
	i = (size_t)snprintf(boundary, sizeof(boundary), "==failoverd-");
	for (k = 0; k < 12; k++)
		i += (size_t)snprintf(boundary + i, sizeof(boundary) - i,
		    "%02x", md[k]);
	snprintf(boundary + i, sizeof(boundary) - i, "==");
	if (userdata_compose(user, ulen, hk, boundary, &doc, &dlen, err,
	    errlen) == -1)
		goto done;
	if (doc == NULL) {
		rc = 0;
		goto done;
	}
	if (dlen > USERDATA_MAX) {
		errf(err, errlen, "user data%s%s is %zu bytes with the "
		    "host key part, over EC2's limit of %d",
		    user_file ? " from " : "", user_file ? user_file : "",
		    dlen, USERDATA_MAX);
		goto done;
	}
	*b64 = malloc(4 * ((dlen + 2) / 3) + 1);
	if (*b64 == NULL) {
		errf(err, errlen, "user data: out of memory");
		goto done;
	}
	EVP_EncodeBlock((unsigned char *)*b64, (unsigned char *)doc,
	    (int)dlen);
	rc = 0;
done:
	if (user != NULL) {
		OPENSSL_cleanse(user, ulen);
		free(user);
	}
	userdata_free(doc);
	return rc;
}

void
userdata_free(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}
