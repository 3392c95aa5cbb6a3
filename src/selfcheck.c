/*
 * The watchdog's own health (selfcheck.h). Process-wide, like the
 * descriptor table whose exhaustion it mostly reports.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "failoverd/alert.h"
#include "failoverd/selfcheck.h"

/*
 * While a fault lasts, its event at most this often, seconds: a flood of
 * connections fails hundreds of operations a second, and one line a
 * minute with a count tells on-call as much.
 */
#define SELFCHECK_REPEAT	60.0
/*
 * Healthy again only after this many seconds without a fault: under a
 * flood one check in many still gets a descriptor, and saying healthy
 * at each would make the events flap.
 */
#define SELFCHECK_CALM		5.0

struct selfcheck_state {
	int		 faulty;
	int		 announced;	/* the episode's event logged */
	double		 since;		/* start of the episode */
	double		 emitted;	/* last unhealthy event, or 0 */
	double		 last_fault;
	unsigned long	 faults;	/* in this episode */
	unsigned long	 unsaid;	/* faults since the last event */
};

static struct selfcheck_state	selfcheck[SELFCHECK_MAX];

static const char *selfcheck_names[SELFCHECK_MAX] = {
	[SELFCHECK_PROBES]	= "probes",
	[SELFCHECK_CONTROL]	= "control",
};

static double
selfcheck_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
selfcheck_errno_is_local(int err)
{
	switch (err) {
	case EMFILE:
	case ENFILE:
	case ENOMEM:
	case ENOBUFS:
	case EADDRNOTAVAIL:
	case EAGAIN:
		return 1;
	default:
		return 0;
	}
}

void
selfcheck_fault(enum selfcheck_source src, const char *what,
    const char *detail)
{
	struct selfcheck_state	*s;
	double			 now = selfcheck_now();
	char			 reason[192], faults[32];

	if ((unsigned int)src >= SELFCHECK_MAX)
		return;
	s = &selfcheck[src];
	if (!s->faulty) {
		s->faulty = 1;
		s->announced = 0;
		s->since = now;
		s->faults = 0;
	}
	s->faults++;
	s->unsaid++;
	s->last_fault = now;
	if (s->emitted > 0 && now - s->emitted < SELFCHECK_REPEAT)
		return;
	s->emitted = now;
	s->announced = 1;
	snprintf(reason, sizeof(reason), "%s: %s", what, detail);
	snprintf(faults, sizeof(faults), "%lu", s->unsaid);
	s->unsaid = 0;
	alert_emit(ALERT_WATCHDOG_UNHEALTHY, NULL,
	    "source", selfcheck_names[src], "reason", reason,
	    "faults", faults, "effect", src == SELFCHECK_PROBES ?
	    "checks not counted, no service moves toward down" :
	    "control connections refused for a while", NULL);
}

void
selfcheck_ok(enum selfcheck_source src)
{
	struct selfcheck_state	*s;
	char			 faults[32], secs[32];
	double			 now;

	if ((unsigned int)src >= SELFCHECK_MAX)
		return;
	s = &selfcheck[src];
	if (!s->faulty)
		return;
	now = selfcheck_now();
	if (now - s->last_fault < SELFCHECK_CALM)
		return;
	s->faulty = 0;
	/* An episode inside the quiet minute after another was counted. */
	if (!s->announced)
		return;
	snprintf(faults, sizeof(faults), "%lu", s->faults);
	snprintf(secs, sizeof(secs), "%.0f", now - s->since);
	alert_emit(ALERT_WATCHDOG_HEALTHY, NULL,
	    "source", selfcheck_names[src], "faults", faults,
	    "seconds", secs, NULL);
}

int
selfcheck_unhealthy(void)
{
	size_t i;

	for (i = 0; i < SELFCHECK_MAX; i++)
		if (selfcheck[i].faulty)
			return 1;
	return 0;
}
