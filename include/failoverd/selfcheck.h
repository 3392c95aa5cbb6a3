/*
 * selfcheck: faults of the watchdog itself (out of descriptors, out of
 * memory, no local port), kept apart from faults of what it watches.
 *
 * A probe that cannot open a socket has learnt nothing about its
 * target: failing production over for it would turn the watchdog's own
 * trouble into an outage. Such a check counts for nothing; instead the
 * watchdog says it is unhealthy (event watchdog_unhealthy, crit), at
 * most once a minute per source while the fault lasts, and says
 * watchdog_healthy once the same source works again and has had no
 * fault for a few seconds.
 */
#ifndef FAILOVERD_SELFCHECK_H
#define FAILOVERD_SELFCHECK_H

enum selfcheck_source {
	SELFCHECK_PROBES,	/* a check could not be run */
	SELFCHECK_CONTROL,	/* the control socket could not accept */
	SELFCHECK_MAX
};

/*
 * 1 when err (an errno) is the watchdog's own want of a resource rather
 * than anything the target or the network did: EMFILE, ENFILE, ENOMEM,
 * ENOBUFS, EADDRNOTAVAIL, EAGAIN (connect: no local port).
 */
int	selfcheck_errno_is_local(int err);

/* what: the operation ("socket", "accept"); detail: the reason text. */
void	selfcheck_fault(enum selfcheck_source src, const char *what,
	    const char *detail);
/* The source just worked (a check reached its target, a client was
 * accepted). */
void	selfcheck_ok(enum selfcheck_source src);
/* 1 while any source is in fault. */
int	selfcheck_unhealthy(void);

#endif
