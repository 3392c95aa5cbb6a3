/*
 * log: one place that writes to syslog, and to stderr when a person is
 * watching (foreground on a terminal, or --log-stderr).
 */
#ifndef FAILOVERD_LOG_H
#define FAILOVERD_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

struct ev_loop;

/*
 * facility is a syslog LOG_* facility; to_stderr mirrors every line.
 * Neither sink ever blocks the caller: a line the sink cannot take now
 * waits in a bounded queue, and past the bound it is dropped and counted
 * (log.c). The environment variable FAILOVERD_LOG_SOCKET, a test hook,
 * names the syslog socket instead of /dev/log.
 */
void	log_init(const char *ident, int facility, int to_stderr);
/*
 * The loop that flushes queued lines when a sink can take them again;
 * NULL before that loop is destroyed.
 */
void	log_set_loop(struct ev_loop *loop);
/* Waits a bounded time for what is queued, then frees it (atexit). */
void	log_close(void);
void	log_set_facility(int facility);
/* Where the copy of each line goes instead of stderr (tests). */
void	log_set_stream(FILE *fp);
void	log_set_debug(int on);
int	log_facility_from_name(const char *name);
const char *log_facility_name(int facility);

/*
 * src as one printable line in dst (always terminated): CR, LF and tab
 * as \r \n \t, other bytes below 0x20 and 0x7f as \xNN. Every message
 * goes through it; public for the tests.
 */
void	log_escape(char *dst, size_t len, const char *src);

/* printf-style; log_warn appends strerror(errno). */
void	log_msg(int pri, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_vmsg(int pri, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
