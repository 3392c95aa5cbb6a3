/*
 * One command over SSH on the loop: a session of sshsess.c with the
 * command's deadline and the first line of its stderr.
 *
 * One ev_timer is the deadline of the whole run and also delivers
 * failures found before anything went on the wire, so the callback
 * never runs inside sshcmd_start(). Every ending goes through
 * sshcmd_finish().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libssh2.h>

#include "failoverd/log.h"
#include "failoverd/sshcmd.h"
#include "failoverd/sshsess.h"

/* Enough of stderr to tell a person why a hook failed. */
#define SSHCMD_ERR_MAX	512

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
	char			*source;
	char			*command;

	double			 timeout;
	ev_timer		 timer;
	struct sshsess		*sess;

	/* A failure found before the loop ran: delivered by the timer. */
	int			 early;
	enum sshcmd_status	 early_status;
	char			 detail[SSHCMD_ERR_MAX + 64];
	char			 err[SSHCMD_ERR_MAX + 1];
	size_t			 errlen;
};

const char *
sshcmd_status_str(enum sshcmd_status s)
{
	if ((size_t)s >= sizeof(sshcmd_status_names) /
	    sizeof(sshcmd_status_names[0]))
		return "unknown";
	return sshcmd_status_names[s];
}

static void
sshcmd_destroy(struct sshcmd *c)
{
	ev_timer_stop(c->loop, &c->timer);
	sshsess_free(c->sess);
	free(c->host);
	free(c->user);
	free(c->key_file);
	free(c->known_hosts);
	free(c->learned_hosts);
	free(c->source);
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

/* Fails naming the place and the stage: "10.0.0.5:22: auth: ...". */
static void
sshcmd_fail(struct sshcmd *c, enum sshcmd_status st,
    enum sshsess_stage stage, const char *what, const char *why)
{
	char detail[sizeof(c->detail)];

	snprintf(detail, sizeof(detail), "%s:%d: %s: %s%s%s%s", c->host,
	    c->port, sshsess_stage_str(stage), what,
	    why != NULL && *why != '\0' ? " (" : "",
	    why != NULL ? why : "", why != NULL && *why != '\0' ? ")" : "");
	sshcmd_finish(c, st, 0, detail);
}

static void
sshcmd_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sshcmd		*c = w->data;
	enum sshsess_stage	 stage;
	char			 why[64];

	if (c->early) {
		sshcmd_finish(c, c->early_status, 0, c->detail);
		return;
	}
	stage = sshsess_abort(c->sess);
	snprintf(why, sizeof(why), "timed out after %gs", c->timeout);
	sshcmd_fail(c, SSHCMD_TIMEOUT, stage, why, NULL);
}

/* Keeps the first bytes of stderr; the rest is drained and dropped. */
static void
sshcmd_on_output(void *arg, int stream, const char *p, size_t n)
{
	struct sshcmd	*c = arg;
	size_t		 room = SSHCMD_ERR_MAX - c->errlen;

	if (stream != SSHSESS_STDERR || room == 0)
		return;
	if (n < room)
		room = n;
	memcpy(c->err + c->errlen, p, room);
	c->errlen += room;
	c->err[c->errlen] = '\0';
}

static void
sshcmd_exited(struct sshcmd *c, const struct sshsess_result *r)
{
	char	 detail[sizeof(c->detail)], *nl;

	if (r->signal[0] != '\0') {
		snprintf(detail, sizeof(detail), "killed by SIG%s",
		    r->signal);
		sshcmd_finish(c, SSHCMD_SIGNAL, 0, detail);
		return;
	}
	nl = strchr(c->err, '\n');
	if (nl != NULL)
		*nl = '\0';
	if (r->exit_status != 0) {
		snprintf(detail, sizeof(detail), "exit status %d%s%s",
		    r->exit_status, c->errlen > 0 ? ": " : "", c->err);
		sshcmd_finish(c, SSHCMD_EXIT, r->exit_status, detail);
		return;
	}
	sshcmd_finish(c, SSHCMD_OK, 0, "exit status 0");
}

