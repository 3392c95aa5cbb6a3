/*
 * The control socket server. Peers are named by SO_PEERCRED, because the
 * on-call log must say who pressed the button, not just that it was
 * pressed.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failoverd/buf.h"
#include "failoverd/control.h"
#include "failoverd/log.h"
#include "failoverd/selfcheck.h"

/* A client that sends nothing for this long is dropped. */
#define CONTROL_CLIENT_TIMEOUT	10.0
/*
 * The kernel's queue of connections not yet accepted: a burst of
 * failoverctl runs (a script, every host's monitoring at once) waits
 * there, instead of being refused with EAGAIN; the kernel caps it at
 * net.core.somaxconn (4096 by default since Linux 5.4).
 */
#define CONTROL_BACKLOG		4096
/* Accepted per wakeup at most: the queue drains, probes still run. */
#define CONTROL_ACCEPT_BATCH	256
/*
 * Out of descriptors (or memory), accepting is paused this long, then
 * doubled up to the maximum: level-triggered, the listening socket
 * stays readable and a retry at once would spin the loop.
 */
#define CONTROL_PAUSE_MIN	0.1
#define CONTROL_PAUSE_MAX	2.0
/* Dropped idle clients are logged one line per this many seconds. */
#define CONTROL_LOG_EVERY	10.0
/* Read and dropped from a follower, which has nothing more to ask. */
#define CONTROL_SINK		512

struct control_conn {
	struct control		*ctl;
	int			 fd;
	ev_io			 io;
	ev_timer		 timer;
	struct control_peer	 peer;
	char			 req[CONTROL_MAX_REQUEST];
	size_t			 reqlen;
	struct buf		 reply;
	size_t			 sent;
	int			 follow;	/* CONTROL_FOLLOW: streams */
	int			 events;	/* what io waits for */
	unsigned long		 dropped;	/* lines not sent, unsaid */
	struct control_conn	*next;
};

struct control {
	struct ev_loop		*loop;
	char			*path;
	int			 fd;
	ev_io			 accept_io;
	ev_timer		 pause;		/* accepting stopped */
	double			 pause_for;	/* next pause, s */
	control_request_cb	 cb;
	void			*arg;
	struct control_conn	*conns;
	unsigned int		 nconns;
	unsigned long		 refused;	/* past the cap */
	double			 timeouts_logged; /* ev_now */
	unsigned long		 timeouts_unsaid;
};

static void
control_conn_close(struct control_conn *c)
{
	struct control		*ctl = c->ctl;
	struct control_conn	**pp;

	for (pp = &ctl->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			ctl->nconns--;
			break;
		}
	ev_io_stop(ctl->loop, &c->io);
	ev_timer_stop(ctl->loop, &c->timer);
	close(c->fd);
	buf_free(&c->reply);
	free(c);
}

static int
control_split(char *line, char **argv)
{
	int	 argc = 0;
	char	*p, *save = NULL;

	for (p = strtok_r(line, " \t", &save); p != NULL;
	    p = strtok_r(NULL, " \t", &save)) {
		if (argc == CONTROL_MAX_ARGS)
			return -1;
		argv[argc++] = p;
	}
	return argc;
}

int
control_parse_request(char *req, size_t len, int *argc, char **argv,
    const char **why)
{
	char *nl;

	*argc = 0;
	*why = NULL;
	nl = memchr(req, '\n', len);
	if (nl == NULL) {
		if (len < CONTROL_MAX_REQUEST - 1)
			return 0;
		*why = "request too long";
		return 1;
	}
	*nl = '\0';
	*argc = control_split(req, argv);
	if (*argc <= 0) {
		*why = *argc == 0 ? "empty request" : "too many arguments";
		*argc = 0;
	}
	return 1;
}

static void
control_dispatch(struct control_conn *c, int argc, char **argv,
    const char *why)
{
	struct buf	 body;
	int		 rc;

	buf_init(&body);
	if (why != NULL) {
		buf_puts(&body, why);
		rc = -1;
	} else
		rc = c->ctl->cb(c->ctl->arg, &c->peer, argc, argv, &body);
	if (rc == 0 || rc == CONTROL_FOLLOW) {
		buf_puts(&c->reply, "OK\n");
		buf_append(&c->reply, buf_str(&body), body.len);
		c->follow = rc == CONTROL_FOLLOW;
	} else
		buf_printf(&c->reply, "ERR %s\n", buf_str(&body));
	buf_free(&body);
}

