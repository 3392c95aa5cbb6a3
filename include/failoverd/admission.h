/*
 * admission: a line where at most `limit` holders are in at once and the
 * others wait, first in, first out, holding nothing but a ticket.
 *
 * Work that would pile up without bound (probe checks in flight, one
 * preflight per service at start, one identity refresh per service)
 * enters a line; what cannot start now waits its turn instead of
 * holding memory and queueing behind a shared budget.
 *
 * The ticket is embedded in its owner (as an ev watcher is) and
 * initialised once with the function told when the owner's turn comes.
 * admission_enter() says 1 when the place is the caller's (start now)
 * and 0 when the ticket waits; its turn function is then called once a
 * place is its. The owner gives the place back with admission_leave()
 * when its work ends, and takes a waiting ticket out of the line with
 * admission_cancel() when it no longer wants to start (stopped, freed).
 *
 * Turns are given from an ev_prepare, at the top of the loop, never
 * from inside admission_leave(), admission_cancel() or
 * admission_set_limit(). A place is given back at the end of someone's
 * work, deep inside its callbacks (a probe's check end, an EC2 reply
 * handler, a failover engine resetting probes): starting the next
 * holder there would run its start in the middle of another state
 * machine's update, and one that fails at once and leaves would start
 * the next inside itself, a recursion as deep as the line. From the
 * prepare watcher every turn starts with nobody's state half-changed,
 * and a turn that leaves at once hands its place on in the same pass,
 * iteratively. The cost is one loop iteration between a leave and the
 * next start.
 *
 * Nobody passes the line: while a ticket waits, a newcomer waits behind
 * it even if a place is free (it is being handed on). The line belongs
 * to one loop and one owner, who frees it after every ticket has left.
 */
#ifndef FAILOVERD_ADMISSION_H
#define FAILOVERD_ADMISSION_H

#include <ev.h>

struct admission;

/* Called once per admission, with the place already the ticket's. */
typedef void (*admission_turn_cb)(void *arg);

/* Embedded in its owner; its fields are admission.c's. */
struct admission_ticket {
	struct admission_ticket	*next, *prev;
	admission_turn_cb	 turn;
	void			*arg;
	int			 state;
};

/* limit: as for admission_set_limit(). NULL when out of memory. */
struct admission *admission_new(struct ev_loop *loop, unsigned int limit);
void		 admission_free(struct admission *a);

/*
 * The limit can change at any time (a reload): raised, waiting tickets
 * get their turns from the loop; lowered, holders keep their places and
 * newcomers wait until fewer than the new limit are in. 0 counts as 1: a
 * line nobody may enter would hold its tickets forever.
 */
void		 admission_set_limit(struct admission *a,
		    unsigned int limit);

void		 admission_ticket_init(struct admission_ticket *t,
		    admission_turn_cb turn, void *arg);
/*
 * 1: the place is the caller's, start now (turn is not called). 0: t
 * waits; turn(arg) will be called from the loop. A ticket already
 * waiting or in stays as it is and gets 0: never two places, never a
 * second start.
 */
int		 admission_enter(struct admission *a,
		    struct admission_ticket *t);
/* Gives back the place t holds; no-op when t is not in. */
void		 admission_leave(struct admission *a,
		    struct admission_ticket *t);
/* Takes t out of the line; no-op when t is not waiting. */
void		 admission_cancel(struct admission *a,
		    struct admission_ticket *t);

int		 admission_ticket_waiting(const struct admission_ticket *t);
int		 admission_ticket_in(const struct admission_ticket *t);

/* For logs, status and metrics. */
unsigned int	 admission_limit(const struct admission *a);
unsigned int	 admission_in_use(const struct admission *a);
unsigned int	 admission_waiting(const struct admission *a);

#endif
