/*
 * creds: the AWS credential chain (environment, shared files, IMDSv2).
 *
 * IMDS calls run on the loop through curlev: token PUT, role name GET,
 * role credentials GET, each a small state of one fetch. Secrets are
 * wiped with OPENSSL_cleanse when freed and never logged.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <ev.h>
#include <openssl/crypto.h>

#include "failoverd/creds.h"
#include "failoverd/curlev.h"
#include "failoverd/log.h"

#define IMDS_DEFAULT_ENDPOINT	"http://169.254.169.254"
#define IMDS_TOKEN_TTL		"21600"
#define IMDS_TIMEOUT_MS		5000L
#define IMDS_MAX_REPLY		65536
/* Refresh role credentials this long before they expire... */
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

enum imds_step {
	IMDS_IDLE,
	IMDS_TOKEN,
	IMDS_ROLE,
	IMDS_CREDS,
};

struct creds_provider {
	struct ev_loop		*loop;
	struct curlev		*cl;
	char			*profile;	/* from the config, or NULL */
	char			*imds_conf;	/* from the config, or NULL */

	struct creds		*cur;
	time_t			 clock_offset;	/* AWS's clock minus ours */
	int			 resolving;	/* a fetch is in flight */
	char			 err[512];	/* last failure */
	int			 failed;	/* err is to be delivered */

	struct creds_wait	*waiters;
	ev_timer		 kick;		/* delivers to waiters */
	ev_timer		 refresh;	/* role credential refresh */

	/* The IMDS fetch in flight. */
	enum imds_step		 step;
	CURL			*easy;
	struct curl_slist	*hdrs;
	char			*reply;
	size_t			 replylen;
	int			 overflow;
	char			*token;
	char			*role;
	char			 endpoint[256];
};

static const char *const creds_source_names[] = {
	[CREDS_SRC_NONE] = "none",
	[CREDS_SRC_ENV] = "environment",
	[CREDS_SRC_FILE] = "shared file",
	[CREDS_SRC_IMDS] = "instance role (IMDSv2)",
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

static void
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

static void
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
	memset(k, 0, sizeof(*k));
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

/* 1 found, 0 no profile with keys, -1 error (refusal included). */
static int
creds_from_files(const char *conf_profile, struct creds **out,
    char *where, size_t wherelen, char *err, size_t errlen)
{
	struct ini_keys k = { 0 };
	const char *profile;
	char *cpath = NULL, *fpath = NULL, *sect = NULL;
	int r, rc = -1;

	profile = conf_profile;
	if (profile == NULL || *profile == '\0')
		profile = getenv("AWS_PROFILE");
	if (profile == NULL || *profile == '\0')
		profile = "default";

	cpath = default_path("AWS_SHARED_CREDENTIALS_FILE",
	    ".aws/credentials");
	fpath = default_path("AWS_CONFIG_FILE", ".aws/config");
	if (cpath != NULL) {
		r = ini_read(cpath, profile, &k, err, errlen);
		if (r < 0)
			goto out;
		if (r == 0 && check_private(cpath, err, errlen) < 0)
			goto out;
		if (k.ak != NULL || k.sk != NULL) {
			snprintf(where, wherelen, "%s [%s]", cpath, profile);
			goto found;
		}
		ini_keys_clear(&k);
	}
	if (fpath != NULL) {
		sect = config_section(profile);
		if (sect == NULL) {
			seterr(err, errlen, "out of memory");
			goto out;
		}
		r = ini_read(fpath, sect, &k, err, errlen);
		if (r < 0)
			goto out;
		if (k.ak != NULL || k.sk != NULL) {
			if (check_private(fpath, err, errlen) < 0)
				goto out;
			snprintf(where, wherelen, "%s [%s]", fpath, sect);
			goto found;
		}
	}
	if (conf_profile != NULL || getenv("AWS_PROFILE") != NULL) {
		/* A profile that was asked for by name must exist. */
		seterr(err, errlen, "profile '%s': no aws_access_key_id in "
		    "%s or %s", profile, cpath ? cpath : "(no HOME)",
		    fpath ? fpath : "(no HOME)");
		goto out;
	}
	rc = 0;
	goto out;
found:
	if (k.ak == NULL || k.sk == NULL) {
		seterr(err, errlen, "%s: aws_access_key_id and "
		    "aws_secret_access_key must be set together", where);
		goto out;
	}
	*out = creds_make(CREDS_SRC_FILE, k.ak, k.sk, k.tok, 0);
	memset(&k, 0, sizeof(k));
	if (*out == NULL) {
		seterr(err, errlen, "%s: out of memory", where);
		goto out;
	}
	rc = 1;
out:
	ini_keys_clear(&k);
	free(cpath);
	free(fpath);
	free(sect);
	return rc;
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

/* --- a flat JSON object scanner (IMDS replies) ------------------------- */

/* Parses a JSON string at *pp (after the quote) into out, or -1. */
static int
json_string(const char **pp, const char *end, char **out)
{
	const char *p = *pp;
	char *buf, *o;
	unsigned int u;
	int i;

	buf = malloc((size_t)(end - p) + 1);
	if (buf == NULL)
		return -1;
	o = buf;
	while (p < end && *p != '"') {
		if ((unsigned char)*p < 0x20)
			goto bad;
		if (*p != '\\') {
			*o++ = *p++;
			continue;
		}
		if (++p >= end)
			goto bad;
		switch (*p) {
		case '"': case '\\': case '/':
			*o++ = *p;
			break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			/* Only ASCII escapes: credentials never need more. */
			if (end - p < 5)
				goto bad;
			u = 0;
			for (i = 1; i <= 4; i++) {
				if (!isxdigit((unsigned char)p[i]))
					goto bad;
				u = u * 16 + (unsigned int)(isdigit(
				    (unsigned char)p[i]) ? p[i] - '0' :
				    (tolower((unsigned char)p[i]) - 'a' + 10));
			}
			if (u == 0 || u > 0x7f)
				goto bad;
			*o++ = (char)u;
			p += 4;
			break;
		default:
			goto bad;
		}
		p++;
	}
	if (p >= end)
		goto bad;
	*o = '\0';
	*pp = p + 1;
	*out = buf;
	return 0;
bad:
	OPENSSL_cleanse(buf, (size_t)(o - buf));
	free(buf);
	return -1;
}

static const char *
json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
	    *p == '\r'))
		p++;
	return p;
}