static void
control_on_client_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct control_conn	*c = w->data;
	struct control		*ctl = c->ctl;

	/* A flood of idle clients must not flood the log too. */
	if (ev_now(loop) - ctl->timeouts_logged >= CONTROL_LOG_EVERY) {
		log_warnx("control: client pid %ld uid %lu timed out, "
		    "dropped (%lu more since the last such line)",
		    (long)c->peer.pid, (unsigned long)c->peer.uid,
		    ctl->timeouts_unsaid);
		ctl->timeouts_logged = ev_now(loop);
		ctl->timeouts_unsaid = 0;
	} else
		ctl->timeouts_unsaid++;
	control_conn_close(c);
}

static void
control_conn_wait(struct control_conn *c, int events)
{
	if (c->events == events && ev_is_active(&c->io))
		return;
	ev_io_stop(c->ctl->loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(c->ctl->loop, &c->io);
	c->events = events;
}

/*
 * A follower: the socket is watched for reading only to notice the
 * client leave (anything it sends is dropped), and for writing while
 * lines are pending. The backlog it asked for is under the client
 * timeout like any reply; once it is out, the follower stays until it
 * leaves.
 */
static void
control_follower_io(struct control_conn *c, int revents)
{
	char	sink[CONTROL_SINK];
	ssize_t	n;

	if (revents & EV_READ) {
		n = read(c->fd, sink, sizeof(sink));
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			control_conn_close(c);
			return;
		}
	}
	if ((revents & EV_WRITE) && c->sent < c->reply.len) {
		n = write(c->fd, c->reply.data + c->sent,
		    c->reply.len - c->sent);
		if (n == -1 && errno != EAGAIN && errno != EINTR) {
			control_conn_close(c);
			return;
		}
		if (n > 0)
			c->sent += (size_t)n;
	}
	if (c->sent == c->reply.len) {
		buf_reset(&c->reply);
		c->sent = 0;
		ev_timer_stop(c->ctl->loop, &c->timer);
	}
	control_conn_wait(c, EV_READ | (c->sent < c->reply.len ?
	    EV_WRITE : 0));
}

static void
control_on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control_conn	*c = w->data;
	ssize_t			 n;
	char			*argv[CONTROL_MAX_ARGS];
	const char		*why;
	int			 argc;

	if (c->follow) {
		control_follower_io(c, revents);
		return;
	}
	if (c->reply.len == 0) {
		n = read(c->fd, c->req + c->reqlen,
		    sizeof(c->req) - 1 - c->reqlen);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			control_conn_close(c);
			return;
		}
		c->reqlen += (size_t)n;
		if (control_parse_request(c->req, c->reqlen, &argc, argv,
		    &why) == 0)
			return;
		control_dispatch(c, argc, argv, why);
		control_conn_wait(c, c->follow ? EV_READ | EV_WRITE :
		    EV_WRITE);
		return;
	}
	n = write(c->fd, c->reply.data + c->sent, c->reply.len - c->sent);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		control_conn_close(c);
		return;
	}
	c->sent += (size_t)n;
	if (c->sent == c->reply.len)
		control_conn_close(c);
}

/* Past the cap: said in one line, then closed; never read. */
static void
control_refuse(struct control *ctl, int fd)
{
	char	line[128];
	int	n;

	n = snprintf(line, sizeof(line), "ERR busy: %u control "
	    "connections open, the most served at once; try again\n",
	    ctl->nconns);
	/* A new socket's buffer is empty: this short write fits. */
	if (write(fd, line, (size_t)n) == -1)
		log_debug("control: refusal: %s", strerror(errno));
	close(fd);
	if (ctl->refused++ % 1000 == 0)
		log_warnx("control: %u connections open, refusing more "
		    "(%lu refused so far)", ctl->nconns, ctl->refused);
}

static void
control_on_pause_end(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct control *ctl = w->data;

	ev_io_start(loop, &ctl->accept_io);
}

/*
 * accept failed: pause. For want of a resource of the daemon's own
 * (local), the probes get the descriptors that free up meanwhile, and
 * the fault is the watchdog's; any other error would repeat at once.
 */
