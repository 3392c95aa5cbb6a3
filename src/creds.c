/*
 * creds: the AWS credential chain, in botocore's order.
 *
 *   environment ─ assume-role (role_arn + source_profile/credential_
 *   source) ─ web identity ─ credentials file ─ credential_process ─
 *   config file ─ container ─ instance metadata (IMDSv2)
 *
 * The first source that applies is the plan; static ones are set at
 * once, the others are fetched on the loop (fetch_start .. fetch_end):
 * IMDS (token PUT, role GET, credentials GET), the container agent
 * (one GET), STS (one POST, after the source credentials for
 * AssumeRole), or a credential_process (a child, its stdout read on the
 * loop). Temporary credentials are fetched again before they expire;
 * meanwhile the old ones serve. Secrets are wiped with OPENSSL_cleanse
 * when freed and never logged.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <wordexp.h>

#include <curl/curl.h>
#include <ev.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "failoverd/conf.h"
#include "failoverd/creds.h"
#include "failoverd/curlev.h"
#include "failoverd/log.h"
#include "failoverd/redact.h"
#include "failoverd/sts.h"

extern char **environ;

#define IMDS_DEFAULT_ENDPOINT	"http://169.254.169.254"
#define CONTAINER_DEFAULT_ENDPOINT "http://169.254.170.2"
#define IMDS_TOKEN_TTL		"21600"
#define IMDS_TIMEOUT_MS		5000L
#define STS_TIMEOUT_MS		10000L
#define FETCH_MAX_REPLY		65536
#define FETCH_MAX_TOKEN		16384
#define PROCESS_TIMEOUT		60.0
/* source_profile chains longer than this are a loop. */
#define CREDS_MAX_DEPTH		5
/* Refresh temporary credentials this long before they expire... */
#define REFRESH_MARGIN		300.0
/* ...and retry a failed background refresh after this long. */
#define REFRESH_RETRY		15.0

struct creds {
	enum creds_source	 source;
	char			*access_key_id;
	char			*secret_access_key;
	char			*session_token;
	time_t			 expiration;
};

struct creds_wait {
	struct creds_wait	*next;
	creds_ready_cb		 cb;
	void			*arg;
};

/* What a provider may use: all, or the one source of an assumed role. */
enum creds_mode {
	CREDS_MODE_ALL,
	CREDS_MODE_PROFILE,	/* source_profile: that profile's chain */
	CREDS_MODE_KEYS,	/* source_profile is itself: its keys */
	CREDS_MODE_ENV,		/* credential_source = Environment */
	CREDS_MODE_IMDS,	/* ... = Ec2InstanceMetadata */
	CREDS_MODE_CONTAINER,	/* ... = EcsContainer */
};

enum fetch_step {
	FETCH_IDLE,
	FETCH_IMDS_TOKEN,
	FETCH_IMDS_ROLE,
	FETCH_IMDS_CREDS,
	FETCH_CONTAINER,
	FETCH_SOURCE,
	FETCH_STS,
	FETCH_PROCESS,
};

struct creds_provider {
	struct ev_loop		*loop;
	struct curlev		*cl;
	enum creds_mode		 mode;
	int			 depth;		/* 0: the daemon's */
	char			*profile;	/* from the config, or NULL */
	char			*imds_conf;	/* from the config, or NULL */
	char			*sts_conf;
	char			*container_conf;
	char			*region;
	char			*ca_file;
	double			 process_timeout;

	struct creds		*cur;
	time_t			 clock_offset;	/* AWS's clock minus ours */
	int			 resolving;	/* a fetch is in flight */
	char			 err[1024];	/* last failure */
	int			 failed;	/* err is to be delivered */

	struct creds_wait	*waiters;
	ev_timer		 kick;		/* delivers to waiters */
	ev_timer		 refresh;	/* temporary credential refresh */

	/* The plan: the source the chain chose, and its settings. */
	enum creds_source	 plan;
	char			 where[600];	/* for the log */
	char			*role_arn;
	char			*session_name;
	char			*external_id;
	int			 duration;
	char			*token_file;	/* web identity */
	char			*command;	/* credential_process */
	char			*url;		/* container */
	char			*auth_token;
	char			*auth_token_file;
	struct creds_provider	*source;	/* assume-role's */
	struct creds_wait	*source_wait;

	/* The fetch in flight. */
	enum fetch_step		 step;
	CURL			*easy;
	struct curl_slist	*hdrs;
	char			*body;
	char			*reply;
	size_t			 replylen;
	int			 overflow;
	char			*token;		/* IMDS session token */
	char			*role;
	char			 endpoint[512];
	pid_t			 pid;
	int			 poutfd;
	int			 pstatus;
	int			 pexited;
	int			 peof;
	ev_io			 pio;
	ev_child		 pchild;
	ev_timer		 ptimer;
};

static const char *const creds_source_names[] = {
	[CREDS_SRC_NONE] = "none",
	[CREDS_SRC_ENV] = "environment",
	[CREDS_SRC_FILE] = "shared file",
	[CREDS_SRC_IMDS] = "instance role (IMDSv2)",
	[CREDS_SRC_ASSUME_ROLE] = "assume-role",
	[CREDS_SRC_WEB_IDENTITY] = "web identity",
	[CREDS_SRC_PROCESS] = "credential_process",
	[CREDS_SRC_CONTAINER] = "container",
};

const char *
creds_source_str(enum creds_source src)
{
	if ((unsigned int)src >= sizeof(creds_source_names) /
	    sizeof(creds_source_names[0]))
		return "?";
	return creds_source_names[src];
}

static void
wipe_free(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

void
creds_free(struct creds *c)
{
	if (c == NULL)
		return;
	free(c->access_key_id);
	wipe_free(c->secret_access_key);
	wipe_free(c->session_token);
	free(c);
}

/* Takes ownership of the strings, wiping them on failure. */
static struct creds *
creds_make(enum creds_source src, char *ak, char *sk, char *tok,
    time_t expiration)
{
	struct creds *c;

	c = calloc(1, sizeof(*c));
	if (c == NULL || ak == NULL || sk == NULL) {
		free(c);
		free(ak);
		wipe_free(sk);
		wipe_free(tok);
		return NULL;
	}
	c->source = src;
	c->access_key_id = ak;
	c->secret_access_key = sk;
	c->session_token = tok;
	c->expiration = expiration;
	return c;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL && *s != '\0' ? strdup(s) : NULL;
}

static void __attribute__((format(printf, 3, 4)))
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* --- environment ------------------------------------------------------ */

/* 1 found, 0 not set, -1 half set. */
static int
creds_from_env(struct creds **out, char *err, size_t errlen)
{
	const char *ak = getenv("AWS_ACCESS_KEY_ID");
	const char *sk = getenv("AWS_SECRET_ACCESS_KEY");

	if ((ak == NULL || *ak == '\0') && (sk == NULL || *sk == '\0'))
		return 0;
	if (ak == NULL || *ak == '\0' || sk == NULL || *sk == '\0') {
		seterr(err, errlen, "environment: AWS_ACCESS_KEY_ID and "
		    "AWS_SECRET_ACCESS_KEY must be set together");
		return -1;
	}
	*out = creds_make(CREDS_SRC_ENV, strdup(ak), strdup(sk),
	    dup_or_null(getenv("AWS_SESSION_TOKEN")), 0);
	if (*out == NULL) {
		seterr(err, errlen, "environment: out of memory");
		return -1;
	}
	return 1;
}

/* --- shared files ------------------------------------------------------ */

struct ini_keys {
	char	*ak;
	char	*sk;
	char	*tok;
	char	*fips;		/* use_fips_endpoint */
	char	*dualstack;	/* use_dualstack_endpoint */
	char	*role_arn;
	char	*source_profile;
	char	*credential_source;
	char	*external_id;
	char	*session_name;	/* role_session_name */
	char	*duration;	/* duration_seconds */
	char	*process;	/* credential_process */
	char	*web_token_file; /* web_identity_token_file */
	int	 section_seen;
};

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static void
ini_keys_clear(struct ini_keys *k)
{
	free(k->ak);
	wipe_free(k->sk);
	wipe_free(k->tok);
	free(k->fips);
	free(k->dualstack);
	free(k->role_arn);
	free(k->source_profile);
	free(k->credential_source);
	wipe_free(k->external_id);
	free(k->session_name);
	free(k->duration);
	free(k->process);
	free(k->web_token_file);
	memset(k, 0, sizeof(*k));
}

/* The settings of roles, processes and web identities (botocore's names). */
static void
ini_other(struct ini_keys *k, const char *key, const char *val)
{
	static const struct {
		const char	*name;
		size_t		 off;
	} keys[] = {
		{ "role_arn", offsetof(struct ini_keys, role_arn) },
		{ "source_profile", offsetof(struct ini_keys, source_profile) },
		{ "credential_source",
		  offsetof(struct ini_keys, credential_source) },
		{ "external_id", offsetof(struct ini_keys, external_id) },
		{ "role_session_name", offsetof(struct ini_keys, session_name) },
		{ "duration_seconds", offsetof(struct ini_keys, duration) },
		{ "credential_process", offsetof(struct ini_keys, process) },
		{ "web_identity_token_file",
		  offsetof(struct ini_keys, web_token_file) },
	};
	size_t i;
	char **dst;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(key, keys[i].name) != 0)
			continue;
		dst = (char **)(void *)((char *)k + keys[i].off);
		wipe_free(*dst);
		*dst = strdup(val);
		return;
	}
}

