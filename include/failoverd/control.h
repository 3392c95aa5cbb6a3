/*
 * control: the UNIX socket failoverctl talks to.
 *
 * One request per connection: a line of words ("status --json\n"). The
 * reply is a status line, "OK" or "ERR <message>", then the body, then the
 * server closes. Every read and write is non-blocking on the loop, so a
 * stuck client never holds the daemon.
 */
#ifndef FAILOVERD_CONTROL_H
#define FAILOVERD_CONTROL_H

#include <sys/types.h>

#include <ev.h>

#include "failoverd/buf.h"

#define CONTROL_MAX_ARGS	16
#define CONTROL_MAX_REQUEST	4096
/*
 * Connections served at once. Each holds a descriptor the probes and the
 * journal may need: a flood of idle clients exhausted the daemon's
 * descriptors, its probes failed to open sockets and a healthy service
 * was failed over. Past the cap a client gets a one-line refusal.
 */
#define CONTROL_MAX_CONNS	64

struct control;

struct control_peer {
	pid_t	 pid;
	uid_t	 uid;
	gid_t	 gid;
};

/*
 * Handles one request; writes the body to out and returns 0 for OK, or
 * returns -1 with the error message in out.
 */
typedef int (*control_request_cb)(void *arg, const struct control_peer *peer,
    int argc, char **argv, struct buf *out);

/*
 * The pure half of reading a request, apart so it can be fuzzed:
 * req[0..len) is what the client sent so far (len < CONTROL_MAX_REQUEST).
 * Returns 0 while no newline came and there is room for more. Otherwise
 * returns 1 with either the words of the line before the newline in
 * argv[0..*argc) (pointing into req, which is split in place) or, for a
 * request that cannot be run, *argc 0 and the reason in *why.
 */
int		 control_parse_request(char *req, size_t len, int *argc,
		    char **argv, const char **why);

struct control	*control_new(struct ev_loop *loop, const char *path,
		    int mode, const char *group, control_request_cb cb,
		    void *arg, char *err, size_t errlen);
/*
 * Mode and group of the socket file, as control_new sets them; for a
 * reload that changes only these (the socket stays, clients keep it).
 */
int		 control_set_access(struct control *ctl, int mode,
		    const char *group, char *err, size_t errlen);
void		 control_free(struct control *ctl);
const char	*control_path(const struct control *ctl);

#endif
