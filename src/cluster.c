/*
 * cluster: this watchdog as one member of several sharing an etcd
 * (cluster.h has the keys and the member's life).
 *
 * The view of P is one flat table of every key under it, kept by a
 * watch: members, leader, verdicts, journals and acting members are all
 * read from it when needed, so there is one truth and no second copy to
 * drift. What this member did itself (its lease, its leadership, the
 * verdicts and journals it wrote) is kept beside it.
 *
 * Time: the lease is judged by CLOCK_MONOTONIC read when asked, never
 * by the loop's cached time, which is stale after SIGSTOP/SIGCONT.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "failoverd/alert.h"
#include "failoverd/buf.h"
#include "failoverd/cluster.h"
#include "failoverd/conf.h"
#include "failoverd/etcd.h"
#include "failoverd/journal.h"
#include "failoverd/log.h"

/* Retries of etcd calls that failed: from RETRY_MIN doubling to MAX. */
#define CLUSTER_RETRY_MIN	0.5
#define CLUSTER_RETRY_MAX	5.0

struct ckv {				/* one key under P, as etcd has it */
	char		*key;		/* without P */
	char		*val;
	size_t		 vlen;
	int64_t		 crev;
	int64_t		 lease;
};

struct view {
	struct ckv	*kv;
	size_t		 n;
	size_t		 cap;
};

struct csvc {
	char		*name;
	struct cluster	*c;
	/* this member's verdict: wanted, and last written to etcd */
	int		 own;		/* enum service_verdict, or -1 */
	int		 published;	/* -1: not under the current lease */
	int		 sending;	/* the verdict being written, or -1 */
	struct etcd_call *vcall;
	/* the quorum's verdict last told, and the split last told */
	enum service_verdict quorum;
	char		*split;
	/* the journal */
	struct buf	 written;	/* bytes known in etcd (len 0: none) */
	unsigned long long written_seq;
	struct buf	 pending;	/* to write after the one in flight */
	int		 has_pending;
	struct buf	 inflight;
	struct etcd_call *jcall;
	/* read when this member took the lead */
	char		*loaded;
	size_t		 loadedlen;
	char		*loaded_writer;
};

struct cluster {
	struct ev_loop	*loop;
	struct etcd_client *etcd;
	const struct cluster_ops *ops;
	void		*arg;
	char		*name;
	char		**members;	/* configured, for status */
	size_t		 nmembers;
	char		*prefix;	/* ends with '/' */
	long		 ttl;
	int		 quorum;
	double		 timeout;
	char		 host[256];
	int		 leaving;	/* cluster_leave: acts no more */
	void		(*left)(void *);
	void		*left_arg;
	struct etcd_call *leave_call;
	ev_timer	 leave_timer;
	long		 since;

	struct csvc	**svc;		/* each one owned here, stable */
	size_t		 nsvc;

	/* the lease */
	int64_t		 lease;		/* 0: none */
	double		 valid_until;	/* monotonic */
	double		 ka_sent;
	struct etcd_call *grant_call;
	struct etcd_call *ka_call;
	struct etcd_call *put_call;
	int64_t		 stale_lease;	/* lost here, maybe alive in etcd */
	struct etcd_call *stale_call;
	ev_timer	 ka_timer;
	ev_timer	 expire_timer;
	ev_timer	 join_timer;	/* retry of grant/put */
	double		 join_backoff;
	int		 joined;	/* member key written */

	/* the view */
	struct view	 view;
	struct etcd_call *sync_call;
	struct etcd_watch *watch;
	int64_t		 rev;		/* last revision seen */
	ev_timer	 sync_timer;
	double		 sync_backoff;
	int		 synced;
	char		**seen_members;	/* as last compared, for events */
	size_t		 nseen;
	char		*seen_leader;

	/* leadership */
	struct etcd_call *campaign_call;
	struct etcd_call *read_call;	/* journals, on taking the lead */
	int		 leader;	/* on_leader(1) was told */
	int64_t		 token;		/* create_revision of our P/leader */

	ev_timer	 verdict_timer;	/* retry of failed verdict writes */
	ev_timer	 kick;		/* recompute quorum verdicts */

	int		 quorum_lost;
	char		 why_lost[160];
	/*
	 * Members started together join one after the other: the count of
	 * live members is judged only a lease after this one first joined.
	 */
	ev_timer	 grace_timer;
	int		 grace_over;
};

static void	join_start(struct cluster *c);
static void	sync_start(struct cluster *c);
static void	campaign(struct cluster *c);
static void	lease_lost(struct cluster *c, const char *reason);
static void	verdicts_flush(struct cluster *c);
static void	view_changed(struct cluster *c);
static int	journal_write(struct csvc *s);
static void	join_retry(struct cluster *c, double delay);
static void	stale_revoke(struct cluster *c);

static const char *const verdict_word[] = {
	[SERVICE_UNKNOWN] = "unknown",
	[SERVICE_HEALTHY] = "healthy",
	[SERVICE_DEGRADED] = "degraded",
	[SERVICE_DOWN] = "down",
};

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
verdict_parse(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(verdict_word) / sizeof(verdict_word[0]); i++)
		if (strlen(verdict_word[i]) == len &&
		    memcmp(verdict_word[i], s, len) == 0)
			return (int)i;
	return -1;
}

/* --- the view --- */

static struct ckv *
view_find(const struct view *v, const char *key)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (strcmp(v->kv[i].key, key) == 0)
			return &v->kv[i];
	return NULL;
}

static void
ckv_clear(struct ckv *kv)
{
	free(kv->key);
	free(kv->val);
	memset(kv, 0, sizeof(*kv));
}

static void
view_clear(struct view *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		ckv_clear(&v->kv[i]);
	free(v->kv);
	memset(v, 0, sizeof(*v));
}

static void
view_del(struct view *v, const char *key)
{
	struct ckv *kv = view_find(v, key);
	size_t i;

	if (kv == NULL)
		return;
	i = (size_t)(kv - v->kv);
	ckv_clear(kv);
	v->kv[i] = v->kv[v->n - 1];
	v->n--;
}

static int
view_put(struct view *v, const char *key, const char *val, size_t vlen,
    int64_t crev, int64_t lease)
{
	struct ckv *kv = view_find(v, key), *nkv;
	char *nval;

	if ((nval = malloc(vlen + 1)) == NULL)
		return -1;
	memcpy(nval, val, vlen);
	nval[vlen] = '\0';
	if (kv == NULL) {
		if (v->n == v->cap) {
			size_t ncap = v->cap ? v->cap * 2 : 16;

			if ((nkv = reallocarray(v->kv, ncap,
			    sizeof(*nkv))) == NULL) {
				free(nval);
				return -1;
			}
			v->kv = nkv;
			v->cap = ncap;
		}
		kv = &v->kv[v->n];
		memset(kv, 0, sizeof(*kv));
		if ((kv->key = strdup(key)) == NULL) {
			free(nval);
			return -1;
		}
		v->n++;
	}
	free(kv->val);
	kv->val = nval;
	kv->vlen = vlen;
	kv->crev = crev;
	kv->lease = lease;
	return 0;
}

/* The key without P, or NULL when it is not under P. */
static const char *
strip_prefix(const struct cluster *c, const char *key)
{
	size_t plen = strlen(c->prefix);

	if (strncmp(key, c->prefix, plen) != 0)
		return NULL;
	return key + plen;
}

