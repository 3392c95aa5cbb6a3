/*
 * hostkey: an ed25519 host key for a replacement, in the formats
 * cloud-init's ssh_keys takes (see hostkey.h).
 *
 * The private key file is OpenSSH's "openssh-key-v1" format
 * (PROTOCOL.key in OpenSSH's sources), unencrypted:
 *
 *	"openssh-key-v1\0"
 *	string	ciphername "none"
 *	string	kdfname "none"
 *	string	kdfoptions ""
 *	uint32	number of keys, 1
 *	string	public key blob
 *	string	private section, padded to 8 bytes with 1, 2, 3, ...:
 *		uint32 checkint, uint32 the same checkint,
 *		string "ssh-ed25519", string pk[32], string seed[32]||pk[32],
 *		string comment
 *
 * where a string is a uint32 length (big endian) and the bytes. The
 * checkint is derived from the seed, not random: the same seed must
 * give the same file, byte for byte, or a resumed launch would send
 * RunInstances different user data under the same ClientToken.
 *
 * Everything secret lives in the struct's fixed arrays (never in a
 * buffer that grows by realloc and leaves copies behind), wiped by
 * hostkey_free.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "failoverd/buf.h"
#include "failoverd/hostkey.h"

#define HK_TYPE		"ssh-ed25519"
#define HK_COMMENT_MAX	128
#define HK_BIN_MAX	512
#define HK_PEM_MAX	1024
#define HK_PUB_MAX	(HK_COMMENT_MAX + 128)
#define HK_PEM_WIDTH	70	/* as ssh-keygen wraps it */

struct hostkey {
	char	pub[2 * HK_PUB_MAX];	/* with the comment */
	char	pubkey[HK_PUB_MAX];	/* type and key only */
	char	pem[HK_PEM_MAX];	/* secret */
};

/* A writer over a fixed array; overflow is remembered, not fatal. */
struct hk_out {
	unsigned char	*p;
	size_t		 len, cap;
	int		 over;
};

static void
hk_bytes(struct hk_out *o, const void *data, size_t len)
{
	if (o->over || len > o->cap - o->len) {
		o->over = 1;
		return;
	}
	memcpy(o->p + o->len, data, len);
	o->len += len;
}

static void
hk_u32(struct hk_out *o, uint32_t v)
{
	unsigned char b[4];

	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
	hk_bytes(o, b, sizeof(b));
}

static void
hk_string(struct hk_out *o, const void *data, size_t len)
{
	hk_u32(o, (uint32_t)len);
	hk_bytes(o, data, len);
}

/* Base64 of in, wrapped at width (0: one line), NUL-terminated. */
static int
hk_base64(const unsigned char *in, size_t len, size_t width, char *out,
    size_t cap)
{
	unsigned char	line[HK_BIN_MAX * 2];
	size_t		n, i, o = 0;
	int		rc;

	if (len > HK_BIN_MAX)
		return -1;
	rc = EVP_EncodeBlock(line, in, (int)len);
	if (rc < 0)
		return -1;
	n = (size_t)rc;
	for (i = 0; i < n; i++) {
		if (o + 3 > cap)
			goto fail;
		out[o++] = (char)line[i];
		if (width > 0 && (i + 1) % width == 0 && i + 1 < n)
			out[o++] = '\n';
	}
	out[o] = '\0';
	OPENSSL_cleanse(line, sizeof(line));
	return 0;
fail:
	OPENSSL_cleanse(line, sizeof(line));
	OPENSSL_cleanse(out, cap);
	return -1;
}