static void
control_pause(struct control *ctl, int err, int local)
{
	ev_io_stop(ctl->loop, &ctl->accept_io);
	ev_timer_set(&ctl->pause, ctl->pause_for, 0.);
	ev_timer_start(ctl->loop, &ctl->pause);
	ctl->pause_for *= 2;
	if (ctl->pause_for > CONTROL_PAUSE_MAX)
		ctl->pause_for = CONTROL_PAUSE_MAX;
	if (local)
		selfcheck_fault(SELFCHECK_CONTROL, "accept", strerror(err));
	else
		log_warnx("control: accept on %s: %s", ctl->path,
		    strerror(err));
}

/* 0: one more may be accepted this wakeup; -1: stop. */
static int
control_accept_one(struct control *ctl)
{
	struct control_conn	*c;
	struct ucred		 cred;
	socklen_t		 len = sizeof(cred);
	int			 fd;

	fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		if (errno == EINTR || errno == ECONNABORTED)
			return 0;
		if (errno == EAGAIN)
			return -1;
		control_pause(ctl, errno, errno == EMFILE ||
		    errno == ENFILE || errno == ENOMEM || errno == ENOBUFS);
		return -1;
	}
	ctl->pause_for = CONTROL_PAUSE_MIN;
	selfcheck_ok(SELFCHECK_CONTROL);
	if (ctl->nconns >= CONTROL_MAX_CONNS) {
		control_refuse(ctl, fd);
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_warn("control: client");
		close(fd);
		return -1;
	}
	c->ctl = ctl;
	c->fd = fd;
	buf_init(&c->reply);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		c->peer.pid = cred.pid;
		c->peer.uid = cred.uid;
		c->peer.gid = cred.gid;
	} else
		c->peer.uid = (uid_t)-1;
	ev_io_init(&c->io, control_on_client_io, fd, EV_READ);
	c->io.data = c;
	c->events = EV_READ;
	ev_timer_init(&c->timer, control_on_client_timeout,
	    CONTROL_CLIENT_TIMEOUT, 0.);
	c->timer.data = c;
	ev_io_start(ctl->loop, &c->io);
	ev_timer_start(ctl->loop, &c->timer);
	c->next = ctl->conns;
	ctl->conns = c;
	ctl->nconns++;
	return 0;
}

/* Drains the queue, a bounded batch per wakeup. */
static void
control_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control	*ctl = w->data;
	int		 i;

	for (i = 0; i < CONTROL_ACCEPT_BATCH; i++)
		if (control_accept_one(ctl) == -1)
			break;
}

/*
 * The socket file at path is ours to replace only when nobody listens
 * on it: a second failoverd started by hand must not steal the running
 * one's socket. 0: absent or stale; -1 with err set otherwise.
 */
