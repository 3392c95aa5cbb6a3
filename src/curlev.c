/*
 * libcurl's multi_socket API on libev, after curl's evhiperfifo.c, with
 * its two traps avoided: timeouts are converted with / 1000.0, and a
 * multi error is logged and survived instead of exiting the daemon.
 */
#include <stdlib.h>

#include "failoverd/curlev.h"
#include "failoverd/log.h"

/*
 * Idle easy handles kept for reuse (~5 KB each). Checks in flight at
 * once are few when the loop keeps up; after a burst (a stall, every
 * check timing out at once) the handles beyond this go back to malloc
 * instead of staying forever.
 */
#define CURLEV_IDLE_MAX		64

/*
 * Probe checks in flight at once, daemon-wide, unless the environment
 * says otherwise. Figures from 10,000 services at 1 s on this 2-core
 * machine (tests/bench/README.md, "Third round"): a check in flight
 * holds ~15 KB (RSS rises by that per slot from a cap of 1 to 1,024: its
 * easy handle, curl's connection and request state, receive, body and
 * error buffers), so 256 bound them to ~4 MB, where uncapped thousands
 * piled up (230 MB). The loop ran ~10,500 checks/s at 256, as at 64;
 * at 1,024 each check cost more (curl walks its in-flight lists) and
 * fewer ran. Not smaller: a blackholed target holds its slot for the
 * whole timeout, and 256 leave room for 128 such checks a second at
 * the default 2 s timeout (1,000 services at 1 s with 10% blackholed
 * and 0.5 s timeouts need ~50) before healthy checks queue behind them.
 */
#define CURLEV_SLOTS_DEFAULT	256
/* The cap reached is logged at most this often, seconds. */
#define CURLEV_SLOTS_LOG_EVERY	60.0

struct curlev {
	struct ev_loop	*loop;
	CURLM		*multi;
	ev_timer	 timer;
	int		 running;
	CURL		**idle;		/* curlev_easy_put() handles */
	size_t		 nidle, idle_cap;

	/* The probes' line (curlev.h). */
	unsigned int	 slots_max;
	double		 probe_grid;	/* curlev_set_probe_grid */
	unsigned int	 slots_used;
	unsigned int	 nwaiting;
	struct curlev_waiter *head, *tail;
	ev_prepare	 drain;		/* starts waiters before polling */
	int		 draining;
	double		 slots_logged;	/* ev_now of the last warning */
};

/* One per socket curl asks us to watch; its owner is the curlev. */
struct curlev_sock {
	ev_io		 io;
	curl_socket_t	 fd;
	int		 events;
	struct curlev	*cl;
};

/* Stored in the easy handle's CURLOPT_PRIVATE. */
struct curlev_xfer {
	curlev_done_cb	 cb;
	void		*arg;
};

static void
curlev_check_done(struct curlev *cl)
{
	CURLMsg			*msg;
	CURL			*easy;
	CURLcode		 result;
	struct curlev_xfer	*xfer;
	int			 left;

	for (;;) {
		msg = curl_multi_info_read(cl->multi, &left);
		if (msg == NULL)
			break;
		if (msg->msg != CURLMSG_DONE)
			continue;
		easy = msg->easy_handle;
		result = msg->data.result;
		xfer = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&xfer);
		curl_multi_remove_handle(cl->multi, easy);
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		/* The callback may free or re-add the handle: call it last. */
		if (xfer != NULL) {
			curlev_done_cb	 cb = xfer->cb;
			void		*arg = xfer->arg;

			free(xfer);
			cb(easy, result, arg);
		}
	}
}

static void
curlev_action(struct curlev *cl, curl_socket_t fd, int ev_bitmask)
{
	CURLMcode rc;

	rc = curl_multi_socket_action(cl->multi, fd, ev_bitmask,
	    &cl->running);
	if (rc != CURLM_OK)
		log_warnx("curlev: curl_multi_socket_action: %s",
		    curl_multi_strerror(rc));
	curlev_check_done(cl);
}

static void
curlev_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct curlev *cl = w->data;

	curlev_action(cl, CURL_SOCKET_TIMEOUT, 0);
}

static void
curlev_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct curlev_sock	*s = w->data;
	int			 action = 0;

	if (revents & EV_READ)
		action |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curlev_action(s->cl, s->fd, action);
}

