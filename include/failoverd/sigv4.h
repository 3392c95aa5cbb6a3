/*
 * sigv4: AWS Signature Version 4 (header signing), pure: no I/O, no clock.
 *
 * The caller gives the request as it will be sent and the signing context;
 * the signer returns every intermediate product so that the AWS test suite
 * can compare each of them byte for byte, and the EC2 client only needs
 * the Authorization value and the X-Amz-Date string.
 */
#ifndef FAILOVERD_SIGV4_H
#define FAILOVERD_SIGV4_H

#include <stddef.h>
#include <time.h>

struct sigv4_header {
	const char	*name;
	const char	*value;
};

/* Flags of struct sigv4_input. */
/* Remove "." and ".." segments and duplicate '/' (every service but S3). */
#define SIGV4_NORMALIZE_PATH	0x01
/* Add and sign an x-amz-content-sha256 header (S3 style; EC2 does not). */
#define SIGV4_SIGN_BODY		0x02
/* Send the session token but leave it out of the signature (old STS). */
#define SIGV4_OMIT_TOKEN	0x04

struct sigv4_input {
	const char			*method;
	const char			*path;	/* raw, as on the wire */
	const char			*query;	/* raw, without '?'; or NULL */
	const struct sigv4_header	*headers;	/* must include Host */
	size_t				 nheaders;
	const void			*payload;
	size_t				 payload_len;
	const char			*region;
	const char			*service;
	time_t				 when;	/* wall clock, UTC */
	const char			*access_key_id;
	const char			*secret_access_key;
	const char			*session_token;	/* or NULL */
	unsigned int			 flags;
};

/*
 * Everything the signer produced; strings are owned by the result.
 * The headers to add to the request are X-Amz-Date: amz_date,
 * X-Amz-Security-Token (if a token was given), x-amz-content-sha256:
 * payload_hash (with SIGV4_SIGN_BODY) and Authorization: authorization.
 */
struct sigv4_result {
	char	*canonical_request;
	char	*string_to_sign;
	char	*signature;		/* 64 lowercase hex characters */
	char	*authorization;
	char	 amz_date[17];		/* 20150830T123600Z */
	char	 payload_hash[65];
};

/* 0 on success; -1 with a message in err (bad input, out of memory). */
int	sigv4_sign(const struct sigv4_input *in, struct sigv4_result *out,
	    char *err, size_t errlen);
void	sigv4_result_free(struct sigv4_result *res);

/* Lowercase hex SHA-256 of data into hex[65]. */
void	sigv4_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
