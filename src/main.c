/*
 * failoverd: options, the one libev loop, signals and systemd.
 *
 * failoverd never forks into the background: systemd (Type=notify) owns
 * the process, and a person debugging runs it in the foreground.
 */
#include <sys/resource.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <curl/curl.h>
#include <ev.h>
#include <libssh2.h>
#include <systemd/sd-daemon.h>

#include "failoverd/alert.h"
#include "failoverd/conf.h"
#include "failoverd/control.h"
#include "failoverd/creds.h"
#include "failoverd/daemon.h"
#include "failoverd/log.h"

#define MAIN_CONF_ERRLEN	16384

struct main_ctx {
	struct ev_loop	*loop;
	struct daemon	*daemon;
	ev_signal	 sigterm, sigint, sighup;
	ev_signal	 sigusr1, sigusr2, sigalrm;
	ev_timer	 watchdog;
	int		 stopping;
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: failoverd [-t] [-d] [-c file] [--log-stderr]\n"
	    "  -c, --config FILE  configuration file (default %s)\n"
	    "  -t, --test         check the configuration, print a summary,\n"
	    "                     exit 0 if it is valid, 1 if not\n"
	    "  -d, --debug        log debug messages too\n"
	    "      --log-stderr   copy every log line to stderr\n"
	    "  -V, --version      print the version and exit\n"
	    "  -h, --help         this text\n"
	    "defaults: control_socket %s, state_dir %s\n",
	    CONF_DEFAULT_PATH, FOD_PATH_CONTROL_SOCKET, FOD_PATH_STATE_DIR);
}

/*
 * Descriptors kept for what is not a probe or a control client: the
 * journals, EC2 calls, hooks, syslog, libraries.
 */
#define MAIN_NOFILE_RESERVE	128

/*
 * What conf needs open at most; the soft limit is raised to it when the
 * hard one allows. Short, probes would fail to open sockets under load:
 * they would not count against a service (selfcheck.h), but nothing
 * would be watched either, so it is said loudly at start.
 */
static void
main_check_nofile(const struct config *conf)
{
	struct rlimit	rl;
	rlim_t		need;

	need = (rlim_t)conf->probe_max_in_flight + CONTROL_MAX_CONNS +
	    MAIN_NOFILE_RESERVE;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need &&
	    (rl.rlim_max == RLIM_INFINITY || rl.rlim_cur < rl.rlim_max)) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ||
		    rl.rlim_max >= need ? need : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("setrlimit(RLIMIT_NOFILE, %llu)",
			    (unsigned long long)rl.rlim_cur);
		else
			log_info("descriptor limit raised to %llu",
			    (unsigned long long)rl.rlim_cur);
		if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
			return;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warnx("descriptor limit %llu (hard %llu) is below the "
		    "%llu failoverd needs (probe_max_in_flight %d + %d "
		    "control connections + %d reserve): checks may fail for "
		    "want of descriptors; raise LimitNOFILE= in the unit or "
		    "ulimit -n", (unsigned long long)rl.rlim_cur,
		    (unsigned long long)rl.rlim_max,
		    (unsigned long long)need, conf->probe_max_in_flight,
		    CONTROL_MAX_CONNS, MAIN_NOFILE_RESERVE);
}

static void
main_notify_status(struct main_ctx *m, const char *state)
{
	char line[256];

	daemon_status_line(m->daemon, line, sizeof(line));
	sd_notifyf(0, "%s\nSTATUS=%s", state, line);
}

/* The cluster has its lease back (or etcd did not answer in time). */
static void
main_on_left(void *arg)
{
	struct main_ctx *m = arg;

	ev_break(m->loop, EVBREAK_ALL);
}

static void
main_on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct main_ctx *m = w->data;

	if (m->stopping)
		return;
	m->stopping = 1;
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	alert_emit(ALERT_SHUTDOWN, NULL, "signal",
	    w->signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
	/*
	 * A member of a cluster gives its lease back before it goes: the
	 * next leader need not wait a lease_ttl for it to lapse.
	 */
	if (daemon_leave(m->daemon, main_on_left, m) == 0)
		return;
	ev_break(loop, EVBREAK_ALL);
}