/*
 * A strict reader of the AWS ini dialect: comments (# ;), [section],
 * key = value, and indented sub-settings under a key with an empty value
 * (the config file's "s3 =" blocks), which are skipped. Anything else is
 * an error naming file and line. 0 read (file may lack the section),
 * 1 the file does not exist, -1 error.
 */
static int
ini_read(const char *path, const char *section, struct ini_keys *k,
    char *err, size_t errlen)
{
	FILE *f;
	char *line = NULL, *p, *eq, *key, *val, *end;
	size_t cap = 0;
	ssize_t n;
	unsigned int lineno = 0;
	int in = 0, nested_ok = 0, rc = -1;

	f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT)
			return 1;
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, f)) != -1) {
		lineno++;
		if (isspace((unsigned char)line[0]) && nested_ok &&
		    *trim(line) != '\0')
			continue;
		p = trim(line);
		if (*p == '\0' || *p == '#' || *p == ';')
			continue;
		nested_ok = 0;
		if (*p == '[') {
			end = strchr(p, ']');
			if (end == NULL || *trim(end + 1) != '\0') {
				seterr(err, errlen, "%s:%u: section header "
				    "without ']'", path, lineno);
				goto out;
			}
			*end = '\0';
			p = trim(p + 1);
			in = strcmp(p, section) == 0;
			if (in)
				k->section_seen = 1;
			continue;
		}
		eq = strchr(p, '=');
		if (eq == NULL) {
			seterr(err, errlen, "%s:%u: expected 'key = value' or "
			    "'[section]'", path, lineno);
			goto out;
		}
		*eq = '\0';
		key = trim(p);
		val = trim(eq + 1);
		if (*key == '\0') {
			seterr(err, errlen, "%s:%u: empty key", path, lineno);
			goto out;
		}
		if (*val == '\0') {
			nested_ok = 1;
			continue;
		}
		if (!in)
			continue;
		if (strcmp(key, "aws_access_key_id") == 0) {
			free(k->ak);
			k->ak = strdup(val);
		} else if (strcmp(key, "aws_secret_access_key") == 0) {
			wipe_free(k->sk);
			k->sk = strdup(val);
		} else if (strcmp(key, "aws_session_token") == 0) {
			wipe_free(k->tok);
			k->tok = strdup(val);
		} else if (strcmp(key, "use_fips_endpoint") == 0) {
			free(k->fips);
			k->fips = strdup(val);
		} else if (strcmp(key, "use_dualstack_endpoint") == 0) {
			free(k->dualstack);
			k->dualstack = strdup(val);
		} else {
			ini_other(k, key, val);
		}
	}
	if (ferror(f)) {
		seterr(err, errlen, "%s: read error", path);
		goto out;
	}
	rc = 0;
out:
	if (line != NULL) {
		OPENSSL_cleanse(line, cap);
		free(line);
	}
	fclose(f);
	return rc;
}

/* A file holding secrets must be private to its owner, as ssh insists. */
static int
check_private(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return 0;
	/* /dev/null, the usual "no such file", is 0666 by nature. */
	if (!S_ISREG(st.st_mode))
		return 0;
	if ((st.st_mode & 077) != 0) {
		seterr(err, errlen, "%s: mode %04o lets group or others %s "
		    "AWS secrets; refusing it (chmod 600 %s)", path,
		    (unsigned int)(st.st_mode & 07777),
		    (st.st_mode & 022) != 0 ? "change" : "read", path);
		return -1;
	}
	return 0;
}

/* The config file says "[profile x]", but "[default]". NULL: no memory. */
static char *
config_section(const char *profile)
{
	char *sect;

	if (strcmp(profile, "default") == 0)
		return strdup(profile);
	if (asprintf(&sect, "profile %s", profile) == -1)
		return NULL;
	return sect;
}

static char *
default_path(const char *env, const char *rel)
{
	const char *v = getenv(env), *home;
	char *p;

	if (v != NULL && *v != '\0')
		return strdup(v);
	home = getenv("HOME");
	if (home == NULL || *home == '\0')
		return NULL;
	if (asprintf(&p, "%s/%s", home, rel) == -1)
		return NULL;
	return p;
}

/*
 * A profile as the two shared files hold it: keys from the credentials
 * file ([name]) and everything else from the config file ([profile
 * name], [default]). Either file may be missing.
 */
struct profile {
	const char	*name;
	char		*cpath;		/* credentials file, or NULL */
	char		*fpath;		/* config file, or NULL */
	char		*sect;		/* its section in the config file */
	struct ini_keys	 cred;
	struct ini_keys	 conf;
};

static void
profile_clear(struct profile *p)
{
	ini_keys_clear(&p->cred);
	ini_keys_clear(&p->conf);
	free(p->cpath);
	free(p->fpath);
	free(p->sect);
	memset(p, 0, sizeof(*p));
}

static int
profile_load(const char *name, struct profile *p, char *err, size_t errlen)
{
	int r;

	memset(p, 0, sizeof(*p));
	p->name = name;
	p->cpath = default_path("AWS_SHARED_CREDENTIALS_FILE",
	    ".aws/credentials");
	p->fpath = default_path("AWS_CONFIG_FILE", ".aws/config");
	p->sect = config_section(name);
	if (p->sect == NULL) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	if (p->cpath != NULL) {
		r = ini_read(p->cpath, name, &p->cred, err, errlen);
		if (r < 0)
			return -1;
		if (r == 0 && check_private(p->cpath, err, errlen) < 0)
			return -1;
	}
	if (p->fpath != NULL &&
	    ini_read(p->fpath, p->sect, &p->conf, err, errlen) < 0)
		return -1;
	return 0;
}

/* Static keys of one file's section: 1 found, 0 none, -1 error. */
static int
profile_keys(struct ini_keys *k, const char *path, const char *sect,
    int private_check, struct creds **out, char *where, size_t wherelen,
    char *err, size_t errlen)
{
	if (k->ak == NULL && k->sk == NULL)
		return 0;
	snprintf(where, wherelen, "%s [%s]", path, sect);
	if (k->ak == NULL || k->sk == NULL) {
		seterr(err, errlen, "%s: aws_access_key_id and "
		    "aws_secret_access_key must be set together", where);
		return -1;
	}
	if (private_check && check_private(path, err, errlen) < 0)
		return -1;
	*out = creds_make(CREDS_SRC_FILE, k->ak, k->sk, k->tok, 0);
	k->ak = k->sk = k->tok = NULL;
	if (*out == NULL) {
		seterr(err, errlen, "%s: out of memory", where);
		return -1;
	}
	return 1;
}

static int
config_bool(const char *path, const char *key, const char *v, char *err,
    size_t errlen)
{
	if (v == NULL || strcasecmp(v, "false") == 0)
		return 0;
	if (strcasecmp(v, "true") == 0)
		return 1;
	seterr(err, errlen, "%s: %s = %s: must be true or false", path, key,
	    v);
	return -1;
}

