/*
 * Logging in the manner of OpenBSD's log.c: syslog always, stderr as well
 * when asked, and one line per message so that grep works at 3 a.m.
 *
 * The daemon must never wait on its own log. syslog(3) sends on a
 * blocking socket, and a syslog daemon that stops reading /dev/log (a
 * journald stuck on a full disk, a rsyslog wedged on a remote target)
 * freezes every caller: here, the probes and the failover engine with
 * them. So both sinks are ours and non-blocking. A line is written at
 * once when the sink takes it; when it does not, the line waits in a
 * bounded queue that the loop flushes as the sink becomes writable
 * (log_set_loop), and past the bound lines are dropped and counted, the
 * count said once the sink flows again. Only the exit paths wait for a
 * slow sink, and for a bounded time (log_drain).
 *
 *	log_vmsg -> log_sink_put -> written, or queued -> log_on_writable
 *	                                   or dropped (counted)
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "failoverd/log.h"

/* What a stalled sink may hold before lines are dropped. */
#define LOG_QUEUE_LINES		1000
#define LOG_QUEUE_BYTES		(256 * 1024)
/* How long an exit waits for a slow sink, seconds. */
#define LOG_DRAIN_EXIT		2.0
#define LOG_DRAIN_FATAL		5.0
/*
 * Test hook: the syslog socket's path instead of /dev/log, so that a
 * test can stall the log reader without touching the host's syslog.
 */
#define LOG_SOCKET_ENV		"FAILOVERD_LOG_SOCKET"
#define LOG_SOCKET_PATH		"/dev/log"

struct log_line {
	struct log_line	*next;
	size_t		 len;
	size_t		 off;		/* written so far (stream sinks) */
	char		 data[];
};

struct log_sink {
	const char	*name;
	int		 fd;		/* -1: closed */
	int		 own_fd;	/* ours to close */
	int		 is_sock;	/* send(2), never SIGPIPE */
	int		 dgram;		/* a datagram per line: no partials */
	struct log_line	*head;
	struct log_line	**tail;
	size_t		 nlines;
	size_t		 nbytes;
	unsigned long	 dropped;
	ev_io		 io;
};

static struct log_sink	log_sys = { .name = "syslog", .fd = -1 };
static struct log_sink	log_err = { .name = "stderr", .fd = -1 };
static struct ev_loop	*log_loop;
static int		 log_to_stderr;
static FILE		*log_stream;	/* tests: a synchronous copy */
static int		 log_debug_on;
static int		 log_fac = LOG_DAEMON;
static const char	*log_ident = "failoverd";
static char		 log_sys_path[sizeof(((struct sockaddr_un *)0)->
			    sun_path)] = LOG_SOCKET_PATH;

static void	log_sink_flush(struct log_sink *);

static const struct {
	const char	*name;
	int		 fac;
} log_facilities[] = {
	{ "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
	{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
	{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
	{ "auth", LOG_AUTH }, { "authpriv", LOG_AUTHPRIV },
};

int
log_facility_from_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(log_facilities) / sizeof(log_facilities[0]);
	    i++)
		if (strcmp(log_facilities[i].name, name) == 0)
			return log_facilities[i].fac;
	return -1;
}

const char *
log_facility_name(int facility)
{
	size_t i;

	for (i = 0; i < sizeof(log_facilities) / sizeof(log_facilities[0]);
	    i++)
		if (log_facilities[i].fac == facility)
			return log_facilities[i].name;
	return "?";
}

/*
 * The syslog socket. A datagram socket connects at once or not at all:
 * no syslog daemon is no error (the next line tries again), as with
 * syslog(3) without LOG_CONS.
 */
static void
log_sys_open(void)
{
	struct sockaddr_un	sun;
	int			fd;

	if (log_sys.fd != -1)
		return;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, log_sys_path, sizeof(sun.sun_path));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return;
	}
	log_sys.fd = fd;
	log_sys.own_fd = 1;
	log_sys.is_sock = 1;
	log_sys.dgram = 1;
}

