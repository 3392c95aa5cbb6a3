/*
 * The SSH probe: one session of sshsess.c per check, whose ending is
 * turned into a probe result here.
 *
 *   connect -> banner -> kex -> hostkey -> auth -> command -> close
 *
 * The deadline is probe.c's; on expiry it calls probe_ssh_abort(), which
 * names the stage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failoverd/alert.h"
#include "failoverd/buf.h"
#include "failoverd/log.h"
#include "failoverd/probe_ssh.h"
#include "failoverd/sshsess.h"

/* Enough of a command's stdout to look for expect_output in. */
#define PROBE_SSH_OUTPUT_MAX	(64 * 1024)

struct probe_ssh {
	struct probe		*probe;
	const char		*service;
	char			 where[300];	/* "host:port", for messages */
	struct sshsess		*sess;
	int			 mismatch_alerted;

	char			*out;
	size_t			 out_len;
};

static void probe_ssh_on_output(void *arg, int stream, const char *p,
    size_t n);
static void probe_ssh_on_done(void *arg, const struct sshsess_result *r);

struct probe_ssh *
probe_ssh_new(struct probe *p, struct ev_loop *loop, const char *service,
    const struct probe_conf *conf, char *err, size_t errlen)
{
	struct probe_ssh *s;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		goto oom;
	s->out = malloc(PROBE_SSH_OUTPUT_MAX + 1);
	if (s->out == NULL)
		goto oom;
	s->sess = sshsess_new(loop, probe_ssh_on_output, probe_ssh_on_done,
	    s);
	if (s->sess == NULL)
		goto oom;
	s->probe = p;
	s->service = service;
	return s;
oom:
	if (s != NULL)
		free(s->out);
	free(s);
	errf(err, errlen, "probe %s: out of memory, or libssh2_init "
	    "failed", conf->name);
	return NULL;
}

void
probe_ssh_free(struct probe_ssh *s)
{
	if (s == NULL)
		return;
	sshsess_free(s->sess);
	free(s->out);
	free(s);
}

/* The session's stages in the probe's words (timeout_in=...). */
static enum probe_stage
probe_ssh_stage_of(enum sshsess_stage st)
{
	switch (st) {
	case SSHSESS_CONNECT:
		return PROBE_STAGE_CONNECT;
	case SSHSESS_BANNER:
		return PROBE_STAGE_BANNER;
	case SSHSESS_KEX:
		return PROBE_STAGE_KEX;
	case SSHSESS_HOSTKEY:
		return PROBE_STAGE_HOSTKEY;
	case SSHSESS_AUTH:
		return PROBE_STAGE_AUTH;
	case SSHSESS_OPEN:
	case SSHSESS_EXEC:
	case SSHSESS_READ:
	case SSHSESS_CLOSE:
	case SSHSESS_WAIT_CLOSED:
		return PROBE_STAGE_COMMAND;
	default:
		return PROBE_STAGE_CLOSE;
	}
}

enum probe_stage
probe_ssh_stage(const struct probe_ssh *s)
{
	return probe_ssh_stage_of(sshsess_stage(s->sess));
}

static enum probe_reason
probe_ssh_reason(enum sshsess_error e)
{
	switch (e) {
	case SSHSESS_OK:
		return PROBE_OK;
	case SSHSESS_ERR_ADDRESS:
		return PROBE_ERR_RESOLVE;
	case SSHSESS_ERR_LOCAL:
		return PROBE_ERR_LOCAL;
	case SSHSESS_ERR_CONNECT_REFUSED:
		return PROBE_ERR_CONNECT_REFUSED;
	case SSHSESS_ERR_CONNECT:
		return PROBE_ERR_CONNECT;
	case SSHSESS_ERR_BANNER:
		return PROBE_ERR_BANNER;
	case SSHSESS_ERR_KEX:
	case SSHSESS_ERR_HOSTKEY_NONE:
		return PROBE_ERR_KEX;
	case SSHSESS_ERR_KNOWN_HOSTS:
	case SSHSESS_ERR_HOSTKEY_CHECK:
		return PROBE_ERR_KNOWN_HOSTS;
	case SSHSESS_ERR_HOSTKEY_UNKNOWN:
		return PROBE_ERR_HOSTKEY_UNKNOWN;
	case SSHSESS_ERR_HOSTKEY_MISMATCH:
		return PROBE_ERR_HOSTKEY_MISMATCH;
	case SSHSESS_ERR_AUTH:
		return PROBE_ERR_AUTH;
	case SSHSESS_ERR_CHANNEL:
		return PROBE_ERR_COMMAND;
	default:
		return PROBE_ERR_INTERNAL;
	}
}

