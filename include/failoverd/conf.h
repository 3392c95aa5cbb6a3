/*
 * conf: failoverd.conf (libconfig) -> a validated, immutable struct config.
 *
 * The schema lives in one table in conf.c: every setting with its type,
 * range and default. A struct config is never changed after conf_load()
 * returns it; a reload builds a new one and swaps it in whole, so nothing
 * ever runs on a half-validated configuration.
 *
 * These structs are plain data on purpose (like relayd's host_config):
 * every module reads its own part, none writes.
 */
#ifndef FAILOVERD_CONF_H
#define FAILOVERD_CONF_H

#include <stddef.h>
#include <stdio.h>

#include "failoverd/paths.h"

#define CONF_DEFAULT_PATH	FOD_PATH_CONFIG

enum probe_type {
	PROBE_HTTP,
	PROBE_SSH
};

/* Which probes must be down for the service to be DOWN. */
enum policy_when {
	POLICY_WHEN_ALL,
	POLICY_WHEN_ANY,
	POLICY_WHEN_LIST	/* the probes named in failover_probes */
};

/* How the fence stops the old instance (StopInstances). */
enum policy_fence {
	POLICY_FENCE_GRACEFUL,	/* Force: OS shutdown, power off after */
	POLICY_FENCE_SKIP_OS	/* Force + SkipOsShutdown: power off now */
};

enum policy_old {
	POLICY_OLD_STOP,
	POLICY_OLD_TERMINATE,
	POLICY_OLD_KEEP
};

/*
 * Where failoverd gets the SSH host keys of a replacement, for the ssh
 * probes that follow the EIP (no address of their own).
 */
enum host_keys_source {
	HOST_KEYS_USER_DATA,	/* its own key, handed over by cloud-init */
	HOST_KEYS_CONSOLE,	/* printed by cloud-init on the console */
	HOST_KEYS_KNOWN_HOSTS	/* the probes' known_hosts only */
};

struct status_range {
	int	lo, hi;
};

struct http_conf {
	char		*url;		/* full URL, or NULL: built from the rest */
	char		*scheme;	/* "http" or "https" */
	int		 port;		/* 0: the scheme's */
	char		*path;
	char		*host;		/* Host/SNI name; NULL: the address */
	char		*method;	/* "GET" or "HEAD" */
	struct status_range *expect_status;
	size_t		 nexpect_status;
	char		*expect_body;	/* substring, or NULL */
	char		*expect_body_regex; /* POSIX ERE, or NULL */
	char		**headers;	/* "Name: value" */
	size_t		 nheaders;
	double		 connect_timeout;
	int		 tls_verify;
	char		*ca_file;
	int		 reuse_connection;
};

struct ssh_conf {
	int		 port;
	char		*user;
	char		*key_file;
	char		*known_hosts;
	char		*command;	/* NULL: handshake and auth only */
	char		*expect_output;	/* substring of the command's stdout */
};

struct probe_conf {
	char		*name;
	enum probe_type	 type;
	char		*address;	/* NULL: the service's Elastic IP */
	/* The local address probes bind to; NULL: the kernel picks. The
	 * daemon-wide probe_source_address is copied here at load. */
	char		*source_address;
	double		 interval;
	double		 timeout;
	int		 fall;
	int		 rise;
	struct http_conf http;
	struct ssh_conf	 ssh;
	int		 line;		/* where it was defined, for messages */
};

struct volume_conf {
	char		*id;
	char		*device;
};

struct tag_conf {
	char		*key;
	char		*value;
};

struct launch_conf {
	char		*ami;
	char		*instance_type;
	char		*subnet;
	char		**security_groups;
	size_t		 nsecurity_groups;
	char		*key_name;
	char		*iam_instance_profile;
	struct tag_conf	*tags;
	size_t		 ntags;
	char		*user_data_file;
	enum host_keys_source host_keys;
};

struct policy_conf {
	int		 auto_failover;
	enum policy_when when;
	char		**failover_probes;	/* POLICY_WHEN_LIST */
	size_t		 nfailover_probes;
	int		 failover_on_degraded;
	int		 corroborate;		/* ask DescribeInstanceStatus */
	double		 cooldown;
	int		 max_failovers;
	double		 window;
	enum policy_old	 old_instance;
	int		 restart_in_place;	/* fallback when no launch */
	enum policy_fence fence;
	/* Deadlines of the failover steps, seconds. */
	double		 fence_timeout;
	double		 launch_timeout;
	double		 detach_timeout;	/* then force */
	double		 attach_timeout;
	double		 associate_timeout;
	double		 verify_timeout;
	/* AZ evacuation (issue 7), off by default: it loses recent writes. */
	int		 evacuate;
	char		**evacuation_subnets;
	size_t		 nevacuation_subnets;
};

struct snapshot_conf {
	double		 interval;	/* 0: no scheduled snapshots */
	int		 window_start;	/* minutes after midnight UTC, -1 none */
	int		 window_end;
	int		 keep;		/* 0: no count limit */
	double		 max_age;	/* 0: no age limit */
	char		*pre_command;
	char		*post_command;
	double		 hook_timeout;
	/* The ssh probe whose user and key run the hooks; NULL: the first
	 * ssh probe that has a key_file. */
	char		*hook_probe;
};

