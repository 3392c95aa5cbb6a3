/*
 * hostkey: the SSH host key failoverd hands a replacement through its
 * cloud-init user data (ssh_keys), so the key the probes must trust is
 * known before the instance boots and no console is read for it.
 *
 * The key is ed25519, derived from a secret kept in the state directory
 * (in a cluster, one file copied to every member) and the failover's id: a failover resumed after a crash launches with
 * the same key (its RunInstances, same ClientToken, same parameters)
 * without the private key ever being written to the journal. The
 * private key is written out in OpenSSH's own format (openssh-key-v1,
 * unencrypted), which sshd and ssh-keygen read; OpenSSL writes only
 * PKCS#8.
 */
#ifndef FAILOVERD_HOSTKEY_H
#define FAILOVERD_HOSTKEY_H

#include <stddef.h>

#define HOSTKEY_SEED_LEN	32

struct hostkey;

/* From a 32-byte ed25519 seed; comment ends the public line. */
struct hostkey	*hostkey_from_seed(const unsigned char *seed,
		    const char *comment);

/* The secret's file in the state directory. */
#define HOSTKEY_SECRET_NAME	".hostkey-secret"

/*
 * Makes the secret of hostkey_for_launch if there is none yet: at start,
 * while the state directory is known to be writable, so that a failover
 * on a disk that has since filled or gone read-only still has its key.
 */
int		 hostkey_secret_ensure(const char *secret_path, char *err,
		    size_t errlen);

/*
 * The key of one launch: the seed is HMAC-SHA256(secret, launch_id),
 * the secret the 32 random bytes of secret_path, made (mode 0600,
 * fsync, rename) the first time. NULL with err set on failure.
 */
struct hostkey	*hostkey_for_launch(const char *secret_path,
		    const char *launch_id, const char *comment, char *err,
		    size_t errlen);

/*
 * As hostkey_for_launch, from a secret every member of a cluster shares
 * (cluster.host_key_secret): never made here, so that no member hands a
 * replacement a key the others would not trust.
 */
struct hostkey	*hostkey_for_launch_shared(const char *secret_path,
		    const char *launch_id, const char *comment, char *err,
		    size_t errlen);

/* Wipes the private key. */
void		 hostkey_free(struct hostkey *hk);

/* "ssh-ed25519 AAAA... comment" */
const char	*hostkey_public(const struct hostkey *hk);
/* "ssh-ed25519 AAAA...", as known_hosts and the console show it. */
const char	*hostkey_public_key(const struct hostkey *hk);
/* The private key, "-----BEGIN OPENSSH PRIVATE KEY-----" and all. */
const char	*hostkey_private_pem(const struct hostkey *hk);

#endif