static void
probe_ssh_on_output(void *arg, int stream, const char *p, size_t n)
{
	struct probe_ssh	*s = arg;
	size_t			 room = PROBE_SSH_OUTPUT_MAX - s->out_len;

	if (stream != SSHSESS_STDOUT || room == 0)
		return;
	if (n < room)
		room = n;
	memcpy(s->out + s->out_len, p, room);
	s->out_len += room;
	s->out[s->out_len] = '\0';
}

/* The command ran: its signal, exit status and output decide. */
static void
probe_ssh_judge(struct probe_ssh *s, const struct sshsess_result *r,
    struct probe_result *res)
{
	const struct ssh_conf	*c = &probe_conf(s->probe)->ssh;
	char			 detail[64];

	if (r->signal[0] != '\0') {
		/* Killed by a signal has no exit status: a failure. */
		snprintf(detail, sizeof(detail), "killed by SIG%s",
		    r->signal);
		probe_result_set(res, PROBE_ERR_COMMAND, PROBE_STAGE_COMMAND,
		    0, detail);
	} else if (r->exit_status != 0)
		probe_result_set(res, PROBE_ERR_COMMAND_EXIT,
		    PROBE_STAGE_COMMAND, r->exit_status, NULL);
	else if (c->expect_output != NULL &&
	    strstr(s->out, c->expect_output) == NULL)
		probe_result_set(res, PROBE_ERR_COMMAND_OUTPUT,
		    PROBE_STAGE_COMMAND, 0, c->expect_output);
	else
		probe_result_set(res, PROBE_OK, PROBE_STAGE_CLOSE, 0, NULL);
}

static void
probe_ssh_on_done(void *arg, const struct sshsess_result *r)
{
	struct probe_ssh	*s = arg;
	const struct ssh_conf	*c = &probe_conf(s->probe)->ssh;
	struct probe_result	 res;

	if (r->error == SSHSESS_OK && c->command != NULL &&
	    c->key_file != NULL && c->user != NULL)
		probe_ssh_judge(s, r, &res);
	else
		probe_result_set(&res, probe_ssh_reason(r->error),
		    probe_ssh_stage_of(r->stage), 0,
		    r->detail[0] != '\0' ? r->detail : NULL);
	if (r->error == SSHSESS_ERR_HOSTKEY_MISMATCH) {
		/* It may be an attack: say so once, loudly, per episode. */
		if (!s->mismatch_alerted)
			alert_emit(ALERT_HOSTKEY_MISMATCH, s->service,
			    "probe", probe_name(s->probe), "target", s->where,
			    "fingerprint", r->detail,
			    "known_hosts", c->known_hosts, NULL);
		s->mismatch_alerted = 1;
	} else if (r->stage > SSHSESS_HOSTKEY)
		s->mismatch_alerted = 0;
	probe_done(s->probe, &res);
}

int
probe_ssh_start(struct probe_ssh *s, const struct probe_conf *conf,
    const char *target, struct probe_result *res)
{
	struct sshsess_spec	spec;
	struct sshsess_result	r;

	memset(&spec, 0, sizeof(spec));
	spec.host = target;
	spec.port = conf->ssh.port > 0 ? conf->ssh.port : 22;
	spec.user = conf->ssh.user;
	spec.key_file = conf->ssh.key_file;
	spec.known_hosts = conf->ssh.known_hosts;
	spec.learned_hosts = probe_learned_hosts(s->probe);
	spec.source = conf->source_address;
	spec.command = conf->ssh.key_file != NULL && conf->ssh.user != NULL ?
	    conf->ssh.command : NULL;
	snprintf(s->where, sizeof(s->where), "%s:%d", target, spec.port);
	s->out_len = 0;
	s->out[0] = '\0';
	if (sshsess_start(s->sess, &spec, &r) == 0)
		return 0;
	probe_result_set(res, probe_ssh_reason(r.error),
	    probe_ssh_stage_of(r.stage), 0, r.error == SSHSESS_ERR_ADDRESS ?
	    "ssh probes need an IP address" : r.detail);
	return -1;
}

void
probe_ssh_abort(struct probe_ssh *s, struct probe_result *res)
{
	if (!sshsess_running(s->sess))
		return;
	res->stage = probe_ssh_stage_of(sshsess_abort(s->sess));
}