static void	keyf(const struct cluster *c, char *out, size_t len,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* P followed by the formatted rest, for keys of etcd. */
static void
keyf(const struct cluster *c, char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	size_t off = 0;

	buf_fmt_at(out, len, &off, "%s", c->prefix);
	va_start(ap, fmt);
	buf_vfmt_at(out, len, &off, fmt, ap);
	va_end(ap);
}

static int
member_alive(const struct cluster *c, const char *name)
{
	char key[512];
	size_t off = 0;

	buf_fmt_at(key, sizeof(key), &off, "members/%s", name);
	return view_find(&c->view, key) != NULL;
}

static const struct ckv *
view_leader(const struct cluster *c)
{
	return view_find(&c->view, "leader");
}

static size_t
live_members(const struct cluster *c)
{
	size_t i, n = 0;

	for (i = 0; i < c->view.n; i++)
		if (strncmp(c->view.kv[i].key, "members/", 8) == 0)
			n++;
	return n;
}

static struct csvc *
svc_find(struct cluster *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nsvc; i++)
		if (c->svc[i] != NULL && strcmp(c->svc[i]->name, name) == 0)
			return c->svc[i];
	return NULL;
}

/* --- quorum --- */

static void
quorum_set(struct cluster *c, int lost, const char *reason)
{
	if (lost && !c->quorum_lost) {
		c->quorum_lost = 1;
		snprintf(c->why_lost, sizeof(c->why_lost), "%s", reason);
		alert_emit(ALERT_CLUSTER_QUORUM_LOST, NULL, "member", c->name,
		    "reason", reason, NULL);
	} else if (!lost && c->quorum_lost) {
		c->quorum_lost = 0;
		alert_emit(ALERT_CLUSTER_QUORUM_BACK, NULL, "member", c->name,
		    "was", c->why_lost, NULL);
		c->why_lost[0] = '\0';
	}
}

static void
quorum_check(struct cluster *c)
{
	char why[160];
	size_t live;

	if (c->lease == 0 || !c->synced)
		return;		/* lease_lost says so when it matters */
	live = live_members(c);
	if (!c->grace_over && live < (size_t)c->quorum)
		return;
	if (live < (size_t)c->quorum) {
		snprintf(why, sizeof(why), "%zu live member%s, quorum is %d",
		    live, live == 1 ? "" : "s", c->quorum);
		quorum_set(c, 1, why);
	} else
		quorum_set(c, 0, NULL);
}

/*
 * Live members' verdicts on s: their own published ones, this member's
 * as it stands here (it is the freshest, and others see it soon).
 */
static enum service_verdict
verdict_compute(const struct cluster *c, const struct csvc *s,
    struct buf *down, struct buf *up, int *ndown)
{
	char pfx[512];
	size_t i, plen, off = 0;
	int nd = 0, ndd = 0, healthy = 0, v;

	buf_fmt_at(pfx, sizeof(pfx), &off, "verdicts/%s/", s->name);
	plen = strlen(pfx);
	for (i = 0; i < c->view.n; i++) {
		const struct ckv *kv = &c->view.kv[i];
		const char *who;

		if (strncmp(kv->key, pfx, plen) != 0)
			continue;
		who = kv->key + plen;
		if (strcmp(who, c->name) == 0 || !member_alive(c, who))
			continue;
		if ((v = verdict_parse(kv->val, kv->vlen)) < 0)
			continue;
		if (v == SERVICE_DOWN) {
			nd++;
			if (down)
				buf_printf(down, "%s%s", down->len ? "," : "",
				    who);
		} else if (up)
			buf_printf(up, "%s%s", up->len ? "," : "", who);
		if (v == SERVICE_DOWN || v == SERVICE_DEGRADED)
			ndd++;
		if (v == SERVICE_HEALTHY)
			healthy = 1;
	}
	if (c->lease != 0 && s->own >= 0 && member_alive(c, c->name)) {
		v = s->own;
		if (v == SERVICE_DOWN) {
			nd++;
			if (down)
				buf_printf(down, "%s%s", down->len ? "," : "",
				    c->name);
		} else if (up)
			buf_printf(up, "%s%s", up->len ? "," : "", c->name);
		if (v == SERVICE_DOWN || v == SERVICE_DEGRADED)
			ndd++;
		if (v == SERVICE_HEALTHY)
			healthy = 1;
	}
	if (ndown)
		*ndown = nd;
	if (nd >= c->quorum)
		return SERVICE_DOWN;
	if (ndd >= c->quorum)
		return SERVICE_DEGRADED;
	if (healthy)
		return SERVICE_HEALTHY;
	return SERVICE_UNKNOWN;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "c,a,b" becomes "a,b,c": an event reads the same whatever the order
 * the keys came in. */
static void
list_sort(struct buf *b)
{
	char *copy, *p, *save = NULL, **v = NULL, **nv;
	size_t n = 0, i;

	if (b->len == 0 || (copy = strdup(buf_str(b))) == NULL)
		return;
	for (p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",",
	    &save)) {
		if ((nv = reallocarray(v, n + 1, sizeof(*v))) == NULL)
			goto out;
		v = nv;
		v[n++] = p;
	}
	qsort(v, n, sizeof(*v), name_cmp);
	buf_reset(b);
	for (i = 0; i < n; i++)
		buf_printf(b, "%s%s", i ? "," : "", v[i]);
out:
	free(v);
	free(copy);
}

static void
verdicts_recompute(struct cluster *c)
{
	struct buf down, up;
	enum service_verdict v, from;
	char q[16];
	size_t i;
	int nd;

	for (i = 0; i < c->nsvc; i++) {
		struct csvc *s = c->svc[i];

		buf_init(&down);
		buf_init(&up);
		v = verdict_compute(c, s, &down, &up, &nd);
		list_sort(&down);
		list_sort(&up);
		if (c->leader && nd > 0 && nd < c->quorum) {
			struct buf key;

			buf_init(&key);
			buf_printf(&key, "%s|%s", buf_str(&down),
			    buf_str(&up));
			if (s->split == NULL ||
			    strcmp(s->split, buf_str(&key)) != 0) {
				free(s->split);
				s->split = strdup(buf_str(&key));
				snprintf(q, sizeof(q), "%d", c->quorum);
				alert_emit(ALERT_CLUSTER_VERDICT_SPLIT,
				    s->name, "down", buf_str(&down),
				    "up", buf_str(&up), "quorum", q,
				    "action", "no failover: too few members "
				    "see it down", NULL);
			}
			buf_free(&key);
		} else {
			free(s->split);
			s->split = NULL;
		}
		buf_free(&down);
		buf_free(&up);
		if (v != s->quorum) {
			from = s->quorum;
			s->quorum = v;
			/* the callback must not change the services */
			if (c->ops->on_verdict)
				c->ops->on_verdict(c->arg, s->name, from, v);
		}
	}
}

static void
grace_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cluster *c = w->data;

	(void)loop;
	(void)revents;
	c->grace_over = 1;
	quorum_check(c);
}

static void
kick_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cluster *c = w->data;

	(void)loop;
	(void)revents;
	quorum_check(c);
	verdicts_recompute(c);
}

/* Verdicts and quorum are recomputed from the loop, never in a call. */
static void
kick(struct cluster *c)
{
	if (!ev_is_active(&c->kick)) {
		ev_timer_set(&c->kick, 0., 0.);
		ev_timer_start(c->loop, &c->kick);
	}
}

/* --- leadership --- */

