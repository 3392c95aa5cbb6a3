/*
 * control: the UNIX socket failoverctl talks to.
 *
 * One request per connection: a line of words ("status --json\n"). The
 * reply is a status line, "OK" or "ERR <message>", then the body, then the
 * server closes; or, for a follower ("events --follow"), the body goes on
 * with a line per event until the client leaves. Every read and write is
 * non-blocking on the loop, so a stuck client never holds the daemon.
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
 * Bytes a follower may have pending; past this its lines are dropped
 * and counted (it is told how many when it caught up).
 */
#define CONTROL_FOLLOW_MAX	(64 * 1024)
#define CONTROL_FOLLOW		1

/*
 * Handles one request; writes the body to out and returns 0 for OK, or
 * returns -1 with the error message in out. CONTROL_FOLLOW is OK too,
 * and the connection stays open after the body as a follower: it gets
 * every control_follow_line() until it leaves.
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
/* Sends line and a newline to every follower. */
void		 control_follow_line(struct control *ctl, const char *line);
const char	*control_path(const struct control *ctl);

#endif