static int
control_check_stale(const char *path, const struct sockaddr_un *sun,
    char *err, size_t errlen)
{
	struct stat	st;
	int		fd, rc, saved;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		return errf(err, errlen, "control socket %s: %s", path,
		    strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode)) {
		errf(err, errlen, "control socket %s: exists and is not "
		    "a socket; not replaced", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		return errf(err, errlen, "control socket %s: socket: %s", path,
		    strerror(errno));
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	saved = errno;
	close(fd);
	if (rc == -1 && (saved == ECONNREFUSED || saved == ENOENT))
		return 0;
	if (rc == 0 || saved == EAGAIN)
		errf(err, errlen, "control socket %s: another process "
		    "listens on it (another failoverd?); not replaced", path);
	else
		errf(err, errlen, "control socket %s: connect: %s; not "
		    "replaced", path, strerror(saved));
	return -1;
}

struct control *
control_new(struct ev_loop *loop, const char *path, int mode,
    const char *group, control_request_cb cb, void *arg, char *err,
    size_t errlen)
{
	struct control		*ctl;
	struct sockaddr_un	 sun;
	mode_t			 old_umask;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errf(err, errlen, "control socket %s: path too long",
		    path);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	ctl = calloc(1, sizeof(*ctl));
	if (ctl != NULL)
		ctl->path = strdup(path);
	if (ctl == NULL || ctl->path == NULL) {
		errf(err, errlen, "control socket: out of memory");
		free(ctl);
		return NULL;
	}
	ctl->loop = loop;
	ctl->cb = cb;
	ctl->arg = arg;
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (ctl->fd == -1) {
		errf(err, errlen, "control socket %s: socket: %s", path,
		    strerror(errno));
		goto fail;
	}
	/* A stale socket from a crashed run would make bind fail. */
	if (control_check_stale(path, &sun, err, errlen) == -1)
		goto fail;
	if (unlink(path) == -1 && errno != ENOENT) {
		errf(err, errlen, "control socket %s: unlink: %s", path,
		    strerror(errno));
		goto fail;
	}
	/* Created with its final mode: no window where others may connect. */
	old_umask = umask(0777 & ~mode);
	if (bind(ctl->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old_umask);
		errf(err, errlen, "control socket %s: bind: %s", path,
		    strerror(errno));
		goto fail;
	}
	umask(old_umask);
	if (control_set_access(ctl, mode, group, err, errlen) == -1)
		goto fail_unlink;
	if (listen(ctl->fd, CONTROL_BACKLOG) == -1) {
		errf(err, errlen, "control socket %s: listen: %s", path,
		    strerror(errno));
		goto fail_unlink;
	}
	ev_io_init(&ctl->accept_io, control_on_accept, ctl->fd, EV_READ);
	ctl->accept_io.data = ctl;
	ev_timer_init(&ctl->pause, control_on_pause_end, 0., 0.);
	ctl->pause.data = ctl;
	ctl->pause_for = CONTROL_PAUSE_MIN;
	ev_io_start(loop, &ctl->accept_io);
	return ctl;
fail_unlink:
	unlink(path);
fail:
	if (ctl->fd != -1)
		close(ctl->fd);
	free(ctl->path);
	free(ctl);
	return NULL;
}

int
control_set_access(struct control *ctl, int mode, const char *group,
    char *err, size_t errlen)
{
	struct group *gr;

	if (chmod(ctl->path, mode) == -1) {
		return errf(err, errlen, "control socket %s: chmod: %s",
		    ctl->path, strerror(errno));
	}
	/* No group: the daemon's own, as a new socket has (a reload). */
	if (group == NULL) {
		if (chown(ctl->path, (uid_t)-1, getegid()) == -1) {
			errf(err, errlen, "control socket %s: chown: %s",
			    ctl->path, strerror(errno));
			return -1;
		}
		return 0;
	}
	gr = getgrnam(group);
	if (gr == NULL) {
		return errf(err, errlen,
		    "control socket %s: group %s: no such group", ctl->path,
		    group);
	}
	if (chown(ctl->path, (uid_t)-1, gr->gr_gid) == -1) {
		return errf(err, errlen,
		    "control socket %s: chown to group %s: %s", ctl->path,
		    group, strerror(errno));
	}
	return 0;
}

/*
 * A follower that does not read must cost neither memory nor the loop:
 * past CONTROL_FOLLOW_MAX bytes pending, its lines are dropped and
 * counted, and it is told how many once it caught up (and the log says
 * so, once when it starts dropping and once when it caught up).
 */
static void
control_follow_one(struct control_conn *c, const char *line, size_t len)
{
	size_t pending = c->reply.len - c->sent;

	if (pending + len + 1 > CONTROL_FOLLOW_MAX) {
		if (c->dropped++ == 0)
			log_warnx("control: events follower pid %ld uid %lu "
			    "reads too slowly; dropping lines",
			    (long)c->peer.pid, (unsigned long)c->peer.uid);
		return;
	}
	/* Keep only what is pending: the buffer never grows past it. */
	if (c->sent > 0) {
		memmove(c->reply.data, c->reply.data + c->sent, pending);
		c->reply.len = pending;
		c->reply.data[pending] = '\0';
		c->sent = 0;
	}
	if (c->dropped > 0) {
		log_warnx("control: events follower pid %ld uid %lu: %lu "
		    "lines dropped", (long)c->peer.pid,
		    (unsigned long)c->peer.uid, c->dropped);
		buf_printf(&c->reply, "-- %lu event lines dropped: this "
		    "reader was too slow\n", c->dropped);
		c->dropped = 0;
	}
	buf_append(&c->reply, line, len);
	buf_puts(&c->reply, "\n");
	control_conn_wait(c, EV_READ | EV_WRITE);
}

void
control_follow_line(struct control *ctl, const char *line)
{
	struct control_conn	*c;
	size_t			 len = strlen(line);

	for (c = ctl->conns; c != NULL; c = c->next)
		if (c->follow)
			control_follow_one(c, line, len);
}

const char *
control_path(const struct control *ctl)
{
	return ctl->path;
}

void
control_free(struct control *ctl)
{
	if (ctl == NULL)
		return;
	while (ctl->conns != NULL)
		control_conn_close(ctl->conns);
	ev_io_stop(ctl->loop, &ctl->accept_io);
	ev_timer_stop(ctl->loop, &ctl->pause);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}
