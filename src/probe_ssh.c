/*
 * The SSH probe: libssh2 in non-blocking mode, driven from one ev_io, as
 * curl's lib/vssh/libssh2.c drives it: each stage goes as far as it can,
 * and on EAGAIN we wait for exactly the directions libssh2 names.
 *
 *   connect -> banner -> kex -> hostkey -> auth -> command -> close
 *
 * The deadline is probe.c's; on expiry it calls probe_ssh_abort(), which
 * names the stage. Every teardown goes through probe_ssh_close().
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

#include "failoverd/alert.h"
#include "failoverd/log.h"
#include "failoverd/probe_ssh.h"
#include "failoverd/selfcheck.h"
#include "failoverd/sshcmd.h"

/* Enough of a command's stdout to look for expect_output in. */
#define PROBE_SSH_OUTPUT_MAX	(64 * 1024)

/* Sub-steps of PROBE_STAGE_COMMAND. */
enum probe_ssh_cmd {
	CMD_OPEN,
	CMD_EXEC,
	CMD_READ,
	CMD_CLOSE,
	CMD_WAIT_CLOSED,
	CMD_FREE
};

struct probe_ssh {
	struct probe		*probe;
	struct ev_loop		*loop;
	const char		*service;
	char			 where[300];	/* "host:port", for messages */
	char			 host[256];
	int			 port;

	int			 running;
	int			 fd;
	ev_io			 io;
	LIBSSH2_SESSION		*session;
	LIBSSH2_CHANNEL		*channel;
	LIBSSH2_KNOWNHOSTS	*kh;		/* read at start, this check */
	enum probe_stage	 stage;
	enum probe_ssh_cmd	 cmd;
	int			 banner_seen;	/* a full line came in */
	int			 mismatch_alerted;

	char			*out;
	size_t			 out_len;
};

static int probe_ssh_inited;

static void probe_ssh_drive(struct probe_ssh *s);

/*
 * Our own send and recv: MSG_NOSIGNAL so that a peer gone away is an
 * error, not a SIGPIPE; and recv notes when the banner line has arrived,
 * so that a timeout before it reads "banner" and after it "kex".
 */
