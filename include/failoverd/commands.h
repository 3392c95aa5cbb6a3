/*
 * commands: the one list of control commands. The control server's
 * dispatch (daemon.c), its audit events and failoverctl's usage all come
 * from it, so the CLI cannot offer what the daemon does not serve, nor
 * the daemon change anything without an audit line.
 */
#ifndef FAILOVERD_COMMANDS_H
#define FAILOVERD_COMMANDS_H

#include "failoverd/buf.h"

enum command_id {
	COMMAND_STATUS,
	COMMAND_CLUSTER,
	COMMAND_HISTORY,
	COMMAND_EVENTS,
	COMMAND_FAILOVER,
	COMMAND_PAUSE,
	COMMAND_RESUME,
	COMMAND_SWITCH,
	COMMAND_ROLLBACK,
	COMMAND_SNAPSHOT,
	COMMAND_SNAPSHOTS,
	COMMAND_PREFLIGHT,
	COMMAND_BAKE,
	COMMAND_RELOAD,
	COMMAND_PING,
	COMMAND_MAX
};

struct command {
	enum command_id	 id;
	const char	*name;
	const char	*args;		/* for usage: "SERVICE [--result]" */
	const char	*help;		/* lines for usage, '\n' between */
	int		 changes;	/* acts: an audit event names who */
	const char	*read_only;	/* this flag makes it only read */
	const char	*follow;	/* this flag: the reply streams */
	/*
	 * failoverctl asks on a terminal unless --yes: "<confirm> service
	 * SERVICE now? <consequence>".
	 */
	const char	*confirm;
	const char	*consequence;
};

/* The command named name, or NULL. */
const struct command *command_find(const char *name);
const struct command *command_get(enum command_id id);
/* Whether this request changes something (and is audited). */
int		 command_changes(const struct command *cmd, int argc,
		    char **argv);
/* Whether this request's reply streams until the client leaves. */
int		 command_follows(const struct command *cmd, int argc,
		    char **argv);
/* "  status [SERVICE]   services, ..." lines, as failoverctl shows. */
void		 command_usage(struct buf *out);
/* "status, history, ..., ping" */
void		 command_names(struct buf *out);

#endif