static void
log_sink_close(struct log_sink *s)
{
	if (log_loop != NULL)
		ev_io_stop(log_loop, &s->io);
	if (s->own_fd && s->fd != -1)
		close(s->fd);
	s->fd = -1;
	s->own_fd = 0;
}

/*
 * stderr without O_NONBLOCK on descriptor 2 itself: that flag belongs to
 * the open file, shared with the shell or the service manager and
 * inherited by the hooks failoverd runs. A pipe or a terminal is opened
 * again through /proc, a file of our own; a socket (the journal's stream
 * under systemd) is sent to with MSG_DONTWAIT; a regular file never
 * makes a writer wait.
 */
static void
log_err_open(void)
{
	struct stat	st;
	int		fd;

	log_err.fd = STDERR_FILENO;
	if (fstat(STDERR_FILENO, &st) == -1 || S_ISREG(st.st_mode))
		return;
	if (S_ISSOCK(st.st_mode)) {
		log_err.is_sock = 1;
		return;
	}
	fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC |
	    O_NOCTTY);
	if (fd != -1) {
		log_err.fd = fd;
		log_err.own_fd = 1;
		return;
	}
	/* No /proc: the shared flag, rather than a loop that can block. */
	fcntl(STDERR_FILENO, F_SETFL,
	    fcntl(STDERR_FILENO, F_GETFL) | O_NONBLOCK);
}

void
log_init(const char *ident, int facility, int to_stderr)
{
	static int	 registered;
	const char	*path = getenv(LOG_SOCKET_ENV);

	/* Every exit, fatal() and main's early returns too, drains. */
	if (!registered++)
		atexit(log_close);
	log_ident = ident;
	log_fac = facility;
	log_to_stderr = to_stderr;
	log_sys.tail = &log_sys.head;
	log_err.tail = &log_err.head;
	if (path != NULL && *path != '\0')
		snprintf(log_sys_path, sizeof(log_sys_path), "%s", path);
	/* Opened now, before any sandboxing. */
	log_sys_open();
	if (to_stderr && log_err.fd == -1)
		log_err_open();
}

void
log_set_facility(int facility)
{
	log_fac = facility;
}

void
log_set_stream(FILE *fp)
{
	log_stream = fp;
}

void
log_set_debug(int on)
{
	log_debug_on = on;
}

static const char *
log_pri_name(int pri)
{
	switch (pri) {
	case LOG_EMERG:		return "emerg";
	case LOG_ALERT:		return "alert";
	case LOG_CRIT:		return "crit";
	case LOG_ERR:		return "err";
	case LOG_WARNING:	return "warning";
	case LOG_NOTICE:	return "notice";
	case LOG_INFO:		return "info";
	default:		return "debug";
	}
}

/*
 * Values in a message come from configuration files, peers and AWS; a
 * CR or LF in one would split a line, so that a forged second line could
 * pass for an event of its own. Escaped here, once, for every caller.
 */
void
log_escape(char *dst, size_t len, const char *src)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 off = 0;
	unsigned char		 c;

	if (len == 0)
		return;
	for (; *src != '\0'; src++) {
		c = (unsigned char)*src;
		if (c >= 0x20 && c != 0x7f) {
			if (off + 1 >= len)
				break;
			dst[off++] = (char)c;
			continue;
		}
		/* Whole escapes only: never half of one at the end. */
		if (off + 4 >= len)
			break;
		dst[off++] = '\\';
		if (c == '\n' || c == '\r' || c == '\t')
			dst[off++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		else {
			dst[off++] = 'x';
			dst[off++] = hex[c >> 4];
			dst[off++] = hex[c & 0xf];
		}
	}
	dst[off] = '\0';
}

/* The line as each sink frames it: RFC 3164 as syslog(3) sends it. */
static int
log_frame(const struct log_sink *s, int pri, const char *msg, char *out,
    size_t len)
{
	struct timespec	ts;
	struct tm	tm;
	char		stamp[32];
	int		n;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	if (s == &log_sys) {
		strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
		n = snprintf(out, len, "<%d>%s %s[%ld]: %s", log_fac | pri,
		    stamp, log_ident, (long)getpid(), msg);
	} else {
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
		n = snprintf(out, len, "%s.%03ld %s: %s\n", stamp,
		    ts.tv_nsec / 1000000, log_pri_name(pri), msg);
	}
	if (n < 0)
		return 0;
	if ((size_t)n >= len) {
		/* Cut, but still a line. */
		n = (int)len - 1;
		if (s != &log_sys)
			out[n - 1] = '\n';
	}
	return n;
}