static LIBSSH2_SEND_FUNC(probe_ssh_send)
{
	ssize_t n;

	n = send(socket, buffer, length, flags | MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return n;
}

static LIBSSH2_RECV_FUNC(probe_ssh_recv)
{
	struct probe_ssh	*s = *abstract;
	ssize_t			 n;

	n = recv(socket, buffer, length, flags);
	if (n < 0)
		return -errno;
	if (n > 0 && !s->banner_seen && memchr(buffer, '\n', n) != NULL)
		s->banner_seen = 1;
	return n;
}

struct probe_ssh *
probe_ssh_new(struct probe *p, struct ev_loop *loop, const char *service,
    const struct probe_conf *conf, char *err, size_t errlen)
{
	struct probe_ssh *s;

	if (!probe_ssh_inited) {
		if (libssh2_init(0) != 0) {
			snprintf(err, errlen, "probe %s: libssh2_init failed",
			    conf->name);
			return NULL;
		}
		probe_ssh_inited = 1;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		goto oom;
	s->out = malloc(PROBE_SSH_OUTPUT_MAX + 1);
	if (s->out == NULL)
		goto oom;
	s->probe = p;
	s->loop = loop;
	s->service = service;
	s->fd = -1;
	ev_init(&s->io, NULL);
	s->io.data = s;
	return s;
oom:
	if (s != NULL)
		free(s->out);
	free(s);
	snprintf(err, errlen, "probe %s: out of memory", conf->name);
	return NULL;
}

/*
 * The one teardown. The peer gets no goodbye here: freeing a session
 * may want to send, and we never wait, so the socket is shut first and
 * anything libssh2 still tries to say fails at once instead of blocking.
 */
static void
probe_ssh_close(struct probe_ssh *s)
{
	ev_io_stop(s->loop, &s->io);
	if (s->fd != -1)
		shutdown(s->fd, SHUT_RDWR);
	if (s->kh != NULL) {
		libssh2_knownhost_free(s->kh);
		s->kh = NULL;
	}
	if (sshcmd_session_free(s->session, s->channel) == -1)
		log_warnx("probe %s/%s: libssh2 session to %s not freed",
		    s->service, probe_name(s->probe), s->where);
	s->channel = NULL;
	s->session = NULL;
	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
	s->running = 0;
}

void
probe_ssh_free(struct probe_ssh *s)
{
	if (s == NULL)
		return;
	if (s->running)
		probe_ssh_close(s);
	free(s->out);
	free(s);
}

enum probe_stage
probe_ssh_stage(const struct probe_ssh *s)
{
	return s->stage;
}

static void
probe_ssh_fail(struct probe_ssh *s, enum probe_reason reason, int code,
    const char *detail)
{
	struct probe_result	 res;
	char			*msg = NULL;

	if (detail == NULL && s->session != NULL)
		libssh2_session_last_error(s->session, &msg, NULL, 0);
	probe_result_set(&res, reason, s->stage, code,
	    detail != NULL ? detail : msg);
	probe_ssh_close(s);
	probe_done(s->probe, &res);
}

static void
probe_ssh_ok(struct probe_ssh *s)
{
	struct probe_result res;

	probe_result_set(&res, PROBE_OK, s->stage, 0, NULL);
	probe_ssh_close(s);
	probe_done(s->probe, &res);
}

/* Waits for what libssh2 (or connect) needs: stop, set, start. */
static void
probe_ssh_wait(struct probe_ssh *s, int events)
{
	sshcmd_io_wait(s->loop, &s->io, s->fd, events);
}

static void
probe_ssh_wait_session(struct probe_ssh *s)
{
	probe_ssh_wait(s, sshcmd_session_events(s->session));
}

/*
 * A connect that failed for want of a local resource (EADDRNOTAVAIL: no
 * port left; ENOBUFS, ...) says nothing about the target.
 */
static enum probe_reason
probe_ssh_connect_reason(int err)
{
	if (err == ECONNREFUSED)
		return PROBE_ERR_CONNECT_REFUSED;
	if (selfcheck_errno_is_local(err))
		return PROBE_ERR_LOCAL;
	return PROBE_ERR_CONNECT;
}

static void
probe_ssh_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct probe_ssh	*s = w->data;
	int			 err = 0;
	socklen_t		 len = sizeof(err);

	if (s->stage == PROBE_STAGE_CONNECT) {
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			probe_ssh_fail(s, probe_ssh_connect_reason(err), 0,
			    strerror(err));
			return;
		}
		s->stage = PROBE_STAGE_BANNER;
	}
	probe_ssh_drive(s);
}

/*
 * Host key against known_hosts, by sshcmd.c's policy (the snapshot hooks
 * use the same); 0 to go on, -1 when it failed.
 */