char *
creds_json_get(const char *json, size_t len, const char *key, char *err,
    size_t errlen)
{
	const char *p = json, *end = json + len;
	char *k = NULL, *v = NULL, *found = NULL;
	int wanted;

	p = json_ws(p, end);
	if (p >= end || *p != '{')
		goto malformed;
	p = json_ws(p + 1, end);
	if (p < end && *p == '}')
		goto notfound;
	for (;;) {
		if (p >= end || *p != '"' || (p++, json_string(&p, end, &k)) <
		    0)
			goto malformed;
		p = json_ws(p, end);
		if (p >= end || *p != ':')
			goto malformed;
		p = json_ws(p + 1, end);
		if (p >= end)
			goto malformed;
		wanted = strcmp(k, key) == 0;
		if (*p == '"') {
			p++;
			if (json_string(&p, end, &v) < 0)
				goto malformed;
		} else if (*p == '{' || *p == '[') {
			seterr(err, errlen, "JSON: nested value under \"%s\" "
			    "(only a flat object is expected)", k);
			goto fail;
		} else {
			/* Numbers, true, false, null: skipped. */
			while (p < end && *p != ',' && *p != '}' &&
			    !isspace((unsigned char)*p))
				p++;
			if (wanted) {
				seterr(err, errlen, "JSON: \"%s\" is not a "
				    "string", key);
				goto fail;
			}
		}
		if (wanted && v != NULL && found == NULL) {
			found = v;
			v = NULL;
		}
		if (v != NULL) {
			OPENSSL_cleanse(v, strlen(v));
			free(v);
			v = NULL;
		}
		free(k);
		k = NULL;
		p = json_ws(p, end);
		if (p < end && *p == ',') {
			p = json_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}')
			break;
		goto malformed;
	}
	if (json_ws(p + 1, end) != end)
		goto malformed;
	if (found != NULL)
		return found;
notfound:
	seterr(err, errlen, "JSON: no \"%s\"", key);
	goto fail;
malformed:
	seterr(err, errlen, "JSON: malformed object near byte %zu",
	    (size_t)(p - json));
fail:
	free(k);
	wipe_free(v);
	wipe_free(found);
	return NULL;
}

/* --- the provider ------------------------------------------------------ */