/* The session's ending, in the words of a hook's status. */
static void
sshcmd_on_done(void *arg, const struct sshsess_result *r)
{
	struct sshcmd		*c = arg;
	enum sshcmd_status	 st;
	const char		*what = "failed";

	switch (r->error) {
	case SSHSESS_OK:
		sshcmd_exited(c, r);
		return;
	case SSHSESS_ERR_ADDRESS:
	case SSHSESS_ERR_CONNECT_REFUSED:
	case SSHSESS_ERR_CONNECT:
		st = SSHCMD_CONNECT;
		break;
	case SSHSESS_ERR_LOCAL:
		st = r->stage == SSHSESS_AUTH ? SSHCMD_AUTH :
		    r->stage == SSHSESS_CONNECT ? SSHCMD_CONNECT :
		    SSHCMD_INTERNAL;
		break;
	case SSHSESS_ERR_BANNER:
	case SSHSESS_ERR_KEX:
	case SSHSESS_ERR_HOSTKEY_NONE:
		st = SSHCMD_HANDSHAKE;
		break;
	case SSHSESS_ERR_KNOWN_HOSTS:
		st = SSHCMD_HOSTKEY;
		what = "known_hosts unreadable";
		break;
	case SSHSESS_ERR_HOSTKEY_UNKNOWN:
		st = SSHCMD_HOSTKEY;
		what = "host key unknown";
		break;
	case SSHSESS_ERR_HOSTKEY_MISMATCH:
		st = SSHCMD_HOSTKEY;
		what = "host key mismatch";
		break;
	case SSHSESS_ERR_HOSTKEY_CHECK:
		st = SSHCMD_HOSTKEY;
		what = "host key check failed";
		break;
	case SSHSESS_ERR_AUTH:
		st = SSHCMD_AUTH;
		break;
	case SSHSESS_ERR_CHANNEL:
		st = SSHCMD_CHANNEL;
		break;
	default:
		st = SSHCMD_INTERNAL;
		break;
	}
	sshcmd_fail(c, st, r->stage, what, r->detail);
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

/* Keeps the first bytes of stderr; the rest is drained and dropped. */

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
	ev_timer_stop(c->loop, &c->timer);
	ev_timer_set(&c->timer, 0., 0.);
	ev_timer_start(c->loop, &c->timer);
}

struct sshcmd *
sshcmd_start(struct ev_loop *loop, const struct sshcmd_spec *spec,
    sshcmd_done_cb cb, void *arg)
{
	struct sshcmd		*c;
	struct sshsess_spec	 ss;
	struct sshsess_result	 res;
	int			 oom = 0;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->loop = loop;
	c->cb = cb;
	c->arg = arg;
	c->port = spec->port > 0 ? spec->port : 22;
	c->host = sshcmd_dup(spec->host != NULL ? spec->host : "", &oom);
	c->user = sshcmd_dup(spec->user != NULL ? spec->user : "", &oom);
	c->key_file = sshcmd_dup(spec->key_file, &oom);
	c->known_hosts = sshcmd_dup(spec->known_hosts, &oom);
	c->learned_hosts = sshcmd_dup(spec->learned_hosts, &oom);
	c->source = sshcmd_dup(spec->source, &oom);
	c->command = sshcmd_dup(spec->command != NULL ? spec->command : "",
	    &oom);
	ev_timer_init(&c->timer, sshcmd_on_timer, spec->timeout, 0.);
	c->timeout = spec->timeout;
	c->timer.data = c;
	if (oom) {
		sshcmd_destroy(c);
		return NULL;
	}
	ev_timer_start(loop, &c->timer);

	/* Never trust on first use: a command needs a key to check. */
	if (c->known_hosts == NULL && c->learned_hosts == NULL) {
		sshcmd_early(c, SSHCMD_HOSTKEY, "no known_hosts to check the "
		    "host key against");
		return c;
	}
	if (c->key_file == NULL) {
		sshcmd_early(c, SSHCMD_AUTH, "no key_file");
		return c;
	}
	c->sess = sshsess_new(loop, sshcmd_on_output, sshcmd_on_done, c);
	if (c->sess == NULL) {
		sshcmd_early(c, SSHCMD_INTERNAL, "ssh session: out of memory "
		    "or libssh2_init failed");
		return c;
	}
	memset(&ss, 0, sizeof(ss));
	ss.host = c->host;
	ss.port = c->port;
	ss.user = c->user;
	ss.key_file = c->key_file;
	ss.known_hosts = c->known_hosts;
	ss.learned_hosts = c->learned_hosts;
	ss.source = c->source;
	ss.command = c->command;
	if (sshsess_start(c->sess, &ss, &res) == -1) {
		enum sshcmd_status st = SSHCMD_INTERNAL;

		if (res.error == SSHSESS_ERR_ADDRESS ||
		    res.error == SSHSESS_ERR_CONNECT ||
		    res.error == SSHSESS_ERR_CONNECT_REFUSED ||
		    res.error == SSHSESS_ERR_LOCAL)
			st = SSHCMD_CONNECT;
		else if (res.error == SSHSESS_ERR_KNOWN_HOSTS)
			st = SSHCMD_HOSTKEY;
		sshcmd_early(c, st, res.error == SSHSESS_ERR_KNOWN_HOSTS ?
		    "known_hosts unreadable" : res.detail);
		return c;
	}
	return c;
}