static void
main_on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct main_ctx *m = w->data;

	sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
	log_info("SIGHUP: reloading %s", daemon_config(m->daemon)->path);
	if (daemon_reload(m->daemon) == 0)
		alert_emit(ALERT_CONFIG_LOADED, NULL, "file",
		    daemon_config(m->daemon)->path, "reason", "SIGHUP", NULL);
	main_notify_status(m, "READY=1");
}

static void
main_on_control_reload(void *arg)
{
	struct main_ctx *m = arg;

	alert_emit(ALERT_CONFIG_LOADED, NULL, "file",
	    daemon_config(m->daemon)->path, "reason", "failoverctl reload",
	    NULL);
	main_notify_status(m, "READY=1");
}

/*
 * SIGUSR1, SIGUSR2 and SIGALRM end a process by default, and a stray
 * kill -USR1 (a log rotation script meant for another daemon) must not
 * end the watchdog: each is logged and otherwise ignored.
 */
static void
main_on_stray(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_info("%s received: ignored (SIGHUP reloads, SIGTERM stops; "
	    "the rest is failoverctl)", w->signum == SIGUSR1 ? "SIGUSR1" :
	    w->signum == SIGUSR2 ? "SIGUSR2" : "SIGALRM");
}

static void
main_on_ignored(int sig)
{
}

/*
 * The other signals whose default action ends the process and that
 * nothing in failoverd uses get a handler that does nothing. A handler,
 * not SIG_IGN: an ignored signal stays ignored across exec in the hooks
 * failoverd runs, a handled one is reset to its default there. SIGQUIT,
 * SIGKILL and the faults (SIGSEGV, SIGBUS, ...) keep their defaults:
 * they are how a person or the kernel ends a process on purpose.
 */
static void
main_handle_stray_signals(void)
{
	static const int	 sigs[] = {
		SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT, SIGXFSZ,
		SIGXCPU
	};
	struct sigaction	 sa;
	size_t			 i;
	int			 sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = main_on_ignored;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	for (sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaction(sig, &sa, NULL);
}

/*
 * Pinged from the loop itself: if the loop wedges, the pings stop and
 * systemd restarts the daemon. That is the point, so no thread does it.
 */
static void
main_on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct main_ctx *m = w->data;

	main_notify_status(m, "WATCHDOG=1");
}

