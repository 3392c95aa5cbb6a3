/*
 * curlev: libcurl's multi_socket API driven by one libev loop.
 *
 * One curlev per process is shared by the HTTP probes, the EC2 client and
 * the IMDS client, so every transfer runs on the daemon's only loop and
 * none of them ever blocks it.
 */
#ifndef FAILOVERD_CURLEV_H
#define FAILOVERD_CURLEV_H

#include <curl/curl.h>
#include <ev.h>

struct curlev;

/*
 * Called once when a transfer ends, successfully or not; the easy handle
 * is already removed from the multi handle and belongs to the caller again.
 */
typedef void (*curlev_done_cb)(CURL *easy, CURLcode result, void *arg);

struct curlev	*curlev_new(struct ev_loop *loop);
void		 curlev_free(struct curlev *cl);

/* Starts the transfer; 0 on success, -1 if curl refused it. */
int		 curlev_add(struct curlev *cl, CURL *easy, curlev_done_cb cb,
		    void *arg);
/* Cancels a running transfer; its callback is not called. */
void		 curlev_remove(struct curlev *cl, CURL *easy);

/*
 * Idle easy handles, for transfers that need one only while they run
 * (the HTTP probes): a daemon watching 10,000 services then holds as many
 * handles as it has checks in flight, not one per probe. A handle comes
 * back reset (curl_easy_reset); NULL when out of memory.
 */
CURL		*curlev_easy_get(struct curlev *cl);
void		 curlev_easy_put(struct curlev *cl, CURL *easy);

/* Transfers in flight, for status and for tests. */
unsigned int	 curlev_running(const struct curlev *cl);

/*
 * The probes' line: at most curlev_slots_max() probe checks (HTTP or SSH)
 * run at once, daemon-wide, so that a loop that cannot keep up makes the
 * schedule slip instead of memory grow with checks in flight. It lives
 * here because the curlev is the one object every probe shares; EC2 and
 * IMDS transfers never take a slot.
 *
 * A check takes a slot with curlev_slot_take(); when none is free it
 * waits in line, first come first served, holding nothing but its
 * embedded curlev_waiter, and its start function is called (from the
 * loop, never from inside curlev_slot_give()) once a slot is its. A
 * check gives its slot back with curlev_slot_give() when it ends, or
 * leaves the line with curlev_slot_cancel() if it never started.
 */
struct curlev_waiter;
typedef void (*curlev_start_cb)(struct curlev_waiter *w);

/* Embedded in its owner (as an ev watcher is); opaque to the owner. */
struct curlev_waiter {
	struct curlev_waiter	*next, *prev;
	curlev_start_cb		 start;
	int			 queued;
};

void		 curlev_waiter_init(struct curlev_waiter *w,
		    curlev_start_cb start);
/*
 * 1: the slot is the caller's, start now; 0: w waits in line. A NULL cl
 * is a line without a cap: take says 1, give and cancel do nothing.
 */
int		 curlev_slot_take(struct curlev *cl, struct curlev_waiter *w);
void		 curlev_slot_give(struct curlev *cl);
/* Leaves the line (no-op when w is not in it). */
void		 curlev_slot_cancel(struct curlev *cl,
		    struct curlev_waiter *w);
int		 curlev_waiter_queued(const struct curlev_waiter *w);
/* 0 < max (probe_max_in_flight; CURLEV_SLOTS_DEFAULT until set). */
void		 curlev_slots_set_max(struct curlev *cl, unsigned int max);
unsigned int	 curlev_slots_max(const struct curlev *cl);
unsigned int	 curlev_slots_used(const struct curlev *cl);
unsigned int	 curlev_slots_waiting(const struct curlev *cl);
/*
 * The grid step on which probe checks start (probe_grid_for), shared
 * like the line; the daemon sets it from its configuration. 0 (the
 * probes then use their finest) until
 * set.
 */
void		 curlev_set_probe_grid(struct curlev *cl, double grid);
double		 curlev_probe_grid(const struct curlev *cl);

#endif