int
creds_config_endpoint_flags(const char *conf_profile, int *fips,
    int *dualstack, char *err, size_t errlen)
{
	struct ini_keys k = { 0 };
	const char *profile = conf_profile;
	char *fpath, *sect = NULL;
	int r, rc = -1;

	*fips = *dualstack = 0;
	if (profile == NULL || *profile == '\0')
		profile = getenv("AWS_PROFILE");
	if (profile == NULL || *profile == '\0')
		profile = "default";
	fpath = default_path("AWS_CONFIG_FILE", ".aws/config");
	if (fpath == NULL)
		return 0;
	sect = config_section(profile);
	if (sect == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	r = ini_read(fpath, sect, &k, err, errlen);
	if (r < 0)
		goto out;
	*fips = config_bool(fpath, "use_fips_endpoint", k.fips, err, errlen);
	*dualstack = config_bool(fpath, "use_dualstack_endpoint",
	    k.dualstack, err, errlen);
	if (*fips == -1 || *dualstack == -1)
		goto out;
	rc = 0;
out:
	ini_keys_clear(&k);
	free(fpath);
	free(sect);
	return rc;
}

int
creds_check_files(const char *conf_profile, char *err, size_t errlen)
{
	struct ini_keys	 k = { 0 };
	const char	*profile;
	char		*cpath, *fpath, *sect = NULL;
	int		 rc = -1;

	/* Nothing but secrets in there, whichever profile is used. */
	cpath = default_path("AWS_SHARED_CREDENTIALS_FILE",
	    ".aws/credentials");
	fpath = default_path("AWS_CONFIG_FILE", ".aws/config");
	if (cpath != NULL && check_private(cpath, err, errlen) < 0)
		goto out;
	/* The config file is often public; only keys in it make it not. */
	profile = conf_profile;
	if (profile == NULL || *profile == '\0')
		profile = getenv("AWS_PROFILE");
	if (profile == NULL || *profile == '\0')
		profile = "default";
	if (fpath != NULL) {
		sect = config_section(profile);
		if (sect == NULL) {
			seterr(err, errlen, "out of memory");
			goto out;
		}
		/* A file it cannot parse is the chain's to report. */
		if (ini_read(fpath, sect, &k, err, errlen) < 0) {
			seterr(err, errlen, "%s", "");
			rc = 0;
			goto out;
		}
		if ((k.ak != NULL || k.sk != NULL || k.tok != NULL) &&
		    check_private(fpath, err, errlen) < 0)
			goto out;
	}
	rc = 0;
out:
	ini_keys_clear(&k);
	free(cpath);
	free(fpath);
	free(sect);
	return rc;
}

/* --- JSON (jansson): IMDS, container and credential_process replies --- */

/* The reply as a JSON object, or NULL with err set. */
static json_t *
json_object_load(const char *buf, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root;

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		seterr(err, errlen, "JSON: %s (line %d, column %d)", je.text,
		    je.line, je.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		seterr(err, errlen, "JSON: not an object");
		json_decref(root);
		return NULL;
	}
	return root;
}

/* A string member, malloc'ed; NULL with err set when absent or other. */
static char *
json_member_str(json_t *obj, const char *key, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	char *s;

	if (v == NULL) {
		seterr(err, errlen, "JSON: no \"%s\"", key);
		return NULL;
	}
	if (!json_is_string(v)) {
		seterr(err, errlen, "JSON: \"%s\" is not a string", key);
		return NULL;
	}
	s = strndup(json_string_value(v), json_string_length(v));
	if (s == NULL)
		seterr(err, errlen, "out of memory");
	else if (strlen(s) != json_string_length(v)) {
		seterr(err, errlen, "JSON: \"%s\" holds a NUL", key);
		wipe_free(s);
		return NULL;
	}
	return s;
}

char *
creds_json_get(const char *json, size_t len, const char *key, char *err,
    size_t errlen)
{
	json_t *root;
	char *v;

	root = json_object_load(json, len, err, errlen);
	if (root == NULL)
		return NULL;
	v = json_member_str(root, key, err, errlen);
	json_decref(root);
	return v;
}

/*
 * Temporary credentials as IMDS and the container endpoint give them
 * (AccessKeyId, SecretAccessKey, Token, Expiration), or as a
 * credential_process prints them (Version 1, SessionToken, Expiration
 * optional: absent means they never expire).
 */
struct creds *
creds_parse_json(enum creds_source src, const char *json, size_t len,
    char *err, size_t errlen)
{
	json_t *root, *ver;
	char *ak = NULL, *sk = NULL, *tok = NULL, *exp = NULL;
	const char *tokkey = "Token";
	struct creds *c = NULL;
	time_t when = 0;

	root = json_object_load(json, len, err, errlen);
	if (root == NULL)
		return NULL;
	if (src == CREDS_SRC_PROCESS) {
		ver = json_object_get(root, "Version");
		if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
			seterr(err, errlen, "JSON: \"Version\" must be the "
			    "number 1");
			goto out;
		}
		tokkey = "SessionToken";
	}
	if ((ak = json_member_str(root, "AccessKeyId", err, errlen)) ==
	    NULL || (sk = json_member_str(root, "SecretAccessKey", err,
	    errlen)) == NULL)
		goto out;
	if (src != CREDS_SRC_PROCESS ||
	    json_object_get(root, tokkey) != NULL) {
		tok = json_member_str(root, tokkey, err, errlen);
		if (tok == NULL)
			goto out;
	}
	if (src != CREDS_SRC_PROCESS ||
	    json_object_get(root, "Expiration") != NULL) {
		exp = json_member_str(root, "Expiration", err, errlen);
		if (exp == NULL)
			goto out;
		when = sts_parse_time(exp);
		if (when == -1) {
			seterr(err, errlen, "JSON: \"Expiration\" is not ISO "
			    "8601 UTC");
			goto out;
		}
	}
	if (*ak == '\0' || *sk == '\0') {
		seterr(err, errlen, "JSON: empty AccessKeyId or "
		    "SecretAccessKey");
		goto out;
	}
	c = creds_make(src, ak, sk, tok, when);
	ak = sk = tok = NULL;
	if (c == NULL)
		seterr(err, errlen, "out of memory");
out:
	free(ak);
	wipe_free(sk);
	wipe_free(tok);
	free(exp);
	json_decref(root);
	return c;
}

/* --- the provider ------------------------------------------------------ */

static void	creds_kick(struct creds_provider *cp);
static void	fetch_start(struct creds_provider *cp);
static void	fetch_end(struct creds_provider *cp);
static void	schedule_refresh_for(struct creds_provider *cp,
		    const struct creds *c);

/* Now by AWS's clock: the expiry times are AWS's. */
static time_t
creds_now(const struct creds_provider *cp)
{
	return time(NULL) + cp->clock_offset;
}

static int
creds_valid(const struct creds_provider *cp, const struct creds *c)
{
	return c != NULL && (c->expiration == 0 ||
	    creds_now(cp) < c->expiration);
}

const struct creds *
creds_current(struct creds_provider *cp)
{
	return creds_valid(cp, cp->cur) ? cp->cur : NULL;
}

void
creds_set_clock_offset(struct creds_provider *cp, time_t offset)
{
	cp->clock_offset = offset;
	if (cp->source != NULL)
		creds_set_clock_offset(cp->source, offset);
	/* A refresh planned by the wrong clock may come too late. */
	if (cp->cur != NULL && cp->cur->expiration > 1 && !cp->resolving)
		schedule_refresh_for(cp, cp->cur);
}

static void
creds_set(struct creds_provider *cp, struct creds *c)
{
	char exp[64] = "";
	struct tm tm;
	int changed;

	changed = cp->cur == NULL || cp->cur->source != c->source;
	creds_free(cp->cur);
	cp->cur = c;
	cp->failed = 0;
	if (c->expiration != 0 && gmtime_r(&c->expiration, &tm) != NULL)
		strftime(exp, sizeof(exp), ", expires %Y-%m-%dT%H:%M:%SZ",
		    &tm);
	/* The access key id identifies, it does not authenticate. */
	if (cp->depth > 0)
		log_debug("aws credentials: source %s %s, access key %s%s",
		    creds_source_str(c->source), cp->where,
		    c->access_key_id, exp);
	else
		log_info("aws credentials: %s %s%s%s, access key %s%s",
		    changed ? "using" : "refreshed",
		    creds_source_str(c->source), cp->where[0] ? " " : "",
		    cp->where, c->access_key_id, exp);
	if (c->expiration != 0)
		schedule_refresh_for(cp, c);
}

static void
creds_fail(struct creds_provider *cp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
creds_fail(struct creds_provider *cp, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cp->err, sizeof(cp->err), fmt, ap);
	va_end(ap);
	cp->failed = 1;
	/* A source provider's failure is told by the one that uses it. */
	if (cp->depth == 0)
		log_warnx("aws credentials: %s", cp->err);
}

static void
refresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct creds_provider *cp = w->data;

	if (!cp->resolving && cp->plan != CREDS_SRC_NONE)
		fetch_start(cp);
}

static void
schedule_refresh(struct creds_provider *cp, double after)
{
	ev_timer_stop(cp->loop, &cp->refresh);
	ev_timer_set(&cp->refresh, after > 1.0 ? after : 1.0, 0.0);
	ev_timer_start(cp->loop, &cp->refresh);
}

/*
 * Refresh REFRESH_MARGIN before expiry, but for short-lived credentials
 * at the latest half-way through what is left.
 */
static void
schedule_refresh_for(struct creds_provider *cp, const struct creds *c)
{
	double left = difftime(c->expiration, creds_now(cp));
	double at = left - REFRESH_MARGIN;

	if (at < left / 2)
		at = left / 2;
	schedule_refresh(cp, at);
}

