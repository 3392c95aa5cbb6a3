/*
 * sts: the two AWS STS calls of the credential chain, AssumeRole
 * (signed with the source credentials) and AssumeRoleWithWebIdentity
 * (unsigned: the web identity token is the proof). STS is a query API
 * like EC2; this module builds the request (body, headers, SigV4
 * signature) and reads the reply, and creds.c sends it on the loop.
 * Pure: no I/O, no clock.
 */
#ifndef FAILOVERD_STS_H
#define FAILOVERD_STS_H

#include <stddef.h>
#include <time.h>

struct curl_slist;

#define STS_API_VERSION		"2011-06-15"

struct sts_params {
	const char	*role_arn;
	const char	*session_name;
	const char	*external_id;	/* AssumeRole only; or NULL */
	const char	*web_token;	/* set: AssumeRoleWithWebIdentity */
	int		 duration;	/* seconds; 0: STS's default */
};

/* The signing key: NULL access key for the unsigned web identity call. */
struct sts_signer {
	const char	*access_key_id;
	const char	*secret_access_key;
	const char	*session_token;	/* or NULL */
	const char	*region;
	time_t		 when;
};

/*
 * The regional endpoint the SDKs use (sts_regional_endpoints=regional):
 * https://sts.REGION.amazonaws.com (.com.cn in China). -1: bad region.
 */
int		 sts_endpoint_for(const char *region, char *out,
		    size_t outlen);

/*
 * The form body and its headers (Host from url, Content-Type, and with
 * a signer's key X-Amz-Date, X-Amz-Security-Token, Authorization).
 * 0, or -1 with err set. The body holds secrets (the web identity
 * token): the caller wipes it.
 */
int		 sts_request(const char *url, const struct sts_params *p,
		    const struct sts_signer *s, char **body,
		    struct curl_slist **headers, char *err, size_t errlen);

struct sts_creds {
	char	*access_key_id;
	char	*secret_access_key;
	char	*session_token;
	char	*arn;		/* AssumedRoleUser/Arn */
	time_t	 expiration;
};

/*
 * Reads an STS reply body: 0 with out filled, or -1 with err holding
 * AWS's error code and message (or why the reply is unreadable).
 */
int		 sts_parse_reply(const char *xml, size_t len,
		    long http_status, struct sts_creds *out, char *err,
		    size_t errlen);
void		 sts_creds_clear(struct sts_creds *c);

/* ISO 8601 UTC "2024-05-01T12:00:00Z" (fraction allowed) or -1. */
time_t		 sts_parse_time(const char *s);

#endif