struct hostkey *
hostkey_from_seed(const unsigned char *seed, const char *comment)
{
	struct hostkey	*hk = NULL;
	EVP_PKEY	*pkey = NULL;
	unsigned char	 pk[32], sk[64], blob[64], bin[HK_BIN_MAX];
	unsigned char	 sec[HK_BIN_MAX], digest[32];
	char		 b64[HK_PEM_MAX], pb64[96];
	size_t		 pklen = sizeof(pk), clen, pad;
	struct hk_out	 bo = { blob, 0, sizeof(blob), 0 };
	struct hk_out	 so = { sec, 0, sizeof(sec), 0 };
	struct hk_out	 fo = { bin, 0, sizeof(bin), 0 };
	uint32_t	 check;
	unsigned char	 p;

	if (comment == NULL)
		comment = "";
	clen = strlen(comment);
	if (clen > HK_COMMENT_MAX)
		return NULL;
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
	    HOSTKEY_SEED_LEN);
	if (pkey == NULL ||
	    EVP_PKEY_get_raw_public_key(pkey, pk, &pklen) != 1 ||
	    pklen != sizeof(pk))
		goto fail;
	if (EVP_Digest(seed, HOSTKEY_SEED_LEN, digest, NULL, EVP_sha256(),
	    NULL) != 1)
		goto fail;
	check = (uint32_t)digest[0] << 24 | (uint32_t)digest[1] << 16 |
	    (uint32_t)digest[2] << 8 | digest[3];
	hk = calloc(1, sizeof(*hk));
	if (hk == NULL)
		goto fail;

	hk_string(&bo, HK_TYPE, strlen(HK_TYPE));
	hk_string(&bo, pk, sizeof(pk));

	memcpy(sk, seed, HOSTKEY_SEED_LEN);
	memcpy(sk + HOSTKEY_SEED_LEN, pk, sizeof(pk));
	hk_u32(&so, check);
	hk_u32(&so, check);
	hk_string(&so, HK_TYPE, strlen(HK_TYPE));
	hk_string(&so, pk, sizeof(pk));
	hk_string(&so, sk, sizeof(sk));
	hk_string(&so, comment, clen);
	for (pad = 1; so.len % 8 != 0; pad++) {
		p = (unsigned char)pad;
		hk_bytes(&so, &p, 1);
	}

	hk_bytes(&fo, "openssh-key-v1", sizeof("openssh-key-v1"));
	hk_string(&fo, "none", 4);
	hk_string(&fo, "none", 4);
	hk_string(&fo, "", 0);
	hk_u32(&fo, 1);
	hk_string(&fo, blob, bo.len);
	hk_string(&fo, sec, so.len);
	if (bo.over || so.over || fo.over)
		goto fail;

	if (hk_base64(bin, fo.len, HK_PEM_WIDTH, b64, sizeof(b64)) == -1)
		goto fail;
	if ((size_t)snprintf(hk->pem, sizeof(hk->pem),
	    "-----BEGIN OPENSSH PRIVATE KEY-----\n%s\n"
	    "-----END OPENSSH PRIVATE KEY-----\n", b64) >= sizeof(hk->pem))
		goto fail;
	if (hk_base64(blob, bo.len, 0, pb64, sizeof(pb64)) == -1)
		goto fail;
	snprintf(hk->pubkey, sizeof(hk->pubkey), "%s %s", HK_TYPE, pb64);
	snprintf(hk->pub, sizeof(hk->pub), "%s%s%s", hk->pubkey,
	    clen > 0 ? " " : "", comment);

	OPENSSL_cleanse(sk, sizeof(sk));
	OPENSSL_cleanse(sec, sizeof(sec));
	OPENSSL_cleanse(bin, sizeof(bin));
	OPENSSL_cleanse(b64, sizeof(b64));
	OPENSSL_cleanse(digest, sizeof(digest));
	EVP_PKEY_free(pkey);
	return hk;
fail:
	OPENSSL_cleanse(sk, sizeof(sk));
	OPENSSL_cleanse(sec, sizeof(sec));
	OPENSSL_cleanse(bin, sizeof(bin));
	OPENSSL_cleanse(b64, sizeof(b64));
	OPENSSL_cleanse(digest, sizeof(digest));
	EVP_PKEY_free(pkey);
	hostkey_free(hk);
	return NULL;
}

/*
 * The secret: read it, or (create) make it once (durably) if there is
 * none. One an administrator copied to every member is never made here:
 * a member with its own would hand out keys the others do not know.
 */
