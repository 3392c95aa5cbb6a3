/*
 * ec2: an asynchronous EC2 Query API client on the daemon's loop.
 *
 * A call is a generic request (action + key/value parameters) sent with
 * ec2_call(); the reply is parsed into a typed, read-only result that the
 * done callback receives. Retries (throttling, 5xx, dropped connections,
 * eventual consistency), clock-skew correction, pagination and the
 * client-side call budget all happen inside the call, bounded by the
 * caller's deadline. Nothing here blocks the loop.
 */
#ifndef FAILOVERD_EC2_H
#define FAILOVERD_EC2_H

#include <stddef.h>

#include <ev.h>

struct aws_conf;
struct creds_provider;
struct curlev;

struct ec2_client;
struct ec2_request;
struct ec2_result;
struct ec2_call;

enum ec2_action {
	EC2_RUN_INSTANCES,
	EC2_DESCRIBE_INSTANCES,
	EC2_DESCRIBE_INSTANCE_STATUS,
	EC2_DESCRIBE_VOLUMES,
	EC2_DESCRIBE_ADDRESSES,
	EC2_DESCRIBE_SNAPSHOTS,
	EC2_DESCRIBE_IMAGES,
	EC2_DESCRIBE_AVAILABILITY_ZONES,
	EC2_START_INSTANCES,
	EC2_STOP_INSTANCES,
	EC2_TERMINATE_INSTANCES,
	EC2_CREATE_VOLUME,
	EC2_ATTACH_VOLUME,
	EC2_DETACH_VOLUME,
	EC2_CREATE_SNAPSHOT,
	EC2_DELETE_SNAPSHOT,
	EC2_ASSOCIATE_ADDRESS,
	EC2_DISASSOCIATE_ADDRESS,
	EC2_CREATE_IMAGE,
	EC2_DEREGISTER_IMAGE,
	EC2_CREATE_TAGS,
	EC2_GET_CONSOLE_OUTPUT,
	EC2_ACTION_COUNT
};

/* "RunInstances"...; ec2_action_from_str returns -1 when unknown. */
const char	*ec2_action_str(enum ec2_action a);
/* 1 when the action changes something in the account (not a read). */
int		 ec2_action_mutates(enum ec2_action a);
int		 ec2_action_from_str(const char *s);

enum ec2_status {
	EC2_OK,
	EC2_DRY_RUN_OK,		/* DryRunOperation: it would have worked */
	EC2_ERR_AWS,		/* AWS said no: see code and message */
	EC2_ERR_NETWORK,	/* transport failed (after retries) */
	EC2_ERR_TIMEOUT,	/* the caller's deadline passed */
	EC2_ERR_REPLY,		/* a reply we cannot read (bad XML) */
	EC2_ERR_CREDS,		/* no usable credentials */
	EC2_ERR_CONFIG,		/* no region, bad endpoint */
	EC2_ERR_INTERNAL,	/* out of memory, curl refused */
	EC2_ERR_GATED		/* the gate (ec2_set_gate) refused: never sent */
};

const char	*ec2_status_str(enum ec2_status s);
#define EC2_STATUS_COUNT	(EC2_ERR_GATED + 1)

/* --- typed results (read-only, owned by the result) ---------------- */

struct ec2_tag {
	const char	*key;
	const char	*value;
};

struct ec2_block_device {
	const char	*device_name;
	const char	*volume_id;
	const char	*status;
	int		 delete_on_termination;
};

struct ec2_instance {
	const char		*instance_id;
	const char		*state;		/* pending, running... */
	int			 state_code;
	const char		*az;
	const char		*subnet_id;
	const char		*vpc_id;
	const char		*private_ip;
	const char		*public_ip;
	const char		*image_id;
	const char		*instance_type;
	const char		*key_name;
	const char		*launch_time;	/* ISO 8601, as AWS sent */
	const char		*root_device_name;
	struct ec2_tag		*tags;
	size_t			 ntags;
	struct ec2_block_device	*bdm;
	size_t			 nbdm;
};

struct ec2_instance_status {
	const char	*instance_id;
	const char	*az;
	const char	*state;
	const char	*instance_status;	/* ok, impaired, ... */
	const char	*system_status;
};

/* Also the result of AttachVolume and DetachVolume. */
struct ec2_attachment {
	const char	*volume_id;
	const char	*instance_id;
	const char	*device;
	const char	*state;		/* attaching, attached, ... */
	int		 delete_on_termination;
};

struct ec2_volume {
	const char		*volume_id;
	const char		*state;		/* creating, available... */
	const char		*az;
	const char		*snapshot_id;
	const char		*volume_type;
	const char		*create_time;
	int			 size_gib;
	int			 iops;		/* 0: not reported */
	int			 throughput;	/* MiB/s; 0: not reported */
	struct ec2_attachment	*attachments;
	size_t			 nattachments;
	struct ec2_tag		*tags;
	size_t			 ntags;
};