static void
leader_drop(struct cluster *c, const char *reason)
{
	size_t i;

	if (c->read_call) {
		etcd_cancel(c->read_call);
		c->read_call = NULL;
	}
	c->token = 0;
	for (i = 0; i < c->nsvc; i++) {
		free(c->svc[i]->split);
		c->svc[i]->split = NULL;
	}
	if (!c->leader)
		return;
	c->leader = 0;
	alert_emit(ALERT_CLUSTER_LEADER_LOST, NULL, "member", c->name,
	    "reason", reason, NULL);
	if (c->ops->on_leader)
		c->ops->on_leader(c->arg, 0);
}

static void
loaded_clear(struct csvc *s)
{
	free(s->loaded);
	free(s->loaded_writer);
	s->loaded = NULL;
	s->loaded_writer = NULL;
	s->loadedlen = 0;
}

static void
written_set(struct csvc *s, const char *p, size_t len)
{
	struct journal_rec *rec = NULL;
	char err[256];

	buf_reset(&s->written);
	s->written_seq = 0;
	if (len == 0)
		return;
	buf_append(&s->written, p, len);
	if (journal_parse(p, len, s->name, &rec, err, sizeof(err)) == 0) {
		s->written_seq = journal_rec_seq(rec);
		journal_rec_free(rec);
	}
}

static void
read_done(const struct etcd_result *res, void *arg)
{
	struct cluster *c = arg;
	char key[512];
	size_t i, j;

	c->read_call = NULL;
	if (res->status != ETCD_OK) {
		log_warnx("cluster: reading the journals on taking the lead: "
		    "%s", res->error);
		/* the lease still holds the key: read again soon */
		join_retry(c, CLUSTER_RETRY_MIN);
		return;
	}
	for (i = 0; i < c->nsvc; i++) {
		struct csvc *s = c->svc[i];

		loaded_clear(s);
		buf_reset(&s->written);
		s->written_seq = 0;
		for (j = 0; j < res->nkvs; j++) {
			const struct etcd_kv *kv = &res->kvs[j];

			keyf(c, key, sizeof(key), "journal/%s", s->name);
			if (strcmp(kv->key, key) == 0) {
				s->loaded = malloc(kv->valuelen + 1);
				if (s->loaded) {
					memcpy(s->loaded, kv->value,
					    kv->valuelen + 1);
					s->loadedlen = kv->valuelen;
				}
				written_set(s, kv->value, kv->valuelen);
			}
			keyf(c, key, sizeof(key), "acting/%s", s->name);
			if (strcmp(kv->key, key) == 0) {
				free(s->loaded_writer);
				s->loaded_writer = strdup(kv->value);
			}
		}
	}
	if (c->token == 0 || c->lease == 0)
		return;		/* lost it while reading */
	c->leader = 1;
	quorum_check(c);
	alert_emit(ALERT_CLUSTER_LEADER_GAINED, NULL, "member", c->name,
	    "token", (snprintf(key, sizeof(key), "%" PRId64, c->token), key),
	    NULL);
	if (c->ops->on_leader)
		c->ops->on_leader(c->arg, 1);
	kick(c);
}

/* Tries the next step of joining after delay (one retry pending). */
static void
join_retry(struct cluster *c, double delay)
{
	if (ev_is_active(&c->join_timer))
		return;
	ev_timer_set(&c->join_timer, delay, 0.);
	ev_timer_start(c->loop, &c->join_timer);
}

static void
campaign_done(const struct etcd_result *res, void *arg)
{
	struct cluster *c = arg;
	char key[512];

	c->campaign_call = NULL;
	if (res->status != ETCD_OK) {
		/* the watch or the retry timer brings the next attempt */
		log_warnx("cluster: campaign: %s", res->error);
		join_retry(c, c->join_backoff);
		return;
	}
	if (!res->succeeded) {
		if (res->nkvs > 0) {
			view_put(&c->view, "leader", res->kvs[0].value,
			    res->kvs[0].valuelen, res->kvs[0].create_revision,
			    res->kvs[0].lease);
			view_changed(c);
		}
		return;		/* follow */
	}
	c->token = res->revision;
	view_put(&c->view, "leader", c->name, strlen(c->name), res->revision,
	    c->lease);
	free(c->seen_leader);
	c->seen_leader = strdup(c->name);
	keyf(c, key, sizeof(key), "%s", "");
	c->read_call = etcd_get(c->etcd, key, ETCD_PREFIX, read_done, c);
}

static void
campaign(struct cluster *c)
{
	char key[512];
	struct etcd_cmp cmp;
	struct etcd_op put, get;
	struct etcd_txn t;

	if (c->leaving || c->lease == 0 || !c->joined || c->campaign_call ||
	    c->leader || c->token != 0)
		return;
	keyf(c, key, sizeof(key), "leader");
	memset(&cmp, 0, sizeof(cmp));
	cmp.key = key;
	cmp.target = ETCD_CREATE_REVISION;
	cmp.result = ETCD_EQUAL;
	cmp.n = 0;
	memset(&put, 0, sizeof(put));
	put.kind = ETCD_OP_PUT;
	put.key = key;
	put.value = c->name;
	put.valuelen = strlen(c->name);
	put.lease = c->lease;
	memset(&get, 0, sizeof(get));
	get.kind = ETCD_OP_RANGE;
	get.key = key;
	memset(&t, 0, sizeof(t));
	t.cmp = &cmp;
	t.ncmp = 1;
	t.success = &put;
	t.nsuccess = 1;
	t.failure = &get;
	t.nfailure = 1;
	c->campaign_call = etcd_txn(c->etcd, &t, campaign_done, c);
	if (c->campaign_call == NULL)
		join_retry(c, c->join_backoff);
}

/*
 * After every change of the view: events for members come and gone
 * and for a new leader; a leader deposed stops; no leader, campaign.
 */
static void
view_changed(struct cluster *c)
{
	const struct ckv *ld;
	char **now = NULL;
	size_t n = 0, i, j;

	for (i = 0; i < c->view.n; i++) {
		const char *k = c->view.kv[i].key;
		char **nn;

		if (strncmp(k, "members/", 8) != 0)
			continue;
		if ((nn = reallocarray(now, n + 1, sizeof(*now))) == NULL)
			break;
		now = nn;
		if ((now[n] = strdup(k + 8)) == NULL)
			break;
		n++;
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < c->nseen; j++)
			if (strcmp(now[i], c->seen_members[j]) == 0)
				break;
		if (j == c->nseen && strcmp(now[i], c->name) != 0)
			alert_emit(ALERT_CLUSTER_MEMBER_JOINED, NULL,
			    "member", now[i], NULL);
	}
	for (j = 0; j < c->nseen; j++) {
		for (i = 0; i < n; i++)
			if (strcmp(now[i], c->seen_members[j]) == 0)
				break;
		if (i == n && strcmp(c->seen_members[j], c->name) != 0)
			alert_emit(ALERT_CLUSTER_MEMBER_LEFT, NULL,
			    "member", c->seen_members[j], NULL);
	}
	for (j = 0; j < c->nseen; j++)
		free(c->seen_members[j]);
	free(c->seen_members);
	c->seen_members = now;
	c->nseen = n;

	ld = view_leader(c);
	if (ld != NULL && c->token == 0 && c->lease != 0 &&
	    ld->lease == c->lease && strcmp(ld->val, c->name) == 0 &&
	    c->campaign_call == NULL) {
		/* a campaign whose answer was lost did win: take it */
		char key[512];

		c->token = ld->crev;
		keyf(c, key, sizeof(key), "%s", "");
		if (c->read_call == NULL)
			c->read_call = etcd_get(c->etcd, key, ETCD_PREFIX,
			    read_done, c);
	}
	if (ld != NULL) {
		if (c->token != 0 && ld->crev != c->token)
			leader_drop(c, "deposed: another member holds "
			    "the leader key");
		if (c->seen_leader == NULL ||
		    strcmp(c->seen_leader, ld->val) != 0) {
			free(c->seen_leader);
			c->seen_leader = strdup(ld->val);
			if (strcmp(ld->val, c->name) != 0)
				alert_emit(ALERT_CLUSTER_LEADER_CHANGED, NULL,
				    "member", c->name, "leader", ld->val,
				    NULL);
		}
	} else {
		if (c->token != 0)
			leader_drop(c, "the leader key is gone");
		free(c->seen_leader);
		c->seen_leader = NULL;
		campaign(c);
	}
	kick(c);
}