struct service_conf {
	char		*name;
	char		*eip_allocation_id;
	struct volume_conf *volumes;
	size_t		 nvolumes;
	struct launch_conf launch;
	struct probe_conf *probes;
	size_t		 nprobes;
	struct policy_conf policy;
	struct snapshot_conf snapshot;
	int		 line;
};

struct aws_conf {
	char		*region;	/* NULL: AWS_REGION */
	char		*endpoint;	/* NULL: AWS_ENDPOINT_URL_EC2 ... */
	char		*imds_endpoint;	/* NULL: the SDK default/env */
	char		*sts_endpoint;	/* NULL: the region's STS */
	char		*container_endpoint; /* NULL: http://169.254.170.2 */
	char		*profile;	/* NULL: AWS_PROFILE or "default" */
	char		*ca_file;
	double		 calls_per_second;
	int		 burst;
	double		 call_timeout;
	double		 credential_process_timeout;
};

struct alerts_conf {
	char		*exec;		/* hook run per event, or NULL */
	char		*webhook;	/* URL POSTed per event, or NULL */
	double		 rate_limit;	/* seconds */
	char		*min_severity;	/* for hooks: "warning", "err", ... */
};

/* metrics: the textfile collector's file; off without textfile_dir. */
struct metrics_conf {
	char		*textfile_dir;	/* NULL: no metrics written */
	double		 period;	/* seconds between writes */
	int		 fsync;		/* fsync before the rename */
};

/* How the file gave the quorum, for `failoverd -t` to say it back. */
enum cluster_quorum_rule {
	CLUSTER_QUORUM_MAJORITY,	/* "majority" or absent */
	CLUSTER_QUORUM_COUNT,		/* an integer */
	CLUSTER_QUORUM_FRACTION		/* a float in (0, 1] */
};

/*
 * cluster: several watchdogs sharing one etcd (cluster.h). Absent (the
 * config's cluster is NULL): one watchdog, no etcd, as before.
 */
struct cluster_conf {
	char		*name;		/* this member, one of members */
	char		**members;	/* every member configured */
	size_t		 nmembers;
	char		**endpoints;	/* etcd: "http(s)://host:port" */
	size_t		 nendpoints;
	char		*prefix;	/* keys live under it: "/failoverd" */
	long		 lease_ttl;	/* seconds (etcd's TTL is whole) */
	int		 quorum;	/* DOWN verdicts needed, resolved to
					   a count: 1 .. nmembers */
	double		 timeout;	/* seconds per etcd call */
	char		*ca_file;	/* https: NULL: the system's CAs */
	char		*cert_file;	/* client certificate, or NULL */
	char		*key_file;	/* its key (a secret: never shown) */
	char		*host_key_secret; /* HOSTKEY_SEED_LEN bytes every
					   member shares, or NULL (a secret:
					   only its path is shown) */
	enum cluster_quorum_rule quorum_rule;	/* how quorum was given */
	double		 quorum_fraction; /* CLUSTER_QUORUM_FRACTION's */
};

struct config {
	char		*path;
	char		*state_dir;
	char		*control_socket;
	char		*control_group;	/* NULL: the daemon's group */
	int		 control_mode;
	int		 syslog_facility;
	int		 debug;
	double		 watchdog_interval; /* 0: from WATCHDOG_USEC */
	int		 probe_max_in_flight; /* checks at once, daemon-wide */
	char		*probe_source_address;	/* NULL: the kernel picks */
	double		 tilt_period;	/* seconds the acting half waits */
	struct aws_conf	 aws;
	struct alerts_conf alerts;
	struct metrics_conf metrics;
	struct cluster_conf *cluster;	/* NULL: a single watchdog */
	struct service_conf *services;
	size_t		 nservices;
};

/*
 * Parses and validates path. On failure returns NULL and writes every
 * error found, one per line ("file:line: setting.path: what is wrong"),
 * to err (which is always NUL-terminated).
 */
struct config	*conf_load(const char *path, char *err, size_t errlen);
void		 conf_free(struct config *conf);

/* Prints the one-screen summary `failoverd -t` shows. */
void		 conf_print_summary(const struct config *conf, FILE *fp);

/* Nonzero when two service definitions are the same in every setting. */
int		 conf_service_equal(const struct service_conf *a,
		    const struct service_conf *b);
int		 conf_probe_equal(const struct probe_conf *a,
		    const struct probe_conf *b);

const struct service_conf *conf_find_service(const struct config *conf,
		    const char *name);

const char	*probe_type_str(enum probe_type t);

/*
 * Checks an AMI id that comes from a person (failoverctl switch --ami)
 * as the configuration's are checked: ami- and 8 or 17 hex digits.
 * Returns 0, or -1 with the reason in why.
 */
int		 conf_valid_ami(const char *v, char *why, size_t whylen);

/*
 * The checks daemon start (and reload) makes beyond the file itself, for
 * `-t` to make the same ones: the state directory exists, is a directory
 * and is writable; the control socket's directory exists. Returns 0, or
 * -1 with the reason in err.
 */
/*
 * Writes a warning to fp for each probe source address this host does
 * not hold now (not an error: see conf.c); the number written.
 */
int		 conf_warn_sources(const struct config *conf, FILE *fp);
int		 conf_check_start(const struct config *conf, char *err,
		    size_t errlen);

#endif