struct ec2_address {
	const char	*public_ip;
	const char	*allocation_id;
	const char	*association_id;
	const char	*instance_id;
	const char	*network_interface_id;
	const char	*private_ip;
	const char	*domain;
	struct ec2_tag	*tags;
	size_t		 ntags;
};

struct ec2_snapshot {
	const char	*snapshot_id;
	const char	*volume_id;
	const char	*state;		/* pending, completed, error */
	const char	*progress;
	const char	*start_time;
	const char	*description;
	int		 volume_size;
	struct ec2_tag	*tags;
	size_t		 ntags;
};

struct ec2_image {
	const char		*image_id;
	const char		*name;
	const char		*state;	/* pending, available, failed */
	const char		*creation_date;
	const char		*description;
	const char		*root_device_name;
	struct ec2_block_device	*bdm;	/* volume_id holds the snapshot */
	size_t			 nbdm;
	struct ec2_tag		*tags;
	size_t			 ntags;
};

struct ec2_zone {
	const char	*zone_name;
	const char	*zone_id;
	const char	*state;		/* available, impaired, ... */
	const char	*region;
};

/* Start/Stop/TerminateInstances. */
struct ec2_state_change {
	const char	*instance_id;
	const char	*current_state;
	const char	*previous_state;
};

/* --- requests ------------------------------------------------------- */

struct ec2_request *ec2_request_new(enum ec2_action action);
void		 ec2_request_free(struct ec2_request *req);
/* Each returns 0, or -1 when out of memory (the request is then bad). */
int		 ec2_request_add(struct ec2_request *req, const char *key,
		    const char *value);
