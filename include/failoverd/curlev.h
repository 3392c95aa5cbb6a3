/*
 * curlev: libcurl's multi_socket API driven by one libev loop.
 *
 * One curlev per process is shared by the HTTP probes, the EC2 client and
 * the IMDS client, so every transfer runs on the daemon's only loop and
 * none of them ever blocks it. It only moves transfers: which probe
 * check may run, and when, is the probe module's (probe.h).
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

#endif
