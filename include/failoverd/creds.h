/*
 * creds: the AWS credential chain, in botocore's order: environment,
 * assume-role (role_arn with source_profile or credential_source),
 * web identity (AWS_WEB_IDENTITY_TOKEN_FILE), the shared credentials
 * file, credential_process, the shared config file, container
 * credentials (ECS/EKS), the EC2 instance role through IMDSv2.
 *
 * The chain is resolved lazily on the first creds_wait(), and again after
 * a failure, so a person who fixes a file does not have to restart.
 * Static sources (environment, files) never expire; temporary
 * credentials are refreshed in the background before their Expiration,
 * the old ones serving meanwhile.
 */
#ifndef FAILOVERD_CREDS_H
#define FAILOVERD_CREDS_H

#include <time.h>

#include <ev.h>

struct aws_conf;
struct curlev;
struct creds;
struct creds_provider;
struct creds_wait;

enum creds_source {
	CREDS_SRC_NONE,
	CREDS_SRC_ENV,
	CREDS_SRC_FILE,
	CREDS_SRC_IMDS,
	CREDS_SRC_ASSUME_ROLE,
	CREDS_SRC_WEB_IDENTITY,
	CREDS_SRC_PROCESS,
	CREDS_SRC_CONTAINER,
};

const char	*creds_source_str(enum creds_source src);

/*
 * From conf (may be NULL): profile (else AWS_PROFILE, else "default"),
 * imds_endpoint (else AWS_EC2_METADATA_SERVICE_ENDPOINT, else
 * http://169.254.169.254), sts_endpoint (else AWS_ENDPOINT_URL_STS,
 * else the region's), container_endpoint (the base of
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, else http://169.254.170.2),
 * region, ca_file, credential_process_timeout. The provider keeps
 * copies; it does not own loop or cl.
 */
struct creds_provider *creds_provider_new(struct ev_loop *loop,
		    struct curlev *cl, const struct aws_conf *conf);
void		 creds_provider_free(struct creds_provider *cp);

/*
 * The credentials to sign with now, or NULL when none are resolved or
 * they have expired. The pointer is valid until control returns to the
 * loop (a refresh may replace it), so sign at once and do not keep it.
 */
const struct creds *creds_current(struct creds_provider *cp);

/*
 * Called once, always from the loop (never from inside creds_wait()):
 * err is NULL when creds_current() now returns credentials, else a
 * message naming the source and place that failed.
 */
typedef void (*creds_ready_cb)(const char *err, void *arg);

/* Resolves or refreshes as needed; NULL only when out of memory. */
struct creds_wait *creds_wait(struct creds_provider *cp, creds_ready_cb cb,
		    void *arg);
/* Forgets a waiter; its callback is not called. */
void		 creds_wait_cancel(struct creds_provider *cp,
		    struct creds_wait *w);

/*
 * AWS refused the credentials (ExpiredToken, AuthFailure): drop
 * temporary credentials so the next creds_wait() fetches new ones.
 * Static credentials are kept, a new fetch would give the same ones.
 */
void		 creds_invalidate(struct creds_provider *cp);
/*
 * The AWS endpoint's clock runs offset seconds ahead of ours (from a
 * reply's Date): expiry times AWS gave are judged by its clock.
 */
void		 creds_set_clock_offset(struct creds_provider *cp,
		    time_t offset);
/*
 * use_fips_endpoint and use_dualstack_endpoint of the profile (the
 * configuration's, AWS_PROFILE or default) in the shared config file,
 * 1 or 0 each (unset: 0). -1 with err set: unreadable file, or a value
 * that is not true or false.
 */
int		 creds_config_endpoint_flags(const char *conf_profile,
		    int *fips, int *dualstack, char *err, size_t errlen);

const char	*creds_access_key_id(const struct creds *c);
const char	*creds_secret_access_key(const struct creds *c);
const char	*creds_session_token(const struct creds *c);	/* or NULL */
enum creds_source creds_source(const struct creds *c);
time_t		 creds_expiration(const struct creds *c);	/* 0: never */

/*
 * The startup check: the shared credentials file (AWS_SHARED_CREDENTIALS_
 * FILE or ~/.aws/credentials), when it exists, and the config file, when
 * it holds keys for the profile, must be private to their owner. Returns
 * 0, or -1 with a message naming the file and its mode. The chain itself
 * refuses them too, but only when it first needs credentials; a daemon
 * should not start happily and find out at its first failover.
 */
int		 creds_check_files(const char *profile, char *err,
		    size_t errlen);

/*
 * The parsers, exposed for the unit tests. creds_json_get finds the
 * string member key of a JSON object; it returns a malloc'ed value, or
 * NULL with err set (not found, not a string, malformed).
 */
char		*creds_json_get(const char *json, size_t len, const char *key,
		    char *err, size_t errlen);
/*
 * Credentials from JSON: src CREDS_SRC_IMDS or _CONTAINER (AccessKeyId,
 * SecretAccessKey, Token, Expiration), or _PROCESS (a credential_process's
 * output: Version 1, SessionToken and Expiration optional). NULL with
 * err set. Free with creds_free().
 */
struct creds	*creds_parse_json(enum creds_source src, const char *json,
		    size_t len, char *err, size_t errlen);
void		 creds_free(struct creds *c);
/*
 * Whether AWS_CONTAINER_CREDENTIALS_FULL_URI may point at url's host:
 * loopback, localhost, or the ECS (169.254.170.2) and EKS
 * (169.254.170.23, fd00:ec2::23) agents, as botocore enforces.
 */
int		 creds_container_host_allowed(const char *url);

#endif