/* Forgets what the last resolution chose (not the credentials). */
static void
plan_clear(struct creds_provider *cp)
{
	cp->plan = CREDS_SRC_NONE;
	cp->where[0] = '\0';
	free(cp->role_arn);
	free(cp->session_name);
	free(cp->external_id);
	free(cp->token_file);
	free(cp->command);
	free(cp->url);
	wipe_free(cp->auth_token);
	free(cp->auth_token_file);
	cp->role_arn = cp->session_name = cp->external_id = NULL;
	cp->token_file = cp->command = cp->url = NULL;
	cp->auth_token = cp->auth_token_file = NULL;
	cp->duration = 0;
	if (cp->source_wait != NULL)
		creds_wait_cancel(cp->source, cp->source_wait);
	cp->source_wait = NULL;
	creds_provider_free(cp->source);
	cp->source = NULL;
}

static const char *
profile_of(const struct creds_provider *cp)
{
	const char *p = cp->profile;

	if (p == NULL || *p == '\0')
		p = getenv("AWS_PROFILE");
	if (p == NULL || *p == '\0')
		p = "default";
	return p;
}

static const char *
env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static int
plan_strdup(char **dst, const char *v)
{
	if (v == NULL)
		return 0;
	*dst = strdup(v);
	return *dst == NULL ? -1 : 0;
}

int
creds_container_host_allowed(const char *url)
{
	static const char *const named[] = {
		"localhost", "169.254.170.2", "169.254.170.23",
		"fd00:ec2::23",
	};
	struct in6_addr a6;
	struct in_addr a4;
	CURLU *u;
	char *host = NULL, *h;
	size_t i, n;
	int ok = 0;

	u = curl_url();
	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) !=
	    CURLUE_OK || curl_url_get(u, CURLUPART_HOST, &host, 0) !=
	    CURLUE_OK)
		goto out;
	h = host;
	n = strlen(h);
	if (n > 2 && h[0] == '[' && h[n - 1] == ']') {
		h[n - 1] = '\0';
		h++;
	}
	for (i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strcasecmp(h, named[i]) == 0)
			ok = 1;
	if (inet_pton(AF_INET, h, &a4) == 1 &&
	    (ntohl(a4.s_addr) >> 24) == 127)
		ok = 1;
	if (inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6))
		ok = 1;
out:
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

static struct creds_provider *creds_provider_sub(struct creds_provider *cp,
		    enum creds_mode mode, const char *profile);

/*
 * role_arn with source_profile or credential_source (botocore's
 * AssumeRoleProvider): the source credentials come from a provider of
 * their own, which refreshes itself when they are temporary too.
 */
static int
plan_assume_role(struct creds_provider *cp, struct profile *p)
{
	struct ini_keys *k = &p->conf;
	enum creds_mode mode;
	const char *src = NULL, *cs = k->credential_source;
	char *end;
	long d;

	if (k->source_profile != NULL && cs != NULL) {
		creds_fail(cp, "%s [%s]: role_arn with both source_profile "
		    "and credential_source; choose one", p->fpath, p->sect);
		return -1;
	}
	if (k->source_profile == NULL && cs == NULL) {
		creds_fail(cp, "%s [%s]: role_arn needs source_profile or "
		    "credential_source", p->fpath, p->sect);
		return -1;
	}
	if (k->source_profile != NULL) {
		/* A profile that is its own source uses its own keys. */
		mode = strcmp(k->source_profile, p->name) == 0 ?
		    CREDS_MODE_KEYS : CREDS_MODE_PROFILE;
		src = k->source_profile;
	} else if (strcmp(cs, "Environment") == 0) {
		mode = CREDS_MODE_ENV;
	} else if (strcmp(cs, "Ec2InstanceMetadata") == 0) {
		mode = CREDS_MODE_IMDS;
	} else if (strcmp(cs, "EcsContainer") == 0) {
		mode = CREDS_MODE_CONTAINER;
	} else {
		creds_fail(cp, "%s [%s]: credential_source = %s: must be "
		    "Environment, Ec2InstanceMetadata or EcsContainer",
		    p->fpath, p->sect, cs);
		return -1;
	}
	if (cp->depth >= CREDS_MAX_DEPTH) {
		creds_fail(cp, "%s [%s]: source_profile chain longer than %d "
		    "(a loop?)", p->fpath, p->sect, CREDS_MAX_DEPTH);
		return -1;
	}
	if (k->duration != NULL) {
		errno = 0;
		d = strtol(k->duration, &end, 10);
		if (errno != 0 || *end != '\0' || d < 900 || d > 43200) {
			creds_fail(cp, "%s [%s]: duration_seconds = %s: must "
			    "be 900 to 43200", p->fpath, p->sect,
			    k->duration);
			return -1;
		}
		cp->duration = (int)d;
	}
	if (plan_strdup(&cp->role_arn, k->role_arn) < 0 ||
	    plan_strdup(&cp->external_id, k->external_id) < 0 ||
	    plan_strdup(&cp->session_name, k->session_name) < 0)
		goto nomem;
	cp->source = creds_provider_sub(cp, mode, src);
	if (cp->source == NULL)
		goto nomem;
	cp->plan = CREDS_SRC_ASSUME_ROLE;
	snprintf(cp->where, sizeof(cp->where), "%s via profile %s (%s%s)",
	    k->role_arn, p->name, src != NULL ? "source profile " :
	    "credential_source ", src != NULL ? src : cs);
	return 0;
nomem:
	creds_fail(cp, "out of memory");
	return -1;
}

/* AWS_WEB_IDENTITY_TOKEN_FILE and friends, else the profile's. */
static int
plan_web_identity(struct creds_provider *cp, struct profile *p,
    const char *tf, int from_env)
{
	const char *arn, *name;

	arn = from_env ? env_nonempty("AWS_ROLE_ARN") : NULL;
	if (arn == NULL)
		arn = p->conf.role_arn;
	name = from_env ? env_nonempty("AWS_ROLE_SESSION_NAME") : NULL;
	if (name == NULL)
		name = p->conf.session_name;
	if (arn == NULL) {
		creds_fail(cp, "web identity token file %s: no role to assume "
		    "(AWS_ROLE_ARN or role_arn)", tf);
		return -1;
	}
	if (plan_strdup(&cp->role_arn, arn) < 0 ||
	    plan_strdup(&cp->session_name, name) < 0 ||
	    plan_strdup(&cp->token_file, tf) < 0) {
		creds_fail(cp, "out of memory");
		return -1;
	}
	cp->plan = CREDS_SRC_WEB_IDENTITY;
	snprintf(cp->where, sizeof(cp->where), "%s with token file %s%s",
	    arn, tf, from_env ? " (AWS_WEB_IDENTITY_TOKEN_FILE)" : "");
	return 0;
}

/*
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on the ECS agent's address,
 * aws.container_endpoint in tests) or _FULL_URI, which botocore only
 * accepts on loopback or the ECS and EKS agents' addresses.
 */
