/*
 * ec2_priv: what ec2.c (transport, retries) and ec2_xml.c (results,
 * reply parsing) share. Not for other modules.
 */
#ifndef FAILOVERD_EC2_PRIV_H
#define FAILOVERD_EC2_PRIV_H

#include "failoverd/ec2.h"

struct ec2_pool;

#define EC2_ARRAY(type, name)	\
	type	*name;		\
	size_t	 n##name;	\
	size_t	 cap_##name

struct ec2_result {
	enum ec2_action		 action;
	enum ec2_status		 status;
	char			*code;
	char			*message;
	char			*request_id;
	char			*error_line;
	long			 http_status;
	unsigned int		 attempts;
	int			 retryable;
	char			*next_token;	/* of the last page read */

	struct ec2_pool		*pool;		/* every string below */
	EC2_ARRAY(struct ec2_instance, instances);
	EC2_ARRAY(struct ec2_instance_status, statuses);
	EC2_ARRAY(struct ec2_volume, volumes);
	EC2_ARRAY(struct ec2_address, addresses);
	EC2_ARRAY(struct ec2_snapshot, snapshots);
	EC2_ARRAY(struct ec2_image, images);
	EC2_ARRAY(struct ec2_zone, zones);
	EC2_ARRAY(struct ec2_state_change, changes);
	struct ec2_attachment	 attachment;
	int			 has_attachment;
	const char		*id;
	char			*console;
};

struct ec2_result *ec2_result_new(enum ec2_action action);

/*
 * Parses a reply into res, appending to its arrays (so pages merge).
 * On an AWS error document sets status EC2_ERR_AWS with code, message
 * and request id; on unreadable XML EC2_ERR_REPLY. Sets next_token.
 */
void	ec2_result_parse_into(struct ec2_result *res, const char *body,
	    size_t len, long http_status);

/* Replaces the error fields; code may be NULL. */
void	ec2_result_set_error(struct ec2_result *res, enum ec2_status st,
	    const char *code, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/* Drops every parsed item, keeping nothing of a previous attempt. */
void	ec2_result_clear(struct ec2_result *res);

/* Builds the one-line summary; call once the result is final. */
void	ec2_result_finish(struct ec2_result *res);

#endif
