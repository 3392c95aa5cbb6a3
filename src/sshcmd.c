/*
 * One command over SSH, libssh2 non-blocking on the loop, the way
 * probe_ssh.c drives a check: each stage goes as far as it can and on
 * EAGAIN waits for exactly the directions libssh2 names.
 *
 *   connect -> handshake -> hostkey -> auth -> open -> exec -> read
 *   -> close -> done
 *
 * One ev_timer is the deadline of the whole run and also delivers
 * failures found before anything went on the wire, so the callback
 * never runs inside sshcmd_start(). Every teardown goes through
 * sshcmd_close().
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libssh2.h>
#include <openssl/evp.h>

#include "failoverd/log.h"
#include "failoverd/sshcmd.h"

/* Enough of stderr to tell a person why a hook failed. */
#define SSHCMD_ERR_MAX	512
/* Calls of libssh2_*_free on a dead socket before giving up. */
#define SSHCMD_FREE_TRIES	8

enum sshcmd_stage {
	STAGE_CONNECT,
	STAGE_HANDSHAKE,
	STAGE_HOSTKEY,
	STAGE_AUTH,
	STAGE_OPEN,
	STAGE_EXEC,
	STAGE_READ,
	STAGE_CLOSE,
	STAGE_WAIT_CLOSED,
	STAGE_DONE
};

static const char *const sshcmd_stage_names[] = {
	"connect", "handshake", "hostkey", "auth", "open", "exec", "read",
	"close", "wait_closed", "done"
};

static const char *const sshcmd_status_names[] = {
	[SSHCMD_OK] = "ok",
	[SSHCMD_EXIT] = "exit",
	[SSHCMD_SIGNAL] = "signal",
	[SSHCMD_TIMEOUT] = "timeout",
	[SSHCMD_CONNECT] = "connect",
	[SSHCMD_HANDSHAKE] = "handshake",
	[SSHCMD_HOSTKEY] = "hostkey",
	[SSHCMD_AUTH] = "auth",
	[SSHCMD_CHANNEL] = "channel",
	[SSHCMD_INTERNAL] = "internal"
};

struct sshcmd {
	struct ev_loop		*loop;
	sshcmd_done_cb		 cb;
	void			*arg;
	char			*host;
	int			 port;
	char			*user;
	char			*key_file;
	char			*known_hosts;
	char			*learned_hosts;
	char			*command;

	double			 timeout;
	int			 fd;
	ev_io			 io;
	ev_timer		 timer;
	LIBSSH2_SESSION		*session;
	LIBSSH2_CHANNEL		*channel;
	enum sshcmd_stage	 stage;

	/* A failure found before the loop ran: delivered by the timer. */
	int			 early;
	enum sshcmd_status	 early_status;
	char			 detail[SSHCMD_ERR_MAX + 64];
	char			 err[SSHCMD_ERR_MAX + 1];
	size_t			 errlen;
};

static int sshcmd_inited;

static void sshcmd_drive(struct sshcmd *c);

const char *
sshcmd_status_str(enum sshcmd_status s)
{
	if ((size_t)s >= sizeof(sshcmd_status_names) /
	    sizeof(sshcmd_status_names[0]))
		return "unknown";
	return sshcmd_status_names[s];
}

