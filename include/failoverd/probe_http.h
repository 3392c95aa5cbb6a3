/*
 * probe_http: one HTTP(S) check through libcurl's multi interface on the
 * loop (curlev). A fresh connection per check unless the probe asks for
 * reuse, so that a check sees a dead listener.
 */
#ifndef FAILOVERD_PROBE_HTTP_H
#define FAILOVERD_PROBE_HTTP_H

#include "failoverd/conf.h"
#include "failoverd/curlev.h"
#include "failoverd/probe.h"

struct probe_http;

/* Compiles what can be compiled once (the body regex); NULL + err. */
struct probe_http *probe_http_new(struct probe *p, struct curlev *cl,
		    const struct probe_conf *conf, char *err, size_t errlen);
void		 probe_http_free(struct probe_http *h);

/*
 * Starts one check of target (an address). Returns 0 and later calls
 * probe_done(), or -1 with res filled when it could not start.
 */
int		 probe_http_start(struct probe_http *h,
		    const struct probe_conf *conf, const char *target,
		    struct probe_result *res);
/* The probe's deadline passed: cancel, and say in which stage. */
void		 probe_http_abort(struct probe_http *h,
		    struct probe_result *res);

#endif