static int
plan_container(struct creds_provider *cp)
{
	const char *rel = env_nonempty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env_nonempty("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *tf = env_nonempty("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *tok = env_nonempty("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	const char *base = cp->container_conf;
	char shown[512];
	size_t n;

	if (rel == NULL && full == NULL)
		return 0;
	if (rel != NULL) {
		if (base == NULL)
			base = CONTAINER_DEFAULT_ENDPOINT;
		n = strlen(base);
		while (n > 0 && base[n - 1] == '/')
			n--;
		if (asprintf(&cp->url, "%.*s%s%s", (int)n, base,
		    rel[0] == '/' ? "" : "/", rel) == -1) {
			cp->url = NULL;
			goto nomem;
		}
	} else {
		if (!creds_container_host_allowed(full)) {
			creds_fail(cp, "AWS_CONTAINER_CREDENTIALS_FULL_URI %s: "
			    "the host must be loopback, 169.254.170.2, "
			    "169.254.170.23 or fd00:ec2::23",
			    redact_url(full, shown, sizeof(shown)));
			return -1;
		}
		if (plan_strdup(&cp->url, full) < 0)
			goto nomem;
	}
	/* The file wins: it is how EKS rotates the token. */
	if (plan_strdup(&cp->auth_token_file, tf) < 0 ||
	    (tf == NULL && plan_strdup(&cp->auth_token, tok) < 0))
		goto nomem;
	cp->plan = CREDS_SRC_CONTAINER;
	snprintf(cp->where, sizeof(cp->where), "%s%s",
	    redact_url(cp->url, shown, sizeof(shown)),
	    tf != NULL ? " with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" :
	    tok != NULL ? " with AWS_CONTAINER_AUTHORIZATION_TOKEN" : "");
	return 1;
nomem:
	creds_fail(cp, "out of memory");
	return -1;
}

/*
 * Walks the chain in botocore's order (credentials.py,
 * create_credential_resolver): environment, assume-role, web identity,
 * shared credentials file, credential_process, config file, container,
 * instance metadata. Static sources are set at once; the others are
 * fetched on the loop.
 */
static void
creds_resolve(struct creds_provider *cp)
{
	struct profile p;
	struct creds *c = NULL;
	char err[512];
	const char *name, *tf, *dis;
	int r;

	plan_clear(cp);
	memset(&p, 0, sizeof(p));
	err[0] = '\0';
	switch (cp->mode) {
	case CREDS_MODE_IMDS:
		goto imds;
	case CREDS_MODE_CONTAINER:
		if (plan_container(cp) == 0)
			creds_fail(cp, "credential_source EcsContainer: "
			    "neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI "
			    "nor _FULL_URI is set");
		goto start;
	case CREDS_MODE_ALL:
	case CREDS_MODE_ENV:
		/* A profile named in failoverd.conf is explicit: like a
		 * botocore Session(profile=...), it overrides the keys in
		 * the environment. */
		if (cp->mode == CREDS_MODE_ALL && cp->profile != NULL)
			break;
		r = creds_from_env(&c, err, sizeof(err));
		if (r > 0) {
			cp->plan = CREDS_SRC_ENV;
			creds_set(cp, c);
			return;
		}
		if (r < 0) {
			creds_fail(cp, "%s", err);
			return;
		}
		if (cp->mode == CREDS_MODE_ENV) {
			creds_fail(cp, "credential_source Environment: "
			    "AWS_ACCESS_KEY_ID is not set");
			return;
		}
		break;
	default:
		break;
	}

	name = profile_of(cp);
	if (profile_load(name, &p, err, sizeof(err)) < 0) {
		creds_fail(cp, "%s", err);
		goto out;
	}
	if (cp->mode != CREDS_MODE_KEYS) {
		if (p.conf.role_arn != NULL &&
		    p.conf.web_token_file == NULL) {
			if (plan_assume_role(cp, &p) == 0)
				fetch_start(cp);
			goto out;
		}
		tf = cp->mode == CREDS_MODE_ALL && cp->profile == NULL ?
		    env_nonempty("AWS_WEB_IDENTITY_TOKEN_FILE") : NULL;
		if (tf != NULL || p.conf.web_token_file != NULL) {
			if (plan_web_identity(cp, &p, tf != NULL ? tf :
			    p.conf.web_token_file, tf != NULL) == 0)
				fetch_start(cp);
			goto out;
		}
	}
	r = profile_keys(&p.cred, p.cpath, name, 0, &c, cp->where,
	    sizeof(cp->where), err, sizeof(err));
	if (r == 0 && cp->mode != CREDS_MODE_KEYS &&
	    p.conf.process != NULL) {
		if (plan_strdup(&cp->command, p.conf.process) < 0) {
			creds_fail(cp, "out of memory");
			goto out;
		}
		cp->plan = CREDS_SRC_PROCESS;
		snprintf(cp->where, sizeof(cp->where), "of profile %s (%s)",
		    name, p.fpath);
		fetch_start(cp);
		goto out;
	}
	if (r == 0)
		r = profile_keys(&p.conf, p.fpath, p.sect, 1, &c, cp->where,
		    sizeof(cp->where), err, sizeof(err));
	if (r > 0) {
		cp->plan = CREDS_SRC_FILE;
		creds_set(cp, c);
		goto out;
	}
	if (r < 0) {
		creds_fail(cp, "%s", err);
		goto out;
	}
	if (cp->mode != CREDS_MODE_ALL || cp->profile != NULL ||
	    getenv("AWS_PROFILE") != NULL) {
		/* A profile that was asked for by name must exist. */
		creds_fail(cp, "profile '%s': no credentials (keys, role_arn, "
		    "web_identity_token_file or credential_process) in %s "
		    "or %s", name, p.cpath ? p.cpath : "(no HOME)",
		    p.fpath ? p.fpath : "(no HOME)");
		goto out;
	}
	r = plan_container(cp);
	if (r != 0)
		goto start;
	dis = getenv("AWS_EC2_METADATA_DISABLED");
	if (dis != NULL && strcasecmp(dis, "true") == 0) {
		creds_fail(cp, "no credentials: none in the environment, the "
		    "shared files or a container, and "
		    "AWS_EC2_METADATA_DISABLED=true");
		goto out;
	}
imds:
	cp->plan = CREDS_SRC_IMDS;
start:
	if (cp->plan != CREDS_SRC_NONE)
		fetch_start(cp);
out:
	profile_clear(&p);
}

static void
kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct creds_provider *cp = w->data;
	struct creds_wait *list, *next;
	const char *err;
	char errbuf[sizeof(cp->err)];

	if (cp->resolving && creds_current(cp) == NULL)
		return;
	if (creds_current(cp) != NULL) {
		err = NULL;
	} else if (cp->failed) {
		snprintf(errbuf, sizeof(errbuf), "%s", cp->err);
		err = errbuf;
	} else {
		snprintf(errbuf, sizeof(errbuf), "credentials expired");
		err = errbuf;
	}
	/* Waiters may add new waiters from their callbacks. */
	list = cp->waiters;
	cp->waiters = NULL;
	for (; list != NULL; list = next) {
		next = list->next;
		list->cb(err, list->arg);
		free(list);
	}
}

static void
creds_kick(struct creds_provider *cp)
{
	ev_timer_stop(cp->loop, &cp->kick);
	ev_timer_set(&cp->kick, 0.0, 0.0);
	ev_timer_start(cp->loop, &cp->kick);
}

struct creds_wait *
creds_wait(struct creds_provider *cp, creds_ready_cb cb, void *arg)
{
	struct creds_wait *w, **pp;

	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->cb = cb;
	w->arg = arg;
	for (pp = &cp->waiters; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = w;
	if (creds_current(cp) == NULL && !cp->resolving) {
		cp->failed = 0;
		/* Expired temporary credentials: the same source again. */
		if (cp->cur != NULL && cp->cur->expiration != 0 &&
		    cp->plan != CREDS_SRC_NONE)
			fetch_start(cp);
		else
			creds_resolve(cp);
	}
	/* During a background refresh the old credentials still serve. */
	if (!cp->resolving || creds_current(cp) != NULL)
		creds_kick(cp);
	return w;
}

void
creds_wait_cancel(struct creds_provider *cp, struct creds_wait *w)
{
	struct creds_wait **pp;

	for (pp = &cp->waiters; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			free(w);
			return;
		}
	}
}

void
creds_invalidate(struct creds_provider *cp)
{
	if (cp->cur == NULL || cp->cur->expiration == 0)
		return;
	log_info("aws credentials: %s credentials refused by AWS, fetching "
	    "new ones", creds_source_str(cp->cur->source));
	/* Keep the source, drop the secret. */
	cp->cur->expiration = 1;
}

/* --- fetches on the loop: HTTP (IMDS, container, STS) and a process --- */

static size_t
fetch_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct creds_provider *cp = arg;
	size_t n = size * nmemb;
	char *p;

	if (cp->replylen + n > FETCH_MAX_REPLY) {
		cp->overflow = 1;
		return 0;
	}
	p = realloc(cp->reply, cp->replylen + n + 1);
	if (p == NULL)
		return 0;
	cp->reply = p;
	memcpy(cp->reply + cp->replylen, ptr, n);
	cp->replylen += n;
	cp->reply[cp->replylen] = '\0';
	return n;
}

static void
fetch_reset(struct creds_provider *cp)
{
	if (cp->easy != NULL) {
		curlev_remove(cp->cl, cp->easy);
		curl_easy_cleanup(cp->easy);
		cp->easy = NULL;
	}
	curl_slist_free_all(cp->hdrs);
	cp->hdrs = NULL;
	wipe_free(cp->body);
	cp->body = NULL;
	if (cp->reply != NULL) {
		OPENSSL_cleanse(cp->reply, cp->replylen);
		free(cp->reply);
	}
	cp->reply = NULL;
	cp->replylen = 0;
	cp->overflow = 0;
}

static void
process_stop(struct creds_provider *cp)
{
	ev_timer_stop(cp->loop, &cp->ptimer);
	if (cp->poutfd >= 0) {
		ev_io_stop(cp->loop, &cp->pio);
		close(cp->poutfd);
		cp->poutfd = -1;
	}
	if (cp->pid > 0) {
		/* Its children too: they may hold the pipe open. */
		kill(-cp->pid, SIGKILL);
		ev_child_stop(cp->loop, &cp->pchild);
		cp->pid = 0;
	}
}