/* CURLMOPT_TIMERFUNCTION: curl says when it next wants to be called. */
static int
curlev_on_timer_request(CURLM *multi, long timeout_ms, void *userp)
{
	struct curlev *cl = userp;

	ev_timer_stop(cl->loop, &cl->timer);
	if (timeout_ms >= 0) {
		/* 0 means "now": a zero timer runs in the next iteration. */
		ev_timer_set(&cl->timer, timeout_ms / 1000.0, 0.);
		ev_timer_start(cl->loop, &cl->timer);
	}
	return 0;
}

/* CURLMOPT_SOCKETFUNCTION: curl says which sockets to watch, and how. */
static int
curlev_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *socketp)
{
	struct curlev		*cl = userp;
	struct curlev_sock	*s = socketp;
	int			 events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			ev_io_stop(cl->loop, &s->io);
			curl_multi_assign(cl->multi, fd, NULL);
			free(s);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL) {
			log_warn("curlev: socket watcher");
			return -1;
		}
		s->cl = cl;
		s->io.data = s;
		curl_multi_assign(cl->multi, fd, s);
	} else
		ev_io_stop(cl->loop, &s->io);
	/* Stop, set, start: never re-init an active watcher. */
	s->fd = fd;
	s->events = events;
	ev_io_init(&s->io, curlev_on_io, fd, events);
	ev_io_start(cl->loop, &s->io);
	return 0;
}

/*
 * Starts waiting checks while slots are free. Run from an ev_prepare,
 * at the top of the loop and not inside curlev_slot_give(): a slot is
 * given back from a check's end, deep inside a probe's callbacks (or
 * the failover engine's, through probe_reset), and starting another
 * probe's check there could re-enter them when it fails at once.
 */
static void
curlev_on_drain(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct curlev		*cl = w->data;
	struct curlev_waiter	*wt;

	if (cl->draining)
		return;
	cl->draining = 1;
	while (cl->head != NULL && cl->slots_used < cl->slots_max) {
		wt = cl->head;
		curlev_slot_cancel(cl, wt);
		cl->slots_used++;
		/* May give the slot back at once (a check that failed). */
		wt->start(wt);
	}
	cl->draining = 0;
	if (cl->head == NULL || cl->slots_used >= cl->slots_max)
		ev_prepare_stop(loop, &cl->drain);
}

void
curlev_waiter_init(struct curlev_waiter *w, curlev_start_cb start)
{
	w->next = w->prev = NULL;
	w->start = start;
	w->queued = 0;
}

int
curlev_waiter_queued(const struct curlev_waiter *w)
{
	return w->queued;
}

int
curlev_slot_take(struct curlev *cl, struct curlev_waiter *w)
{
	double now;

	/* Without a curlev (no HTTP at all) there is no line either. */
	if (cl == NULL)
		return 1;
	if (w->queued)
		return 0;
	/* Nobody passes a check already waiting. */
	if (cl->head == NULL && cl->slots_used < cl->slots_max) {
		cl->slots_used++;
		return 1;
	}
	w->next = NULL;
	w->prev = cl->tail;
	if (cl->tail != NULL)
		cl->tail->next = w;
	else
		cl->head = w;
	cl->tail = w;
	w->queued = 1;
	cl->nwaiting++;
	now = ev_now(cl->loop);
	if (cl->slots_logged == 0 ||
	    now - cl->slots_logged >= CURLEV_SLOTS_LOG_EVERY) {
		cl->slots_logged = now;
		log_warnx("probes: %u checks in flight, the most at once: "
		    "checks due now wait their turn and start late (%u "
		    "waiting)", cl->slots_used, cl->nwaiting);
	}
	return 0;
}

void
curlev_slot_give(struct curlev *cl)
{
	if (cl == NULL)
		return;
	if (cl->slots_used == 0) {
		log_warnx("curlev: a probe slot given back twice");
		return;
	}
	cl->slots_used--;
	if (cl->head != NULL && !cl->draining &&
	    !ev_is_active(&cl->drain))
		ev_prepare_start(cl->loop, &cl->drain);
}

