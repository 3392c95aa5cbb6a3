/*
 * The running daemon: configuration in force, services, control socket.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failoverd/alert.h"
#include "failoverd/buf.h"
#include "failoverd/control.h"
#include "failoverd/curlev.h"
#include "failoverd/daemon.h"
#include "failoverd/log.h"
#include "failoverd/service.h"

#define DAEMON_CONF_ERRLEN	8192

struct daemon {
	struct ev_loop		*loop;
	struct config		*conf;
	struct curlev		*curl;
	struct control		*control;
	struct service		**services;
	size_t			 nservices;
	struct service_env	 env;
	void			(*reload_hook)(void *);
	void			*reload_arg;
};

static int daemon_on_request(void *arg, const struct control_peer *peer,
    int argc, char **argv, struct buf *out);

static struct service *
daemon_find(struct daemon *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->nservices; i++)
		if (strcmp(service_name(d->services[i]), name) == 0)
			return d->services[i];
	return NULL;
}

static int
daemon_open_control(struct daemon *d, const struct config *conf, char *err,
    size_t errlen)
{
	struct control *ctl;

	ctl = control_new(d->loop, conf->control_socket, conf->control_mode,
	    conf->control_group, daemon_on_request, d, err, errlen);
	if (ctl == NULL)
		return -1;
	control_free(d->control);
	d->control = ctl;
	return 0;
}

/*
 * Builds the service list for conf: services that exist by name adopt
 * their new definition (keeping what did not change), new ones start,
 * vanished ones stop. Only called with a fully validated conf.
 */
static int
daemon_apply(struct daemon *d, struct config *conf)
{
	struct service	**next, *svc;
	size_t		  i, j;

	next = calloc(conf->nservices + 1, sizeof(*next));
	if (next == NULL)
		return -1;
	for (i = 0; i < conf->nservices; i++) {
		svc = daemon_find(d, conf->services[i].name);
		if (svc != NULL) {
			service_update(svc, &conf->services[i]);
		} else {
			svc = service_new(&d->env, &conf->services[i]);
			if (svc == NULL)
				goto fail;
			service_start(svc);
		}
		next[i] = svc;
	}
	for (i = 0; i < d->nservices; i++) {
		for (j = 0; j < conf->nservices; j++)
			if (next[j] == d->services[i])
				break;
		if (j == conf->nservices) {
			log_info("service %s removed from the configuration, "
			    "no longer watched",
			    service_name(d->services[i]));
			service_free(d->services[i]);
		}
	}
	free(d->services);
	d->services = next;
	d->nservices = conf->nservices;
	return 0;
fail:
	/* New services made so far go; adopted ones stay with d. */
	for (j = 0; j < i; j++)
		if (daemon_find(d, service_name(next[j])) != next[j])
			service_free(next[j]);
	free(next);
	return -1;
}

static int
daemon_check_state_dir(const struct config *conf, char *err, size_t errlen)
{
	struct stat st;

	if (stat(conf->state_dir, &st) == -1) {
		snprintf(err, errlen, "state_dir %s: %s", conf->state_dir,
		    strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state_dir %s: not a directory",
		    conf->state_dir);
		return -1;
	}
	if (access(conf->state_dir, W_OK) == -1) {
		snprintf(err, errlen, "state_dir %s: not writable: %s",
		    conf->state_dir, strerror(errno));
		return -1;
	}
	return 0;
}

struct daemon *
daemon_new(struct ev_loop *loop, struct config *conf, char *err,
    size_t errlen)
{
	struct daemon *d;

	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->loop = loop;
	if (daemon_check_state_dir(conf, err, errlen) == -1)
		goto fail;
	d->curl = curlev_new(loop);
	if (d->curl == NULL) {
		snprintf(err, errlen, "curl multi handle: out of memory");
		goto fail;
	}
	d->env.loop = loop;
	d->env.curl = d->curl;
	if (daemon_open_control(d, conf, err, errlen) == -1)
		goto fail;
	if (daemon_apply(d, conf) == -1) {
		snprintf(err, errlen, "cannot create the services");
		goto fail;
	}
	d->conf = conf;
	return d;
fail:
	control_free(d->control);
	curlev_free(d->curl);
	free(d);
	return NULL;
}

void
daemon_free(struct daemon *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->nservices; i++)
		service_free(d->services[i]);
	free(d->services);
	control_free(d->control);
	curlev_free(d->curl);
	conf_free(d->conf);
	free(d);
}