static void	creds_kick(struct creds_provider *cp);
static void	imds_start(struct creds_provider *cp);
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
	/* A refresh planned by the wrong clock may come too late. */
	if (cp->cur != NULL && cp->cur->expiration > 1 && !cp->resolving)
		schedule_refresh_for(cp, cp->cur);
}

static void
creds_set(struct creds_provider *cp, struct creds *c, const char *where)
{
	char exp[64] = "";
	struct tm tm;
	int changed;

	changed = cp->cur == NULL || cp->cur->source != c->source ||
	    strcmp(cp->cur->access_key_id, c->access_key_id) != 0;
	creds_free(cp->cur);
	cp->cur = c;
	cp->failed = 0;
	if (c->expiration != 0 && gmtime_r(&c->expiration, &tm) != NULL)
		strftime(exp, sizeof(exp), ", expires %Y-%m-%dT%H:%M:%SZ",
		    &tm);
	/* The access key id identifies, it does not authenticate. */
	if (changed)
		log_info("aws credentials: using %s%s%s, access key %s%s",
		    creds_source_str(c->source), where ? " " : "",
		    where ? where : "", c->access_key_id, exp);
	else
		log_debug("aws credentials: refreshed %s%s",
		    creds_source_str(c->source), exp);
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
	log_warnx("aws credentials: %s", cp->err);
}

static void
refresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct creds_provider *cp = w->data;

	if (!cp->resolving)
		imds_start(cp);
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

/*
 * Resolves the static sources now (they are local and quick); falls
 * through to the instance role, which is fetched on the loop.
 */
static void
creds_resolve(struct creds_provider *cp)
{
	struct creds *c = NULL;
	char where[600], err[512];
	const char *dis;
	int r;

	err[0] = '\0';
	r = creds_from_env(&c, err, sizeof(err));
	if (r > 0) {
		creds_set(cp, c, NULL);
		return;
	}
	if (r < 0) {
		creds_fail(cp, "%s", err);
		return;
	}
	r = creds_from_files(cp->profile, &c, where, sizeof(where), err,
	    sizeof(err));
	if (r > 0) {
		creds_set(cp, c, where);
		return;
	}
	if (r < 0) {
		creds_fail(cp, "%s", err);
		return;
	}
	dis = getenv("AWS_EC2_METADATA_DISABLED");
	if (dis != NULL && strcasecmp(dis, "true") == 0) {
		creds_fail(cp, "no credentials: none in the environment or "
		    "the shared files, and AWS_EC2_METADATA_DISABLED=true");
		return;
	}
	imds_start(cp);
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
		if (cp->cur != NULL && cp->cur->source == CREDS_SRC_IMDS)
			imds_start(cp);
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
	if (cp->cur == NULL || cp->cur->source != CREDS_SRC_IMDS)
		return;
	log_info("aws credentials: role credentials refused by AWS, "
	    "fetching new ones");
	/* Keep the role source, drop the secret. */
	cp->cur->expiration = 1;
}

/* --- IMDSv2 ------------------------------------------------------------ */