static LIBSSH2_SEND_FUNC(sshcmd_send)
{
	ssize_t n;

	/* A peer gone away is an error, not a SIGPIPE. */
	n = send(socket, buffer, length, flags | MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return n;
}

static LIBSSH2_RECV_FUNC(sshcmd_recv)
{
	ssize_t n;

	n = recv(socket, buffer, length, flags);
	if (n < 0)
		return -errno;
	return n;
}

/*
 * The one teardown. As in probe_ssh.c, the socket is shut first so that
 * whatever libssh2 still wants to send on free fails at once instead of
 * waiting.
 */
static void
sshcmd_close(struct sshcmd *c)
{
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	if (c->fd != -1)
		shutdown(c->fd, SHUT_RDWR);
	if (sshcmd_session_free(c->session, c->channel) == -1)
		log_warnx("ssh %s:%d: libssh2 session not freed", c->host,
		    c->port);
	c->channel = NULL;
	c->session = NULL;
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
}

static void
sshcmd_destroy(struct sshcmd *c)
{
	sshcmd_close(c);
	free(c->host);
	free(c->user);
	free(c->key_file);
	free(c->known_hosts);
	free(c->learned_hosts);
	free(c->command);
	free(c);
}

void
sshcmd_cancel(struct sshcmd *c)
{
	if (c != NULL)
		sshcmd_destroy(c);
}

static void
sshcmd_finish(struct sshcmd *c, enum sshcmd_status st, int code,
    const char *detail)
{
	sshcmd_done_cb	 cb = c->cb;
	void		*arg = c->arg;
	char		 line[sizeof(c->detail)];

	snprintf(line, sizeof(line), "%s", detail != NULL ? detail : "");
	sshcmd_destroy(c);
	cb(st, code, line, arg);
}

/* Fails naming the stage and libssh2's own words when it has some. */
static void
sshcmd_fail(struct sshcmd *c, enum sshcmd_status st, const char *why)
{
	char	 detail[sizeof(c->detail)];
	char	*msg = NULL;

	if (why == NULL && c->session != NULL)
		libssh2_session_last_error(c->session, &msg, NULL, 0);
	snprintf(detail, sizeof(detail), "%s:%d: %s: %s", c->host, c->port,
	    sshcmd_stage_names[c->stage], why != NULL ? why :
	    (msg != NULL ? msg : "failed"));
	sshcmd_finish(c, st, 0, detail);
}

int
sshcmd_session_events(LIBSSH2_SESSION *session)
{
	int dir, events = 0;

	dir = libssh2_session_block_directions(session);
	if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
		events |= EV_READ;
	if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		events |= EV_WRITE;
	return events != 0 ? events : EV_READ;
}

void
sshcmd_io_wait(struct ev_loop *loop, ev_io *io, int fd, int events)
{
	ev_io_stop(loop, io);
	ev_io_set(io, fd, events);
	ev_io_start(loop, io);
}

static void
sshcmd_wait(struct sshcmd *c, int events)
{
	sshcmd_io_wait(c->loop, &c->io, c->fd, events);
}

static void
sshcmd_wait_session(struct sshcmd *c)
{
	sshcmd_wait(c, sshcmd_session_events(c->session));
}

static void
sshcmd_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sshcmd	*c = w->data;
	char		 why[64];

	if (c->early) {
		sshcmd_finish(c, c->early_status, 0, c->detail);
		return;
	}
	snprintf(why, sizeof(why), "timed out after %gs", c->timeout);
	sshcmd_fail(c, SSHCMD_TIMEOUT, why);
}

static void
sshcmd_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sshcmd	*c = w->data;
	int		 err = 0;
	socklen_t	 len = sizeof(err);

	if (c->stage == STAGE_CONNECT) {
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			sshcmd_fail(c, SSHCMD_CONNECT, strerror(err));
			return;
		}
		c->stage = STAGE_HANDSHAKE;
	}
	sshcmd_drive(c);
}

static int
sshcmd_key_typemask(int hostkey_type)
{
	switch (hostkey_type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA:
		return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_DSS:
		return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519:
		return LIBSSH2_KNOWNHOST_KEY_ED25519;
	default:
		return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
	}
}

static const char *
sshcmd_known_algos(int typemask)
{
	switch (typemask & LIBSSH2_KNOWNHOST_KEY_MASK) {
	case LIBSSH2_KNOWNHOST_KEY_SSHRSA:
		return "rsa-sha2-512,rsa-sha2-256,ssh-rsa";
	case LIBSSH2_KNOWNHOST_KEY_SSHDSS:
		return "ssh-dss";
	case LIBSSH2_KNOWNHOST_KEY_ECDSA_256:
		return "ecdsa-sha2-nistp256";
	case LIBSSH2_KNOWNHOST_KEY_ECDSA_384:
		return "ecdsa-sha2-nistp384";
	case LIBSSH2_KNOWNHOST_KEY_ECDSA_521:
		return "ecdsa-sha2-nistp521";
	case LIBSSH2_KNOWNHOST_KEY_ED25519:
		return "ssh-ed25519";
	default:
		return NULL;
	}
}