/* Bytes the sink took (maybe fewer than len), 0 when it would block. */
static ssize_t
log_sink_write(struct log_sink *s, const char *data, size_t len)
{
	ssize_t	n;

	for (;;) {
		if (s->is_sock)
			n = send(s->fd, data, len, MSG_DONTWAIT |
			    MSG_NOSIGNAL);
		else
			n = write(s->fd, data, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == ENOBUFS)
			return 0;
		return -1;
	}
}

/* Watches the sink's descriptor while lines wait, and only then. */
static void
log_sink_arm(struct log_sink *s)
{
	if (log_loop == NULL)
		return;
	if (s->head == NULL || s->fd == -1) {
		ev_io_stop(log_loop, &s->io);
		return;
	}
	if (ev_is_active(&s->io) && s->io.fd == s->fd)
		return;
	ev_io_stop(log_loop, &s->io);
	ev_io_set(&s->io, s->fd, EV_WRITE);
	ev_io_start(log_loop, &s->io);
}

static void
log_sink_enqueue(struct log_sink *s, const char *data, size_t len)
{
	struct log_line *l;

	if (s->nlines >= LOG_QUEUE_LINES ||
	    s->nbytes + len > LOG_QUEUE_BYTES) {
		s->dropped++;
		return;
	}
	l = malloc(sizeof(*l) + len);
	if (l == NULL) {
		s->dropped++;
		return;
	}
	memcpy(l->data, data, len);
	l->len = len;
	l->off = 0;
	l->next = NULL;
	*s->tail = l;
	s->tail = &l->next;
	s->nlines++;
	s->nbytes += len;
}

static void
log_sink_pop(struct log_sink *s)
{
	struct log_line *l = s->head;

	s->head = l->next;
	if (s->head == NULL)
		s->tail = &s->head;
	s->nlines--;
	s->nbytes -= l->len;
	free(l);
}

/*
 * A sink that failed for good (the syslog daemon restarted: its socket
 * is a new one) is opened again once; a line it still refuses is lost,
 * as syslog(3) loses it.
 */
static int
log_sink_reopen(struct log_sink *s)
{
	if (s != &log_sys)
		return -1;
	log_sink_close(s);
	log_sys_open();
	return s->fd == -1 ? -1 : 0;
}

static void
log_sink_put(struct log_sink *s, const char *data, size_t len)
{
	ssize_t	n = 0;
	int	retried = 0;

	if (s == &log_sys && s->fd == -1)
		log_sys_open();
	if (s->fd == -1)
		return;
	if (s->head == NULL) {
again:
		n = log_sink_write(s, data, len);
		if (n == -1) {
			if (!retried++ && log_sink_reopen(s) == 0)
				goto again;
			return;
		}
		if ((size_t)n == len)
			return;
		if (s->dgram)
			n = 0;
	}
	log_sink_enqueue(s, data + n, len - (size_t)n);
	log_sink_arm(s);
}

/* Writes what waits, as far as the sink takes it; then the drop count. */
static void
log_sink_flush(struct log_sink *s)
{
	struct log_line	*l;
	char		 note[128], line[256];
	ssize_t		 n;
	int		 len;

	while ((l = s->head) != NULL) {
		n = log_sink_write(s, l->data + l->off, l->len - l->off);
		if (n == 0)
			break;
		if (n == -1) {
			if (log_sink_reopen(s) == 0)
				continue;
			/* Nowhere to write: what waits is lost. */
			while (s->head != NULL)
				log_sink_pop(s);
			break;
		}
		l->off += (size_t)n;
		if (l->off == l->len)
			log_sink_pop(s);
	}
	if (s->head == NULL && s->dropped > 0 && s->fd != -1) {
		snprintf(note, sizeof(note), "log: %lu lines dropped while "
		    "the log reader was stalled", s->dropped);
		s->dropped = 0;
		len = log_frame(s, LOG_WARNING, note, line, sizeof(line));
		log_sink_put(s, line, (size_t)len);
	}
	log_sink_arm(s);
}