/* --- the watch --- */

static void
sync_later(struct cluster *c)
{
	if (ev_is_active(&c->sync_timer))
		return;
	ev_timer_set(&c->sync_timer, c->sync_backoff, 0.);
	ev_timer_start(c->loop, &c->sync_timer);
	c->sync_backoff *= 2;
	if (c->sync_backoff > CLUSTER_RETRY_MAX)
		c->sync_backoff = CLUSTER_RETRY_MAX;
}

static void
watch_event(const struct etcd_watch_result *res, void *arg)
{
	struct cluster *c = arg;
	const char *k;
	size_t i;

	if (res->status != ETCD_OK) {
		log_warnx("cluster: watch of %s ended: %s", c->prefix,
		    res->error ? res->error : "closed");
		c->watch = NULL;
		sync_later(c);
		return;
	}
	if (res->created) {
		c->sync_backoff = CLUSTER_RETRY_MIN;
		return;
	}
	for (i = 0; i < res->nevents; i++) {
		const struct etcd_event *ev = &res->events[i];

		if ((k = strip_prefix(c, ev->kv.key)) == NULL)
			continue;
		if (ev->type == ETCD_EV_PUT)
			view_put(&c->view, k, ev->kv.value, ev->kv.valuelen,
			    ev->kv.create_revision, ev->kv.lease);
		else
			view_del(&c->view, k);
		if (ev->kv.mod_revision > c->rev)
			c->rev = ev->kv.mod_revision;
	}
	if (res->revision > c->rev)
		c->rev = res->revision;
	view_changed(c);
}

static void
sync_done(const struct etcd_result *res, void *arg)
{
	struct cluster *c = arg;
	const char *k;
	size_t i;

	c->sync_call = NULL;
	if (res->status != ETCD_OK) {
		log_warnx("cluster: reading %s: %s", c->prefix, res->error);
		sync_later(c);
		return;
	}
	view_clear(&c->view);
	for (i = 0; i < res->nkvs; i++) {
		if ((k = strip_prefix(c, res->kvs[i].key)) == NULL)
			continue;
		view_put(&c->view, k, res->kvs[i].value, res->kvs[i].valuelen,
		    res->kvs[i].create_revision, res->kvs[i].lease);
	}
	c->rev = res->revision;
	c->synced = 1;
	c->watch = etcd_watch(c->etcd, c->prefix, ETCD_PREFIX, c->rev + 1,
	    watch_event, c);
	if (c->watch == NULL)
		sync_later(c);
	view_changed(c);
}

static void
sync_start(struct cluster *c)
{
	if (c->watch) {
		etcd_watch_cancel(c->watch);
		c->watch = NULL;
	}
	if (c->sync_call)
		return;
	c->sync_call = etcd_get(c->etcd, c->prefix, ETCD_PREFIX, sync_done, c);
	if (c->sync_call == NULL)
		sync_later(c);
}

static void
sync_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	sync_start(w->data);
}

/* --- the lease --- */

static void
expire_arm(struct cluster *c)
{
	double left = c->valid_until - mono_now();

	ev_timer_stop(c->loop, &c->expire_timer);
	ev_timer_set(&c->expire_timer, left > 0 ? left : 0., 0.);
	ev_timer_start(c->loop, &c->expire_timer);
}

static void
expire_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cluster *c = w->data;

	(void)loop;
	(void)revents;
	if (c->lease == 0)
		return;
	if (mono_now() < c->valid_until) {
		expire_arm(c);		/* renewed meanwhile */
		return;
	}
	quorum_set(c, 1, "etcd not answering for longer than the lease "
	    "(or this process was stalled)");
	lease_lost(c, "no keepalive answered within the lease");
}

static void
keepalive_done(const struct etcd_result *res, void *arg)
{
	struct cluster *c = arg;

	c->ka_call = NULL;
	if (c->lease == 0)
		return;
	if (res->status == ETCD_E_NOLEASE ||
	    (res->status == ETCD_OK && res->ttl <= 0)) {
		lease_lost(c, "etcd: the lease expired");
		return;
	}
	if (res->status != ETCD_OK) {
		log_debug("cluster: keepalive: %s", res->error);
		return;		/* the expire timer judges */
	}
	if (c->ka_sent + (double)res->ttl > c->valid_until) {
		c->valid_until = c->ka_sent + (double)res->ttl;
		expire_arm(c);
	}
	if (c->synced)
		quorum_check(c);
}

static void
ka_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cluster *c = w->data;

	(void)loop;
	(void)revents;
	if (c->lease == 0 || c->ka_call)
		return;
	c->ka_sent = mono_now();
	c->ka_call = etcd_lease_keepalive(c->etcd, c->lease, keepalive_done,
	    c);
}

static void
member_put_done(const struct etcd_result *res, void *arg)
{
	struct cluster *c = arg;

	c->put_call = NULL;
	if (res->status != ETCD_OK) {
		log_warnx("cluster: writing the member key: %s", res->error);
		join_retry(c, c->join_backoff);
		return;
	}
	c->joined = 1;
	c->join_backoff = CLUSTER_RETRY_MIN;
	if (!c->grace_over && !ev_is_active(&c->grace_timer)) {
		ev_timer_set(&c->grace_timer, (double)c->ttl, 0.);
		ev_timer_start(c->loop, &c->grace_timer);
	}
	verdicts_flush(c);
	if (c->synced && c->watch)
		campaign(c);
	else
		sync_start(c);
}

static void
member_put(struct cluster *c)
{
	json_t *o;
	char key[512], *js;

	o = json_pack("{s:s, s:s, s:i, s:I}", "name", c->name, "host",
	    c->host, "pid", (int)getpid(), "since", (json_int_t)c->since);
	js = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (js == NULL) {
		join_retry(c, c->join_backoff);
		return;
	}
	keyf(c, key, sizeof(key), "members/%s", c->name);
	c->put_call = etcd_put(c->etcd, key, js, strlen(js), c->lease,
	    member_put_done, c);
	free(js);
	if (c->put_call == NULL)
		join_retry(c, c->join_backoff);
}

