/*
 * The SSH session driver: libssh2 non-blocking, one ev_io, every stage
 * as far as it goes without blocking, then a wait on exactly the
 * directions libssh2 names (curl's lib/vssh/libssh2.c does the same).
 *
 *   connect -> banner -> kex -> hostkey -> auth -> open -> exec -> read
 *   -> close -> wait_closed -> disconnect -> done
 *
 * One setter moves the stage (sshsess_set_stage), one function runs the
 * stage the session is in (sshsess_drive), and every ending goes through
 * sshsess_close(): the done callback runs after it, so a caller may
 * start again from inside its callback.
 *
 * The host key policy is the project's one: never trust on first use; a
 * key matches only when known_hosts or the learned file (keys the
 * failover engine read from a replacement's console) holds it.
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
#include "failoverd/selfcheck.h"
#include "failoverd/sshsess.h"

/* Calls of libssh2_*_free on a dead socket before giving up. */
#define SSHSESS_FREE_TRIES	8
/* One read of the command's output; handed on to on_output. */
#define SSHSESS_CHUNK		16384

enum sshsess_key {
	KEY_MATCH,
	KEY_MISMATCH,		/* another key is known: maybe an attack */
	KEY_UNKNOWN,		/* no key known for this host */
	KEY_NONE,		/* the server showed no host key */
	KEY_FAILED		/* libssh2 could not compare */
};

struct sshsess {
	struct ev_loop		*loop;
	sshsess_output_fn	*on_output;
	sshsess_done_fn		*on_done;
	void			*arg;

	struct sshsess_spec	 spec;		/* strings borrowed */
	char			 host[256];
	int			 port;

	int			 running;
	int			 fd;
	ev_io			 io;
	LIBSSH2_SESSION		*session;
	LIBSSH2_CHANNEL		*channel;
	LIBSSH2_KNOWNHOSTS	*kh;	/* read at start, checked once */
	enum sshsess_stage	 stage;
	int			 banner_seen;	/* a full line came in */
	char			 bind_why[128];
};

static const char *const sshsess_stage_names[] = {
	[SSHSESS_CONNECT] = "connect",
	[SSHSESS_BANNER] = "banner",
	[SSHSESS_KEX] = "kex",
	[SSHSESS_HOSTKEY] = "hostkey",
	[SSHSESS_AUTH] = "auth",
	[SSHSESS_OPEN] = "open",
	[SSHSESS_EXEC] = "exec",
	[SSHSESS_READ] = "read",
	[SSHSESS_CLOSE] = "close",
	[SSHSESS_WAIT_CLOSED] = "wait_closed",
	[SSHSESS_DISCONNECT] = "disconnect",
	[SSHSESS_DONE] = "done"
};

/* libssh2_init is process-wide: one guard for every session. */
static int sshsess_inited;

static void sshsess_drive(struct sshsess *s);

const char *
sshsess_stage_str(enum sshsess_stage st)
{
	if ((size_t)st >= sizeof(sshsess_stage_names) /
	    sizeof(sshsess_stage_names[0]))
		return "unknown";
	return sshsess_stage_names[st];
}

static void
sshsess_set_stage(struct sshsess *s, enum sshsess_stage st)
{
	s->stage = st;
}

/*
 * Our own send and recv: MSG_NOSIGNAL so that a peer gone away is an
 * error, not a SIGPIPE; and recv notes when the banner line has arrived,
 * so that a timeout before it reads "banner" and after it "kex".
 */
