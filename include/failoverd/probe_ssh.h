/*
 * probe_ssh: one SSH check with libssh2 in non-blocking mode on the loop:
 * connect, banner, key exchange, host key against known_hosts, public-key
 * authentication, an optional command, close. Each stage goes as far as
 * it can and waits on the directions libssh2 names.
 */
#ifndef FAILOVERD_PROBE_SSH_H
#define FAILOVERD_PROBE_SSH_H

#include <ev.h>

#include "failoverd/conf.h"
#include "failoverd/probe.h"

struct probe_ssh;

/* service is borrowed, for the host key alert. NULL + err on failure. */
struct probe_ssh *probe_ssh_new(struct probe *p, struct ev_loop *loop,
		    const char *service, const struct probe_conf *conf,
		    char *err, size_t errlen);
void		 probe_ssh_free(struct probe_ssh *s);

/* As probe_http_start(): 0 then probe_done(), or -1 with res filled. */
int		 probe_ssh_start(struct probe_ssh *s,
		    const struct probe_conf *conf, const char *target,
		    struct probe_result *res);
/* The probe's deadline passed: tear down, and say in which stage. */
void		 probe_ssh_abort(struct probe_ssh *s,
		    struct probe_result *res);

/* Reads the stage of a check in flight (for status and tests). */
enum probe_stage probe_ssh_stage(const struct probe_ssh *s);

#endif
