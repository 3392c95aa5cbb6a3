/*
 * events: the last event lines in the daemon's memory, for
 * `failoverctl events`: a person without access to the journal sees the
 * same story. A bounded ring, fed by alert_observe(): every event as it
 * is emitted, with the time it happened (UTC), one line each.
 */
#ifndef FAILOVERD_EVENTS_H
#define FAILOVERD_EVENTS_H

#include <stddef.h>

#include "failoverd/buf.h"

/* Lines kept; older ones fall off. */
#define EVENTS_KEEP		1000
/* A longer event line is cut here (alert.c's lines are shorter). */
#define EVENTS_LINE_MAX		4096

struct events;

/* Called with each new line (no newline), e.g. for followers. */
typedef void	 events_line_fn(const char *line, void *arg);

/* NULL when out of memory or no alert observer is free. */
struct events	*events_new(size_t keep, events_line_fn *on_line, void *arg);
void		 events_free(struct events *ev);
/* Appends the lines kept, oldest first; json: {"events":["...",...]}. */
void		 events_render(const struct events *ev, struct buf *out,
		    int json);

#endif