static LIBSSH2_SEND_FUNC(sshsess_send)
{
	ssize_t n;

	n = send(socket, buffer, length, flags | MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return n;
}

static LIBSSH2_RECV_FUNC(sshsess_recv)
{
	struct sshsess	*s = *abstract;
	ssize_t		 n;

	n = recv(socket, buffer, length, flags);
	if (n < 0)
		return -errno;
	if (n > 0 && !s->banner_seen && memchr(buffer, '\n', n) != NULL)
		s->banner_seen = 1;
	return n;
}

/* --- the host key policy --- */

static int
sshsess_key_typemask(int hostkey_type)
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
sshsess_known_algos(int typemask)
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

/*
 * known_hosts (may be NULL) and the learned file (may be NULL or
 * missing; unreadable is logged) in one collection. NULL with *bad set
 * when known_hosts cannot be read, with *bad NULL when out of memory.
 */
static LIBSSH2_KNOWNHOSTS *
sshsess_known_read(LIBSSH2_SESSION *session, const char *known_hosts,
    const char *learned, int *bad)
{
	LIBSSH2_KNOWNHOSTS *kh;

	*bad = 0;
	kh = libssh2_knownhost_init(session);
	if (kh == NULL)
		return NULL;
	if (known_hosts != NULL && libssh2_knownhost_readfile(kh,
	    known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
		*bad = 1;
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

/*
 * Before the handshake: ask for the key types kh holds for host:port,
 * as OpenSSH does, so a server with several keys shows one we know.
 */
static void
sshsess_prefer_known(struct sshsess *s)
{
	struct libssh2_knownhost	*node, *prev = NULL;
	char				 bracketed[300], algos[512];
	const char			*a;
	size_t				 off = 0;
	int				 n;

	snprintf(bracketed, sizeof(bracketed), "[%s]:%d", s->host, s->port);
	algos[0] = '\0';
	while (libssh2_knownhost_get(s->kh, &node, prev) == 0) {
		prev = node;
		if (node->name == NULL)
			continue;	/* hashed: cannot tell */
		if (strcmp(node->name, bracketed) != 0 &&
		    !(s->port == 22 && strcmp(node->name, s->host) == 0))
			continue;
		a = sshsess_known_algos(node->typemask);
		if (a == NULL || strstr(algos, a) != NULL)
			continue;
		n = snprintf(algos + off, sizeof(algos) - off, "%s%s",
		    off > 0 ? "," : "", a);
		if (n < 0 || (size_t)n >= sizeof(algos) - off)
			break;
		off += n;
	}
	if (off > 0)
		libssh2_session_method_pref(s->session,
		    LIBSSH2_METHOD_HOSTKEY, algos);
}

static enum sshsess_key
sshsess_check_key(struct sshsess *s)
{
	const char	*key;
	size_t		 keylen;
	int		 type, rc;

	key = libssh2_session_hostkey(s->session, &keylen, &type);
	if (key == NULL)
		return KEY_NONE;
	if (s->kh == NULL)
		return KEY_UNKNOWN;	/* no file: no trusted key */
	/*
	 * libssh2 keeps looking after a mismatching entry, so the old key
	 * of an address in known_hosts does not hide a learned one.
	 */
	rc = libssh2_knownhost_checkp(s->kh, s->host, s->port, key, keylen,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
	    sshsess_key_typemask(type), NULL);
	switch (rc) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		return KEY_MATCH;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		return KEY_MISMATCH;
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		return KEY_UNKNOWN;
	default:
		return KEY_FAILED;
	}
}

/* The host key as OpenSSH prints it: "SHA256:<base64>". */
static void
sshsess_fingerprint(LIBSSH2_SESSION *session, char *out, size_t len)
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

/* --- life of a session --- */

/*
 * The one teardown. The peer gets no goodbye here: freeing a session
 * may want to send, and we never wait, so the socket is shut first and
 * anything libssh2 still tries to say fails at once instead of blocking.
 * A free that says EAGAIN has only moved its own state machine on, so
 * it is called again (a bounded few times) rather than leak.
 */
static void
sshsess_close(struct sshsess *s)
{
	int i;

	ev_io_stop(s->loop, &s->io);
	if (s->fd != -1)
		shutdown(s->fd, SHUT_RDWR);
	if (s->kh != NULL) {
		libssh2_knownhost_free(s->kh);
		s->kh = NULL;
	}
	for (i = 0; s->channel != NULL && i < SSHSESS_FREE_TRIES; i++)
		if (libssh2_channel_free(s->channel) != LIBSSH2_ERROR_EAGAIN)
			s->channel = NULL;
	for (i = 0; s->session != NULL && i < SSHSESS_FREE_TRIES; i++)
		if (libssh2_session_free(s->session) != LIBSSH2_ERROR_EAGAIN)
			s->session = NULL;
	if (s->session != NULL)
		log_warnx("ssh %s:%d: libssh2 session not freed", s->host,
		    s->port);
	s->channel = NULL;
	s->session = NULL;
	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
	s->running = 0;
}

static void
sshsess_result_init(struct sshsess_result *r, enum sshsess_error error,
    enum sshsess_stage stage, const char *detail)
{
	memset(r, 0, sizeof(*r));
	r->error = error;
	r->stage = stage;
	if (detail != NULL)
		snprintf(r->detail, sizeof(r->detail), "%s", detail);
}

/* Ends the session, then says how: the callback may start a new one. */
static void
sshsess_finish(struct sshsess *s, struct sshsess_result *r)
{
	sshsess_close(s);
	s->on_done(s->arg, r);
}

/* Fails in the current stage, with libssh2's words if detail is NULL. */
static void
sshsess_fail(struct sshsess *s, enum sshsess_error error,
    const char *detail)
{
	struct sshsess_result	 r;
	char			*msg = NULL;

	if (detail == NULL && s->session != NULL)
		libssh2_session_last_error(s->session, &msg, NULL, 0);
	sshsess_result_init(&r, error, s->stage, detail != NULL ? detail :
	    msg);
	sshsess_finish(s, &r);
}

static void
sshsess_fail_key(struct sshsess *s, enum sshsess_error error)
{
	char fp[80];

	sshsess_fingerprint(s->session, fp, sizeof(fp));
	sshsess_fail(s, error, fp);
}

/* Waits for what libssh2 (or connect) needs: stop, set, start. */
static void
sshsess_wait(struct sshsess *s, int events)
{
	ev_io_stop(s->loop, &s->io);
	ev_io_set(&s->io, s->fd, events);
	ev_io_start(s->loop, &s->io);
}

/* The directions libssh2_session_block_directions names, never none. */
static void
sshsess_wait_session(struct sshsess *s)
{
	int dir, events = 0;

	dir = libssh2_session_block_directions(s->session);
	if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
		events |= EV_READ;
	if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		events |= EV_WRITE;
	sshsess_wait(s, events != 0 ? events : EV_READ);
}

/*
 * A connect that failed for want of a local resource (EADDRNOTAVAIL: no
 * port left; ENOBUFS, ...) says nothing about the target.
 */
static enum sshsess_error
sshsess_connect_error(int err)
{
	if (err == ECONNREFUSED)
		return SSHSESS_ERR_CONNECT_REFUSED;
	if (selfcheck_errno_is_local(err))
		return SSHSESS_ERR_LOCAL;
	return SSHSESS_ERR_CONNECT;
}

static void
sshsess_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sshsess	*s = w->data;
	int		 err = 0;
	socklen_t	 len = sizeof(err);

	if (s->stage == SSHSESS_CONNECT) {
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			sshsess_fail(s, sshsess_connect_error(err),
			    strerror(err));
			return;
		}
		sshsess_set_stage(s, SSHSESS_BANNER);
	}
	sshsess_drive(s);
}

/* What comes after a stage that went well. */
static enum sshsess_stage
sshsess_next(const struct sshsess *s)
{
	switch (s->stage) {
	case SSHSESS_BANNER:
	case SSHSESS_KEX:
		return SSHSESS_HOSTKEY;
	case SSHSESS_HOSTKEY:
		/* No key: handshake and host key only. */
		if (s->spec.key_file == NULL || s->spec.user == NULL)
			return SSHSESS_DISCONNECT;
		return SSHSESS_AUTH;
	case SSHSESS_AUTH:
		return s->spec.command != NULL ? SSHSESS_OPEN :
		    SSHSESS_DISCONNECT;
	case SSHSESS_OPEN:
		return SSHSESS_EXEC;
	case SSHSESS_EXEC:
		return SSHSESS_READ;
	case SSHSESS_READ:
		return SSHSESS_CLOSE;
	case SSHSESS_CLOSE:
		return SSHSESS_WAIT_CLOSED;
	case SSHSESS_WAIT_CLOSED:
		return SSHSESS_DISCONNECT;
	default:
		return SSHSESS_DONE;
	}
}

/* 0 to go on; -1 after failing the session. */
static int
sshsess_hostkey(struct sshsess *s)
{
	switch (sshsess_check_key(s)) {
	case KEY_MATCH:
		return 0;
	case KEY_NONE:
		sshsess_fail(s, SSHSESS_ERR_HOSTKEY_NONE, "no host key");
		return -1;
	case KEY_MISMATCH:
		sshsess_fail_key(s, SSHSESS_ERR_HOSTKEY_MISMATCH);
		return -1;
	case KEY_UNKNOWN:
		sshsess_fail_key(s, SSHSESS_ERR_HOSTKEY_UNKNOWN);
		return -1;
	default:
		sshsess_fail(s, SSHSESS_ERR_HOSTKEY_CHECK, "check failed");
		return -1;
	}
}

/* 1 done, 0 wait, -1 after failing the session. */
static int
sshsess_auth(struct sshsess *s)
{
	int rc;

	errno = 0;
	rc = libssh2_userauth_publickey_fromfile_ex(s->session,
	    s->spec.user, strlen(s->spec.user), NULL, s->spec.key_file,
	    NULL);
	if (rc == LIBSSH2_ERROR_EAGAIN)
		return 0;
	/* The key file could not be opened for want of a descriptor: the
	 * target did not refuse anything. */
	if (rc == LIBSSH2_ERROR_FILE && errno != EAGAIN &&
	    selfcheck_errno_is_local(errno)) {
		sshsess_fail(s, SSHSESS_ERR_LOCAL, strerror(errno));
		return -1;
	}
	if (rc != 0) {
		sshsess_fail(s, SSHSESS_ERR_AUTH, NULL);
		return -1;
	}
	return 1;
}

/* Both streams are drained, or a full window would stall the command. */
static int
sshsess_read(struct sshsess *s)
{
	char	buf[SSHSESS_CHUNK];
	ssize_t	n, e;

	for (;;) {
		n = libssh2_channel_read(s->channel, buf, sizeof(buf));
		if (n > 0 && s->on_output != NULL)
			s->on_output(s->arg, SSHSESS_STDOUT, buf, (size_t)n);
		e = libssh2_channel_read_stderr(s->channel, buf, sizeof(buf));
		if (e > 0 && s->on_output != NULL)
			s->on_output(s->arg, SSHSESS_STDERR, buf, (size_t)e);
		if (n > 0 || e > 0)
			continue;
		if (libssh2_channel_eof(s->channel))
			return 1;
		if (n == LIBSSH2_ERROR_EAGAIN || n == 0 ||
		    e == LIBSSH2_ERROR_EAGAIN)
			return 0;
		sshsess_fail(s, SSHSESS_ERR_CHANNEL, NULL);
		return -1;
	}
}

/* The command ended: its exit status, or the signal that killed it. */
static void
sshsess_exited(struct sshsess *s, struct sshsess_result *r)
{
	char	*sig = NULL;
	size_t	 len = 0;

	if (libssh2_channel_get_exit_signal(s->channel, &sig, &len, NULL,
	    NULL, NULL, NULL) == 0 && sig != NULL) {
		snprintf(r->signal, sizeof(r->signal), "%.*s", (int)len, sig);
		libssh2_free(s->session, sig);
		return;
	}
	r->exit_status = libssh2_channel_get_exit_status(s->channel);
}

/* Runs the stages as far as they go without blocking. */
static void
sshsess_drive(struct sshsess *s)
{
	struct sshsess_result	 done;
	int			 rc;

	sshsess_result_init(&done, SSHSESS_OK, SSHSESS_DONE, NULL);
	for (;;) {
		switch (s->stage) {
		case SSHSESS_CONNECT:
			goto wait;
		case SSHSESS_BANNER:
		case SSHSESS_KEX:
			rc = libssh2_session_handshake(s->session, s->fd);
			if (s->banner_seen)
				sshsess_set_stage(s, SSHSESS_KEX);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			if (rc != 0) {
				sshsess_fail(s, s->banner_seen ?
				    SSHSESS_ERR_KEX : SSHSESS_ERR_BANNER,
				    NULL);
				return;
			}
			break;
		case SSHSESS_HOSTKEY:
			if (sshsess_hostkey(s) == -1)
				return;
			break;
		case SSHSESS_AUTH:
			rc = sshsess_auth(s);
			if (rc == 0)
				goto wait;
			if (rc == -1)
				return;
			break;
		case SSHSESS_OPEN:
			s->channel = libssh2_channel_open_session(s->session);
			if (s->channel == NULL) {
				if (libssh2_session_last_errno(s->session) ==
				    LIBSSH2_ERROR_EAGAIN)
					goto wait;
				sshsess_fail(s, SSHSESS_ERR_CHANNEL, NULL);
				return;
			}
			break;
		case SSHSESS_EXEC:
			rc = libssh2_channel_exec(s->channel,
			    s->spec.command);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			if (rc != 0) {
				sshsess_fail(s, SSHSESS_ERR_CHANNEL, NULL);
				return;
			}
			break;
		case SSHSESS_READ:
			rc = sshsess_read(s);
			if (rc == 0)
				goto wait;
			if (rc == -1)
				return;
			break;
		case SSHSESS_CLOSE:
			rc = libssh2_channel_close(s->channel);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			break;
		case SSHSESS_WAIT_CLOSED:
			rc = libssh2_channel_wait_closed(s->channel);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			sshsess_exited(s, &done);
			break;
		case SSHSESS_DISCONNECT:
			rc = libssh2_session_disconnect(s->session,
			    "failoverd done");
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			/* A failed goodbye does not fail a good session. */
			sshsess_set_stage(s, SSHSESS_DONE);
			sshsess_finish(s, &done);
			return;
		case SSHSESS_DONE:
			return;
		}
		sshsess_set_stage(s, sshsess_next(s));
	}
wait:
	sshsess_wait_session(s);
}

struct sshsess *
sshsess_new(struct ev_loop *loop, sshsess_output_fn *on_output,
    sshsess_done_fn *on_done, void *arg)
{
	struct sshsess *s;

	if (!sshsess_inited) {
		if (libssh2_init(0) != 0) {
			log_warnx("ssh: libssh2_init failed");
			return NULL;
		}
		sshsess_inited = 1;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->loop = loop;
	s->on_output = on_output;
	s->on_done = on_done;
	s->arg = arg;
	s->fd = -1;
	s->stage = SSHSESS_DONE;
	ev_init(&s->io, sshsess_on_io);
	s->io.data = s;
	return s;
}

void
sshsess_free(struct sshsess *s)
{
	if (s == NULL)
		return;
	if (s->running)
		sshsess_close(s);
	free(s);
}

/* host must be an IP address: a name would need DNS on the loop. */
static int
sshsess_sockaddr(const char *host, int port, struct sockaddr_storage *ss,
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

/*
 * Binds the socket to the source address before connect, as ssh -b
 * does. IP_BIND_ADDRESS_NO_PORT leaves the port to connect(), which
 * picks it for the whole 4-tuple: a bind that picked it would hold a
 * port per check whatever the destination. 0, or -1 with bind_why set.
 */
static int
sshsess_bind(struct sshsess *s, const char *source, int family)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	int			 on = 1;

	if (sshsess_sockaddr(source, 0, &ss, &len) == -1 ||
	    ss.ss_family != family) {
		snprintf(s->bind_why, sizeof(s->bind_why), "bind %s: not an "
		    "address of the target's family", source);
		return -1;
	}
#ifdef IP_BIND_ADDRESS_NO_PORT
	(void)setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on,
	    sizeof(on));
#else
	(void)on;
#endif
	if (bind(s->fd, (struct sockaddr *)&ss, len) == -1) {
		snprintf(s->bind_why, sizeof(s->bind_why), "bind %s: %s",
		    source, strerror(errno));
		return -1;
	}
	return 0;
}

int
sshsess_start(struct sshsess *s, const struct sshsess_spec *spec,
    struct sshsess_result *res)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const char		*fail = NULL;
	enum sshsess_error	 error = SSHSESS_ERR_INTERNAL;
	int			 bad;

	if (s->running)
		sshsess_close(s);
	s->spec = *spec;
	s->port = spec->port > 0 ? spec->port : 22;
	snprintf(s->host, sizeof(s->host), "%s",
	    spec->host != NULL ? spec->host : "");
	s->spec.host = s->host;
	s->banner_seen = 0;
	s->channel = NULL;
	s->running = 1;
	sshsess_set_stage(s, SSHSESS_CONNECT);

	if (sshsess_sockaddr(s->host, s->port, &ss, &sslen) == -1) {
		error = SSHSESS_ERR_ADDRESS;
		fail = "not an IP address";
		goto fail;
	}
	s->session = libssh2_session_init_ex(NULL, NULL, NULL, s);
	if (s->session == NULL) {
		error = SSHSESS_ERR_LOCAL;
		fail = "libssh2_session_init: out of memory";
		goto fail;
	}
	libssh2_session_set_blocking(s->session, 0);
	libssh2_session_callback_set(s->session, LIBSSH2_CALLBACK_SEND,
	    (void *)sshsess_send);
	libssh2_session_callback_set(s->session, LIBSSH2_CALLBACK_RECV,
	    (void *)sshsess_recv);
	/*
	 * The files are read per session (a person may fix them
	 * meanwhile), once: for the key types to ask for, then for the
	 * check. Reading them twice was a tenth of an SSH probe's CPU.
	 */
	if (spec->known_hosts != NULL || spec->learned_hosts != NULL) {
		errno = 0;
		s->kh = sshsess_known_read(s->session, spec->known_hosts,
		    spec->learned_hosts, &bad);
		if (s->kh == NULL) {
			/* Out of descriptors, the file is fine. */
			if (bad && selfcheck_errno_is_local(errno)) {
				error = SSHSESS_ERR_LOCAL;
				fail = strerror(errno);
			} else if (bad) {
				error = SSHSESS_ERR_KNOWN_HOSTS;
				fail = spec->known_hosts;
			} else
				fail = "libssh2_knownhost_init";
			goto fail;
		}
		sshsess_prefer_known(s);
	}
	s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (s->fd == -1) {
		/* No socket: the watchdog's fault, never the target's. */
		error = SSHSESS_ERR_LOCAL;
		fail = strerror(errno);
		goto fail;
	}
	if (spec->source != NULL && sshsess_bind(s, spec->source,
	    ss.ss_family) == -1) {
		/* Binding never reaches the target: our fault alone. */
		error = SSHSESS_ERR_LOCAL;
		fail = s->bind_why;
		goto fail;
	}
	if (connect(s->fd, (struct sockaddr *)&ss, sslen) == -1 &&
	    errno != EINPROGRESS) {
		error = sshsess_connect_error(errno);
		fail = strerror(errno);
		goto fail;
	}
	/* Writable means connected (or failed: SO_ERROR tells). */
	sshsess_wait(s, EV_WRITE);
	return 0;
fail:
	sshsess_result_init(res, error, s->stage, fail);
	sshsess_close(s);
	return -1;
}

enum sshsess_stage
sshsess_abort(struct sshsess *s)
{
	enum sshsess_stage st = s->stage;

	if (s->running)
		sshsess_close(s);
	return st;
}

enum sshsess_stage
sshsess_stage(const struct sshsess *s)
{
	return s->stage;
}

int
sshsess_running(const struct sshsess *s)
{
	return s->running;
}
