/*
 * The control commands, in the order failoverctl's usage shows them.
 */
#include <string.h>

#include "failoverd/commands.h"

/* Where the help column starts in the usage. */
#define COMMAND_HELP_COL	21

static const struct command commands[COMMAND_MAX] = {
	{ .id = COMMAND_STATUS, .name = "status", .args = "[SERVICE]",
	    .help = "services, probes, current instance and AZ,\n"
	    "failovers in progress with their step" },
	{ .id = COMMAND_CLUSTER, .name = "cluster", .args = "[--json]",
	    .help = "the cluster's members, their leases, the\n"
	    "leader, each member's verdicts and who acts\n"
	    "on which failover" },
	{ .id = COMMAND_HISTORY, .name = "history", .args = "[SERVICE]",
	    .help = "past failovers with their timings" },
	{ .id = COMMAND_EVENTS, .name = "events", .args = "[--follow]",
	    .help = "the last event lines the daemon keeps in\n"
	    "memory (1000); --follow prints new ones as\n"
	    "they come, until interrupted",
	    .follow = "--follow" },
	{ .id = COMMAND_FAILOVER, .name = "failover", .args = "SERVICE",
	    .help = "replace SERVICE's instance now (asks for\n"
	    "confirmation on a terminal unless --yes)",
	    .changes = 1, .confirm = "Fail over",
	    .consequence = "Its instance is stopped and replaced." },
	{ .id = COMMAND_PAUSE, .name = "pause", .args = "SERVICE",
	    .help = "maintenance: probes run and alert, no\n"
	    "automatic failover", .changes = 1 },
	{ .id = COMMAND_RESUME, .name = "resume", .args = "SERVICE",
	    .help = "automatic failover again; also releases a\n"
	    "held or failed service", .changes = 1 },
	{ .id = COMMAND_SWITCH, .name = "switch",
	    .args = "SERVICE --ami AMI | SERVICE --finish",
	    .help = "release switch: a new instance from AMI,\n"
	    "checked on its private address, then\n"
	    "volumes and EIP move; the old one is\n"
	    "stopped and kept (asks unless --yes);\n"
	    "--finish terminates the instance it kept",
	    .changes = 1, .confirm = "Switch",
	    .consequence = "Its production instance is stopped and its "
	    "volumes and Elastic IP move." },
	{ .id = COMMAND_ROLLBACK, .name = "rollback", .args = "SERVICE",
	    .help = "move back to the kept instance",
	    .changes = 1, .confirm = "Roll back",
	    .consequence = "Its production instance is stopped and its "
	    "volumes and Elastic IP move." },
	{ .id = COMMAND_SNAPSHOT, .name = "snapshot", .args = "SERVICE",
	    .help = "snapshot SERVICE's data volumes now", .changes = 1 },
	{ .id = COMMAND_SNAPSHOTS, .name = "snapshots", .args = "SERVICE",
	    .help = "its snapshots, the last and next run" },
	{ .id = COMMAND_PREFLIGHT, .name = "preflight",
	    .args = "SERVICE [--result]",
	    .help = "prove a failover would work (dry runs);\n"
	    "--result shows the last finished one",
	    .changes = 1, .read_only = "--result" },
	{ .id = COMMAND_BAKE, .name = "bake",
	    .args = "SERVICE [--no-reboot] [--use]",
	    .help = "AMI of the current instance; --use makes\n"
	    "it the replacement AMI", .changes = 1 },
	{ .id = COMMAND_RELOAD, .name = "reload", .args = "",
	    .help = "re-read failoverd.conf (like SIGHUP)", .changes = 1 },
	{ .id = COMMAND_PING, .name = "ping", .args = "",
	    .help = "check that the daemon answers" },
};

const struct command *
command_find(const char *name)
{
	size_t i;

	for (i = 0; i < COMMAND_MAX; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

const struct command *
command_get(enum command_id id)
{
	if ((size_t)id >= COMMAND_MAX)
		return NULL;
	return &commands[id];
}

static int
command_has_flag(int argc, char **argv, const char *flag)
{
	int i;

	if (flag == NULL)
		return 0;
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], flag) == 0)
			return 1;
	return 0;
}

int
command_changes(const struct command *cmd, int argc, char **argv)
{
	return cmd->changes && !command_has_flag(argc, argv, cmd->read_only);
}

int
command_follows(const struct command *cmd, int argc, char **argv)
{
	return command_has_flag(argc, argv, cmd->follow);
}

void
command_usage(struct buf *out)
{
	const struct command	*c;
	const char		*h, *nl;
	size_t			 i;
	int			 n;

	for (i = 0; i < COMMAND_MAX; i++) {
		c = &commands[i];
		n = (int)(2 + strlen(c->name) + (*c->args ? 1 : 0) +
		    strlen(c->args));
		buf_printf(out, "  %s%s%s", c->name, *c->args ? " " : "",
		    c->args);
		if (n + 1 > COMMAND_HELP_COL) {
			buf_puts(out, "\n");
			n = 0;
		}
		for (h = c->help; *h != '\0'; h = nl + 1) {
			nl = strchr(h, '\n');
			if (nl == NULL)
				nl = h + strlen(h);
			buf_printf(out, "%*s%.*s\n", COMMAND_HELP_COL - n, "",
			    (int)(nl - h), h);
			n = 0;
			if (*nl == '\0')
				break;
		}
	}
}

void
command_names(struct buf *out)
{
	size_t i;

	for (i = 0; i < COMMAND_MAX; i++)
		buf_printf(out, "%s%s", i > 0 ? ", " : "", commands[i].name);
}
