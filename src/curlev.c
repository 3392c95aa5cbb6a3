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

struct curlev {
	struct ev_loop	*loop;
	CURLM		*multi;
	ev_timer	 timer;
	int		 running;
	CURL		**idle;		/* curlev_easy_put() handles */
	size_t		 nidle, idle_cap;
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

struct curlev *
curlev_new(struct ev_loop *loop)
{
	struct curlev	*cl;

	cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return NULL;
	cl->loop = loop;
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
	/* Transfers still attached belong to their owners, who remove them. */
	curl_multi_cleanup(cl->multi);
	while (cl->nidle > 0)
		curl_easy_cleanup(cl->idle[--cl->nidle]);
	free(cl->idle);
	free(cl);
}
