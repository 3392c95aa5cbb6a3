/*
 * The stall and clock-jump guard (tilt.h). Sentinel enters TILT when
 * its timer handler sees the clock go backwards or run more than two
 * seconds past its period; we look after every poll of the loop, which
 * a timer wakes at least every TILT_TICK, with both clocks read here,
 * not ev_now(), which libev keeps in step with the wall clock.
 *
 *	watching --(late or jump > TILT_THRESHOLD)--> tilted
 *	tilted --(again)--> tilted, the period starting over
 *	tilted --(period over)--> watching (on_over: held seconds)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "failoverd/alert.h"
#include "failoverd/log.h"
#include "failoverd/tilt.h"

struct tilt {
	struct tilt_env		 env;
	ev_timer		 timer;		/* the longest sleep */
	ev_check		 check;		/* after every poll */
	struct tilt_clock	 last;
	int			 have_last;
	int			 tilted;
	double			 until;		/* monotonic */
	double			 trusted_at;	/* last reading before */
};

const char *
tilt_reason_str(enum tilt_reason why)
{
	switch (why) {
	case TILT_STALL:	return "stall";
	case TILT_CLOCK_JUMP:	return "clock_jump";
	default:		return "none";
	}
}

enum tilt_reason
tilt_detect(const struct tilt_clock *prev, const struct tilt_clock *now,
    double tick, double *seconds)
{
	double mono = now->mono - prev->mono;
	double jump = (now->real - prev->real) - mono;

	*seconds = 0;
	if (mono - tick > TILT_THRESHOLD) {
		*seconds = mono;
		return TILT_STALL;
	}
	if (fabs(jump) > TILT_THRESHOLD) {
		*seconds = jump;
		return TILT_CLOCK_JUMP;
	}
	return TILT_NONE;
}

static void
tilt_enter(struct tilt *t, const struct tilt_clock *now,
    enum tilt_reason why, double seconds)
{
	char s[32], period[32];

	if (!t->tilted)
		/* A stall was untrusted time already; a jump was not. */
		t->trusted_at = why == TILT_STALL ? t->last.mono : now->mono;
	t->tilted = 1;
	t->until = now->mono + t->env.period;
	snprintf(s, sizeof(s), "%.1f", seconds);
	snprintf(period, sizeof(period), "%.0f", t->env.period);
	alert_emit(ALERT_WATCHDOG_TILT, NULL, "reason", tilt_reason_str(why),
	    "seconds", s, "tilt_period", period, "action", "probes go on "
	    "and their counts start again; no failover, evacuation or "
	    "switch starts until the tilt is over", NULL);
	if (t->env.on_tilt != NULL)
		t->env.on_tilt(t->env.arg, why, seconds);
}

static void
tilt_leave(struct tilt *t, const struct tilt_clock *now)
{
	double	held = now->mono - t->trusted_at;
	char	s[32];

	t->tilted = 0;
	snprintf(s, sizeof(s), "%.1f", held);
	alert_emit(ALERT_WATCHDOG_TILT_OVER, NULL, "held", s, "action",
	    "acting again on fresh evidence", NULL);
	if (t->env.on_over != NULL)
		t->env.on_over(t->env.arg, held);
}

void
tilt_observe(struct tilt *t, const struct tilt_clock *now)
{
	enum tilt_reason	why = TILT_NONE;
	double			seconds = 0;

	if (t->have_last)
		why = tilt_detect(&t->last, now, TILT_TICK, &seconds);
	if (why != TILT_NONE)
		tilt_enter(t, now, why, seconds);
	else if (t->tilted && now->mono >= t->until)
		tilt_leave(t, now);
	t->last = *now;
	t->have_last = 1;
}

static void
tilt_read(struct tilt_clock *c)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	c->mono = ts.tv_sec + ts.tv_nsec / 1e9;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->real = ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * After every poll, first of its iteration: after a stall the probes'
 * timeouts and the engine's tick are due too, and must see the tilt.
 * The timer only bounds how long the loop may sleep: restarted here,
 * it fires only when nothing else woke the loop for a whole tick, so
 * the guard costs no wakeup on a busy daemon.
 */
static void
tilt_on_check(struct ev_loop *loop, ev_check *w, int revents)
{
	struct tilt		*t = w->data;
	struct tilt_clock	 now;

	tilt_read(&now);
	tilt_observe(t, &now);
	ev_timer_again(loop, &t->timer);
}

static void
tilt_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
}

struct tilt *
tilt_new(const struct tilt_env *env)
{
	struct tilt *t;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->env = *env;
	if (env->loop == NULL)
		return t;
	ev_timer_init(&t->timer, tilt_on_timer, 0., TILT_TICK);
	ev_timer_again(env->loop, &t->timer);
	ev_check_init(&t->check, tilt_on_check);
	ev_set_priority(&t->check, EV_MAXPRI);
	t->check.data = t;
	/* The first poll is the first reading: setting up is no stall. */
	ev_check_start(env->loop, &t->check);
	return t;
}

void
tilt_free(struct tilt *t)
{
	if (t == NULL)
		return;
	if (t->env.loop != NULL) {
		ev_timer_stop(t->env.loop, &t->timer);
		ev_check_stop(t->env.loop, &t->check);
	}
	free(t);
}

void
tilt_set_period(struct tilt *t, double period)
{
	t->env.period = period;
}

int
tilt_active(const struct tilt *t)
{
	return t != NULL && t->tilted;
}

double
tilt_left(const struct tilt *t)
{
	struct tilt_clock now;

	if (!tilt_active(t))
		return 0;
	tilt_read(&now);
	return now.mono < t->until ? t->until - now.mono : 0;
}
