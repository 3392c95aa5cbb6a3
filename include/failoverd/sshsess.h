/*
 * sshsess: one SSH session, libssh2 in non-blocking mode on the loop,
 * driven through its stages as curl's lib/vssh/libssh2.c does: each
 * stage goes as far as it can, and on EAGAIN the session waits for
 * exactly the directions libssh2 names.
 *
 *   connect -> banner -> kex -> hostkey -> auth -> open -> exec -> read
 *   -> close -> wait_closed -> disconnect -> done
 *
 * The SSH probe (probe_ssh.c) and the remote commands of the snapshot
 * hooks (sshcmd.c) both run on it, so the two can never disagree on how
 * a session is driven or which host key is trusted (sshcmd.h's policy:
 * never trust on first use).
 *
 * The deadline is the caller's: it calls sshsess_abort(), which says in
 * which stage the session was, so a timeout names it (timeout_in=auth).
 */
#ifndef FAILOVERD_SSHSESS_H
#define FAILOVERD_SSHSESS_H

#include <stddef.h>

#include <ev.h>

enum sshsess_stage {
	SSHSESS_CONNECT,
	SSHSESS_BANNER,		/* no full line from the server yet */
	SSHSESS_KEX,
	SSHSESS_HOSTKEY,
	SSHSESS_AUTH,
	SSHSESS_OPEN,
	SSHSESS_EXEC,
	SSHSESS_READ,
	SSHSESS_CLOSE,
	SSHSESS_WAIT_CLOSED,
	SSHSESS_DISCONNECT,
	SSHSESS_DONE
};

enum sshsess_error {
	SSHSESS_OK,			/* done; exit_status, signal tell */
	SSHSESS_ERR_ADDRESS,		/* host is not an IP address */
	SSHSESS_ERR_LOCAL,		/* our own resource: fds, memory */
	SSHSESS_ERR_CONNECT_REFUSED,
	SSHSESS_ERR_CONNECT,
	SSHSESS_ERR_BANNER,
	SSHSESS_ERR_KEX,
	SSHSESS_ERR_HOSTKEY_NONE,	/* the server showed no key */
	SSHSESS_ERR_KNOWN_HOSTS,	/* known_hosts is unreadable */
	SSHSESS_ERR_HOSTKEY_UNKNOWN,	/* detail: the fingerprint */
	SSHSESS_ERR_HOSTKEY_MISMATCH,	/* detail: the fingerprint */
	SSHSESS_ERR_HOSTKEY_CHECK,	/* libssh2 could not compare */
	SSHSESS_ERR_AUTH,
	SSHSESS_ERR_CHANNEL,		/* open, exec or read failed */
	SSHSESS_ERR_INTERNAL
};

#define SSHSESS_DETAIL_MAX	256

struct sshsess_result {
	enum sshsess_error	 error;
	enum sshsess_stage	 stage;		/* where it ended */
	int			 exit_status;	/* of the command that ran */
	char			 signal[32];	/* "" or what killed it */
	/* libssh2's own words, strerror, or the host key fingerprint. */
	char			 detail[SSHSESS_DETAIL_MAX];
};

/*
 * Borrowed: every string must live until the done callback or
 * sshsess_abort(). Without user or key_file the session ends after the
 * host key check; without command, after authentication.
 */
struct sshsess_spec {
	const char	*host;		/* an IP address: no DNS on the loop */
	int		 port;		/* 0: 22 */
	const char	*user;
	const char	*key_file;
	const char	*known_hosts;	/* may be NULL */
	const char	*learned_hosts;	/* may be NULL or missing */
	const char	*command;
	/* The local address to bind to; NULL: the kernel picks. A bind
	 * that fails is SSHSESS_ERR_LOCAL: it never reached the host. */
	const char	*source;
};

#define SSHSESS_STDOUT	0
#define SSHSESS_STDERR	1

/* Output of the command as it comes: stream is SSHSESS_STDOUT/STDERR. */
typedef void	 sshsess_output_fn(void *arg, int stream, const char *p,
		    size_t n);
/*
 * The session ended. It is torn down before the call, so the callback
 * may start it again or free it.
 */
typedef void	 sshsess_done_fn(void *arg, const struct sshsess_result *r);

struct sshsess;

/* NULL when out of memory or libssh2 cannot be initialised. */
struct sshsess	*sshsess_new(struct ev_loop *loop,
		    sshsess_output_fn *on_output, sshsess_done_fn *on_done,
		    void *arg);
void		 sshsess_free(struct sshsess *s);

/*
 * Starts a session (one at a time: a running one is torn down first).
 * 0, then exactly one done callback from the loop; or -1 with res
 * filled and no callback.
 */
int		 sshsess_start(struct sshsess *s,
		    const struct sshsess_spec *spec,
		    struct sshsess_result *res);
/* Tears down a running session without a callback; its stage. */
enum sshsess_stage sshsess_abort(struct sshsess *s);
enum sshsess_stage sshsess_stage(const struct sshsess *s);
int		 sshsess_running(const struct sshsess *s);
const char	*sshsess_stage_str(enum sshsess_stage st);

#endif
