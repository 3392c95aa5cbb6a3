/*
 * redact: URLs as they may be shown to a person or a log. Webhook URLs
 * carry their token in the path or the query, probe URLs and endpoints
 * may carry user:password; what failoverd prints (`failoverd -t`, whose
 * output the unit's ExecStartPre sends to the journal, and the log)
 * must carry none of them.
 */
#ifndef FAILOVERD_REDACT_H
#define FAILOVERD_REDACT_H

#include <stddef.h>

/*
 * Writes url to out (always NUL-terminated, truncated to len) with the
 * userinfo, every query value, the fragment and every path segment that
 * looks like a token replaced by "***". Returns out.
 */
char	*redact_url(const char *url, char *out, size_t len);

#endif
