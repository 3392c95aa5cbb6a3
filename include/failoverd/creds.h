/*
 * creds: the AWS credential chain, in the SDKs' order: environment,
 * shared files (credentials, then config) for one profile, then the EC2
 * instance role through IMDSv2, refreshed before it expires.
 *
 * The chain is resolved lazily on the first creds_wait(), and again after
 * a failure, so a person who fixes a file does not have to restart.
 * Static sources (environment, files) never expire; role credentials are
 * refreshed in the background before their Expiration.
 */
#ifndef FAILOVERD_CREDS_H
#define FAILOVERD_CREDS_H

#include <time.h>

#include <ev.h>

struct curlev;
struct creds;
struct creds_provider;
struct creds_wait;

enum creds_source {
	CREDS_SRC_NONE,
	CREDS_SRC_ENV,
	CREDS_SRC_FILE,
	CREDS_SRC_IMDS,
};

const char	*creds_source_str(enum creds_source src);

/*
 * profile: the profile named in failoverd.conf, or NULL for AWS_PROFILE,
 * else "default". imds_endpoint: from failoverd.conf, or NULL for
 * AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254.
 * The provider does not own loop or cl.
 */
struct creds_provider *creds_provider_new(struct ev_loop *loop,
		    struct curlev *cl, const char *profile,
		    const char *imds_endpoint);
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
 * AWS refused the credentials (ExpiredToken, AuthFailure): drop role
 * credentials so the next creds_wait() fetches new ones. Static
 * credentials are kept, a new fetch would give the same ones.
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
 * The small parser, exposed for the unit tests. creds_json_get finds the
 * string member key of a flat JSON object; it returns a malloc'ed value,
 * or NULL with err set (not found, not a string, malformed).
 */
char		*creds_json_get(const char *json, size_t len, const char *key,
		    char *err, size_t errlen);

#endif