int
daemon_reload(struct daemon *d)
{
	struct config	*conf;
	char		*err, cerr[512];
	char		*line, *save = NULL;

	err = calloc(1, DAEMON_CONF_ERRLEN);
	if (err == NULL)
		return -1;
	conf = conf_load(d->conf->path, err, DAEMON_CONF_ERRLEN);
	if (conf == NULL) {
		alert_emit(ALERT_CONFIG_REJECTED, NULL, "file", d->conf->path,
		    "action", "kept the running configuration", NULL);
		for (line = strtok_r(err, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			log_warnx("config: %s", line);
		free(err);
		return -1;
	}
	free(err);
	if (daemon_check_state_dir(conf, cerr, sizeof(cerr)) == -1)
		goto reject;
	if (strcmp(conf->control_socket, d->conf->control_socket) != 0 ||
	    conf->control_mode != d->conf->control_mode ||
	    (conf->control_group == NULL) !=
	    (d->conf->control_group == NULL) ||
	    (conf->control_group != NULL &&
	    strcmp(conf->control_group, d->conf->control_group) != 0)) {
		if (daemon_open_control(d, conf, cerr, sizeof(cerr)) == -1)
			goto reject;
	}
	if (daemon_apply(d, conf) == -1) {
		snprintf(cerr, sizeof(cerr), "cannot create the services");
		goto reject;
	}
	log_set_facility(conf->syslog_facility);
	log_set_debug(conf->debug);
	conf_free(d->conf);
	d->conf = conf;
	return 0;
reject:
	alert_emit(ALERT_CONFIG_REJECTED, NULL, "file", conf->path,
	    "reason", cerr, "action", "kept the running configuration", NULL);
	conf_free(conf);
	return -1;
}

const struct config *
daemon_config(const struct daemon *d)
{
	return d->conf;
}

void
daemon_set_reload_hook(struct daemon *d, void (*hook)(void *), void *arg)
{
	d->reload_hook = hook;
	d->reload_arg = arg;
}

void
daemon_status_line(const struct daemon *d, char *out, size_t len)
{
	size_t	counts[SERVICE_DOWN + 1] = { 0 };
	size_t	i;

	for (i = 0; i < d->nservices; i++)
		counts[service_verdict(d->services[i])]++;
	snprintf(out, len, "%zu services: %zu healthy, %zu degraded, "
	    "%zu down, %zu unknown", d->nservices, counts[SERVICE_HEALTHY],
	    counts[SERVICE_DEGRADED], counts[SERVICE_DOWN],
	    counts[SERVICE_UNKNOWN]);
}

/* The control commands. */

static int
daemon_has_flag(int argc, char **argv, const char *flag)
{
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], flag) == 0)
			return 1;
	return 0;
}

static int
daemon_cmd_status(struct daemon *d, int argc, char **argv, struct buf *out)
{
	const char	*only = NULL;
	int		 json = daemon_has_flag(argc, argv, "--json");
	int		 i, first = 1;
	size_t		 n;

	for (i = 1; i < argc; i++)
		if (argv[i][0] != '-')
			only = argv[i];
	if (only != NULL && daemon_find(d, only) == NULL) {
		buf_printf(out, "no service named %s", only);
		return -1;
	}
	if (json)
		buf_puts(out, "{\"services\":[");
	for (n = 0; n < d->nservices; n++) {
		if (only != NULL &&
		    strcmp(service_name(d->services[n]), only) != 0)
			continue;
		if (json && !first)
			buf_puts(out, ",");
		service_status(d->services[n], out, json);
		first = 0;
	}
	if (json)
		buf_puts(out, "]}\n");
	else if (first)
		buf_puts(out, "no services configured\n");
	return 0;
}

static int
daemon_request_reload(struct daemon *d, struct buf *out)
{
	if (daemon_reload(d) == -1) {
		buf_puts(out, "the new configuration was rejected; the "
		    "running one stays (see the log for each error)");
		return -1;
	}
	if (d->reload_hook != NULL)
		d->reload_hook(d->reload_arg);
	buf_printf(out, "configuration reloaded from %s\n", d->conf->path);
	return 0;
}

static int
daemon_on_request(void *arg, const struct control_peer *peer, int argc,
    char **argv, struct buf *out)
{
	struct daemon	*d = arg;
	char		 uid[32], pid[32];

	/* Reads are not logged; anything that changes something is. */
	if (strcmp(argv[0], "status") == 0)
		return daemon_cmd_status(d, argc, argv, out);
	if (strcmp(argv[0], "ping") == 0) {
		buf_puts(out, "pong\n");
		return 0;
	}
	snprintf(uid, sizeof(uid), "%lu", (unsigned long)peer->uid);
	snprintf(pid, sizeof(pid), "%ld", (long)peer->pid);
	if (strcmp(argv[0], "reload") == 0) {
		alert_emit(ALERT_CONTROL_COMMAND, NULL, "command", "reload",
		    "uid", uid, "pid", pid, NULL);
		return daemon_request_reload(d, out);
	}
	buf_printf(out, "unknown command '%s' (try: status, reload, ping)",
	    argv[0]);
	return -1;
}