static int
hk_secret(const char *path, int create, unsigned char *secret, char *err,
    size_t errlen)
{
	unsigned char	buf[HOSTKEY_SEED_LEN + 1];
	char		tmp[1100], dir[1100], *slash;
	ssize_t		n;
	int		fd, dfd;

	/* The shared one may be a link the administrator made. */
	fd = open(path, O_RDONLY | O_CLOEXEC | (create ? O_NOFOLLOW : 0));
	if (fd == -1 && errno == ENOENT && create) {
		if (RAND_bytes(secret, HOSTKEY_SEED_LEN) != 1) {
			return errf(err, errlen, "%s: no random bytes", path);
		}
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		unlink(tmp);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd == -1)
			goto sys;
		if (write(fd, secret, HOSTKEY_SEED_LEN) != HOSTKEY_SEED_LEN ||
		    fsync(fd) == -1) {
			close(fd);
			unlink(tmp);
			goto sys;
		}
		close(fd);
		/* link, not rename: another writer's secret is kept. */
		if (link(tmp, path) == -1 && errno != EEXIST) {
			unlink(tmp);
			goto sys;
		}
		unlink(tmp);
		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash != NULL) {
			*slash = '\0';
			dfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY |
			    O_CLOEXEC);
			if (dfd != -1) {
				if (fsync(dfd) == -1) {
					close(dfd);
					goto sys;
				}
				close(dfd);
			}
		}
		OPENSSL_cleanse(secret, HOSTKEY_SEED_LEN);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd == -1)
		goto sys;
	/* One byte more tells a longer file from the secret. */
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != HOSTKEY_SEED_LEN) {
		OPENSSL_cleanse(buf, sizeof(buf));
		OPENSSL_cleanse(secret, HOSTKEY_SEED_LEN);
		return errf(err, errlen, "%s: not %d bytes", path,
		    HOSTKEY_SEED_LEN);
	}
	memcpy(secret, buf, HOSTKEY_SEED_LEN);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
sys:
	errf(err, errlen, "%s: %s", path, strerror(errno));
	OPENSSL_cleanse(secret, HOSTKEY_SEED_LEN);
	return -1;
}

int
hostkey_secret_ensure(const char *secret_path, char *err, size_t errlen)
{
	unsigned char secret[HOSTKEY_SEED_LEN];

	if (hk_secret(secret_path, 1, secret, err, errlen) == -1)
		return -1;
	OPENSSL_cleanse(secret, sizeof(secret));
	return 0;
}

static struct hostkey *
hk_for_launch(const char *secret_path, int create, const char *launch_id,
    const char *comment, char *err, size_t errlen)
{
	struct hostkey	*hk;
	unsigned char	 secret[HOSTKEY_SEED_LEN], seed[32];
	unsigned int	 len = sizeof(seed);

	if (hk_secret(secret_path, create, secret, err, errlen) == -1)
		return NULL;
	if (HMAC(EVP_sha256(), secret, sizeof(secret),
	    (const unsigned char *)launch_id, strlen(launch_id), seed,
	    &len) == NULL || len != sizeof(seed)) {
		OPENSSL_cleanse(secret, sizeof(secret));
		errf(err, errlen, "host key: HMAC failed");
		return NULL;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	hk = hostkey_from_seed(seed, comment);
	OPENSSL_cleanse(seed, sizeof(seed));
	if (hk == NULL)
		errf(err, errlen, "host key: cannot make an ed25519 key");
	return hk;
}

struct hostkey *
hostkey_for_launch(const char *secret_path, const char *launch_id,
    const char *comment, char *err, size_t errlen)
{
	return hk_for_launch(secret_path, 1, launch_id, comment, err, errlen);
}

struct hostkey *
hostkey_for_launch_shared(const char *secret_path, const char *launch_id,
    const char *comment, char *err, size_t errlen)
{
	return hk_for_launch(secret_path, 0, launch_id, comment, err, errlen);
}

void
hostkey_free(struct hostkey *hk)
{
	if (hk == NULL)
		return;
	OPENSSL_cleanse(hk, sizeof(*hk));
	free(hk);
}

const char *
hostkey_public(const struct hostkey *hk)
{
	return hk->pub;
}

const char *
hostkey_public_key(const struct hostkey *hk)
{
	return hk->pubkey;
}

const char *
hostkey_private_pem(const struct hostkey *hk)
{
	return hk->pem;
}