static void
grant_done(const struct etcd_result *res, void *arg)
{
	struct cluster *c = arg;
	char id[32];
	size_t i;

	c->grant_call = NULL;
	if (res->status != ETCD_OK || res->lease_id == 0 || res->ttl <= 0) {
		log_warnx("cluster: lease grant: %s",
		    res->error ? res->error : "no lease");
		join_retry(c, c->join_backoff);
		/* back soon after etcd is: no later than a keepalive */
		c->join_backoff *= 2;
		if (c->join_backoff > CLUSTER_RETRY_MAX)
			c->join_backoff = CLUSTER_RETRY_MAX;
		if (c->join_backoff > (double)c->ttl / 3)
			c->join_backoff = (double)c->ttl / 3;
		return;
	}
	c->lease = res->lease_id;
	c->valid_until = c->ka_sent + (double)res->ttl;
	stale_revoke(c);
	expire_arm(c);
	ev_timer_stop(c->loop, &c->ka_timer);
	ev_timer_set(&c->ka_timer, (double)c->ttl / 3, (double)c->ttl / 3);
	ev_timer_again(c->loop, &c->ka_timer);
	for (i = 0; i < c->nsvc; i++)
		c->svc[i]->published = -1;
	snprintf(id, sizeof(id), "%" PRIx64, (uint64_t)c->lease);
	alert_emit(ALERT_CLUSTER_JOINED, NULL, "member", c->name, "lease", id,
	    NULL);
	member_put(c);
}

static void
join_start(struct cluster *c)
{
	if (c->leaving)
		return;
	if (c->lease == 0) {
		if (c->grant_call)
			return;
		c->ka_sent = mono_now();
		c->grant_call = etcd_lease_grant(c->etcd, c->ttl, grant_done,
		    c);
		if (c->grant_call == NULL)
			join_retry(c, c->join_backoff);
	} else if (!c->joined) {
		if (!c->put_call)
			member_put(c);
	} else if (c->token != 0 && !c->leader && !c->read_call) {
		char key[512];

		keyf(c, key, sizeof(key), "%s", "");
		c->read_call = etcd_get(c->etcd, key, ETCD_PREFIX, read_done,
		    c);
		if (c->read_call == NULL)
			join_retry(c, c->join_backoff);
	} else
		campaign(c);
}

static void
join_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	join_start(w->data);
}

static void
revoke_done(const struct etcd_result *res, void *arg)
{
	(void)res;
	(void)arg;
}

static void
leave_over(struct cluster *c)
{
	void (*done)(void *) = c->left;

	ev_timer_stop(c->loop, &c->leave_timer);
	if (c->leave_call != NULL)
		etcd_cancel(c->leave_call);
	c->leave_call = NULL;
	c->left = NULL;
	if (done != NULL)
		done(c->left_arg);
}

static void
leave_revoked(const struct etcd_result *res, void *arg)
{
	struct cluster *c = arg;

	c->leave_call = NULL;
	if (res->status == ETCD_OK)
		c->lease = 0;	/* given back: cluster_free has none */
	leave_over(c);
}

static void
on_leave_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	leave_over(w->data);
}

int
cluster_leave(struct cluster *c, void (*done)(void *), void *arg)
{
	c->leaving = 1;
	/* No renewal, no rejoin, no campaign: what the revoke ends stays
	 * ended. */
	ev_timer_stop(c->loop, &c->ka_timer);
	ev_timer_stop(c->loop, &c->expire_timer);
	ev_timer_stop(c->loop, &c->join_timer);
	ev_timer_stop(c->loop, &c->sync_timer);
	ev_timer_stop(c->loop, &c->kick);
	ev_timer_stop(c->loop, &c->grace_timer);
	ev_timer_stop(c->loop, &c->verdict_timer);
	if (c->watch != NULL) {
		etcd_watch_cancel(c->watch);
		c->watch = NULL;
	}
	if (c->lease == 0)
		return -1;
	c->left = done;
	c->left_arg = arg;
	c->leave_call = etcd_lease_revoke(c->etcd, c->lease, leave_revoked,
	    c);
	if (c->leave_call == NULL)
		return -1;
	log_info("cluster: member %s leaving: revoking lease %llx", c->name,
	    (unsigned long long)c->lease);
	ev_timer_init(&c->leave_timer, on_leave_timeout,
	    c->timeout > 0 ? c->timeout : 2.0, 0.);
	c->leave_timer.data = c;
	ev_timer_start(c->loop, &c->leave_timer);
	return 0;
}

static void
stale_revoked(const struct etcd_result *res, void *arg)
{
	struct cluster *c = arg;

	c->stale_call = NULL;
	/* refused: etcd knows no such lease any more, which is as good */
	if (res->status == ETCD_OK || res->status == ETCD_E_REFUSED)
		c->stale_lease = 0;
}

/*
 * The lease lost by this process: etcd may still hold it, with the
 * leader key, when it was the one away (and it extends every lease
 * when it elects a new raft leader). Revoked now, and again once etcd
 * answers a grant, so that a new leader need not wait for its expiry.
 */
static void
stale_revoke(struct cluster *c)
{
	if (c->stale_lease == 0 || c->stale_call != NULL)
		return;
	c->stale_call = etcd_lease_revoke(c->etcd, c->stale_lease,
	    stale_revoked, c);
}

static void
lease_lost(struct cluster *c, const char *reason)
{
	char id[32];
	size_t i;

	if (c->leaving)
		return;
	snprintf(id, sizeof(id), "%" PRIx64, (uint64_t)c->lease);
	leader_drop(c, reason);
	alert_emit(ALERT_CLUSTER_LEASE_LOST, NULL, "member", c->name,
	    "lease", id, "reason", reason, NULL);
	if (c->campaign_call) {
		etcd_cancel(c->campaign_call);
		c->campaign_call = NULL;
	}
	if (c->ka_call) {
		etcd_cancel(c->ka_call);
		c->ka_call = NULL;
	}
	if (c->put_call) {
		etcd_cancel(c->put_call);
		c->put_call = NULL;
	}
	for (i = 0; i < c->nsvc; i++) {
		if (c->svc[i]->vcall) {
			etcd_cancel(c->svc[i]->vcall);
			c->svc[i]->vcall = NULL;
		}
		c->svc[i]->published = -1;
		c->svc[i]->sending = -1;
	}
	ev_timer_stop(c->loop, &c->ka_timer);
	ev_timer_stop(c->loop, &c->expire_timer);
	/* whatever etcd still holds of it goes now rather than at expiry */
	if (c->stale_call) {
		etcd_cancel(c->stale_call);	/* an older one: let it be */
		c->stale_call = NULL;
	}
	c->stale_lease = c->lease;
	stale_revoke(c);
	c->lease = 0;
	c->joined = 0;
	c->join_backoff = CLUSTER_RETRY_MIN;
	join_start(c);
	kick(c);
}

/* --- verdicts --- */

static void
verdict_done(const struct etcd_result *res, void *arg)
{
	struct csvc *s = arg;
	struct cluster *c = s->c;

	s->vcall = NULL;
	if (res->status != ETCD_OK) {
		log_warnx("cluster: writing the verdict on %s: %s", s->name,
		    res->error);
		s->sending = -1;
		if (!ev_is_active(&c->verdict_timer)) {
			ev_timer_set(&c->verdict_timer, 1., 0.);
			ev_timer_start(c->loop, &c->verdict_timer);
		}
		return;
	}
	s->published = s->sending;
	s->sending = -1;
	verdicts_flush(c);
}

