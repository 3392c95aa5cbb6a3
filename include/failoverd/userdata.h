/*
 * userdata: the cloud-init user data a replacement is launched with:
 * the user's own (launch.user_data_file) and, with host_keys =
 * "user_data", a cloud-config part giving the replacement its SSH host
 * key (ssh_keys), so the key is known before the instance boots.
 *
 * Alone, the key part is a plain "#cloud-config" document. With the
 * user's data, both go in a MIME multipart/mixed document, cloud-init's
 * documented way to combine parts: the user's first, as it is (a MIME
 * document as a nested part, gzip as application/x-gzip, anything
 * else as text/x-not-multipart, whose type cloud-init finds from its
 * first line: #!, #cloud-config, ...), then failoverd's, last because
 * cloud-init merges cloud-config parts with dict(replace): a later
 * part's ssh_keys replace an earlier one's.
 *
 * The result holds a private key: one owner, wiped by userdata_free.
 */
#ifndef FAILOVERD_USERDATA_H
#define FAILOVERD_USERDATA_H

#include <stddef.h>

struct hostkey;

/* EC2's limit on user data, before base64 (RunInstances). */
#define USERDATA_MAX	16384

/*
 * The raw document from the user's bytes (may be NULL) and the key (may
 * be NULL), with this MIME boundary. *out is NULL when there is nothing
 * to send. -1 with err set when out of memory or the boundary occurs in
 * the user's data.
 */
int	userdata_compose(const unsigned char *user, size_t ulen,
	    const struct hostkey *hk, const char *boundary, char **out,
	    size_t *outlen, char *err, size_t errlen);

/*
 * What RunInstances' UserData takes: the document above, from the
 * file (may be NULL), base64-encoded. *b64 is NULL when there is
 * nothing to send. -1 with err set: the file cannot be read, or the
 * document is over USERDATA_MAX.
 */
int	userdata_build(const char *user_file, const struct hostkey *hk,
	    char **b64, char *err, size_t errlen);

/* Wipes and frees what userdata_compose or userdata_build made. */
void	userdata_free(char *s);

#endif
