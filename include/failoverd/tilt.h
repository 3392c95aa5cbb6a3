/*
 * tilt: the stall and clock-jump guard, after Redis Sentinel's TILT mode.
 *
 * After every poll the guard looks at how long the loop was gone, which a
 * timer bounds to TILT_TICK seconds (longer: the loop was not run:
 * SIGSTOP, a paused VM, a machine swapping, a callback that blocked),
 * and at how far the wall clock moved against the monotonic clock
 * (settimeofday, a VM resumed with a stale clock). Past TILT_THRESHOLD seconds either way,
 * time is not trusted for the tilt period: the probes go on, their
 * counts start again (a verdict made across a stall is not evidence),
 * and the acting half starts no move and sends no new call until the
 * period is over (events watchdog_tilt and watchdog_tilt_over).
 */
#ifndef FAILOVERD_TILT_H
#define FAILOVERD_TILT_H

#include <ev.h>

/* The loop's longest sleep, and how much slip is tolerated (seconds). */
#define TILT_TICK		1.0
#define TILT_THRESHOLD		2.0
/* How long a tilt lasts by default (config: tilt_period). */
#define TILT_PERIOD_DEFAULT	30.0

enum tilt_reason {
	TILT_NONE,
	TILT_STALL,		/* the loop ran late */
	TILT_CLOCK_JUMP		/* the wall clock moved apart */
};

/* One reading of both clocks, seconds. */
struct tilt_clock {
	double	mono;
	double	real;
};

struct tilt_env {
	struct ev_loop	*loop;		/* NULL: no timer (tests observe) */
	double		 period;	/* seconds a tilt lasts */
	/* Entered (or extended): the probes' counts should start again. */
	void		(*on_tilt)(void *arg, enum tilt_reason why,
			    double seconds);
	/*
	 * Over: held is how long time was not trusted, the stall
	 * included, by which the acting half extends its deadlines.
	 */
	void		(*on_over)(void *arg, double held);
	void		*arg;
};

struct tilt;

struct tilt	*tilt_new(const struct tilt_env *env);
void		 tilt_free(struct tilt *t);
void		 tilt_set_period(struct tilt *t, double period);
/* Nonzero while tilted; t may be NULL (never tilted). */
int		 tilt_active(const struct tilt *t);
/* Seconds until the tilt is over, 0 when not tilted. */
double		 tilt_left(const struct tilt *t);
const char	*tilt_reason_str(enum tilt_reason why);

/*
 * Pure: what happened between two readings taken tick seconds apart by
 * plan; *seconds gets the stall (how long the loop did not run) or the
 * jump (wall clock minus monotonic, signed).
 */
enum tilt_reason tilt_detect(const struct tilt_clock *prev,
		    const struct tilt_clock *now, double tick,
		    double *seconds);
/* One reading (the timer's, or a test's): may enter or end a tilt. */
void		 tilt_observe(struct tilt *t, const struct tilt_clock *now);

#endif