static int
probe_ssh_check_hostkey(struct probe_ssh *s)
{
	const struct ssh_conf	*c = &probe_conf(s->probe)->ssh;
	const char		*learned = probe_learned_hosts(s->probe);
	LIBSSH2_KNOWNHOSTS	*kh;
	enum sshcmd_hostkey	 rc;
	const char		*bad;
	char			 fp[80];

	if (libssh2_session_hostkey(s->session, NULL, NULL) == NULL) {
		probe_ssh_fail(s, PROBE_ERR_KEX, 0, "no host key");
		return -1;
	}
	if (c->known_hosts == NULL && learned == NULL) {
		/* Never trust on first use: no file, no trusted key. */
		sshcmd_fingerprint(s->session, fp, sizeof(fp));
		probe_ssh_fail(s, PROBE_ERR_HOSTKEY_UNKNOWN, 0, fp);
		return -1;
	}
	/*
	 * probe_ssh_start() read the files for this check already (to ask
	 * for the key types they hold); reading them twice per check was
	 * a tenth of an SSH probe's CPU.
	 */
	kh = s->kh;
	s->kh = NULL;
	if (kh == NULL) {
		/* No known_hosts: only the keys of a replacement, read
		 * from its console by the failover engine. */
		kh = sshcmd_known_read(s->session, NULL, learned, &bad);
		if (kh == NULL) {
			probe_ssh_fail(s, PROBE_ERR_INTERNAL, 0,
			    "knownhost_init");
			return -1;
		}
	}
	rc = sshcmd_check_hostkey(s->session, kh, s->host, s->port);
	libssh2_knownhost_free(kh);
	switch (rc) {
	case SSHCMD_KEY_MATCH:
		s->mismatch_alerted = 0;
		return 0;
	case SSHCMD_KEY_NONE:
		probe_ssh_fail(s, PROBE_ERR_KEX, 0, "no host key");
		return -1;
	case SSHCMD_KEY_MISMATCH:
		sshcmd_fingerprint(s->session, fp, sizeof(fp));
		/* It may be an attack: say so once, loudly, per episode. */
		if (!s->mismatch_alerted)
			alert_emit(ALERT_HOSTKEY_MISMATCH, s->service,
			    "probe", probe_name(s->probe), "target", s->where,
			    "fingerprint", fp,
			    "known_hosts", c->known_hosts, NULL);
		s->mismatch_alerted = 1;
		probe_ssh_fail(s, PROBE_ERR_HOSTKEY_MISMATCH, 0, fp);
		return -1;
	case SSHCMD_KEY_UNKNOWN:
		sshcmd_fingerprint(s->session, fp, sizeof(fp));
		probe_ssh_fail(s, PROBE_ERR_HOSTKEY_UNKNOWN, 0, fp);
		return -1;
	default:
		probe_ssh_fail(s, PROBE_ERR_KNOWN_HOSTS, 0, "check failed");
		return -1;
	}
}

/* A command killed by a signal has no exit status: it is a failure. */
static int
probe_ssh_signalled(struct probe_ssh *s)
{
	char	 detail[64];
	char	*sig = NULL;
	size_t	 len = 0;

	if (libssh2_channel_get_exit_signal(s->channel, &sig, &len, NULL,
	    NULL, NULL, NULL) != 0 || sig == NULL)
		return 0;
	snprintf(detail, sizeof(detail), "killed by SIG%.*s", (int)len, sig);
	libssh2_free(s->session, sig);
	probe_ssh_fail(s, PROBE_ERR_COMMAND, 0, detail);
	return 1;
}

