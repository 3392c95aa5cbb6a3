/*
 * Logging in the manner of OpenBSD's log.c: syslog always, stderr as well
 * when asked, and one line per message so that grep works at 3 a.m.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "failoverd/log.h"

static int	log_to_stderr;
static FILE	*log_stream;	/* NULL: stderr */
static int	log_debug_on;
static int	log_fac = LOG_DAEMON;
static const char *log_ident = "failoverd";

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

void
log_init(const char *ident, int facility, int to_stderr)
{
	log_ident = ident;
	log_fac = facility;
	log_to_stderr = to_stderr;
	/* LOG_NDELAY: the socket is opened now, before any sandboxing. */
	openlog(ident, LOG_PID | LOG_NDELAY, facility);
}

void
log_set_facility(int facility)
{
	if (facility == log_fac)
		return;
	log_fac = facility;
	closelog();
	openlog(log_ident, LOG_PID | LOG_NDELAY, facility);
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

void
log_vmsg(int pri, const char *fmt, va_list ap)
{
	char		 raw[4096];
	/* Each byte may become four ("\x1b"). */
	char		 buf[sizeof(raw) * 4];
	struct timespec	 ts;
	struct tm	 tm;
	char		 stamp[32];
	int		 saved = errno;

	if (pri == LOG_DEBUG && !log_debug_on)
		return;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	log_escape(buf, sizeof(buf), raw);
	syslog(log_fac | pri, "%s", buf);
	if (log_to_stderr) {
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
		fprintf(log_stream ? log_stream : stderr, "%s.%03ld %s: %s\n",
		    stamp, ts.tv_nsec / 1000000, log_pri_name(pri), buf);
		fflush(log_stream ? log_stream : stderr);
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

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_verr(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}
