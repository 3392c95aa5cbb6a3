/*
 * The ring of recent event lines. Each line is stored once, formatted
 * as it will be shown, so a reader costs a copy and nothing more.
 * Control bytes are escaped here: the lines go to terminals, and a
 * newline inside one would break the one-line-per-event framing of a
 * follower's stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "failoverd/alert.h"
#include "failoverd/events.h"
#include "failoverd/log.h"

struct events {
	char		**lines;	/* keep slots, each NULL or a line */
	size_t		  keep;
	size_t		  next;		/* slot of the next line */
	size_t		  count;
	events_line_fn	 *on_line;
	void		 *arg;
};

/* "2026-12-02T16:20:01Z <line>", control bytes as \xNN. */
static char *
events_format(const char *line)
{
	char		 out[EVENTS_LINE_MAX + 8];
	size_t		 off = 0;
	time_t		 now = time(NULL);
	struct tm	 tm;
	const unsigned char *p;

	if (gmtime_r(&now, &tm) != NULL)
		off = strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	for (p = (const unsigned char *)line; *p != '\0' &&
	    off + 5 < EVENTS_LINE_MAX; p++) {
		if (*p < 0x20 || *p == 0x7f)
			off += snprintf(out + off, sizeof(out) - off,
			    "\\x%02x", *p);
		else
			out[off++] = (char)*p;
	}
	out[off] = '\0';
	return strdup(out);
}

static void
events_on_event(enum alert_event event, const char *service,
    const char *const *kv, size_t nkv, const char *line, void *arg)
{
	struct events	*ev = arg;
	char		*l;

	l = events_format(line);
	if (l == NULL)
		return;		/* the log still has it */
	free(ev->lines[ev->next]);
	ev->lines[ev->next] = l;
	ev->next = (ev->next + 1) % ev->keep;
	if (ev->count < ev->keep)
		ev->count++;
	if (ev->on_line != NULL)
		ev->on_line(l, ev->arg);
}

struct events *
events_new(size_t keep, events_line_fn *on_line, void *arg)
{
	struct events *ev;

	if (keep == 0)
		return NULL;
	ev = calloc(1, sizeof(*ev));
	if (ev == NULL)
		return NULL;
	ev->lines = calloc(keep, sizeof(*ev->lines));
	if (ev->lines == NULL) {
		free(ev);
		return NULL;
	}
	ev->keep = keep;
	ev->on_line = on_line;
	ev->arg = arg;
	if (alert_observe(events_on_event, ev) == -1) {
		free(ev->lines);
		free(ev);
		return NULL;
	}
	return ev;
}

void
events_free(struct events *ev)
{
	size_t i;

	if (ev == NULL)
		return;
	alert_unobserve(events_on_event, ev);
	for (i = 0; i < ev->keep; i++)
		free(ev->lines[i]);
	free(ev->lines);
	free(ev);
}

void
events_render(const struct events *ev, struct buf *out, int json)
{
	size_t		 i, slot;
	const char	*l;

	if (json)
		buf_puts(out, "{\"events\":[");
	for (i = 0; i < ev->count; i++) {
		slot = (ev->next + ev->keep - ev->count + i) % ev->keep;
		l = ev->lines[slot];
		if (!json) {
			buf_printf(out, "%s\n", l);
			continue;
		}
		if (i > 0)
			buf_puts(out, ",");
		buf_json_str(out, l);
	}
	if (json)
		buf_puts(out, "]}\n");
}