int		 ec2_request_addf(struct ec2_request *req, const char *key,
		    const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
/* prefix.1=v[0], prefix.2=v[1], ... */
int		 ec2_request_add_list(struct ec2_request *req,
		    const char *prefix, const char *const *values, size_t n);
/* Filter.N.Name=name, Filter.N.Value.M=values[M-1] */
int		 ec2_request_add_filter(struct ec2_request *req,
		    const char *name, const char *const *values, size_t n);
/* TagSpecification.N.ResourceType=type with its Tag.M.Key/Value. */
int		 ec2_request_add_tag_spec(struct ec2_request *req,
		    const char *resource_type, const struct ec2_tag *tags,
		    size_t n);
void		 ec2_request_set_dry_run(struct ec2_request *req, int on);
/*
 * The ids in this request were just created or changed by this daemon:
 * "*.NotFound" is eventual consistency and retried, not an absence.
 */
void		 ec2_request_set_after_mutation(struct ec2_request *req,
		    int on);
enum ec2_action	 ec2_request_action(const struct ec2_request *req);
/*
 * For a create that has no ClientToken (CreateSnapshot, CreateImage):
 * lookup (DescribeSnapshots or DescribeImages, taken whatever happens)
 * finds what req makes, by the tags or name the caller gave it. When an
 * attempt's fate is unknown (reply lost, a 5xx, a dropped connection),
 * the call runs lookup before sending req again, for a while since
 * Describe lags, and what it finds is the call's answer (its id in
 * ec2_result_id, the item in ec2_result_snapshots/images). A later
 * attempt failing with dup_code (may be NULL), e.g.
 * InvalidAMIName.Duplicate, is looked up the same way. -1: out of
 * memory, or lookup is not a Describe of that kind (req is then bad).
 */
int		 ec2_request_set_effect_lookup(struct ec2_request *req,
		    struct ec2_request *lookup, const char *dup_code);

/* --- the client ----------------------------------------------------- */

/*
 * The EC2 endpoint the AWS SDKs use for region by default, as
 * botocore's endpoints.json has it: the partition's DNS suffix
 * (amazonaws.com.cn for cn-*), "ec2-fips" with fips (GovCloud's EC2
 * endpoint is FIPS already), the dual-stack suffix (api.aws...) with
 * dualstack. Pure. -1 with err set for a bad region or a partition
 * without dual-stack endpoints.
 */
int		 ec2_endpoint_for(const char *region, int fips,
		    int dualstack, char *out, size_t outlen, char *err,
		    size_t errlen);

/*
 * conf is read at creation (region, endpoint, CA file, call budget); the
 * client does not keep it. On failure returns NULL with err set.
 */
struct ec2_client *ec2_client_new(struct ev_loop *loop, struct curlev *cl,
		    struct creds_provider *creds, const struct aws_conf *conf,
		    char *err, size_t errlen);
/* Cancels every call in flight without calling back. */
void		 ec2_client_free(struct ec2_client *c);

/*
 * The one gate of every call that changes the account (ec2_action_mutates):
 * asked right before each attempt (the first and every retry); 0 ends
 * the call unsent with EC2_ERR_GATED and "not the cluster's leader:
 * <why>". A cluster's member sets cluster_may_act; NULL: no gate.
 */
void		 ec2_set_gate(struct ec2_client *c,
		    int (*gate)(void *arg, char *why, size_t len), void *arg);
const char	*ec2_client_endpoint(const struct ec2_client *c);
const char	*ec2_client_region(const struct ec2_client *c);
/*
 * Whether a call made now would go out at once and still leave reserve
 * tokens of the call budget (aws.calls_per_second) for whatever comes
 * next, with no call waiting: optional polls ask this first, so they
 * only ever use budget nobody else wants.
 */
int		 ec2_budget_spare(struct ec2_client *c, double reserve);

/*
 * What the client did since it was made, for the metrics. A cancelled
 * call is in none of the counts: it ended without an answer.
 */
struct ec2_stats {
	/* Calls ended, by action and by how they ended. */
	unsigned long	 calls[EC2_ACTION_COUNT][EC2_STATUS_COUNT];
	/* Attempts sent again after a passing trouble, by action. */
	unsigned long	 retries[EC2_ACTION_COUNT];
	/* Answers that said slow down (throttling codes, HTTP 429). */
	unsigned long	 throttles[EC2_ACTION_COUNT];
	/* Seconds calls spent waiting for a token of the call budget. */
	double		 budget_wait;
	unsigned int	 budget_waiting;	/* calls waiting now */
	double		 budget_tokens;		/* -1: no budget set */
};
void		 ec2_client_stats(struct ec2_client *c,
		    struct ec2_stats *out);

/*
 * The callback owns res and frees it with ec2_result_free(). It is
 * called exactly once, always from the loop, never from inside
 * ec2_call(), unless the call is cancelled first.
 */
typedef void (*ec2_done_cb)(struct ec2_result *res, void *arg);

/*
 * Sends req (ec2_call takes it, whatever happens) and finishes within
 * deadline seconds from now. Returns a handle for ec2_call_cancel(),
 * valid until the callback runs; NULL only when out of memory (req is
 * freed and the callback will not run).
 */
struct ec2_call	*ec2_call(struct ec2_client *c, struct ec2_request *req,
		    double deadline, ec2_done_cb cb, void *arg);
void		 ec2_call_cancel(struct ec2_call *call);

/* --- reading a result ----------------------------------------------- */

void		 ec2_result_free(struct ec2_result *res);
enum ec2_action	 ec2_result_action(const struct ec2_result *res);
enum ec2_status	 ec2_result_status(const struct ec2_result *res);
/* AWS's error code ("InvalidInstanceID.NotFound") or NULL. */
const char	*ec2_result_code(const struct ec2_result *res);
const char	*ec2_result_message(const struct ec2_result *res);
const char	*ec2_result_request_id(const struct ec2_result *res);
long		 ec2_result_http_status(const struct ec2_result *res);
unsigned int	 ec2_result_attempts(const struct ec2_result *res);
/* Whether the final error was of a retryable kind (ran out of time). */
int		 ec2_result_retryable(const struct ec2_result *res);
/* One line for a person: action, status, code, message, request id. */
const char	*ec2_result_error(const struct ec2_result *res);

size_t		 ec2_result_instances(const struct ec2_result *res,
		    const struct ec2_instance **out);
size_t		 ec2_result_instance_statuses(const struct ec2_result *res,
		    const struct ec2_instance_status **out);
size_t		 ec2_result_volumes(const struct ec2_result *res,
		    const struct ec2_volume **out);
size_t		 ec2_result_addresses(const struct ec2_result *res,
		    const struct ec2_address **out);
size_t		 ec2_result_snapshots(const struct ec2_result *res,
		    const struct ec2_snapshot **out);
size_t		 ec2_result_images(const struct ec2_result *res,
		    const struct ec2_image **out);
size_t		 ec2_result_zones(const struct ec2_result *res,
		    const struct ec2_zone **out);
size_t		 ec2_result_state_changes(const struct ec2_result *res,
		    const struct ec2_state_change **out);
/* AttachVolume / DetachVolume, else NULL. */
const struct ec2_attachment *ec2_result_attachment(
		    const struct ec2_result *res);
/*
 * The id a create call returned: CreateImage's imageId,
 * AssociateAddress's associationId, RunInstances' reservationId, also
 * CreateVolume's volumeId and CreateSnapshot's snapshotId (which are
 * in ec2_result_volumes/snapshots too). NULL otherwise.
 */
const char	*ec2_result_id(const struct ec2_result *res);
/* GetConsoleOutput, decoded; NULL when the instance has none yet. */
const char	*ec2_result_console_output(const struct ec2_result *res);

/*
 * Parses one HTTP reply body into a new result, as the client does
 * (exposed for the unit tests): never NULL except out of memory.
 */
struct ec2_result *ec2_result_parse(enum ec2_action action,
		    const char *body, size_t len, long http_status);

#endif