static void
verdicts_flush(struct cluster *c)
{
	char key[512];
	size_t i;

	if (c->lease == 0 || !c->joined)
		return;
	for (i = 0; i < c->nsvc; i++) {
		struct csvc *s = c->svc[i];
		const char *w;

		if (s->own < 0 || s->own == s->published || s->vcall)
			continue;
		keyf(c, key, sizeof(key), "verdicts/%s/%s", s->name, c->name);
		w = verdict_word[s->own];
		s->sending = s->own;
		s->vcall = etcd_put(c->etcd, key, w, strlen(w), c->lease,
		    verdict_done, s);
		if (s->vcall == NULL) {
			s->sending = -1;
			if (!ev_is_active(&c->verdict_timer)) {
				ev_timer_set(&c->verdict_timer, 1., 0.);
				ev_timer_start(c->loop, &c->verdict_timer);
			}
		}
	}
}

static void
verdict_retry_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	verdicts_flush(w->data);
}

void
cluster_set_verdict(struct cluster *c, const char *service,
    enum service_verdict v)
{
	struct csvc *s = svc_find(c, service);

	if (s == NULL || (int)v < 0 || (size_t)v >=
	    sizeof(verdict_word) / sizeof(verdict_word[0]))
		return;
	if (s->own == (int)v)
		return;
	s->own = (int)v;
	verdicts_flush(c);
	kick(c);
}

enum service_verdict
cluster_verdict(const struct cluster *c, const char *service)
{
	size_t i;

	for (i = 0; i < c->nsvc; i++)
		if (strcmp(c->svc[i]->name, service) == 0)
			return verdict_compute(c, c->svc[i], NULL, NULL,
			    NULL);
	return SERVICE_UNKNOWN;
}

/* --- the journal --- */

static void
journal_done(const struct etcd_result *res, void *arg)
{
	struct csvc *s = arg;
	struct cluster *c = s->c;
	char svc[256];
	int chained;

	s->jcall = NULL;
	snprintf(svc, sizeof(svc), "%s", s->name);
	if (res->status == ETCD_OK && res->succeeded) {
		written_set(s, s->inflight.data, s->inflight.len);
		buf_reset(&s->inflight);
		/* the next record goes before the callback saves again */
		chained = s->has_pending ? journal_write(s) : 0;
		if (c->ops->on_journal) {
			c->ops->on_journal(c->arg, svc, 1);
			if (chained == -1)
				c->ops->on_journal(c->arg, svc, 0);
		}
		return;
	}
	buf_reset(&s->inflight);
	if (res->status == ETCD_OK) {
		/* the compare failed: P/leader is not ours any more */
		s->has_pending = 0;
		buf_reset(&s->pending);
		log_warnx("cluster: journal of %s refused by etcd: this "
		    "member no longer holds the leader key", s->name);
		leader_drop(c, "deposed: a journal write found another "
		    "leader");
		if (c->ops->on_journal)
			c->ops->on_journal(c->arg, svc, 0);
		return;
	}
	log_warnx("cluster: journal of %s: %s", s->name, res->error);
	if (s->has_pending && journal_write(s) == -1)
		log_warnx("cluster: journal of %s: out of memory", s->name);
	if (c->ops->on_journal)
		c->ops->on_journal(c->arg, svc, 0);
}

/* 0, or -1 when the call could not start (out of memory). */
static int
journal_write(struct csvc *s)
{
	struct cluster *c = s->c;
	char lkey[512], jkey[512], akey[512];
	struct etcd_cmp cmp;
	struct etcd_op ops[2], get;
	struct etcd_txn t;

	buf_reset(&s->inflight);
	buf_append(&s->inflight, s->pending.data, s->pending.len);
	buf_reset(&s->pending);
	s->has_pending = 0;
	keyf(c, lkey, sizeof(lkey), "leader");
	keyf(c, jkey, sizeof(jkey), "journal/%s", s->name);
	keyf(c, akey, sizeof(akey), "acting/%s", s->name);
	memset(&cmp, 0, sizeof(cmp));
	cmp.key = lkey;
	cmp.target = ETCD_CREATE_REVISION;
	cmp.result = ETCD_EQUAL;
	cmp.n = c->token;
	memset(ops, 0, sizeof(ops));
	ops[0].kind = ETCD_OP_PUT;
	ops[0].key = jkey;
	ops[0].value = s->inflight.data;
	ops[0].valuelen = s->inflight.len;
	ops[1].kind = ETCD_OP_PUT;
	ops[1].key = akey;
	ops[1].value = c->name;
	ops[1].valuelen = strlen(c->name);
	memset(&get, 0, sizeof(get));
	get.kind = ETCD_OP_RANGE;
	get.key = lkey;
	memset(&t, 0, sizeof(t));
	t.cmp = &cmp;
	t.ncmp = 1;
	t.success = ops;
	t.nsuccess = 2;
	t.failure = &get;
	t.nfailure = 1;
	s->jcall = etcd_txn(c->etcd, &t, journal_done, s);
	if (s->jcall == NULL) {
		buf_reset(&s->inflight);
		return -1;
	}
	return 0;
}

int
cluster_journal_save(struct cluster *c, const char *service,
    const struct journal_rec *rec, char *err, size_t errlen)
{
	struct csvc *s = svc_find(c, service);
	struct buf b;
	unsigned long long seq;

	if (s == NULL)
		return errf(err, errlen, "cluster: no service '%s'", service);
	if (!cluster_may_act(c, err, errlen))
		return -1;
	buf_init(&b);
	if (s->written.len > 0 && s->jcall == NULL && !s->has_pending) {
		if (journal_format(rec, s->written_seq, &b) == 0 &&
		    b.len == s->written.len &&
		    memcmp(b.data, s->written.data, b.len) == 0) {
			buf_free(&b);
			return 0;
		}
		buf_reset(&b);
	}
	seq = journal_rec_seq(rec);
	if (s->written_seq > seq)
		seq = s->written_seq;
	if (journal_format(rec, seq + 1, &b) != 0) {
		buf_free(&b);
		return errf(err, errlen, "cluster: journal of %s: out of "
		    "memory", service);
	}
	/*
	 * Exactly what is under way already (the engine asks again each
	 * tick until it lands): no second write of it, or every landing
	 * would start another and the record would never be "in etcd".
	 */
	if ((s->has_pending && b.len == s->pending.len &&
	    memcmp(b.data, s->pending.data, b.len) == 0) ||
	    (!s->has_pending && s->jcall != NULL &&
	    b.len == s->inflight.len &&
	    memcmp(b.data, s->inflight.data, b.len) == 0)) {
		buf_free(&b);
		return 1;
	}
	buf_reset(&s->pending);
	buf_append(&s->pending, b.data, b.len);
	buf_free(&b);
	s->has_pending = 1;
	if (s->jcall == NULL && journal_write(s) == -1)
		return errf(err, errlen, "cluster: journal of %s: out of "
		    "memory", service);
	return 1;
}

int
cluster_journal_load(struct cluster *c, const char *service,
    struct journal_rec **out, char **writer, char *err, size_t errlen)
{
	struct csvc *s = svc_find(c, service);
	char name[512];

	*out = NULL;
	if (writer)
		*writer = NULL;
	if (s == NULL)
		return errf(err, errlen, "cluster: no service '%s'", service);
	if (s->loaded == NULL)
		return 1;
	keyf(c, name, sizeof(name), "journal/%s", s->name);
	if (journal_parse(s->loaded, s->loadedlen, name, out, err,
	    errlen) != 0)
		return -1;
	if (writer && s->loaded_writer)
		*writer = strdup(s->loaded_writer);
	return 0;
}

/* --- the rest of the interface --- */

const char *
cluster_name(const struct cluster *c)
{
	return c->name;
}

const char *
cluster_leader(const struct cluster *c)
{
	const struct ckv *ld = view_leader(c);

	return ld ? ld->val : NULL;
}

