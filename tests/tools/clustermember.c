/*
 * clustermember: a test driver for the cluster member (cluster.h). Runs
 * one member on a libev loop, as the daemon does, for
 * tests/e2e/test_cluster.py.
 *
 *   clustermember --name N --endpoint URL [--endpoint URL]...
 *       [--member NAME]... [--prefix P] [--ttl S] [--quorum Q]
 *       [--timeout S] SERVICE...
 *
 * Commands on stdin, one a line:
 *   verdict SVC unknown|healthy|degraded|down
 *   save SVC KEY=VALUE...     a journal record, fenced by leadership
 *   load SVC                  the record read on taking the lead
 *   status | statusjson | mayact | quit
 *
 * Every line on stdout answers one command or tells one callback:
 *   leader 1|0 / verdict SVC FROM TO / journal SVC 1|0 /
 *   save SVC RC [why] / load SVC RC [step=.. writer=..|why] /
 *   mayact 1|0 [why] / status JSON / event LINE (each alert, as logged)
 * Logs go to stderr. EOF on stdin ends it as quit does.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <getopt.h>

#include <curl/curl.h>
#include <ev.h>

#include "failoverd/alert.h"
#include "failoverd/buf.h"
#include "failoverd/cluster.h"
#include "failoverd/conf.h"
#include "failoverd/curlev.h"
#include "failoverd/journal.h"
#include "failoverd/log.h"

struct member {
	struct ev_loop	*loop;
	struct cluster	*cluster;
	ev_io		 in;
	char		 line[8192];
	size_t		 len;
};

static const char *const verdict_word[] = {
	"unknown", "healthy", "degraded", "down",
};

static void
out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void
on_leader(void *arg, int leader)
{
	(void)arg;
	out("leader %d", leader);
}

static void
on_verdict(void *arg, const char *service, enum service_verdict from,
    enum service_verdict to)
{
	(void)arg;
	out("verdict %s %s %s", service, verdict_word[from], verdict_word[to]);
}

static void
on_journal(void *arg, const char *service, int ok)
{
	(void)arg;
	out("journal %s %d", service, ok);
}

static void
on_event(enum alert_event ev, const char *service, const char *const *kv,
    size_t nkv, const char *line, void *arg)
{
	(void)ev;
	(void)service;
	(void)kv;
	(void)nkv;
	(void)arg;
	out("event %s", line);
}

static void
cmd_save(struct member *m, const char *svc, char *rest)
{
	struct journal_rec *rec;
	char err[512], *tok, *eq, *save = NULL;
	int rc;

	if ((rec = journal_rec_new()) == NULL) {
		out("save %s -1 out of memory", svc);
		return;
	}
	for (tok = strtok_r(rest, " ", &save); tok;
	    tok = strtok_r(NULL, " ", &save)) {
		if ((eq = strchr(tok, '=')) == NULL)
			continue;
		*eq = '\0';
		if (journal_rec_set(rec, tok, eq + 1) != 0) {
			out("save %s -1 bad key '%s'", svc, tok);
			journal_rec_free(rec);
			return;
		}
	}
	err[0] = '\0';
	rc = cluster_journal_save(m->cluster, svc, rec, err, sizeof(err));
	out("save %s %d%s%s", svc, rc, err[0] ? " " : "", err);
	journal_rec_free(rec);
}

static void
cmd_load(struct member *m, const char *svc)
{
	struct journal_rec *rec = NULL;
	char err[512], *writer = NULL;
	const char *step;
	int rc;

	err[0] = '\0';
	rc = cluster_journal_load(m->cluster, svc, &rec, &writer, err,
	    sizeof(err));
	if (rc == 0) {
		step = journal_rec_get(rec, "step");
		out("load %s 0 step=%s writer=%s", svc, step ? step : "",
		    writer ? writer : "");
	} else
		out("load %s %d%s%s", svc, rc, err[0] ? " " : "", err);
	journal_rec_free(rec);
	free(writer);
}

static void
command(struct member *m, char *line)
{
	char *save = NULL, *verb, *svc, *word;
	struct buf b;
	char why[512];
	size_t i;
	int v;

	if ((verb = strtok_r(line, " ", &save)) == NULL)
		return;
	if (strcmp(verb, "verdict") == 0) {
		svc = strtok_r(NULL, " ", &save);
		word = strtok_r(NULL, " ", &save);
		for (v = -1, i = 0; word && i < 4; i++)
			if (strcmp(word, verdict_word[i]) == 0)
				v = (int)i;
		if (svc == NULL || v < 0) {
			out("error usage: verdict SVC WORD");
			return;
		}
		cluster_set_verdict(m->cluster, svc, (enum service_verdict)v);
		out("ok verdict");
	} else if (strcmp(verb, "save") == 0) {
		if ((svc = strtok_r(NULL, " ", &save)) == NULL) {
			out("error usage: save SVC KEY=VALUE...");
			return;
		}
		cmd_save(m, svc, save ? save : (char *)"");
	} else if (strcmp(verb, "load") == 0) {
		if ((svc = strtok_r(NULL, " ", &save)) == NULL) {
			out("error usage: load SVC");
			return;
		}
		cmd_load(m, svc);
	} else if (strcmp(verb, "status") == 0 ||
	    strcmp(verb, "statusjson") == 0) {
		buf_init(&b);
		cluster_status(m->cluster, &b, verb[6] != '\0');
		if (verb[6] != '\0')
			out("status %s", buf_str(&b));
		else
			fputs(buf_str(&b), stdout);
		fflush(stdout);
		buf_free(&b);
	} else if (strcmp(verb, "mayact") == 0) {
		why[0] = '\0';
		v = cluster_may_act(m->cluster, why, sizeof(why));
		out("mayact %d%s%s", v, v ? "" : " ", v ? "" : why);
	} else if (strcmp(verb, "quit") == 0) {
		ev_io_stop(m->loop, &m->in);
		ev_break(m->loop, EVBREAK_ALL);
	} else
		out("error unknown command '%s'", verb);
}

static void
stdin_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct member *m = w->data;
	char *nl;
	ssize_t n;

	(void)revents;
	n = read(w->fd, m->line + m->len, sizeof(m->line) - 1 - m->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		ev_io_stop(loop, w);
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	m->len += (size_t)n;
	m->line[m->len] = '\0';
	while ((nl = memchr(m->line, '\n', m->len)) != NULL) {
		size_t used = (size_t)(nl - m->line) + 1;

		*nl = '\0';
		command(m, m->line);
		memmove(m->line, m->line + used, m->len - used);
		m->len -= used;
		m->line[m->len] = '\0';
	}
	if (m->len == sizeof(m->line) - 1)
		m->len = 0;		/* a line too long: dropped */
}