/* The command's steps; returns 1 when done, 0 to wait, -1 on failure. */
static int
probe_ssh_command(struct probe_ssh *s)
{
	const struct ssh_conf	*c = &probe_conf(s->probe)->ssh;
	char			 sink[4096];
	ssize_t			 n, e;
	int			 rc, status;
	size_t			 room;

	for (;;) {
		switch (s->cmd) {
		case CMD_OPEN:
			s->channel = libssh2_channel_open_session(s->session);
			if (s->channel == NULL) {
				if (libssh2_session_last_errno(s->session) ==
				    LIBSSH2_ERROR_EAGAIN)
					return 0;
				probe_ssh_fail(s, PROBE_ERR_COMMAND, 0, NULL);
				return -1;
			}
			s->cmd = CMD_EXEC;
			break;
		case CMD_EXEC:
			rc = libssh2_channel_exec(s->channel,
			    c->command);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				return 0;
			if (rc != 0) {
				probe_ssh_fail(s, PROBE_ERR_COMMAND, 0, NULL);
				return -1;
			}
			s->out_len = 0;
			s->out[0] = '\0';
			s->cmd = CMD_READ;
			break;
		case CMD_READ:
			room = PROBE_SSH_OUTPUT_MAX - s->out_len;
			if (room > 0)
				n = libssh2_channel_read(s->channel,
				    s->out + s->out_len, room);
			else
				n = libssh2_channel_read(s->channel, sink,
				    sizeof(sink));
			if (n > 0 && room > 0) {
				s->out_len += n;
				s->out[s->out_len] = '\0';
			}
			/* Drain stderr too, or its window stalls the exec. */
			e = libssh2_channel_read_stderr(s->channel, sink,
			    sizeof(sink));
			if (n > 0 || e > 0)
				break;
			if (libssh2_channel_eof(s->channel)) {
				s->cmd = CMD_CLOSE;
				break;
			}
			if (n == LIBSSH2_ERROR_EAGAIN || n == 0 ||
			    e == LIBSSH2_ERROR_EAGAIN)
				return 0;
			probe_ssh_fail(s, PROBE_ERR_COMMAND, 0, NULL);
			return -1;
		case CMD_CLOSE:
			rc = libssh2_channel_close(s->channel);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				return 0;
			s->cmd = CMD_WAIT_CLOSED;
			break;
		case CMD_WAIT_CLOSED:
			rc = libssh2_channel_wait_closed(s->channel);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				return 0;
			if (probe_ssh_signalled(s))
				return -1;
			status = libssh2_channel_get_exit_status(s->channel);
			if (status != 0) {
				probe_ssh_fail(s, PROBE_ERR_COMMAND_EXIT,
				    status, NULL);
				return -1;
			}
			if (c->expect_output != NULL &&
			    strstr(s->out, c->expect_output) ==
			    NULL) {
				probe_ssh_fail(s, PROBE_ERR_COMMAND_OUTPUT, 0,
				    c->expect_output);
				return -1;
			}
			s->cmd = CMD_FREE;
			break;
		case CMD_FREE:
			rc = libssh2_channel_free(s->channel);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				return 0;
			s->channel = NULL;
			return 1;
		}
	}
}

/* Runs the stages as far as they go without blocking. */
static void
probe_ssh_drive(struct probe_ssh *s)
{
	const struct ssh_conf	*c = &probe_conf(s->probe)->ssh;
	int			 rc;

	for (;;) {
		switch (s->stage) {
		case PROBE_STAGE_BANNER:
		case PROBE_STAGE_KEX:
			rc = libssh2_session_handshake(s->session, s->fd);
			if (s->banner_seen)
				s->stage = PROBE_STAGE_KEX;
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			if (rc != 0) {
				probe_ssh_fail(s, s->banner_seen ?
				    PROBE_ERR_KEX : PROBE_ERR_BANNER, 0, NULL);
				return;
			}
			s->stage = PROBE_STAGE_HOSTKEY;
			break;
		case PROBE_STAGE_HOSTKEY:
			if (probe_ssh_check_hostkey(s) == -1)
				return;
			s->stage = PROBE_STAGE_AUTH;
			break;
		case PROBE_STAGE_AUTH:
			if (c->key_file == NULL || c->user == NULL) {
				/* No key: handshake and host key only. */
				s->stage = PROBE_STAGE_CLOSE;
				break;
			}
			errno = 0;
			rc = libssh2_userauth_publickey_fromfile_ex(
			    s->session, c->user, strlen(c->user), NULL,
			    c->key_file, NULL);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			/* The key file could not be opened for want of a
			 * descriptor: the target did not refuse anything. */
			if (rc == LIBSSH2_ERROR_FILE && errno != EAGAIN &&
			    selfcheck_errno_is_local(errno)) {
				probe_ssh_fail(s, PROBE_ERR_LOCAL, 0,
				    strerror(errno));
				return;
			}
			if (rc != 0) {
				probe_ssh_fail(s, PROBE_ERR_AUTH, 0, NULL);
				return;
			}
			s->cmd = CMD_OPEN;
			s->stage = c->command != NULL ?
			    PROBE_STAGE_COMMAND :
			    PROBE_STAGE_CLOSE;
			break;
		case PROBE_STAGE_COMMAND:
			rc = probe_ssh_command(s);
			if (rc == 0)
				goto wait;
			if (rc == -1)
				return;
			s->stage = PROBE_STAGE_CLOSE;
			break;
		case PROBE_STAGE_CLOSE:
			rc = libssh2_session_disconnect(s->session,
			    "failoverd check done");
			if (rc == LIBSSH2_ERROR_EAGAIN)
				goto wait;
			/* A failed goodbye does not fail a good check. */
			probe_ssh_ok(s);
			return;
		default:
			probe_ssh_fail(s, PROBE_ERR_INTERNAL, 0, "bad stage");
			return;
		}
	}
wait:
	probe_ssh_wait_session(s);
}