static void
log_on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	log_sink_flush(w->data);
}

void
log_set_loop(struct ev_loop *loop)
{
	struct log_sink	*sinks[] = { &log_sys, &log_err };
	size_t		 i;

	for (i = 0; i < 2; i++) {
		if (log_loop != NULL)
			ev_io_stop(log_loop, &sinks[i]->io);
		ev_io_init(&sinks[i]->io, log_on_writable, -1, EV_WRITE);
		sinks[i]->io.data = sinks[i];
	}
	log_loop = loop;
	for (i = 0; i < 2; i++)
		if (sinks[i]->tail != NULL)
			log_sink_flush(sinks[i]);
}

static double
log_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Off the loop (exit paths): waits up to seconds for what is queued. */
static void
log_drain(double seconds)
{
	struct log_sink	*sinks[] = { &log_sys, &log_err };
	struct pollfd	 pfd;
	double		 end = log_mono() + seconds, left;
	size_t		 i;

	for (i = 0; i < 2; i++) {
		if (sinks[i]->tail == NULL)
			continue;
		for (;;) {
			log_sink_flush(sinks[i]);
			left = end - log_mono();
			if (sinks[i]->head == NULL || sinks[i]->fd == -1 ||
			    left <= 0)
				break;
			pfd.fd = sinks[i]->fd;
			pfd.events = POLLOUT;
			poll(&pfd, 1, (int)(left * 1000) + 1);
		}
	}
}

void
log_close(void)
{
	struct log_sink	*sinks[] = { &log_sys, &log_err };
	size_t		 i;

	log_drain(LOG_DRAIN_EXIT);
	for (i = 0; i < 2; i++) {
		if (sinks[i]->tail == NULL)
			continue;
		while (sinks[i]->head != NULL)
			log_sink_pop(sinks[i]);
		log_sink_close(sinks[i]);
	}
	log_loop = NULL;
}

void
log_vmsg(int pri, const char *fmt, va_list ap)
{
	char		 raw[4096];
	/* Each byte may become four ("\x1b"). */
	char		 buf[sizeof(raw) * 4];
	char		 line[sizeof(buf) + 128];
	int		 saved = errno, n;

	if (pri == LOG_DEBUG && !log_debug_on)
		return;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	log_escape(buf, sizeof(buf), raw);
	if (log_sys.tail != NULL) {
		n = log_frame(&log_sys, pri, buf, line, sizeof(line));
		log_sink_put(&log_sys, line, (size_t)n);
	}
	if (log_to_stderr && log_stream != NULL) {
		n = log_frame(&log_err, pri, buf, line, sizeof(line));
		fwrite(line, 1, (size_t)n, log_stream);
		fflush(log_stream);
	} else if (log_to_stderr && log_err.tail != NULL) {
		n = log_frame(&log_err, pri, buf, line, sizeof(line));
		log_sink_put(&log_err, line, (size_t)n);
	}
	errno = saved;
}

void
log_msg(int pri, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(pri, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_INFO, fmt, ap);
	va_end(ap);
}

static void log_verr(int, const char *, va_list)
    __attribute__((format(printf, 2, 0)));

static void
log_verr(int pri, const char *fmt, va_list ap)
{
	char	buf[2048];
	int	saved = errno;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	log_msg(pri, "%s: %s", buf, strerror(saved));
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_verr(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_WARNING, fmt, ap);
	va_end(ap);
}

/* The last words wait for the sinks: the loop that would flush is done. */
void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_verr(LOG_CRIT, fmt, ap);
	va_end(ap);
	log_drain(LOG_DRAIN_FATAL);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, fmt, ap);
	va_end(ap);
	log_drain(LOG_DRAIN_FATAL);
	exit(1);
}