static int
main_check(const char *path)
{
	struct config	*conf;
	char		*err;

	err = calloc(1, MAIN_CONF_ERRLEN);
	if (err == NULL)
		return 1;
	conf = conf_load(path, err, MAIN_CONF_ERRLEN);
	if (conf == NULL) {
		fputs(err, stderr);
		fprintf(stderr, "failoverd: configuration %s is invalid\n",
		    path);
		free(err);
		return 1;
	}
	/* Everything start checks, so that ExecStartPre=failoverd -t
	 * never passes what ExecStart refuses. */
	if (creds_check_files(conf->aws.profile, err, MAIN_CONF_ERRLEN) ==
	    -1 || conf_check_start(conf, err, MAIN_CONF_ERRLEN) == -1) {
		fprintf(stderr, "%s\nfailoverd: cannot start with %s\n", err,
		    path);
		conf_free(conf);
		free(err);
		return 1;
	}
	free(err);
	conf_warn_sources(conf, stderr);
	conf_print_summary(conf, stdout);
	printf("failoverd: configuration %s is valid\n", path);
	conf_free(conf);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config",	required_argument,	NULL, 'c' },
		{ "test",	no_argument,		NULL, 't' },
		{ "debug",	no_argument,		NULL, 'd' },
		{ "log-stderr",	no_argument,		NULL, 'E' },
		{ "version",	no_argument,		NULL, 'V' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	struct main_ctx	 m;
	struct config	*conf;
	const char	*path = CONF_DEFAULT_PATH;
	char		*err;
	uint64_t	 wd_usec = 0;
	int		 ch, test = 0, debug = 0, to_stderr;

	to_stderr = isatty(STDERR_FILENO);
	for (;;) {
		ch = getopt_long(argc, argv, "c:tdVh", longopts, NULL);
		if (ch == -1)
			break;
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case 'E':
			to_stderr = 1;
			break;
		case 'V':
			printf("failoverd %s\n", FOD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "failoverd: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}
	if (test)
		return main_check(path);

	log_init("failoverd", LOG_DAEMON, to_stderr);
	log_set_debug(debug);
	/* A peer closing on us is an error to handle, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	main_handle_stray_signals();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	if (libssh2_init(0) != 0)
		fatalx("libssh2_init failed");

	err = calloc(1, MAIN_CONF_ERRLEN);
	if (err == NULL)
		fatal("calloc");
	conf = conf_load(path, err, MAIN_CONF_ERRLEN);
	if (conf == NULL) {
		char *line, *save = NULL;

		for (line = strtok_r(err, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			log_warnx("config: %s", line);
		alert_emit(ALERT_CONFIG_REJECTED, NULL, "file", path,
		    "action", "not started", NULL);
		free(err);
		return 1;
	}
	/* Refused now rather than at the first failover that needs them. */
	if (creds_check_files(conf->aws.profile, err, MAIN_CONF_ERRLEN) ==
	    -1) {
		log_warnx("cannot start: %s", err);
		conf_free(conf);
		free(err);
		return 1;
	}
	log_set_facility(conf->syslog_facility);
	log_set_debug(debug || conf->debug);
	alert_set_rate_limit(conf->alerts.rate_limit);
	main_check_nofile(conf);

	memset(&m, 0, sizeof(m));
	m.loop = ev_default_loop(EVFLAG_AUTO);
	log_set_loop(m.loop);
	m.daemon = daemon_new(m.loop, conf, err, MAIN_CONF_ERRLEN);
	if (m.daemon == NULL) {
		log_warnx("cannot start: %s", err);
		conf_free(conf);
		free(err);
		return 1;
	}
	free(err);
	daemon_set_reload_hook(m.daemon, main_on_control_reload, &m);

	ev_signal_init(&m.sigterm, main_on_stop, SIGTERM);
	ev_signal_init(&m.sigint, main_on_stop, SIGINT);
	ev_signal_init(&m.sighup, main_on_hup, SIGHUP);
	m.sigterm.data = m.sigint.data = m.sighup.data = &m;
	ev_signal_start(m.loop, &m.sigterm);
	ev_signal_start(m.loop, &m.sigint);
	ev_signal_start(m.loop, &m.sighup);
	ev_signal_init(&m.sigusr1, main_on_stray, SIGUSR1);
	ev_signal_init(&m.sigusr2, main_on_stray, SIGUSR2);
	ev_signal_init(&m.sigalrm, main_on_stray, SIGALRM);
	ev_signal_start(m.loop, &m.sigusr1);
	ev_signal_start(m.loop, &m.sigusr2);
	ev_signal_start(m.loop, &m.sigalrm);

	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		/* Half the period, as sd_watchdog_enabled(3) advises. */
		ev_timer_init(&m.watchdog, main_on_watchdog,
		    0., wd_usec / 2e6);
		m.watchdog.data = &m;
		ev_timer_again(m.loop, &m.watchdog);
	}

	alert_emit(ALERT_STARTUP, NULL, "version", FOD_VERSION, NULL);
	alert_emit(ALERT_CONFIG_LOADED, NULL, "file", conf->path, NULL);
	main_notify_status(&m, "READY=1");

	ev_run(m.loop, 0);

	ev_timer_stop(m.loop, &m.watchdog);
	daemon_free(m.daemon);
	libssh2_exit();
	curl_global_cleanup();
	log_set_loop(NULL);
	ev_loop_destroy(m.loop);
	log_close();
	return 0;
}