void
curlev_slot_cancel(struct curlev *cl, struct curlev_waiter *w)
{
	if (cl == NULL || !w->queued)
		return;
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		cl->head = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	else
		cl->tail = w->prev;
	w->next = w->prev = NULL;
	w->queued = 0;
	cl->nwaiting--;
}

void
curlev_slots_set_max(struct curlev *cl, unsigned int max)
{
	cl->slots_max = max > 0 ? max : 1;
	if (cl->head != NULL && cl->slots_used < cl->slots_max &&
	    !ev_is_active(&cl->drain))
		ev_prepare_start(cl->loop, &cl->drain);
}

unsigned int
curlev_slots_max(const struct curlev *cl)
{
	return cl->slots_max;
}

unsigned int
curlev_slots_used(const struct curlev *cl)
{
	return cl->slots_used;
}

unsigned int
curlev_slots_waiting(const struct curlev *cl)
{
	return cl->nwaiting;
}

void
curlev_set_probe_grid(struct curlev *cl, double grid)
{
	cl->probe_grid = grid;
}

double
curlev_probe_grid(const struct curlev *cl)
{
	return cl->probe_grid;
}

struct curlev *
curlev_new(struct ev_loop *loop)
{
	struct curlev	*cl;

	cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return NULL;
	cl->loop = loop;
	cl->slots_max = CURLEV_SLOTS_DEFAULT;
	ev_prepare_init(&cl->drain, curlev_on_drain);
	cl->drain.data = cl;
	cl->multi = curl_multi_init();
	if (cl->multi == NULL)
		goto fail;
	ev_timer_init(&cl->timer, curlev_on_timer, 0., 0.);
	cl->timer.data = cl;
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION,
	    curlev_on_socket);
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION,
	    curlev_on_timer_request);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
	return cl;
fail:
	free(cl);
	return NULL;
}

int
curlev_add(struct curlev *cl, CURL *easy, curlev_done_cb cb, void *arg)
{
	struct curlev_xfer	*xfer;
	CURLMcode		 rc;

	xfer = calloc(1, sizeof(*xfer));
	if (xfer == NULL)
		return -1;
	xfer->cb = cb;
	xfer->arg = arg;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, xfer);
	/* Signals are the loop's business, and DNS must not block it. */
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	rc = curl_multi_add_handle(cl->multi, easy);
	if (rc != CURLM_OK) {
		log_warnx("curlev: curl_multi_add_handle: %s",
		    curl_multi_strerror(rc));
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		free(xfer);
		return -1;
	}
	return 0;
}

void
curlev_remove(struct curlev *cl, CURL *easy)
{
	struct curlev_xfer *xfer = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&xfer);
	curl_multi_remove_handle(cl->multi, easy);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
	free(xfer);
}

CURL *
curlev_easy_get(struct curlev *cl)
{
	if (cl->nidle > 0)
		return cl->idle[--cl->nidle];
	return curl_easy_init();
}

void
curlev_easy_put(struct curlev *cl, CURL *easy)
{
	CURL	**grown;
	size_t	  cap;

	if (easy == NULL)
		return;
	if (cl->nidle >= CURLEV_IDLE_MAX) {
		curl_easy_cleanup(easy);
		return;
	}
	if (cl->nidle == cl->idle_cap) {
		cap = cl->idle_cap > 0 ? cl->idle_cap * 2 : 16;
		grown = realloc(cl->idle, cap * sizeof(*grown));
		if (grown == NULL) {
			curl_easy_cleanup(easy);
			return;
		}
		cl->idle = grown;
		cl->idle_cap = cap;
	}
	/* Options of one probe must not leak into the next one's check. */
	curl_easy_reset(easy);
	cl->idle[cl->nidle++] = easy;
}

unsigned int
curlev_running(const struct curlev *cl)
{
	return cl->running < 0 ? 0 : (unsigned int)cl->running;
}

void
curlev_free(struct curlev *cl)
{
	if (cl == NULL)
		return;
	ev_timer_stop(cl->loop, &cl->timer);
	ev_prepare_stop(cl->loop, &cl->drain);
	/* Transfers still attached belong to their owners, who remove them. */
	curl_multi_cleanup(cl->multi);
	while (cl->nidle > 0)
		curl_easy_cleanup(cl->idle[--cl->nidle]);
	free(cl->idle);
	free(cl);
}