int
cluster_may_act(const struct cluster *c, char *why, size_t len)
{
	const char *ld = cluster_leader(c);

	if (c->leaving) {
		errf(why, len, "this member is stopping");
		return 0;
	}
	if (!c->leader || c->token == 0) {
		if (ld && strcmp(ld, c->name) != 0)
			errf(why, len, "not the leader: %s leads", ld);
		else
			errf(why, len, "not the leader (no leader known)");
		return 0;
	}
	if (c->lease == 0 || mono_now() >= c->valid_until) {
		errf(why, len, "the lease may have expired: no keepalive "
		    "answered within %ld s", c->ttl);
		return 0;
	}
	if (why && len)
		why[0] = '\0';
	return 1;
}

static struct csvc *
svc_new(struct cluster *c, const char *name)
{
	struct csvc *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->c = c;
	s->own = -1;
	s->published = -1;
	s->sending = -1;
	s->quorum = SERVICE_UNKNOWN;
	buf_init(&s->written);
	buf_init(&s->pending);
	buf_init(&s->inflight);
	if ((s->name = strdup(name)) == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

static void
svc_free(struct csvc *s)
{
	if (s == NULL)
		return;
	if (s->vcall)
		etcd_cancel(s->vcall);
	if (s->jcall)
		etcd_cancel(s->jcall);
	free(s->name);
	free(s->split);
	buf_free(&s->written);
	buf_free(&s->pending);
	buf_free(&s->inflight);
	loaded_clear(s);
	free(s);
}

int
cluster_set_services(struct cluster *c, const char *const *services,
    size_t nservices)
{
	struct csvc **ns;
	char key[512];
	size_t i, j;

	for (i = 0; i < nservices; i++)
		for (j = 0; j < i; j++)
			if (strcmp(services[i], services[j]) == 0) {
				log_warnx("cluster: service %s named twice",
				    services[i]);
				return -1;
			}
	if ((ns = calloc(nservices ? nservices : 1, sizeof(*ns))) == NULL)
		return -1;
	/* the new ones first: a failure leaves the old set as it was */
	for (i = 0; i < nservices; i++) {
		if (svc_find(c, services[i]) != NULL)
			continue;
		if ((ns[i] = svc_new(c, services[i])) == NULL) {
			for (j = 0; j < i; j++)
				if (svc_find(c, services[j]) == NULL)
					svc_free(ns[j]);
			free(ns);
			return -1;
		}
	}
	/* kept ones keep their state, and their calls in flight */
	for (i = 0; i < nservices; i++) {
		if (ns[i] != NULL)
			continue;
		for (j = 0; j < c->nsvc; j++)
			if (c->svc[j] != NULL &&
			    strcmp(c->svc[j]->name, services[i]) == 0) {
				ns[i] = c->svc[j];
				c->svc[j] = NULL;
				break;
			}
	}
	for (i = 0; i < c->nsvc; i++) {
		if (c->svc[i] == NULL)
			continue;
		if (c->lease != 0) {
			keyf(c, key, sizeof(key), "verdicts/%s/%s",
			    c->svc[i]->name, c->name);
			etcd_delete(c->etcd, key, 0, revoke_done, c);
		}
		svc_free(c->svc[i]);
	}
	free(c->svc);
	c->svc = ns;
	c->nsvc = nservices;
	verdicts_flush(c);
	kick(c);
	return 0;
}

static void
members_free(struct cluster *c)
{
	size_t i;

	for (i = 0; i < c->nmembers; i++)
		free(c->members[i]);
	free(c->members);
	c->members = NULL;
	c->nmembers = 0;
}

struct cluster *
cluster_new(struct ev_loop *loop, struct curlev *cl,
    const struct cluster_conf *conf, const char *const *services,
    size_t nservices, const struct cluster_ops *ops, void *arg, char *err,
    size_t errlen)
{
	struct cluster *c;
	struct etcd_config ecfg;
	size_t plen;

	if (conf->name == NULL || conf->prefix == NULL ||
	    conf->nendpoints == 0) {
		errf(err, errlen, "cluster: name, prefix and endpoints are "
		    "needed");
		return NULL;
	}
	if (conf->lease_ttl < 2 || conf->quorum < 1) {
		errf(err, errlen, "cluster: lease_ttl %ld (2 or more) or "
		    "quorum %d (1 or more) out of range", conf->lease_ttl,
		    conf->quorum);
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		errf(err, errlen, "cluster: out of memory");
		return NULL;
	}
	c->loop = loop;
	c->ops = ops;
	c->arg = arg;
	c->ttl = conf->lease_ttl;
	c->quorum = conf->quorum;
	c->timeout = conf->timeout;
	c->since = (long)time(NULL);
	c->join_backoff = CLUSTER_RETRY_MIN;
	c->sync_backoff = CLUSTER_RETRY_MIN;
	if (gethostname(c->host, sizeof(c->host)) != 0)
		snprintf(c->host, sizeof(c->host), "unknown");
	c->host[sizeof(c->host) - 1] = '\0';
	plen = strlen(conf->prefix);
	c->name = strdup(conf->name);
	if ((c->prefix = malloc(plen + 2)) != NULL) {
		memcpy(c->prefix, conf->prefix, plen + 1);
		if (plen == 0 || conf->prefix[plen - 1] != '/')
			strcat(c->prefix, "/");
	}
	if (conf->nmembers > 0 &&
	    (c->members = calloc(conf->nmembers, sizeof(char *))) != NULL)
		for (; c->nmembers < conf->nmembers; c->nmembers++)
			if ((c->members[c->nmembers] =
			    strdup(conf->members[c->nmembers])) == NULL)
				break;
	if (c->name == NULL || c->prefix == NULL ||
	    c->nmembers != conf->nmembers) {
		errf(err, errlen, "cluster: out of memory");
		goto fail;
	}
	memset(&ecfg, 0, sizeof(ecfg));
	ecfg.endpoints = (const char *const *)conf->endpoints;
	ecfg.nendpoints = conf->nendpoints;
	ecfg.ca_file = conf->ca_file;
	ecfg.cert_file = conf->cert_file;
	ecfg.key_file = conf->key_file;
	ecfg.timeout = conf->timeout > 0 ? conf->timeout : 5.0;
	if ((c->etcd = etcd_new(loop, cl, &ecfg, err, errlen)) == NULL)
		goto fail;
	ev_timer_init(&c->ka_timer, ka_fired, 0., 0.);
	ev_timer_init(&c->expire_timer, expire_fired, 0., 0.);
	ev_timer_init(&c->join_timer, join_fired, 0., 0.);
	ev_timer_init(&c->sync_timer, sync_fired, 0., 0.);
	ev_timer_init(&c->verdict_timer, verdict_retry_fired, 0., 0.);
	ev_timer_init(&c->kick, kick_fired, 0., 0.);
	ev_timer_init(&c->grace_timer, grace_fired, 0., 0.);
	c->grace_timer.data = c;
	c->ka_timer.data = c->expire_timer.data = c->join_timer.data = c;
	c->sync_timer.data = c->verdict_timer.data = c->kick.data = c;
	if (cluster_set_services(c, services, nservices) != 0) {
		errf(err, errlen, "cluster: out of memory");
		goto fail;
	}
	join_start(c);
	sync_start(c);
	return c;
fail:
	if (c->etcd)
		etcd_free(c->etcd);
	members_free(c);
	free(c->name);
	free(c->prefix);
	free(c);
	return NULL;
}

/*
 * The revoke is started, not waited for: the client goes with the
 * member, so it reaches etcd only if sent at once; otherwise the lease,
 * its member key and its leader key end a lease_ttl later.
 */
void
cluster_free(struct cluster *c)
{
	size_t i;

	if (c == NULL)
		return;
	if (c->leave_call != NULL)
		etcd_cancel(c->leave_call);
	ev_timer_stop(c->loop, &c->leave_timer);
	if (c->lease != 0)
		etcd_lease_revoke(c->etcd, c->lease, revoke_done, c);
	ev_timer_stop(c->loop, &c->ka_timer);
	ev_timer_stop(c->loop, &c->expire_timer);
	ev_timer_stop(c->loop, &c->join_timer);
	ev_timer_stop(c->loop, &c->sync_timer);
	ev_timer_stop(c->loop, &c->verdict_timer);
	ev_timer_stop(c->loop, &c->kick);
	ev_timer_stop(c->loop, &c->grace_timer);
	for (i = 0; i < c->nsvc; i++) {
		svc_free(c->svc[i]);
	}
	free(c->svc);
	/* every call and the watch end with the client */
	etcd_free(c->etcd);
	view_clear(&c->view);
	for (i = 0; i < c->nseen; i++)
		free(c->seen_members[i]);
	free(c->seen_members);
	free(c->seen_leader);
	members_free(c);
	free(c->name);
	free(c->prefix);
	free(c);
}

/* --- status --- */

static void
lease_left(const struct cluster *c, char *out, size_t len)
{
	double left = c->valid_until - mono_now();

	if (c->lease == 0 || left < 0)
		left = 0;
	snprintf(out, len, "%.1f", left);
}

static void
member_line(const struct cluster *c, struct buf *out, int json, int first,
    const char *name)
{
	const struct ckv *kv;
	char key[512];
	size_t off = 0;

	buf_fmt_at(key, sizeof(key), &off, "members/%s", name);
	kv = view_find(&c->view, key);
	if (json) {
		buf_printf(out, "%s{\"name\":", first ? "" : ",");
		buf_json_str(out, name);
		if (kv)
			buf_printf(out, ",\"lease\":\"%" PRIx64 "\"",
			    (uint64_t)kv->lease);
		else
			buf_puts(out, ",\"lease\":null");
		buf_printf(out, ",\"alive\":%s,\"self\":%s}",
		    kv ? "true" : "false",
		    strcmp(name, c->name) == 0 ? "true" : "false");
	} else if (kv)
		buf_printf(out, "  member %s: alive, lease %" PRIx64 "%s\n",
		    name, (uint64_t)kv->lease,
		    strcmp(name, c->name) == 0 ? " (self)" : "");
	else
		buf_printf(out, "  member %s: not alive%s\n", name,
		    strcmp(name, c->name) == 0 ? " (self)" : "");
}

/* The configured members, then any other that holds a member key. */
static void
members_status(const struct cluster *c, struct buf *out, int json)
{
	size_t i, j, n = 0;

	for (i = 0; i < c->nmembers; i++)
		member_line(c, out, json, n++ == 0, c->members[i]);
	for (i = 0; i < c->view.n; i++) {
		const char *k = c->view.kv[i].key;

		if (strncmp(k, "members/", 8) != 0)
			continue;
		for (j = 0; j < c->nmembers; j++)
			if (strcmp(c->members[j], k + 8) == 0)
				break;
		if (j == c->nmembers)
			member_line(c, out, json, n++ == 0, k + 8);
	}
}

void
cluster_status(const struct cluster *c, struct buf *out, int json)
{
	const struct ckv *ld = view_leader(c);
	char left[32], key[512];
	size_t i, j, off;

	lease_left(c, left, sizeof(left));
	if (json) {
		buf_puts(out, "{\"name\":");
		buf_json_str(out, c->name);
		buf_puts(out, ",\"leader\":");
		buf_json_str_or_null(out, ld ? ld->val : NULL);
		/* token: the leader's fencing token, whoever leads */
		buf_printf(out, ",\"leading\":%s,\"token\":%" PRId64
		    ",\"lease\":\"%" PRIx64 "\",\"lease_left\":%s"
		    ",\"quorum\":%d,\"quorum_lost\":%s,\"members\":[",
		    c->leader ? "true" : "false", ld ? ld->crev : (int64_t)0,
		    (uint64_t)c->lease, left, c->quorum,
		    c->quorum_lost ? "true" : "false");
		members_status(c, out, 1);
		buf_puts(out, "],\"services\":[");
	} else {
		buf_printf(out, "member %s%s, lease %" PRIx64 " (%s s left)\n",
		    c->name, c->leader ? " (leader)" : "", (uint64_t)c->lease,
		    left);
		buf_printf(out, "leader %s, fencing token %" PRId64 "\n",
		    ld ? ld->val : "(none)", ld ? ld->crev : (int64_t)0);
		buf_printf(out, "quorum %d DOWN verdict%s of live members%s\n",
		    c->quorum, c->quorum == 1 ? "" : "s",
		    c->quorum_lost ? " (lost)" : "");
		members_status(c, out, 0);
	}
	for (i = 0; i < c->nsvc; i++) {
		const struct csvc *s = c->svc[i];
		const struct ckv *jr, *ac;
		struct journal_rec *rec = NULL;
		const char *step = NULL;
		char jerr[128], pfx[512];
		size_t plen;

		off = 0;
		buf_fmt_at(key, sizeof(key), &off, "journal/%s", s->name);
		jr = view_find(&c->view, key);
		off = 0;
		buf_fmt_at(key, sizeof(key), &off, "acting/%s", s->name);
		ac = view_find(&c->view, key);
		if (jr && journal_parse(jr->val, jr->vlen, s->name, &rec, jerr,
		    sizeof(jerr)) == 0)
			step = journal_rec_get(rec, "step");
		off = 0;
		buf_fmt_at(pfx, sizeof(pfx), &off, "verdicts/%s/", s->name);
		plen = strlen(pfx);
		if (json) {
			buf_printf(out, "%s{\"name\":", i ? "," : "");
			buf_json_str(out, s->name);
			buf_printf(out, ",\"verdict\":\"%s\",\"step\":",
			    verdict_word[cluster_verdict(c, s->name)]);
			buf_json_str_or_null(out, step);
			buf_puts(out, ",\"acting\":");
			buf_json_str_or_null(out, ac ? ac->val : NULL);
			buf_puts(out, ",\"verdicts\":{");
		} else
			buf_printf(out, "service %s: quorum verdict %s, "
			    "journal step %s, acting %s\n", s->name,
			    verdict_word[cluster_verdict(c, s->name)],
			    step ? step : "-", ac ? ac->val : "-");
		for (j = 0, off = 0; j < c->view.n; j++) {
			const struct ckv *kv = &c->view.kv[j];

			if (strncmp(kv->key, pfx, plen) != 0)
				continue;
			if (json) {
				buf_printf(out, "%s", off++ ? "," : "");
				buf_json_str(out, kv->key + plen);
				buf_puts(out, ":");
				buf_json_str(out, kv->val);
			} else
				buf_printf(out, "  %s: %s%s\n", kv->key + plen,
				    kv->val, member_alive(c, kv->key + plen) ?
				    "" : " (not alive)");
		}
		if (json)
			buf_puts(out, "}}");
		journal_rec_free(rec);
	}
	if (json)
		buf_puts(out, "]}");
}