static size_t
imds_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct creds_provider *cp = arg;
	size_t n = size * nmemb;
	char *p;

	if (cp->replylen + n > IMDS_MAX_REPLY) {
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
imds_reset(struct creds_provider *cp)
{
	if (cp->easy != NULL) {
		curlev_remove(cp->cl, cp->easy);
		curl_easy_cleanup(cp->easy);
		cp->easy = NULL;
	}
	curl_slist_free_all(cp->hdrs);
	cp->hdrs = NULL;
	if (cp->reply != NULL) {
		OPENSSL_cleanse(cp->reply, cp->replylen);
		free(cp->reply);
	}
	cp->reply = NULL;
	cp->replylen = 0;
	cp->overflow = 0;
}

static void
imds_end(struct creds_provider *cp)
{
	imds_reset(cp);
	wipe_free(cp->token);
	cp->token = NULL;
	free(cp->role);
	cp->role = NULL;
	cp->step = IMDS_IDLE;
	cp->resolving = 0;
	if (cp->failed && cp->cur != NULL && creds_valid(cp, cp->cur))
		schedule_refresh(cp, REFRESH_RETRY);
	creds_kick(cp);
}

static void	imds_done(CURL *easy, CURLcode res, void *arg);

static int
imds_request(struct creds_provider *cp, enum imds_step step)
{
	char url[512], hdr[1024];

	imds_reset(cp);
	cp->step = step;
	cp->easy = curl_easy_init();
	if (cp->easy == NULL)
		return -1;
	switch (step) {
	case IMDS_TOKEN:
		snprintf(url, sizeof(url), "%s/latest/api/token",
		    cp->endpoint);
		curl_easy_setopt(cp->easy, CURLOPT_CUSTOMREQUEST, "PUT");
		snprintf(hdr, sizeof(hdr),
		    "X-aws-ec2-metadata-token-ttl-seconds: %s",
		    IMDS_TOKEN_TTL);
		break;
	case IMDS_ROLE:
	case IMDS_CREDS:
		snprintf(url, sizeof(url),
		    "%s/latest/meta-data/iam/security-credentials/%s",
		    cp->endpoint, step == IMDS_CREDS ? cp->role : "");
		snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s",
		    cp->token);
		break;
	default:
		return -1;
	}
	cp->hdrs = curl_slist_append(NULL, hdr);
	OPENSSL_cleanse(hdr, sizeof(hdr));
	if (cp->hdrs == NULL)
		return -1;
	curl_easy_setopt(cp->easy, CURLOPT_URL, url);
	curl_easy_setopt(cp->easy, CURLOPT_HTTPHEADER, cp->hdrs);
	curl_easy_setopt(cp->easy, CURLOPT_WRITEFUNCTION, imds_write);
	curl_easy_setopt(cp->easy, CURLOPT_WRITEDATA, cp);
	curl_easy_setopt(cp->easy, CURLOPT_TIMEOUT_MS, IMDS_TIMEOUT_MS);
	curl_easy_setopt(cp->easy, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(cp->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cp->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(cp->easy, CURLOPT_PROXY, "");
	if (curlev_add(cp->cl, cp->easy, imds_done, cp) < 0)
		return -1;
	return 0;
}

static void
imds_start(struct creds_provider *cp)
{
	const char *ep = cp->imds_conf;
	size_t n;

	if (cp->resolving)
		return;
	if (ep == NULL)
		ep = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	snprintf(cp->endpoint, sizeof(cp->endpoint), "%s",
	    ep != NULL && *ep != '\0' ? ep : IMDS_DEFAULT_ENDPOINT);
	n = strlen(cp->endpoint);
	while (n > 0 && cp->endpoint[n - 1] == '/')
		cp->endpoint[--n] = '\0';
	cp->resolving = 1;
	cp->failed = 0;
	if (imds_request(cp, IMDS_TOKEN) < 0) {
		creds_fail(cp, "IMDS %s: cannot start a request",
		    cp->endpoint);
		imds_end(cp);
	}
}

/* ISO 8601 "2024-05-01T12:00:00Z" to time_t, or -1. */
static time_t
parse_expiration(const char *s)
{
	struct tm tm;
	const char *e;

	memset(&tm, 0, sizeof(tm));
	e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (e == NULL)
		return -1;
	/* Fractional seconds and "Z" or "+00:00" are allowed, nothing else. */
	if (*e == '.')
		for (e++; isdigit((unsigned char)*e); e++)
			;
	if (strcmp(e, "Z") != 0 && strcmp(e, "+00:00") != 0)
		return -1;
	return timegm(&tm);
}

static void
imds_got_creds(struct creds_provider *cp)
{
	char err[256], *code, *ak = NULL, *sk = NULL, *tok = NULL, *exp;
	struct creds *c;
	time_t when;

	code = creds_json_get(cp->reply, cp->replylen, "Code", err,
	    sizeof(err));
	if (code != NULL && strcmp(code, "Success") != 0) {
		creds_fail(cp, "IMDS %s role %s: Code is \"%s\"",
		    cp->endpoint, cp->role, code);
		free(code);
		return;
	}
	free(code);
	exp = creds_json_get(cp->reply, cp->replylen, "Expiration", err,
	    sizeof(err));
	if (exp == NULL)
		goto bad;
	when = parse_expiration(exp);
	free(exp);
	if (when == -1) {
		snprintf(err, sizeof(err), "Expiration is not ISO 8601 UTC");
		goto bad;
	}
	ak = creds_json_get(cp->reply, cp->replylen, "AccessKeyId", err,
	    sizeof(err));
	if (ak == NULL)
		goto bad;
	sk = creds_json_get(cp->reply, cp->replylen, "SecretAccessKey", err,
	    sizeof(err));
	if (sk == NULL)
		goto bad;
	tok = creds_json_get(cp->reply, cp->replylen, "Token", err,
	    sizeof(err));
	if (tok == NULL)
		goto bad;
	c = creds_make(CREDS_SRC_IMDS, ak, sk, tok, when);
	ak = sk = tok = NULL;
	if (c == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto bad;
	}
	if (!creds_valid(cp, c)) {
		creds_free(c);
		snprintf(err, sizeof(err), "credentials already expired "
		    "(check the clock)");
		goto bad;
	}
	{
		char where[600];

		snprintf(where, sizeof(where), "%s role %s", cp->endpoint,
		    cp->role);
		creds_set(cp, c, where);
	}
	schedule_refresh_for(cp, c);
	return;
bad:
	free(ak);
	wipe_free(sk);
	wipe_free(tok);
	creds_fail(cp, "IMDS %s role %s: %s", cp->endpoint, cp->role, err);
}

static void
imds_done(CURL *easy, CURLcode res, void *arg)
{
	struct creds_provider *cp = arg;
	static const char *const what[] = {
		[IMDS_TOKEN] = "token PUT",
		[IMDS_ROLE] = "role name GET",
		[IMDS_CREDS] = "role credentials GET",
	};
	long status = 0;
	char *nl;

	/* curlev has removed the handle; it is ours to clean up. */
	cp->easy = NULL;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(easy);
	if (res != CURLE_OK) {
		creds_fail(cp, "IMDS %s %s: %s", cp->endpoint,
		    what[cp->step], cp->overflow ? "reply too large" :
		    curl_easy_strerror(res));
		goto end;
	}
	if (status != 200) {
		creds_fail(cp, "IMDS %s %s: HTTP %ld", cp->endpoint,
		    what[cp->step], status);
		goto end;
	}
	if (cp->reply == NULL)
		imds_write("", 0, 0, cp);
	if (cp->reply == NULL) {
		creds_fail(cp, "IMDS %s: out of memory", cp->endpoint);
		goto end;
	}
	switch (cp->step) {
	case IMDS_TOKEN:
		cp->token = strdup(trim(cp->reply));
		if (cp->token == NULL || *cp->token == '\0') {
			creds_fail(cp, "IMDS %s token PUT: empty token",
			    cp->endpoint);
			goto end;
		}
		if (imds_request(cp, IMDS_ROLE) < 0)
			break;
		return;
	case IMDS_ROLE:
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
		if (imds_request(cp, IMDS_CREDS) < 0)
			break;
		return;
	case IMDS_CREDS:
		imds_got_creds(cp);
		goto end;
	default:
		goto end;
	}
	creds_fail(cp, "IMDS %s: cannot start a request", cp->endpoint);
end:
	imds_end(cp);
}

struct creds_provider *
creds_provider_new(struct ev_loop *loop, struct curlev *cl,
    const char *profile, const char *imds_endpoint)
{
	struct creds_provider *cp;

	cp = calloc(1, sizeof(*cp));
	if (cp == NULL)
		return NULL;
	cp->loop = loop;
	cp->cl = cl;
	if (profile != NULL && *profile != '\0') {
		cp->profile = strdup(profile);
		if (cp->profile == NULL)
			goto fail;
	}
	if (imds_endpoint != NULL && *imds_endpoint != '\0') {
		cp->imds_conf = strdup(imds_endpoint);
		if (cp->imds_conf == NULL)
			goto fail;
	}
	ev_timer_init(&cp->kick, kick_cb, 0.0, 0.0);
	cp->kick.data = cp;
	ev_timer_init(&cp->refresh, refresh_cb, 0.0, 0.0);
	cp->refresh.data = cp;
	return cp;
fail:
	free(cp->profile);
	free(cp);
	return NULL;
}

void
creds_provider_free(struct creds_provider *cp)
{
	struct creds_wait *w, *next;

	if (cp == NULL)
		return;
	ev_timer_stop(cp->loop, &cp->kick);
	ev_timer_stop(cp->loop, &cp->refresh);
	imds_reset(cp);
	wipe_free(cp->token);
	free(cp->role);
	for (w = cp->waiters; w != NULL; w = next) {
		next = w->next;
		free(w);
	}
	creds_free(cp->cur);
	free(cp->profile);
	free(cp->imds_conf);
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
