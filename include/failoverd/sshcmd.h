/*
 * sshcmd: run one command over SSH without blocking the loop (libssh2 in
 * non-blocking mode, driven like probe_ssh: connect, handshake, host key
 * against known_hosts, public-key auth, exec, read, exit status).
 *
 * The snapshot hooks use it (fsfreeze before, thaw after). One deadline
 * covers every stage. The result always arrives through the callback,
 * from the loop, never from inside sshcmd_start().
 */
#ifndef FAILOVERD_SSHCMD_H
#define FAILOVERD_SSHCMD_H

#include <sys/socket.h>

#include <ev.h>
#include <libssh2.h>

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
 * --- one host key policy for every SSH connection failoverd makes ---
 * probe_ssh.c uses these too, so a check and a hook never disagree on
 * which key is trusted. Never trust on first use: a key matches only
 * when known_hosts or the learned file (keys the failover engine read
 * from a replacement's console) has it.
 */
enum sshcmd_hostkey {
	SSHCMD_KEY_MATCH,
	SSHCMD_KEY_MISMATCH,	/* another key is known: maybe an attack */
	SSHCMD_KEY_UNKNOWN,	/* no key known for this host */
	SSHCMD_KEY_NONE,	/* the server showed no host key */
	SSHCMD_KEY_FAILED	/* libssh2 could not compare */
};

/*
 * known_hosts (may be NULL) and the learned file (may be NULL or
 * missing; unreadable is logged) in one collection. NULL with *bad set
 * to known_hosts when it cannot be read, with *bad NULL when out of
 * memory.
 */
LIBSSH2_KNOWNHOSTS *sshcmd_known_read(LIBSSH2_SESSION *session,
		    const char *known_hosts, const char *learned,
		    const char **bad);
/*
 * 1 when the known_hosts file holds a key for host:port (hashed names
 * too: libssh2 matches them), 0 when not, -1 when it cannot be read.
 * Reads the file: for a decision, not for every probe.
 */
int		 sshcmd_known_has(const char *known_hosts, const char *host,
		    int port);
/*
 * Before the handshake: ask for the key types kh holds for host:port,
 * as OpenSSH does, so a server with several keys shows one we know.
 */
void		 sshcmd_prefer_known(LIBSSH2_SESSION *session,
		    LIBSSH2_KNOWNHOSTS *kh, const char *host, int port);
/* After the handshake: the session's key against kh. */
enum sshcmd_hostkey sshcmd_check_hostkey(LIBSSH2_SESSION *session,
		    LIBSSH2_KNOWNHOSTS *kh, const char *host, int port);
/*
 * The libev events a non-blocking session waits for after EAGAIN
 * (libssh2_session_block_directions), never none.
 */
int		 sshcmd_session_events(LIBSSH2_SESSION *session);
/*
 * Points io at fd for events: stop, set, start (an active watcher is
 * never re-initialised).
 */
void		 sshcmd_io_wait(struct ev_loop *loop, ev_io *io, int fd,
		    int events);
/* The host key as OpenSSH prints it: "SHA256:<base64>". */
void		 sshcmd_fingerprint(LIBSSH2_SESSION *session, char *out,
		    size_t len);
/*
 * Frees a channel (may be NULL) and its session after the socket was
 * shut, without waiting; -1 when libssh2 would not let go.
 */
int		 sshcmd_session_free(LIBSSH2_SESSION *session,
		    LIBSSH2_CHANNEL *channel);
/* host must be an IP address: a name would need DNS on the loop. */
int		 sshcmd_sockaddr(const char *host, int port,
		    struct sockaddr_storage *ss, socklen_t *len);

#endif