static void
fetch_end(struct creds_provider *cp)
{
	fetch_reset(cp);
	process_stop(cp);
	wipe_free(cp->token);
	cp->token = NULL;
	free(cp->role);
	cp->role = NULL;
	cp->step = FETCH_IDLE;
	cp->resolving = 0;
	if (cp->failed && cp->cur != NULL && creds_valid(cp, cp->cur))
		schedule_refresh(cp, REFRESH_RETRY);
	creds_kick(cp);
}

static void	fetch_done(CURL *easy, CURLcode res, void *arg);

/* One HTTP exchange of the fetch; hdrs and body become the fetch's. */
static int
fetch_http(struct creds_provider *cp, enum fetch_step step, const char *url,
    const char *method, struct curl_slist *hdrs, char *body)
{
	fetch_reset(cp);
	cp->step = step;
	cp->hdrs = hdrs;
	cp->body = body;
	cp->easy = curl_easy_init();
	if (cp->easy == NULL)
		return -1;
	if (method != NULL)
		curl_easy_setopt(cp->easy, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		curl_easy_setopt(cp->easy, CURLOPT_POST, 1L);
		curl_easy_setopt(cp->easy, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(cp->easy, CURLOPT_POSTFIELDSIZE,
		    (long)strlen(body));
	}
	curl_easy_setopt(cp->easy, CURLOPT_URL, url);
	curl_easy_setopt(cp->easy, CURLOPT_HTTPHEADER, cp->hdrs);
	curl_easy_setopt(cp->easy, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(cp->easy, CURLOPT_WRITEDATA, cp);
	curl_easy_setopt(cp->easy, CURLOPT_TIMEOUT_MS, step == FETCH_STS ?
	    STS_TIMEOUT_MS : IMDS_TIMEOUT_MS);
	curl_easy_setopt(cp->easy, CURLOPT_CONNECTTIMEOUT_MS, step ==
	    FETCH_STS ? STS_TIMEOUT_MS : 1000L);
	curl_easy_setopt(cp->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cp->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (step == FETCH_STS) {
		curl_easy_setopt(cp->easy, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(cp->easy, CURLOPT_SSL_VERIFYHOST, 2L);
		if (cp->ca_file != NULL)
			curl_easy_setopt(cp->easy, CURLOPT_CAINFO,
			    cp->ca_file);
	} else {
		/* Link-local and loopback agents: never through a proxy. */
		curl_easy_setopt(cp->easy, CURLOPT_PROXY, "");
	}
	if (curlev_add(cp->cl, cp->easy, fetch_done, cp) < 0)
		return -1;
	return 0;
}

static int
imds_request(struct creds_provider *cp, enum fetch_step step)
{
	struct curl_slist *h;
	char url[1024], hdr[1024];

	switch (step) {
	case FETCH_IMDS_TOKEN:
		snprintf(url, sizeof(url), "%s/latest/api/token",
		    cp->endpoint);
		snprintf(hdr, sizeof(hdr),
		    "X-aws-ec2-metadata-token-ttl-seconds: %s",
		    IMDS_TOKEN_TTL);
		break;
	case FETCH_IMDS_ROLE:
	case FETCH_IMDS_CREDS:
		snprintf(url, sizeof(url),
		    "%s/latest/meta-data/iam/security-credentials/%s",
		    cp->endpoint, step == FETCH_IMDS_CREDS ? cp->role : "");
		snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s",
		    cp->token);
		break;
	default:
		return -1;
	}
	h = curl_slist_append(NULL, hdr);
	OPENSSL_cleanse(hdr, sizeof(hdr));
	if (h == NULL)
		return -1;
	return fetch_http(cp, step, url, step == FETCH_IMDS_TOKEN ? "PUT" :
	    NULL, h, NULL);
}

static void
imds_begin(struct creds_provider *cp)
{
	const char *ep = cp->imds_conf;
	size_t n;

	if (ep == NULL)
		ep = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	snprintf(cp->endpoint, sizeof(cp->endpoint), "%s",
	    ep != NULL && *ep != '\0' ? ep : IMDS_DEFAULT_ENDPOINT);
	n = strlen(cp->endpoint);
	while (n > 0 && cp->endpoint[n - 1] == '/')
		cp->endpoint[--n] = '\0';
	snprintf(cp->where, sizeof(cp->where), "%s", cp->endpoint);
	if (imds_request(cp, FETCH_IMDS_TOKEN) < 0) {
		creds_fail(cp, "IMDS %s: cannot start a request",
		    cp->endpoint);
		fetch_end(cp);
	}
}

/* A small secret file (token), trimmed; NULL with err set. */
static char *
read_secret_file(const char *path, const char *what, char *err,
    size_t errlen)
{
	char buf[FETCH_MAX_TOKEN + 1], *s;
	size_t n;
	FILE *f;

	f = fopen(path, "re");
	if (f == NULL) {
		seterr(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf), f);
	if (ferror(f)) {
		seterr(err, errlen, "%s %s: read error", what, path);
		fclose(f);
		return NULL;
	}
	fclose(f);
	if (n > FETCH_MAX_TOKEN) {
		OPENSSL_cleanse(buf, sizeof(buf));
		seterr(err, errlen, "%s %s: larger than %d bytes", what, path,
		    FETCH_MAX_TOKEN);
		return NULL;
	}
	buf[n] = '\0';
	s = memchr(buf, '\0', n) != NULL ? buf + n : trim(buf);
	if (*s == '\0' || strpbrk(s, "\r\n") != NULL) {
		OPENSSL_cleanse(buf, sizeof(buf));
		seterr(err, errlen, "%s %s: empty, or not one line of text",
		    what, path);
		return NULL;
	}
	s = strdup(s);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (s == NULL)
		seterr(err, errlen, "out of memory");
	return s;
}

static void
container_begin(struct creds_provider *cp)
{
	struct curl_slist *h = NULL;
	char err[512], *tok = NULL, *line = NULL;

	if (cp->auth_token_file != NULL) {
		tok = read_secret_file(cp->auth_token_file,
		    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", err,
		    sizeof(err));
		if (tok == NULL) {
			creds_fail(cp, "container credentials: %s", err);
			goto fail;
		}
	} else if (cp->auth_token != NULL) {
		tok = strdup(cp->auth_token);
		if (tok == NULL)
			goto nomem;
	}
	if (tok != NULL) {
		if (strpbrk(tok, "\r\n") != NULL) {
			creds_fail(cp, "container credentials: the "
			    "authorization token holds a line break");
			goto fail;
		}
		if (asprintf(&line, "Authorization: %s", tok) == -1) {
			line = NULL;
			goto nomem;
		}
		h = curl_slist_append(NULL, line);
		if (h == NULL)
			goto nomem;
	}
	wipe_free(line);
	wipe_free(tok);
	if (fetch_http(cp, FETCH_CONTAINER, cp->url, NULL, h, NULL) < 0) {
		creds_fail(cp, "container credentials %s: cannot start a "
		    "request", cp->where);
		fetch_end(cp);
	}
	return;
nomem:
	creds_fail(cp, "container credentials: out of memory");
fail:
	curl_slist_free_all(h);
	wipe_free(line);
	wipe_free(tok);
	fetch_end(cp);
}

static const char *
region_of(const struct creds_provider *cp)
{
	const char *r = cp->region;

	if (r == NULL)
		r = env_nonempty("AWS_REGION");
	if (r == NULL)
		r = env_nonempty("AWS_DEFAULT_REGION");
	return r;
}

/*
 * AssumeRole signed with src, or AssumeRoleWithWebIdentity when src is
 * NULL. The endpoint: aws.sts_endpoint, AWS_ENDPOINT_URL_STS,
 * AWS_ENDPOINT_URL, else the region's (botocore's default is the
 * regional endpoint).
 */
static void
sts_begin(struct creds_provider *cp, const struct creds *src)
{
	struct sts_params p;
	struct sts_signer s;
	struct curl_slist *h;
	const char *region = region_of(cp), *ep = cp->sts_conf;
	char url[512], err[512], name[64], *tok = NULL, *body;
	int r;

	if (region == NULL) {
		creds_fail(cp, "%s %s: STS needs a region (aws.region or "
		    "AWS_REGION)", creds_source_str(cp->plan), cp->where);
		goto fail;
	}
	if (ep == NULL)
		ep = env_nonempty("AWS_ENDPOINT_URL_STS");
	/* The SDKs' endpoint for every service, EC2's too. */
	if (ep == NULL)
		ep = env_nonempty("AWS_ENDPOINT_URL");
	if (ep != NULL)
		snprintf(url, sizeof(url), "%s", ep);
	else if (sts_endpoint_for(region, url, sizeof(url)) < 0) {
		creds_fail(cp, "%s: region '%s': no STS endpoint",
		    creds_source_str(cp->plan), region);
		goto fail;
	}
	memset(&p, 0, sizeof(p));
	memset(&s, 0, sizeof(s));
	/* As botocore names a session nobody named. */
	snprintf(name, sizeof(name), "failoverd-session-%lld",
	    (long long)time(NULL));
	p.role_arn = cp->role_arn;
	p.session_name = cp->session_name != NULL ? cp->session_name : name;
	p.external_id = cp->external_id;
	p.duration = cp->duration;
	s.region = region;
	s.when = creds_now(cp);
	if (src != NULL) {
		s.access_key_id = src->access_key_id;
		s.secret_access_key = src->secret_access_key;
		s.session_token = src->session_token;
	} else {
		tok = read_secret_file(cp->token_file, "web identity token "
		    "file", err, sizeof(err));
		if (tok == NULL) {
			creds_fail(cp, "%s %s: %s",
			    creds_source_str(cp->plan), cp->role_arn, err);
			goto fail;
		}
		p.web_token = tok;
	}
	r = sts_request(url, &p, &s, &body, &h, err, sizeof(err));
	wipe_free(tok);
	if (r < 0) {
		creds_fail(cp, "%s %s: %s", creds_source_str(cp->plan),
		    cp->where, err);
		goto fail;
	}
	snprintf(cp->endpoint, sizeof(cp->endpoint), "%s", url);
	if (fetch_http(cp, FETCH_STS, url, NULL, h, body) < 0) {
		creds_fail(cp, "%s %s: cannot start a request",
		    creds_source_str(cp->plan), cp->where);
		goto fail;
	}
	return;
fail:
	fetch_end(cp);
}

static void
assume_on_source(const char *err, void *arg)
{
	struct creds_provider *cp = arg;
	const struct creds *src;

	cp->source_wait = NULL;
	src = creds_current(cp->source);
	if (err != NULL || src == NULL) {
		creds_fail(cp, "assume-role %s: source credentials: %s",
		    cp->where, err != NULL ? err : "expired");
		fetch_end(cp);
		return;
	}
	sts_begin(cp, src);
}

static void
sts_on_reply(struct creds_provider *cp, long status)
{
	struct sts_creds sc;
	struct creds *c;
	char err[512];

	if (sts_parse_reply(cp->reply, cp->replylen, status, &sc, err,
	    sizeof(err)) < 0) {
		creds_fail(cp, "%s %s: %s", creds_source_str(cp->plan),
		    cp->where, err);
		/* The source's session was refused: the next try gets a
		 * new one (static keys are kept, as ever). */
		if (cp->source != NULL && (strstr(err, "ExpiredToken") !=
		    NULL || strstr(err, "InvalidClientTokenId") != NULL))
			creds_invalidate(cp->source);
		return;
	}
	c = creds_make(cp->plan, sc.access_key_id, sc.secret_access_key,
	    sc.session_token, sc.expiration);
	sc.access_key_id = sc.secret_access_key = sc.session_token = NULL;
	sts_creds_clear(&sc);
	if (c == NULL) {
		creds_fail(cp, "%s: out of memory", creds_source_str(cp->plan));
		return;
	}
	if (!creds_valid(cp, c)) {
		creds_free(c);
		creds_fail(cp, "%s %s: STS gave credentials already expired "
		    "(check the clock)", creds_source_str(cp->plan),
		    cp->where);
		return;
	}
	creds_set(cp, c);
}

/* IMDS or container JSON. */
static void
json_on_reply(struct creds_provider *cp, enum creds_source src)
{
	char err[256], *code;
	struct creds *c;

	if (src == CREDS_SRC_IMDS) {
		code = creds_json_get(cp->reply, cp->replylen, "Code", err,
		    sizeof(err));
		if (code != NULL && strcmp(code, "Success") != 0) {
			creds_fail(cp, "IMDS %s role %s: Code is \"%s\"",
			    cp->endpoint, cp->role, code);
			free(code);
			return;
		}
		free(code);
	}
	c = creds_parse_json(src, cp->reply, cp->replylen, err, sizeof(err));
	if (c != NULL && c->expiration != 0 && !creds_valid(cp, c)) {
		creds_free(c);
		c = NULL;
		snprintf(err, sizeof(err), "credentials already expired "
		    "(check the clock)");
	}
	if (c == NULL) {
		if (src == CREDS_SRC_IMDS)
			creds_fail(cp, "IMDS %s role %s: %s", cp->endpoint,
			    cp->role, err);
		else
			creds_fail(cp, "container credentials %s: %s",
			    cp->where, err);
		return;
	}
	if (src == CREDS_SRC_IMDS)
		snprintf(cp->where, sizeof(cp->where), "%s role %s",
		    cp->endpoint, cp->role);
	creds_set(cp, c);
}

static void
fetch_done(CURL *easy, CURLcode res, void *arg)
{
	struct creds_provider *cp = arg;
	static const char *const what[] = {
		[FETCH_IMDS_TOKEN] = "IMDS token PUT",
		[FETCH_IMDS_ROLE] = "IMDS role name GET",
		[FETCH_IMDS_CREDS] = "IMDS role credentials GET",
		[FETCH_CONTAINER] = "container credentials GET",
		[FETCH_STS] = "STS call",
	};
	long status = 0;
	char *nl;

	/* curlev has removed the handle; it is ours to clean up. */
	cp->easy = NULL;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(easy);
	if (res != CURLE_OK) {
		creds_fail(cp, "%s %s: %s", what[cp->step], cp->step ==
		    FETCH_STS ? cp->endpoint : cp->where, cp->overflow ?
		    "reply too large" : curl_easy_strerror(res));
		goto end;
	}
	if (cp->reply == NULL)
		fetch_write("", 0, 0, cp);
	if (cp->reply == NULL) {
		creds_fail(cp, "%s: out of memory", what[cp->step]);
		goto end;
	}
	/* STS says why in XML whatever the status. */
	if (status != 200 && cp->step != FETCH_STS) {
		creds_fail(cp, "%s %s: HTTP %ld", what[cp->step],
		    cp->where, status);
		goto end;
	}
	switch (cp->step) {
	case FETCH_IMDS_TOKEN:
		cp->token = strdup(trim(cp->reply));
		if (cp->token == NULL || *cp->token == '\0') {
			creds_fail(cp, "IMDS %s token PUT: empty token",
			    cp->endpoint);
			goto end;
		}
		if (imds_request(cp, FETCH_IMDS_ROLE) < 0)
			break;
		return;
	case FETCH_IMDS_ROLE:
		nl = strchr(cp->reply, '\n');
		if (nl != NULL)
			*nl = '\0';
		cp->role = strdup(trim(cp->reply));
		if (cp->role == NULL || *cp->role == '\0' ||
		    strchr(cp->role, '/') != NULL) {
			creds_fail(cp, "IMDS %s: no instance role attached",
			    cp->endpoint);
			goto end;
		}
		if (imds_request(cp, FETCH_IMDS_CREDS) < 0)
			break;
		return;
	case FETCH_IMDS_CREDS:
		json_on_reply(cp, CREDS_SRC_IMDS);
		goto end;
	case FETCH_CONTAINER:
		json_on_reply(cp, CREDS_SRC_CONTAINER);
		goto end;
	case FETCH_STS:
		sts_on_reply(cp, status);
		goto end;
	default:
		goto end;
	}
	creds_fail(cp, "IMDS %s: cannot start a request", cp->endpoint);
end:
	fetch_end(cp);
}

/*
 * credential_process: the command runs with stdin and stderr on
 * /dev/null (what it says on stderr may hold secrets, and nobody reads
 * it), stdout read on the loop, in a process group of its own so a
 * timeout kills whatever it started. The fetch ends when stdout is
 * closed and the process has exited, or at the timeout.
 */
static void
process_finish(struct creds_provider *cp)
{
	struct creds *c;
	char err[256];
	int st = cp->pstatus;

	if (!cp->peof || !cp->pexited)
		return;
	if (cp->overflow) {
		creds_fail(cp, "credential_process %s: printed more than %d "
		    "bytes", cp->where, FETCH_MAX_REPLY);
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (WIFSIGNALED(st))
			creds_fail(cp, "credential_process %s: killed by "
			    "signal %d (its stderr is not logged: it may "
			    "hold secrets)", cp->where, WTERMSIG(st));
		else
			creds_fail(cp, "credential_process %s: exited with "
			    "status %d (its stderr is not logged: it may "
			    "hold secrets)", cp->where, WEXITSTATUS(st));
	} else {
		c = creds_parse_json(CREDS_SRC_PROCESS, cp->reply != NULL ?
		    cp->reply : "", cp->replylen, err, sizeof(err));
		if (c != NULL && !creds_valid(cp, c)) {
			creds_free(c);
			c = NULL;
			snprintf(err, sizeof(err), "Expiration is in the "
			    "past");
		}
		if (c == NULL)
			creds_fail(cp, "credential_process %s: bad output: %s",
			    cp->where, err);
		else
			creds_set(cp, c);
	}
	fetch_end(cp);
}

static void
process_on_output(struct ev_loop *loop, ev_io *w, int revents)
{
	struct creds_provider *cp = w->data;
	char buf[4096];
	ssize_t n;

	n = read(cp->poutfd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		if (fetch_write(buf, 1, (size_t)n, cp) != (size_t)n)
			cp->overflow = 1;
		OPENSSL_cleanse(buf, (size_t)n);
		if (!cp->overflow)
			return;
		/* Too much: stop listening; the exit ends the fetch. */
		kill(-cp->pid, SIGKILL);
	}
	ev_io_stop(loop, &cp->pio);
	close(cp->poutfd);
	cp->poutfd = -1;
	cp->peof = 1;
	process_finish(cp);
}

static void
process_on_exit(struct ev_loop *loop, ev_child *w, int revents)
{
	struct creds_provider *cp = w->data;

	ev_child_stop(loop, w);
	cp->pstatus = w->rstatus;
	cp->pid = 0;
	cp->pexited = 1;
	process_finish(cp);
}

static void
process_on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct creds_provider *cp = w->data;

	creds_fail(cp, "credential_process %s: no answer within %g s; "
	    "killed it", cp->where, cp->process_timeout);
	fetch_end(cp);
}

static void
process_begin(struct creds_provider *cp)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	wordexp_t we;
	int fds[2] = { -1, -1 }, r;
	pid_t pid;

	/* Split as a shell would, without running anything (botocore
	 * splits with shlex, no shell either). */
	r = wordexp(cp->command, &we, WRDE_NOCMD);
	if (r != 0 || we.we_wordc == 0) {
		creds_fail(cp, "credential_process %s: cannot split the "
		    "command line (quotes, or $( ) which is not allowed)",
		    cp->where);
		if (r == 0 || r == WRDE_NOSPACE)
			wordfree(&we);
		fetch_end(cp);
		return;
	}
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == -1) {
		creds_fail(cp, "credential_process %s: pipe: %s", cp->where,
		    strerror(errno));
		wordfree(&we);
		fetch_end(cp);
		return;
	}
	/* The child's end must block like any stdout. */
	fcntl(fds[1], F_SETFL, 0);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	r = posix_spawnp(&pid, we.we_wordv[0], &fa, &at, we.we_wordv,
	    environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(fds[1]);
	if (r != 0) {
		creds_fail(cp, "credential_process %s: cannot run %s: %s",
		    cp->where, we.we_wordv[0], strerror(r));
		wordfree(&we);
		close(fds[0]);
		fetch_end(cp);
		return;
	}
	wordfree(&we);
	cp->pid = pid;
	cp->poutfd = fds[0];
	cp->peof = cp->pexited = 0;
	cp->pstatus = 0;
	cp->step = FETCH_PROCESS;
	ev_io_init(&cp->pio, process_on_output, cp->poutfd, EV_READ);
	cp->pio.data = cp;
	ev_io_start(cp->loop, &cp->pio);
	ev_child_init(&cp->pchild, process_on_exit, pid, 0);
	cp->pchild.data = cp;
	ev_child_start(cp->loop, &cp->pchild);
	ev_timer_init(&cp->ptimer, process_on_timeout, cp->process_timeout,
	    0.0);
	cp->ptimer.data = cp;
	ev_timer_start(cp->loop, &cp->ptimer);
}

/* Starts the fetch the plan calls for; it ends in fetch_end(). */
static void
fetch_start(struct creds_provider *cp)
{
	if (cp->resolving)
		return;
	cp->resolving = 1;
	cp->failed = 0;
	switch (cp->plan) {
	case CREDS_SRC_IMDS:
		imds_begin(cp);
		break;
	case CREDS_SRC_CONTAINER:
		container_begin(cp);
		break;
	case CREDS_SRC_WEB_IDENTITY:
		sts_begin(cp, NULL);
		break;
	case CREDS_SRC_ASSUME_ROLE:
		cp->step = FETCH_SOURCE;
		cp->source_wait = creds_wait(cp->source, assume_on_source,
		    cp);
		if (cp->source_wait == NULL) {
			creds_fail(cp, "out of memory");
			fetch_end(cp);
		}
		break;
	case CREDS_SRC_PROCESS:
		process_begin(cp);
		break;
	default:
		creds_fail(cp, "nothing to fetch");
		fetch_end(cp);
		break;
	}
}

static int
conf_strdup(char **dst, const char *v)
{
	*dst = NULL;
	if (v == NULL || *v == '\0')
		return 0;
	*dst = strdup(v);
	return *dst == NULL ? -1 : 0;
}

static struct creds_provider *
provider_alloc(struct ev_loop *loop, struct curlev *cl)
{
	struct creds_provider *cp;

	cp = calloc(1, sizeof(*cp));
	if (cp == NULL)
		return NULL;
	cp->loop = loop;
	cp->cl = cl;
	cp->poutfd = -1;
	cp->process_timeout = PROCESS_TIMEOUT;
	ev_timer_init(&cp->kick, kick_cb, 0.0, 0.0);
	cp->kick.data = cp;
	ev_timer_init(&cp->refresh, refresh_cb, 0.0, 0.0);
	cp->refresh.data = cp;
	ev_timer_init(&cp->ptimer, process_on_timeout, 0.0, 0.0);
	cp->ptimer.data = cp;
	return cp;
}

struct creds_provider *
creds_provider_new(struct ev_loop *loop, struct curlev *cl,
    const struct aws_conf *conf)
{
	struct creds_provider *cp;

	cp = provider_alloc(loop, cl);
	if (cp == NULL)
		return NULL;
	if (conf == NULL)
		return cp;
	if (conf_strdup(&cp->profile, conf->profile) < 0 ||
	    conf_strdup(&cp->imds_conf, conf->imds_endpoint) < 0 ||
	    conf_strdup(&cp->sts_conf, conf->sts_endpoint) < 0 ||
	    conf_strdup(&cp->container_conf, conf->container_endpoint) < 0 ||
	    conf_strdup(&cp->region, conf->region) < 0 ||
	    conf_strdup(&cp->ca_file, conf->ca_file) < 0) {
		creds_provider_free(cp);
		return NULL;
	}
	if (cp->ca_file == NULL &&
	    conf_strdup(&cp->ca_file, getenv("AWS_CA_BUNDLE")) < 0) {
		creds_provider_free(cp);
		return NULL;
	}
	if (conf->credential_process_timeout > 0)
		cp->process_timeout = conf->credential_process_timeout;
	return cp;
}

/* The provider of an assumed role's source credentials. */
static struct creds_provider *
creds_provider_sub(struct creds_provider *cp, enum creds_mode mode,
    const char *profile)
{
	struct creds_provider *s;

	s = provider_alloc(cp->loop, cp->cl);
	if (s == NULL)
		return NULL;
	s->mode = mode;
	s->depth = cp->depth + 1;
	s->clock_offset = cp->clock_offset;
	s->process_timeout = cp->process_timeout;
	if (conf_strdup(&s->profile, profile != NULL ? profile :
	    profile_of(cp)) < 0 ||
	    conf_strdup(&s->imds_conf, cp->imds_conf) < 0 ||
	    conf_strdup(&s->sts_conf, cp->sts_conf) < 0 ||
	    conf_strdup(&s->container_conf, cp->container_conf) < 0 ||
	    conf_strdup(&s->region, cp->region) < 0 ||
	    conf_strdup(&s->ca_file, cp->ca_file) < 0) {
		creds_provider_free(s);
		return NULL;
	}
	return s;
}

void
creds_provider_free(struct creds_provider *cp)
{
	struct creds_wait *w, *next;

	if (cp == NULL)
		return;
	ev_timer_stop(cp->loop, &cp->kick);
	ev_timer_stop(cp->loop, &cp->refresh);
	fetch_reset(cp);
	process_stop(cp);
	plan_clear(cp);
	wipe_free(cp->token);
	free(cp->role);
	for (w = cp->waiters; w != NULL; w = next) {
		next = w->next;
		free(w);
	}
	creds_free(cp->cur);
	free(cp->profile);
	free(cp->imds_conf);
	free(cp->sts_conf);
	free(cp->container_conf);
	free(cp->region);
	free(cp->ca_file);
	free(cp);
}

const char *
creds_access_key_id(const struct creds *c)
{
	return c->access_key_id;
}

const char *
creds_secret_access_key(const struct creds *c)
{
	return c->secret_access_key;
}

const char *
creds_session_token(const struct creds *c)
{
	return c->session_token;
}

enum creds_source
creds_source(const struct creds *c)
{
	return c->source;
}

time_t
creds_expiration(const struct creds *c)
{
	return c->expiration;
}
