/*
 * daemon: the one object that owns everything the running failoverd has:
 * the configuration in force, the services, the shared curl multi and
 * the control socket. main.c drives it from signals; nothing else
 * touches its insides.
 */
#ifndef FAILOVERD_DAEMON_H
#define FAILOVERD_DAEMON_H

#include <ev.h>

#include "failoverd/conf.h"

struct daemon;

/* Takes ownership of conf. NULL with the reason in err on failure. */
struct daemon	*daemon_new(struct ev_loop *loop, struct config *conf,
		    char *err, size_t errlen);
void		 daemon_free(struct daemon *d);
/*
 * A stop: in a cluster, stop acting and give the lease back first
 * (cluster_leave); done runs from the loop when that is over. -1: no
 * cluster or nothing to give back: stop at once (done is not called).
 */
int		 daemon_leave(struct daemon *d, void (*done)(void *arg),
		    void *arg);

/*
 * Re-reads the configuration file. An invalid file changes nothing: it is
 * logged (config_rejected) and -1 is returned. A valid one replaces the
 * old; services whose settings did not change keep their state.
 */
int		 daemon_reload(struct daemon *d);

const struct config *daemon_config(const struct daemon *d);

/* One line for systemd's STATUS=. */
void		 daemon_status_line(const struct daemon *d, char *out,
		    size_t len);

/* Set by main: called when a reload was asked over the control socket. */
void		 daemon_set_reload_hook(struct daemon *d,
		    void (*hook)(void *), void *arg);

#endif