static void
usage(void)
{
	fprintf(stderr, "usage: clustermember --name N --endpoint URL... "
	    "[--member NAME]... [--prefix P] [--ttl S] [--quorum Q] "
	    "[--timeout S] SERVICE...\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "ttl", required_argument, NULL, 't' },
		{ "quorum", required_argument, NULL, 'q' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "member", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct cluster_ops ops = {
		.on_leader = on_leader,
		.on_verdict = on_verdict,
		.on_journal = on_journal,
	};
	struct cluster_conf conf;
	struct member m;
	struct curlev *cl;
	char *endpoints[8], *names[8], err[512];
	int ch, rc = 0;

	memset(&conf, 0, sizeof(conf));
	memset(&m, 0, sizeof(m));
	conf.endpoints = endpoints;
	conf.members = names;
	conf.prefix = (char *)"/failoverd";
	conf.lease_ttl = 5;
	conf.quorum = 2;
	conf.timeout = 2;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			conf.name = optarg;
			break;
		case 'e':
			if (conf.nendpoints == 8)
				usage();
			endpoints[conf.nendpoints++] = optarg;
			break;
		case 'p':
			conf.prefix = optarg;
			break;
		case 't':
			conf.lease_ttl = atol(optarg);
			break;
		case 'q':
			conf.quorum = atoi(optarg);
			break;
		case 'T':
			conf.timeout = atof(optarg);
			break;
		case 'm':
			if (conf.nmembers == 8)
				usage();
			names[conf.nmembers++] = optarg;
			break;
		default:
			usage();
		}
	}
	if (conf.name == NULL || conf.nendpoints == 0)
		usage();
	log_init("clustermember", LOG_USER, 1);
	log_set_debug(getenv("CLUSTERMEMBER_DEBUG") != NULL);
	alert_set_rate_limit(0);
	alert_observe(on_event, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	m.loop = EV_DEFAULT;
	if ((cl = curlev_new(m.loop)) == NULL) {
		fprintf(stderr, "clustermember: curlev_new failed\n");
		return 1;
	}
	m.cluster = cluster_new(m.loop, cl, &conf,
	    (const char *const *)argv + optind, (size_t)(argc - optind), &ops,
	    &m, err, sizeof(err));
	if (m.cluster == NULL) {
		fprintf(stderr, "clustermember: %s\n", err);
		rc = 1;
	} else {
		ev_io_init(&m.in, stdin_readable, 0, EV_READ);
		m.in.data = &m;
		ev_io_start(m.loop, &m.in);
		out("started %s", cluster_name(m.cluster));
		ev_run(m.loop, 0);
		cluster_free(m.cluster);
	}
	curlev_free(cl);
	curl_global_cleanup();
	alert_unobserve(on_event, NULL);
	return rc;
}
