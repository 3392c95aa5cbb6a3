/*
 * An admission line (admission.h): a counter of places in use and a
 * doubly linked list of waiting tickets, so that a ticket leaves the
 * line in constant time wherever it stands (an owner stopped or freed
 * while waiting), and an ev_prepare that hands free places on.
 */
#include <stdlib.h>

#include "failoverd/admission.h"

enum {
	ADMISSION_OUT,
	ADMISSION_WAITING,
	ADMISSION_IN
};

struct admission {
	struct ev_loop		*loop;
	unsigned int		 limit;
	unsigned int		 in_use;
	unsigned int		 nwaiting;
	struct admission_ticket	*head, *tail;
	ev_prepare		 handout;	/* gives turns */
};

static void
admission_unlink(struct admission *a, struct admission_ticket *t)
{
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		a->head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	else
		a->tail = t->prev;
	t->next = t->prev = NULL;
	a->nwaiting--;
}

/* Turns are due when someone waits and a place is free. */
static void
admission_wake(struct admission *a)
{
	if (a->head != NULL && a->in_use < a->limit &&
	    !ev_is_active(&a->handout))
		ev_prepare_start(a->loop, &a->handout);
}

static void
admission_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct admission	*a = w->data;
	struct admission_ticket	*t;

	/*
	 * A turn may leave at once (its work failed to start), cancel or
	 * enter other tickets: the head is read anew each time round.
	 */
	while (a->head != NULL && a->in_use < a->limit) {
		t = a->head;
		admission_unlink(a, t);
		t->state = ADMISSION_IN;
		a->in_use++;
		t->turn(t->arg);
	}
	ev_prepare_stop(loop, w);
}

struct admission *
admission_new(struct ev_loop *loop, unsigned int limit)
{
	struct admission *a;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->loop = loop;
	a->limit = limit > 0 ? limit : 1;
	ev_prepare_init(&a->handout, admission_on_prepare);
	a->handout.data = a;
	return a;
}

void
admission_free(struct admission *a)
{
	if (a == NULL)
		return;
	ev_prepare_stop(a->loop, &a->handout);
	free(a);
}

void
admission_set_limit(struct admission *a, unsigned int limit)
{
	a->limit = limit > 0 ? limit : 1;
	admission_wake(a);
}

void
admission_ticket_init(struct admission_ticket *t, admission_turn_cb turn,
    void *arg)
{
	t->next = t->prev = NULL;
	t->turn = turn;
	t->arg = arg;
	t->state = ADMISSION_OUT;
}

int
admission_enter(struct admission *a, struct admission_ticket *t)
{
	if (t->state != ADMISSION_OUT)
		return 0;
	if (a->head == NULL && a->in_use < a->limit) {
		t->state = ADMISSION_IN;
		a->in_use++;
		return 1;
	}
	t->next = NULL;
	t->prev = a->tail;
	if (a->tail != NULL)
		a->tail->next = t;
	else
		a->head = t;
	a->tail = t;
	t->state = ADMISSION_WAITING;
	a->nwaiting++;
	return 0;
}

void
admission_leave(struct admission *a, struct admission_ticket *t)
{
	if (t->state != ADMISSION_IN)
		return;
	t->state = ADMISSION_OUT;
	a->in_use--;
	admission_wake(a);
}

void
admission_cancel(struct admission *a, struct admission_ticket *t)
{
	if (t->state != ADMISSION_WAITING)
		return;
	admission_unlink(a, t);
	t->state = ADMISSION_OUT;
}

int
admission_ticket_waiting(const struct admission_ticket *t)
{
	return t->state == ADMISSION_WAITING;
}

int
admission_ticket_in(const struct admission_ticket *t)
{
	return t->state == ADMISSION_IN;
}

unsigned int
admission_limit(const struct admission *a)
{
	return a->limit;
}

unsigned int
admission_in_use(const struct admission *a)
{
	return a->in_use;
}

unsigned int
admission_waiting(const struct admission *a)
{
	return a->nwaiting;
}