LIBSSH2_KNOWNHOSTS *
sshcmd_known_read(LIBSSH2_SESSION *session, const char *known_hosts,
    const char *learned, const char **bad)
{
	LIBSSH2_KNOWNHOSTS *kh;

	*bad = NULL;
	kh = libssh2_knownhost_init(session);
	if (kh == NULL)
		return NULL;
	if (known_hosts != NULL && libssh2_knownhost_readfile(kh,
	    known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
		*bad = known_hosts;
		libssh2_knownhost_free(kh);
		return NULL;
	}
	/* A missing learned file is normal: no failover happened yet. */
	if (learned != NULL && access(learned, R_OK) == 0 &&
	    libssh2_knownhost_readfile(kh, learned,
	    LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0)
		log_warnx("learned host keys %s: unreadable", learned);
	return kh;
}

void
sshcmd_prefer_known(LIBSSH2_SESSION *session, LIBSSH2_KNOWNHOSTS *kh,
    const char *host, int port)
{
	struct libssh2_knownhost	*node, *prev = NULL;
	char				 bracketed[300], algos[512];
	const char			*a;
	size_t				 off = 0;
	int				 n;

	snprintf(bracketed, sizeof(bracketed), "[%s]:%d", host, port);
	algos[0] = '\0';
	while (libssh2_knownhost_get(kh, &node, prev) == 0) {
		prev = node;
		if (node->name == NULL)
			continue;	/* hashed: cannot tell */
		if (strcmp(node->name, bracketed) != 0 &&
		    !(port == 22 && strcmp(node->name, host) == 0))
			continue;
		a = sshcmd_known_algos(node->typemask);
		if (a == NULL || strstr(algos, a) != NULL)
			continue;
		n = snprintf(algos + off, sizeof(algos) - off, "%s%s",
		    off > 0 ? "," : "", a);
		if (n < 0 || (size_t)n >= sizeof(algos) - off)
			break;
		off += n;
	}
	if (off > 0)
		libssh2_session_method_pref(session, LIBSSH2_METHOD_HOSTKEY,
		    algos);
}

int
sshcmd_known_has(const char *known_hosts, const char *host, int port)
{
	LIBSSH2_SESSION		*session;
	LIBSSH2_KNOWNHOSTS	*kh;
	struct libssh2_knownhost *node, *prev = NULL;
	int			 rc = 0, mask;

	session = libssh2_session_init();
	if (session == NULL)
		return -1;
	kh = libssh2_knownhost_init(session);
	if (kh == NULL ||
	    libssh2_knownhost_readfile(kh, known_hosts,
	    LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
		rc = -1;
		goto done;
	}
	/*
	 * libssh2 shows no name of a hashed entry, but checks a name
	 * against it: ask, for each entry's own key, whether it is one
	 * of host's.
	 */
	while (rc == 0 && libssh2_knownhost_get(kh, &node, prev) == 0) {
		prev = node;
		if (node->key == NULL)
			continue;
		mask = LIBSSH2_KNOWNHOST_TYPE_PLAIN |
		    LIBSSH2_KNOWNHOST_KEYENC_BASE64 |
		    (node->typemask & LIBSSH2_KNOWNHOST_KEY_MASK);
		if (libssh2_knownhost_checkp(kh, host, port, node->key,
		    strlen(node->key), mask, NULL) ==
		    LIBSSH2_KNOWNHOST_CHECK_MATCH)
			rc = 1;
	}
done:
	if (kh != NULL)
		libssh2_knownhost_free(kh);
	libssh2_session_free(session);
	return rc;
}

enum sshcmd_hostkey
sshcmd_check_hostkey(LIBSSH2_SESSION *session, LIBSSH2_KNOWNHOSTS *kh,
    const char *host, int port)
{
	const char	*key;
	size_t		 keylen;
	int		 type, rc;

	key = libssh2_session_hostkey(session, &keylen, &type);
	if (key == NULL)
		return SSHCMD_KEY_NONE;
	/*
	 * libssh2 keeps looking after a mismatching entry, so the old key
	 * of an address in known_hosts does not hide a learned one.
	 */
	rc = libssh2_knownhost_checkp(kh, host, port, key, keylen,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
	    sshcmd_key_typemask(type), NULL);
	switch (rc) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		return SSHCMD_KEY_MATCH;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		return SSHCMD_KEY_MISMATCH;
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		return SSHCMD_KEY_UNKNOWN;
	default:
		return SSHCMD_KEY_FAILED;
	}
}

void
sshcmd_fingerprint(LIBSSH2_SESSION *session, char *out, size_t len)
{
	const unsigned char	*hash;
	unsigned char		 b64[64];
	int			 n;

	hash = (const unsigned char *)libssh2_hostkey_hash(session,
	    LIBSSH2_HOSTKEY_HASH_SHA256);
	if (hash == NULL) {
		snprintf(out, len, "?");
		return;
	}
	n = EVP_EncodeBlock(b64, hash, 32);
	/* OpenSSH shows it without the padding. */
	while (n > 0 && b64[n - 1] == '=')
		b64[--n] = '\0';
	snprintf(out, len, "SHA256:%s", b64);
}

int
sshcmd_session_free(LIBSSH2_SESSION *session, LIBSSH2_CHANNEL *channel)
{
	int i;

	/*
	 * On a shut socket each call fails at once; a call that says
	 * EAGAIN has only moved its own state machine on, so call again
	 * (a bounded few times) rather than leak the session.
	 */
	for (i = 0; channel != NULL && i < SSHCMD_FREE_TRIES; i++)
		if (libssh2_channel_free(channel) != LIBSSH2_ERROR_EAGAIN)
			channel = NULL;
	for (i = 0; session != NULL && i < SSHCMD_FREE_TRIES; i++)
		if (libssh2_session_free(session) != LIBSSH2_ERROR_EAGAIN)
			session = NULL;
	return session != NULL ? -1 : 0;
}

static void
sshcmd_prefer(struct sshcmd *c)
{
	LIBSSH2_KNOWNHOSTS	*kh;
	const char		*bad;

	kh = sshcmd_known_read(c->session, c->known_hosts,
	    c->learned_hosts, &bad);
	if (kh == NULL)
		return;		/* the check after the handshake says why */
	sshcmd_prefer_known(c->session, kh, c->host, c->port);
	libssh2_knownhost_free(kh);
}

/* Never trust on first use: only a key that known_hosts has matches. */
static int
sshcmd_hostkey_ok(struct sshcmd *c)
{
	LIBSSH2_KNOWNHOSTS	*kh;
	const char		*bad;
	enum sshcmd_hostkey	 rc;

	kh = sshcmd_known_read(c->session, c->known_hosts,
	    c->learned_hosts, &bad);
	if (kh == NULL) {
		sshcmd_fail(c, SSHCMD_HOSTKEY, bad != NULL ?
		    "known_hosts unreadable" : "knownhost_init");
		return -1;
	}
	rc = sshcmd_check_hostkey(c->session, kh, c->host, c->port);
	libssh2_knownhost_free(kh);
	switch (rc) {
	case SSHCMD_KEY_MATCH:
		return 0;
	case SSHCMD_KEY_NONE:
		sshcmd_fail(c, SSHCMD_HANDSHAKE, "no host key");
		return -1;
	case SSHCMD_KEY_MISMATCH:
		sshcmd_fail(c, SSHCMD_HOSTKEY, "host key mismatch");
		return -1;
	case SSHCMD_KEY_UNKNOWN:
		sshcmd_fail(c, SSHCMD_HOSTKEY, "host key unknown");
		return -1;
	default:
		sshcmd_fail(c, SSHCMD_HOSTKEY, "host key check failed");
		return -1;
	}
}

/* Keeps the first bytes of stderr; the rest is drained and dropped. */
static void
sshcmd_keep_err(struct sshcmd *c, const char *p, ssize_t n)
{
	size_t room = SSHCMD_ERR_MAX - c->errlen;

	if (n <= 0 || room == 0)
		return;
	if ((size_t)n < room)
		room = (size_t)n;
	memcpy(c->err + c->errlen, p, room);
	c->errlen += room;
	c->err[c->errlen] = '\0';
}

static void
sshcmd_exited(struct sshcmd *c)
{
	char	 detail[sizeof(c->detail)], *nl;
	char	*sig = NULL;
	size_t	 len = 0;
	int	 status;

	if (libssh2_channel_get_exit_signal(c->channel, &sig, &len, NULL,
	    NULL, NULL, NULL) == 0 && sig != NULL) {
		snprintf(detail, sizeof(detail), "killed by SIG%.*s",
		    (int)len, sig);
		libssh2_free(c->session, sig);
		sshcmd_finish(c, SSHCMD_SIGNAL, 0, detail);
		return;
	}
	status = libssh2_channel_get_exit_status(c->channel);
	nl = strchr(c->err, '\n');
	if (nl != NULL)
		*nl = '\0';
	if (status != 0) {
		snprintf(detail, sizeof(detail), "exit status %d%s%s", status,
		    c->errlen > 0 ? ": " : "", c->err);
		sshcmd_finish(c, SSHCMD_EXIT, status, detail);
		return;
	}
	sshcmd_finish(c, SSHCMD_OK, 0, "exit status 0");
}

static void
sshcmd_drive(struct sshcmd *c)
{
	char	 sink[4096];
	ssize_t	 n, e;
	int	 rc;

	for (;;) {
		switch (c->stage) {
		case STAGE_CONNECT:
			goto wait;
		case STAGE_HANDSHAKE:
			rc = libssh2_session_handshake(c->session, c->fd);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			if (rc != 0) {
				sshcmd_fail(c, SSHCMD_HANDSHAKE, NULL);
				return;
			}
			c->stage = STAGE_HOSTKEY;
			break;
		case STAGE_HOSTKEY:
			if (sshcmd_hostkey_ok(c) == -1)
				return;
			c->stage = STAGE_AUTH;
			break;
		case STAGE_AUTH:
			rc = libssh2_userauth_publickey_fromfile_ex(
			    c->session, c->user, strlen(c->user), NULL,
			    c->key_file, NULL);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			if (rc != 0) {
				sshcmd_fail(c, SSHCMD_AUTH, NULL);
				return;
			}
			c->stage = STAGE_OPEN;
			break;
		case STAGE_OPEN:
			c->channel = libssh2_channel_open_session(c->session);
			if (c->channel == NULL) {
				if (libssh2_session_last_errno(c->session) ==
				    LIBSSH2_ERROR_EAGAIN)
					goto wait;
				sshcmd_fail(c, SSHCMD_CHANNEL, NULL);
				return;
			}
			c->stage = STAGE_EXEC;
			break;
		case STAGE_EXEC:
			rc = libssh2_channel_exec(c->channel, c->command);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			if (rc != 0) {
				sshcmd_fail(c, SSHCMD_CHANNEL, NULL);
				return;
			}
			c->stage = STAGE_READ;
			break;
		case STAGE_READ:
			/* stdout is not kept; both are drained, or a full
			 * window would stall the command. */
			n = libssh2_channel_read(c->channel, sink,
			    sizeof(sink));
			e = libssh2_channel_read_stderr(c->channel, sink,
			    sizeof(sink));
			sshcmd_keep_err(c, sink, e);
			if (n > 0 || e > 0)
				break;
			if (libssh2_channel_eof(c->channel)) {
				c->stage = STAGE_CLOSE;
				break;
			}
			if (n == LIBSSH2_ERROR_EAGAIN || n == 0 ||
			    e == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			sshcmd_fail(c, SSHCMD_CHANNEL, NULL);
			return;
		case STAGE_CLOSE:
			rc = libssh2_channel_close(c->channel);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			c->stage = STAGE_WAIT_CLOSED;
			break;
		case STAGE_WAIT_CLOSED:
			rc = libssh2_channel_wait_closed(c->channel);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			c->stage = STAGE_DONE;
			sshcmd_exited(c);
			return;
		case STAGE_DONE:
			return;
		}
	}
wait:
	sshcmd_wait_session(c);
}

int
sshcmd_sockaddr(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

static char *
sshcmd_dup(const char *s, int *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*oom = 1;
	return d;
}

/* Reported by the timer at once, from the loop. */
static void
sshcmd_early(struct sshcmd *c, enum sshcmd_status st, const char *why)
{
	c->early = 1;
	c->early_status = st;
	snprintf(c->detail, sizeof(c->detail), "%s:%d: %s",
	    c->host != NULL ? c->host : "?", c->port, why);
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	ev_timer_set(&c->timer, 0., 0.);
	ev_timer_start(c->loop, &c->timer);
}

struct sshcmd *
sshcmd_start(struct ev_loop *loop, const struct sshcmd_spec *spec,
    sshcmd_done_cb cb, void *arg)
{
	struct sshcmd		*c;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 oom = 0;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->loop = loop;
	c->cb = cb;
	c->arg = arg;
	c->fd = -1;
	c->port = spec->port > 0 ? spec->port : 22;
	c->host = sshcmd_dup(spec->host != NULL ? spec->host : "", &oom);
	c->user = sshcmd_dup(spec->user != NULL ? spec->user : "", &oom);
	c->key_file = sshcmd_dup(spec->key_file, &oom);
	c->known_hosts = sshcmd_dup(spec->known_hosts, &oom);
	c->learned_hosts = sshcmd_dup(spec->learned_hosts, &oom);
	c->command = sshcmd_dup(spec->command != NULL ? spec->command : "",
	    &oom);
	if (oom) {
		sshcmd_destroy(c);
		return NULL;
	}
	ev_init(&c->io, sshcmd_on_io);
	c->io.data = c;
	ev_timer_init(&c->timer, sshcmd_on_timer, spec->timeout, 0.);
	c->timeout = spec->timeout;
	c->timer.data = c;
	ev_timer_start(loop, &c->timer);

	if (!sshcmd_inited) {
		if (libssh2_init(0) != 0) {
			sshcmd_early(c, SSHCMD_INTERNAL,
			    "libssh2_init failed");
			return c;
		}
		sshcmd_inited = 1;
	}
	if (c->known_hosts == NULL && c->learned_hosts == NULL) {
		sshcmd_early(c, SSHCMD_HOSTKEY, "no known_hosts to check the "
		    "host key against");
		return c;
	}
	if (c->key_file == NULL) {
		sshcmd_early(c, SSHCMD_AUTH, "no key_file");
		return c;
	}
	if (sshcmd_sockaddr(c->host, c->port, &ss, &sslen) == -1) {
		sshcmd_early(c, SSHCMD_CONNECT, "not an IP address");
		return c;
	}
	c->session = libssh2_session_init_ex(NULL, NULL, NULL, c);
	if (c->session == NULL) {
		sshcmd_early(c, SSHCMD_INTERNAL, "libssh2_session_init");
		return c;
	}
	libssh2_session_set_blocking(c->session, 0);
	libssh2_session_callback_set(c->session, LIBSSH2_CALLBACK_SEND,
	    (void *)sshcmd_send);
	libssh2_session_callback_set(c->session, LIBSSH2_CALLBACK_RECV,
	    (void *)sshcmd_recv);
	sshcmd_prefer(c);
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		sshcmd_early(c, SSHCMD_CONNECT, strerror(errno));
		return c;
	}
	c->stage = STAGE_CONNECT;
	if (connect(c->fd, (struct sockaddr *)&ss, sslen) == -1 &&
	    errno != EINPROGRESS) {
		sshcmd_early(c, SSHCMD_CONNECT, strerror(errno));
		return c;
	}
	/* Writable means connected (or failed: SO_ERROR tells). */
	sshcmd_wait(c, EV_WRITE);
	return c;
}
