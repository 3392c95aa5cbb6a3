/*
 * redact: one function for every URL failoverd prints.
 *
 * What counts as secret is decided by shape, not by knowing each
 * service's URL scheme: userinfo is always a credential; query values
 * are where most webhook services put their token; a long path segment
 * mixing letters and digits is how Slack, Discord and similar services
 * put it in the path (hooks.slack.com/services/T.../B.../<token>). A
 * path such as /health or /api/v1/status keeps its meaning.
 */
#include <ctype.h>
#include <string.h>

#include "failoverd/redact.h"

/* A path segment at least this long, of token characters with a digit
 * or a capital, is a token: words and ids people write in a health path
 * are shorter or lowercase (/very-long-health-check). */
#define REDACT_TOKEN_MIN	16

struct redact_out {
	char	*buf;
	size_t	 len;
	size_t	 off;
};

static void
redact_put(struct redact_out *o, const char *s, size_t n)
{
	size_t room;

	if (o->len == 0)
		return;
	room = o->len - 1 - o->off;
	if (n > room)
		n = room;
	memcpy(o->buf + o->off, s, n);
	o->off += n;
	o->buf[o->off] = '\0';
}

static int
redact_is_token(const char *s, size_t n)
{
	size_t	 i;
	int	 mixed = 0;

	if (n < REDACT_TOKEN_MIN)
		return 0;
	for (i = 0; i < n; i++) {
		if (isupper((unsigned char)s[i]) ||
		    isdigit((unsigned char)s[i]))
			mixed = 1;
		else if (!islower((unsigned char)s[i]) &&
		    strchr("-_.~", s[i]) == NULL)
			return 0;
	}
	return mixed;
}

char *
redact_url(const char *url, char *out, size_t len)
{
	struct redact_out	 o = { out, len, 0 };
	const char		*p, *auth, *end, *at, *seg;
	size_t			 n;

	if (len > 0)
		out[0] = '\0';
	if (url == NULL)
		return out;
	p = strstr(url, "://");
	if (p == NULL) {
		/* Not a URL we can take apart: show none of it. */
		redact_put(&o, "***", 3);
		return out;
	}
	auth = p + 3;
	redact_put(&o, url, (size_t)(auth - url));
	end = auth + strcspn(auth, "/?#");
	/* The last '@' ends the userinfo: a password may hold an '@'. */
	at = NULL;
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (at != NULL) {
		redact_put(&o, "***@", 4);
		auth = at + 1;
	}
	redact_put(&o, auth, (size_t)(end - auth));
	p = end;
	/* The path, a segment at a time. */
	while (*p == '/') {
		redact_put(&o, "/", 1);
		seg = ++p;
		n = strcspn(seg, "/?#");
		if (redact_is_token(seg, n))
			redact_put(&o, "***", 3);
		else
			redact_put(&o, seg, n);
		p = seg + n;
	}
	/* The query: names kept, values hidden. */
	if (*p == '?') {
		redact_put(&o, "?", 1);
		p++;
		while (*p != '\0' && *p != '#') {
			n = strcspn(p, "=&#");
			redact_put(&o, p, n);
			p += n;
			if (*p == '=') {
				redact_put(&o, "=***", 4);
				p += strcspn(p, "&#");
			}
			if (*p == '&') {
				redact_put(&o, "&", 1);
				p++;
			}
		}
	}
	if (*p == '#')
		redact_put(&o, "#***", 4);
	return out;
}
