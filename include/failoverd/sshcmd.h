/*
 * sshcmd: run one command over SSH without blocking the loop, on the
 * session driver of sshsess.h (connect, handshake, host key against
 * known_hosts, public-key auth, exec, read, exit status).
 *
 * The snapshot hooks use it (fsfreeze before, thaw after). One deadline
 * covers every stage. The result always arrives through the callback,
 * from the loop, never from inside sshcmd_start().
 */
#ifndef FAILOVERD_SSHCMD_H
#define FAILOVERD_SSHCMD_H

#include <ev.h>

enum sshcmd_status {
	SSHCMD_OK,		/* ran and exited 0 */
	SSHCMD_EXIT,		/* ran and exited non-zero */
	SSHCMD_SIGNAL,		/* killed by a signal */
	SSHCMD_TIMEOUT,		/* the deadline passed */
	SSHCMD_CONNECT,		/* TCP connect failed, or not an address */
	SSHCMD_HANDSHAKE,	/* banner or key exchange failed */
	SSHCMD_HOSTKEY,		/* unknown or mismatching host key */
	SSHCMD_AUTH,		/* public-key authentication refused */
	SSHCMD_CHANNEL,		/* channel or exec failed */
	SSHCMD_INTERNAL		/* out of memory, libssh2 init */
};

const char	*sshcmd_status_str(enum sshcmd_status s);

/* Everything is copied by sshcmd_start(). */
struct sshcmd_spec {
	const char	*host;		/* an IP address: no DNS on the loop */
	int		 port;		/* 0: 22 */
	const char	*user;
	const char	*key_file;
	const char	*known_hosts;	/* NULL only with learned_hosts */
	const char	*learned_hosts;	/* may be NULL */
	const char	*command;
	const char	*source;	/* bind to it; NULL: the kernel picks */
	double		 timeout;	/* seconds, the whole run */
};

struct sshcmd;

/*
 * status, the exit status (SSHCMD_EXIT) or 0, and a line for a person:
 * the stage and reason, or the command's first line of stderr.
 */
typedef void (*sshcmd_done_cb)(enum sshcmd_status status, int exit_status,
    const char *detail, void *arg);

/*
 * Starts the command. NULL only when out of memory (no callback then).
 * The handle is valid until the callback returns, or until
 * sshcmd_cancel(), which stops everything without calling back.
 */
struct sshcmd	*sshcmd_start(struct ev_loop *loop,
		    const struct sshcmd_spec *spec, sshcmd_done_cb cb,
		    void *arg);
void		 sshcmd_cancel(struct sshcmd *c);

/*
 * 1 when the known_hosts file holds a key for host:port (hashed names
 * too: libssh2 matches them), 0 when not, -1 when it cannot be read.
 * Reads the file: for a decision, not for every probe.
 */
int		 sshcmd_known_has(const char *known_hosts, const char *host,
		    int port);

#endif