int
probe_ssh_start(struct probe_ssh *s, const struct probe_conf *conf,
    const char *target, struct probe_result *res)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	LIBSSH2_KNOWNHOSTS	*kh;
	const char		*fail = NULL;
	enum probe_reason	 reason = PROBE_ERR_INTERNAL;

	if (s->running)
		probe_ssh_close(s);
	s->port = conf->ssh.port > 0 ? conf->ssh.port : 22;
	snprintf(s->host, sizeof(s->host), "%s", target);
	snprintf(s->where, sizeof(s->where), "%s:%d", target, s->port);
	s->stage = PROBE_STAGE_CONNECT;
	s->banner_seen = 0;
	s->channel = NULL;
	s->running = 1;

	if (sshcmd_sockaddr(target, s->port, &ss, &sslen) == -1) {
		reason = PROBE_ERR_RESOLVE;
		fail = "ssh probes need an IP address";
		goto fail;
	}
	s->session = libssh2_session_init_ex(NULL, NULL, NULL, s);
	if (s->session == NULL) {
		reason = PROBE_ERR_LOCAL;
		fail = "libssh2_session_init: out of memory";
		goto fail;
	}
	libssh2_session_set_blocking(s->session, 0);
	libssh2_session_callback_set(s->session, LIBSSH2_CALLBACK_SEND,
	    (void *)probe_ssh_send);
	libssh2_session_callback_set(s->session, LIBSSH2_CALLBACK_RECV,
	    (void *)probe_ssh_recv);
	/* The file is read per check: a person may fix it meanwhile. */
	if (conf->ssh.known_hosts != NULL) {
		errno = 0;
		kh = sshcmd_known_read(s->session, conf->ssh.known_hosts,
		    probe_learned_hosts(s->probe), &fail);
		if (kh == NULL) {
			/* Out of descriptors, the file is fine. */
			if (fail != NULL && selfcheck_errno_is_local(errno)) {
				reason = PROBE_ERR_LOCAL;
				fail = strerror(errno);
			} else if (fail != NULL)
				reason = PROBE_ERR_KNOWN_HOSTS;
			else
				fail = "libssh2_knownhost_init";
			goto fail;
		}
		sshcmd_prefer_known(s->session, kh, s->host, s->port);
		/* Kept for the host key check: one read per check. */
		s->kh = kh;
	}

	s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (s->fd == -1) {
		/* No socket: the watchdog's fault, never the target's. */
		reason = PROBE_ERR_LOCAL;
		fail = strerror(errno);
		goto fail;
	}
	ev_set_cb(&s->io, probe_ssh_on_io);
	if (connect(s->fd, (struct sockaddr *)&ss, sslen) == 0) {
		s->stage = PROBE_STAGE_BANNER;
		probe_ssh_wait(s, EV_WRITE);
		return 0;
	}
	if (errno != EINPROGRESS) {
		reason = probe_ssh_connect_reason(errno);
		fail = strerror(errno);
		goto fail;
	}
	probe_ssh_wait(s, EV_WRITE);
	return 0;
fail:
	probe_result_set(res, reason, s->stage, 0, fail);
	probe_ssh_close(s);
	return -1;
}

void
probe_ssh_abort(struct probe_ssh *s, struct probe_result *res)
{
	if (!s->running)
		return;
	res->stage = s->stage;
	probe_ssh_close(s);
}
