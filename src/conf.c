/*
 * conf: failoverd.conf (libconfig) -> a validated, immutable struct config.
 *
 * Everything the file may say is in the schema tables below (one table per
 * group, nested the way the file nests). The same tables drive parsing,
 * defaults, freeing and comparing, so a setting added to a table is parsed,
 * defaulted, freed and compared without touching anything else; the man
 * page and conf/failoverd.conf document the same tables and must be kept
 * in step with them.
 *
 * The walker visits every setting in the file and looks it up in the table
 * of its group: anything not there is an error, so that a typo never falls
 * back to a default in silence. Errors are collected (up to a cap), each as
 * "file:line: full.path: what is wrong".
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "failoverd/buf.h"
#include "failoverd/conf.h"
#include "failoverd/hostkey.h"
#include "failoverd/log.h"
#include "failoverd/redact.h"

/* Past this many errors the rest are only counted: one typo repeated in a
 * hundred services must not bury the first message. */
#define CONF_MAX_ERRORS		50

/* AWS refuses user data larger than this (before base64). */
#define CONF_USER_DATA_MAX	16384

/* Tags per resource are capped at 50 by AWS; failoverd adds its own. */
#define CONF_MAX_TAGS		40

/* struct sockaddr_un's sun_path, less its NUL. */
#define CONF_SUN_PATH_MAX \
	(sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* Snapshots one service may keep: see conf_listed_check. */
#define CONF_MAX_LISTED		2000

/* Any list without a tighter limit of its own. */
#define CONF_LIST_MAX		64

/*
 * The largest number of services the benchmarks run (tests/bench): a
 * bound that keeps the pairwise checks of conf_top_check well under a
 * second.
 */
#define CONF_MAX_SERVICES	10000

/* Any string without a tighter limit of its own: as long as a path. */
#define CONF_STR_MAX		4096

/* EC2 CreateKeyPair: "Up to 255 ASCII characters". */
#define CONF_KEY_NAME_MAX	255

/* IAM instance profile names: 1 to 128 of [A-Za-z0-9+=,.@_-]. */
#define CONF_PROFILE_MAX	128

/* Security groups per network interface: 5 by default, 16 at most. */
#define CONF_MAX_SGS		16

/* A probe URL is built in a 2048-byte buffer (probe_http.c). */
#define CONF_URL_MAX		2047

/* etcd cluster sizes: a member list, its endpoints (etcd itself wants
 * no more than 7 or 9 voting members). */
#define CONF_MAX_CLUSTER_MEMBERS	16
#define CONF_MAX_ENDPOINTS		9
#define CONF_PREFIX_MAX			256

enum conf_kind {
	K_BOOL,		/* int field, true/false */
	K_INT,		/* int field */
	K_LONG,		/* long field, else as K_INT */
	K_SECS,		/* double field, seconds; int or float in the file */
	K_STR,		/* char * field */
	K_STRLIST,	/* char ** field, size_t count at off2 */
	K_ENUM,		/* int-sized enum field, names in enum_names */
	K_GROUP,	/* a nested struct at off, described by sub */
	K_LIST,		/* array of structs at off, count at off2 */
	K_CUSTOM	/* parsed, defaulted, freed and compared by ops */
};

/* Setting flags. */
#define F_REQUIRED	0x0001
#define F_MINEXCL	0x0002	/* min is exclusive: "greater than" */
#define F_HTTP		0x0004	/* probe setting valid for http only */
#define F_SSH		0x0008	/* probe setting valid for ssh only */
#define F_FILE		0x0010	/* a path to a file that must exist */
#define F_ABSPATH	0x0020	/* must be an absolute path */
#define F_NONEMPTY	0x0040	/* string or list must not be empty */
#define F_SECRET	0x0080	/* a file others must not read */
#define F_TRUSTED	0x0100	/* a file others must not write */
#define F_ZEROOFF	0x0200	/* 0 is "off", else in range */
#define F_READABLE	0x0400	/* a file this process must read at load */

struct conf_walk;
struct conf_group;

typedef int	(*conf_check_fn)(const char *val, char *why, size_t whylen);

struct conf_custom {
	int	(*parse)(struct conf_walk *, const config_setting_t *, void *);
	void	(*deflt)(struct conf_walk *, void *);
	void	(*free)(void *);
	int	(*equal)(const void *, const void *);
};

struct conf_setting {
	const char		*name;
	enum conf_kind		 kind;
	size_t			 off;
	size_t			 off2;
	int			 flags;
	double			 min, max;	/* K_INT, K_SECS; min==max: none */
	const char		*unit;		/* K_SECS; NULL: "s" */
	size_t			 maxlen;	/* K_STR, K_STRLIST: 0 is
						 * CONF_STR_MAX */
	int			 maxcount;	/* K_STRLIST, K_LIST: 0 is
						 * CONF_LIST_MAX */
	double			 defnum;	/* K_BOOL, K_INT, K_SECS */
	const char		*defstr;	/* K_STR, K_ENUM */
	conf_check_fn		 check;		/* K_STR, K_STRLIST elements */
	const char *const	*enum_names;	/* K_ENUM, NULL-terminated */
	const struct conf_group	*sub;		/* K_GROUP, K_LIST */
	const struct conf_custom *custom;	/* K_CUSTOM */
};

struct conf_group {
	const struct conf_setting *settings;
	size_t		 nsettings;
	size_t		 size;		/* of one element, for K_LIST */
	/* Which variant flags (F_HTTP, F_SSH) the group's settings may have;
	 * NULL: every setting is allowed. */
	int		(*variant)(struct conf_walk *, const config_setting_t *,
			    void *);
	/* Checks that span several settings, after the walk and defaults. */
	void		(*check)(struct conf_walk *, const config_setting_t *,
			    void *);
};

struct conf_walk {
	const char	*file;
	const char	*incdir;	/* where @include finds files, or NULL */
	char		 path[512];
	size_t		 pathlen;
	char		*err;
	size_t		 errlen;
	size_t		 used;
	int		 nerrors;
	struct config	*conf;
	struct service_conf *svc;	/* the service being walked, if any */
};

static void	conf_walk_group(struct conf_walk *, const config_setting_t *,
		    const struct conf_group *, void *);
static int	conf_walk_if_group(struct conf_walk *,
		    const config_setting_t *, const struct conf_group *, void *);
static void	conf_group_default(struct conf_walk *,
		    const struct conf_group *, void *);
static void	conf_group_free(const struct conf_group *, void *);
static int	conf_group_equal(const struct conf_group *, const void *,
		    const void *);
static void	conf_host_keys_check(struct conf_walk *,
		    const config_setting_t *, struct service_conf *);
static void	conf_hook_check(struct conf_walk *, const config_setting_t *,
		    struct service_conf *);
static void	conf_listed_check(struct conf_walk *,
		    const config_setting_t *, struct service_conf *);
static void	conf_launch_check(struct conf_walk *,
		    const config_setting_t *, void *);

/* Errors ------------------------------------------------------------- */

static void __attribute__((format(printf, 4, 0)))
conf_verr(struct conf_walk *w, const config_setting_t *s, const char *member,
    const char *fmt, va_list ap)
{
	const char	*file = NULL;
	char		 incfile[PATH_MAX];
	int		 line = 0;

	w->nerrors++;
	if (w->nerrors > CONF_MAX_ERRORS || w->used + 1 >= w->errlen)
		return;
	if (s != NULL) {
		file = config_setting_source_file(s);
		line = config_setting_source_line(s);
	}
	if (file == NULL)
		file = w->file;
	/* libconfig names an @include'd file as written in the directive,
	 * but it was found relative to the main file's directory. */
	if (strcmp(file, w->file) != 0 && file[0] != '/' &&
	    w->incdir != NULL) {
		snprintf(incfile, sizeof(incfile), "%s/%s", w->incdir, file);
		file = incfile;
	}
	if (line > 0)
		buf_fmt_at(w->err, w->errlen, &w->used, "%s:%d: ", file,
		    line);
	else
		buf_fmt_at(w->err, w->errlen, &w->used, "%s: ", file);
	if (w->pathlen > 0 || member != NULL)
		buf_fmt_at(w->err, w->errlen, &w->used, "%s%s%s: ", w->path,
		    w->pathlen > 0 && member != NULL ? "." : "",
		    member != NULL ? member : "");
	buf_vfmt_at(w->err, w->errlen, &w->used, fmt, ap);
	if (w->used + 1 < w->errlen) {
		w->err[w->used++] = '\n';
		w->err[w->used] = '\0';
	}
}

/* An error about the setting s itself, whose path is w->path. */
static void __attribute__((format(printf, 3, 4)))
conf_err(struct conf_walk *w, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verr(w, s, NULL, fmt, ap);
	va_end(ap);
}

/*
 * An error about the member called name of the group at w->path; reported
 * at the member's line when it is in the file, else at the group's.
 */
static void __attribute__((format(printf, 4, 5)))
conf_err_member(struct conf_walk *w, const config_setting_t *group,
    const char *name, const char *fmt, ...)
{
	const config_setting_t	*s = NULL;
	va_list			 ap;

	if (group != NULL)
		s = config_setting_get_member(group, name);
	va_start(ap, fmt);
	conf_verr(w, s != NULL ? s : group, name, fmt, ap);
	va_end(ap);
}

static size_t
conf_path_push(struct conf_walk *w, const char *name, int index)
{
	size_t	 old = w->pathlen;
	int	 n;

	if (name != NULL)
		n = snprintf(w->path + w->pathlen, sizeof(w->path) - w->pathlen,
		    "%s%s", w->pathlen > 0 ? "." : "", name);
	else
		n = snprintf(w->path + w->pathlen, sizeof(w->path) - w->pathlen,
		    "%s[%d]", w->pathlen > 0 ? "." : "", index);
	if (n > 0)
		w->pathlen += (size_t)n;
	if (w->pathlen >= sizeof(w->path))
		w->pathlen = sizeof(w->path) - 1;
	return old;
}

static void
conf_path_pop(struct conf_walk *w, size_t old)
{
	w->pathlen = old;
	w->path[old] = '\0';
}

/* Prints seconds as a person wrote them: 5.0, 0.25, 120.0. */
static const char *
conf_secs_str(double v, char *buf, size_t len)
{
	if (v == floor(v) && fabs(v) < 1e15)
		snprintf(buf, len, "%.1f", v);
	else
		snprintf(buf, len, "%g", v);
	return buf;
}

/* Value checks --------------------------------------------------------- */

/* How many leading characters of v are letters, digits or in extra. */
static size_t
conf_span_word(const char *v, const char *extra)
{
	const char *p;

	for (p = v; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr(extra, *p) == NULL)
			break;
	return (size_t)(p - v);
}

/* v is a word of letters, digits and extra: "is not a <what>". */
static int
conf_check_word(const char *v, const char *extra, const char *what,
    char *why, size_t len)
{
	size_t n = conf_span_word(v, extra);

	if (n > 0 && v[n] == '\0')
		return 0;
	snprintf(why, len, "\"%s\" is not a %s", v, what);
	return -1;
}

/* v is a or b, as given: for the string settings with two values. */
static int
conf_check_either(const char *v, const char *a, const char *b, char *why,
    size_t len)
{
	if (strcmp(v, a) == 0 || strcmp(v, b) == 0)
		return 0;
	snprintf(why, len, "\"%s\" is not \"%s\" or \"%s\"", v, a, b);
	return -1;
}

/* "prefix-" then 8 or 17 lowercase hex digits, as EC2 hands them out. */
static int
conf_check_id(const char *val, const char *prefix, const char *what,
    char *why, size_t whylen)
{
	size_t	 plen = strlen(prefix), n, i;

	if (strncmp(val, prefix, plen) != 0)
		goto bad;
	n = strlen(val + plen);
	if (n != 8 && n != 17)
		goto bad;
	for (i = 0; i < n; i++) {
		char c = val[plen + i];

		if (!isdigit((unsigned char)c) && (c < 'a' || c > 'f'))
			goto bad;
	}
	return 0;
 bad:
	snprintf(why, whylen, "\"%s\" is not %s (%s followed by 8 or 17 "
	    "hex digits)", val, what, prefix);
	return -1;
}

static int
conf_check_eipalloc(const char *v, char *why, size_t len)
{
	return conf_check_id(v, "eipalloc-", "an Elastic IP allocation id",
	    why, len);
}

static int
conf_check_vol(const char *v, char *why, size_t len)
{
	return conf_check_id(v, "vol-", "a volume id", why, len);
}

static int
conf_check_ami(const char *v, char *why, size_t len)
{
	return conf_check_id(v, "ami-", "an AMI id", why, len);
}

int
conf_valid_ami(const char *v, char *why, size_t len)
{
	char	 shown[80];

	/* The id is quoted in the message: a long one is cut first. */
	if (strlen(v) > 64) {
		snprintf(shown, sizeof(shown), "%.32s...", v);
		snprintf(why, len, "\"%s\" (%zu characters) is not an AMI id "
		    "(ami- followed by 8 or 17 hex digits)", shown,
		    strlen(v));
		return -1;
	}
	return conf_check_ami(v, why, len);
}

static int
conf_check_subnet(const char *v, char *why, size_t len)
{
	return conf_check_id(v, "subnet-", "a subnet id", why, len);
}

static int
conf_check_sg(const char *v, char *why, size_t len)
{
	return conf_check_id(v, "sg-", "a security group id", why, len);
}

/*
 * The names AttachVolume takes for data volumes. NVMe names are chosen by
 * the instance's kernel, not by the API, so they cannot be asked for.
 */
static int
conf_check_device(const char *v, char *why, size_t len)
{
	const char *p = NULL;

	if (strncmp(v, "/dev/sd", 7) == 0)
		p = v + 7;
	else if (strncmp(v, "/dev/xvd", 8) == 0)
		p = v + 8;
	if (p != NULL && p[0] >= 'b' && p[0] <= 'z' && p[1] == '\0')
		return 0;
	if (strncmp(v, "/dev/nvme", 9) == 0)
		snprintf(why, len, "\"%s\": NVMe names are assigned by the "
		    "instance; give the name to attach as, such as /dev/sdf",
		    v);
	else
		snprintf(why, len, "\"%s\" is not a device name for a data "
		    "volume (/dev/sdb../dev/sdz or /dev/xvdb../dev/xvdz)", v);
	return -1;
}

/*
 * /dev/xvdf and /dev/sdf are one device: EC2 maps the two spellings to
 * the same attachment point, so two volumes may not use them both.
 * Returns the letter that names the device, or 0.
 */
static int
conf_device_letter(const char *v)
{
	if (v == NULL)
		return 0;
	if (strncmp(v, "/dev/sd", 7) == 0 && v[7] != '\0' && v[8] == '\0')
		return v[7];
	if (strncmp(v, "/dev/xvd", 8) == 0 && v[8] != '\0' && v[9] == '\0')
		return v[8];
	return 0;
}

/* family.size, e.g. t3.micro, m7g.2xlarge. */
static int
conf_check_instance_type(const char *v, char *why, size_t len)
{
	const char	*dot = strchr(v, '.');
	const char	*p;

	if (dot == NULL || dot == v || dot[1] == '\0' || !islower(
	    (unsigned char)v[0]))
		goto bad;
	for (p = v; *p != '\0'; p++)
		if (p != dot && !islower((unsigned char)*p) &&
		    !isdigit((unsigned char)*p) && *p != '-')
			goto bad;
	return 0;
 bad:
	snprintf(why, len, "\"%s\" is not an instance type (such as "
	    "t3.micro)", v);
	return -1;
}

/* us-east-1, eu-central-2, us-gov-west-1. */
static int
conf_check_region(const char *v, char *why, size_t len)
{
	const char	*p;
	int		 dashes = 0;

	if (!islower((unsigned char)v[0]))
		goto bad;
	for (p = v; *p != '\0'; p++) {
		if (*p == '-')
			dashes++;
		else if (!islower((unsigned char)*p) &&
		    !isdigit((unsigned char)*p))
			goto bad;
	}
	if (dashes < 2 || !isdigit((unsigned char)p[-1]))
		goto bad;
	return 0;
 bad:
	snprintf(why, len, "\"%s\" is not an AWS region (such as us-east-1)",
	    v);
	return -1;
}

static int
conf_check_url(const char *v, char *why, size_t len)
{
	const char *rest;

	if (strncmp(v, "http://", 7) == 0)
		rest = v + 7;
	else if (strncmp(v, "https://", 8) == 0)
		rest = v + 8;
	else {
		/* Not a URL redact_url can take apart: not shown if it
		 * may hold a secret. */
		if (strpbrk(v, "@?") != NULL)
			snprintf(why, len, "is not an http:// or https:// URL "
			    "(not shown: it may hold a secret)");
		else
			snprintf(why, len, "\"%s\" is not an http:// or "
			    "https:// URL", v);
		return -1;
	}
	if (*rest == '\0' || *rest == '/' || strpbrk(v, " \t\r\n") != NULL) {
		char shown[256];

		/* Errors reach the journal too: a token stays out. */
		snprintf(why, len, "\"%s\" is not a valid URL",
		    redact_url(v, shown, sizeof(shown)));
		return -1;
	}
	return 0;
}

/*
 * An etcd endpoint: a scheme, a host and a port, and nothing else: the
 * gateway's paths (/v3/kv/range ...) are appended to it, so a path,
 * query or user here would be lost or leak. curl parses it, as it will
 * parse it again for every call.
 */
static int
conf_check_endpoint(const char *v, char *why, size_t len)
{
	CURLU		*u;
	char		*scheme = NULL, *port = NULL, *path = NULL, *x = NULL;
	char		 shown[256];
	const char	*bad = NULL;

	if ((u = curl_url()) == NULL)
		fatal("curl_url");
	if (curl_url_set(u, CURLUPART_URL, v, 0) != CURLUE_OK)
		bad = "is not a URL";
	else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) !=
	    CURLUE_OK || (strcmp(scheme, "http") != 0 &&
	    strcmp(scheme, "https") != 0))
		bad = "must be http:// or https://";
	else if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		bad = "has no port (etcd's client port is 2379)";
	else if (curl_url_get(u, CURLUPART_USER, &x, 0) == CURLUE_OK)
		bad = "must not hold a user or password (use tls)";
	else if (curl_url_get(u, CURLUPART_QUERY, &x, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &x, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
	    strcmp(path, "/") != 0)
		bad = "must not have a path, query or fragment";
	curl_free(scheme);
	curl_free(port);
	curl_free(path);
	curl_free(x);
	curl_url_cleanup(u);
	if (bad == NULL)
		return 0;
	/* Errors reach the journal too: a password stays out. */
	snprintf(why, len, "\"%s\" %s: give http://host:port or "
	    "https://host:port", strpbrk(v, "@?#") == NULL ? v :
	    redact_url(v, shown, sizeof(shown)), bad);
	return -1;
}

/* The etcd key prefix: every key of the cluster is P/something. */
static int
conf_check_prefix(const char *v, char *why, size_t len)
{
	const char *p;

	for (p = v; *p != '\0'; p++)
		if (!isgraph((unsigned char)*p)) {
			snprintf(why, len, "must be printable, without "
			    "spaces");
			return -1;
		}
	if (v[0] != '/' || p[-1] == '/') {
		snprintf(why, len, "\"%s\" must start with '/' and not end "
		    "with it (such as \"/failoverd\")", v);
		return -1;
	}
	return 0;
}

/* What kind of address literal a string is; the checks refuse some. */
enum conf_addr_kind {
	ADDR_UNICAST,
	ADDR_ANY4,		/* 0.0.0.0 */
	ADDR_THISNET4,		/* the rest of 0.0.0.0/8 */
	ADDR_BROADCAST4,	/* 255.255.255.255 */
	ADDR_MULTICAST4,	/* 224.0.0.0/4 */
	ADDR_RESERVED4,		/* 240.0.0.0/4 */
	ADDR_ANY6,		/* :: */
	ADDR_MULTICAST6,	/* ff00::/8 */
	ADDR_NKINDS
};

static enum conf_addr_kind
conf_addr_kind(uint32_t h)
{
	if (h == 0)
		return ADDR_ANY4;
	if ((h >> 24) == 0)
		return ADDR_THISNET4;
	if (h == 0xffffffffU)
		return ADDR_BROADCAST4;
	if ((h >> 28) == 0xe)
		return ADDR_MULTICAST4;
	if ((h >> 28) == 0xf)
		return ADDR_RESERVED4;
	return ADDR_UNICAST;
}

/*
 * An IPv4 or IPv6 literal, refused when of a kind bad[] names (why it
 * cannot serve: "it is the broadcast address"). notlit says what to do
 * instead of a name, what how to call a refused one.
 */
static int
conf_check_literal(const char *v, const char *const bad[ADDR_NKINDS],
    const char *notlit, const char *what, char *why, size_t len)
{
	struct in6_addr		 a6;
	struct in_addr		 a4;
	enum conf_addr_kind	 k;

	if (inet_pton(AF_INET, v, &a4) == 1)
		k = conf_addr_kind(ntohl(a4.s_addr));
	else if (inet_pton(AF_INET6, v, &a6) == 1)
		k = IN6_IS_ADDR_UNSPECIFIED(&a6) ? ADDR_ANY6 :
		    IN6_IS_ADDR_MULTICAST(&a6) ? ADDR_MULTICAST6 :
		    ADDR_UNICAST;
	else {
		snprintf(why, len, "\"%s\" is not an IPv4 or IPv6 address "
		    "(%s)", v, notlit);
		return -1;
	}
	if (bad[k] == NULL)
		return 0;
	snprintf(why, len, "\"%s\" %s: %s", v, what, bad[k]);
	return -1;
}

static const char conf_addr_broadcast[] = "it is the broadcast address";
static const char conf_addr_multicast4[] =
    "it is a multicast address (224.0.0.0/4)";
static const char conf_addr_multicast6[] =
    "it is a multicast address (ff00::/8)";

/*
 * Probes connect to a literal address: a name would need a DNS lookup,
 * and a synchronous lookup would block the loop for every probe.
 */
static int
conf_check_address(const char *v, char *why, size_t len)
{
	static const char this4[] = "0.0.0.0/8 is \"this host\": the probe "
	    "would reach the watchdog's own machine";
	static const char *const bad[ADDR_NKINDS] = {
		[ADDR_ANY4] = this4,
		[ADDR_THISNET4] = this4,
		[ADDR_BROADCAST4] = conf_addr_broadcast,
		[ADDR_MULTICAST4] = conf_addr_multicast4,
		[ADDR_RESERVED4] = "it is reserved (240.0.0.0/4)",
		[ADDR_ANY6] = ":: is \"this host\": the probe would reach "
		    "the watchdog's own machine",
		[ADDR_MULTICAST6] = conf_addr_multicast6,
	};

	return conf_check_literal(v, bad, "names are not resolved; use host "
	    "to send a name", "is not a unicast address", why, len);
}

/*
 * The address probes bind to. A literal only, like address: a name
 * would need a lookup on the loop, and "eth1" is curl's interface-name
 * syntax, which would bind to whatever the interface holds at the time.
 */
static int
conf_check_source(const char *v, char *why, size_t len)
{
	static const char *const bad[ADDR_NKINDS] = {
		[ADDR_ANY4] = "0.0.0.0 is any address: leave the setting out "
		    "to let the kernel pick",
		[ADDR_BROADCAST4] = conf_addr_broadcast,
		[ADDR_MULTICAST4] = conf_addr_multicast4,
		[ADDR_ANY6] = ":: is any address: leave the setting out to "
		    "let the kernel pick",
		[ADDR_MULTICAST6] = conf_addr_multicast6,
	};

	return conf_check_literal(v, bad, "names and interface names are not "
	    "accepted: give the address the probes are to come from",
	    "cannot be a source address", why, len);
}

/* AF_INET or AF_INET6 of an address conf_check_* accepted, else 0. */
static int
conf_addr_family(const char *v)
{
	struct in6_addr a6;

	if (v == NULL)
		return 0;
	if (inet_pton(AF_INET, v, &a6) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, v, &a6) == 1)
		return AF_INET6;
	return 0;
}

/* EC2 CreateKeyPair: a key pair name is up to 255 ASCII characters. */
static int
conf_check_key_name(const char *v, char *why, size_t len)
{
	const char *p;

	for (p = v; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
			snprintf(why, len, "must be printable ASCII (an EC2 "
			    "key pair name)");
			return -1;
		}
	return 0;
}

/*
 * IAM: an instance profile name is 1 to 128 of [A-Za-z0-9+=,.@_-].
 * RunInstances gets it as IamInstanceProfile.Name, where an ARN is not
 * a name.
 */
static int
conf_check_profile(const char *v, char *why, size_t len)
{
	if (strncmp(v, "arn:", 4) == 0) {
		snprintf(why, len, "\"%s\" is an ARN: give the instance "
		    "profile's name (the part after instance-profile/)", v);
		return -1;
	}
	if (v[conf_span_word(v, "+=,.@_-")] != '\0') {
		snprintf(why, len, "\"%s\" is not an instance profile name "
		    "(letters, digits and +=,.@_-)", v);
		return -1;
	}
	return 0;
}

static int
conf_check_scheme(const char *v, char *why, size_t len)
{
	return conf_check_either(v, "http", "https", why, len);
}

/* HEAD is for servers whose health page is expensive to render. */
static int
conf_check_method(const char *v, char *why, size_t len)
{
	return conf_check_either(v, "GET", "HEAD", why, len);
}

static int
conf_check_http_path(const char *v, char *why, size_t len)
{
	if (v[0] == '/' && strpbrk(v, " \t\r\n") == NULL)
		return 0;
	snprintf(why, len, "\"%s\" must start with / and contain no spaces",
	    v);
	return -1;
}

static int
conf_check_host(const char *v, char *why, size_t len)
{
	return conf_check_word(v, "-.:[]_", "host name", why, len);
}

/* "Name: value", one line, a token for a name (RFC 9110 field-name). */
static int
conf_check_header(const char *v, char *why, size_t len)
{
	const char *colon = strchr(v, ':');

	if (colon == NULL || colon == v ||
	    conf_span_word(v, "!#$%&'*+-.^_`|~") != (size_t)(colon - v))
		goto bad;
	if (strpbrk(v, "\r\n") != NULL)
		goto bad;
	return 0;
 bad:
	snprintf(why, len, "\"%s\" is not a header line (\"Name: value\")",
	    v);
	return -1;
}

static int
conf_check_user(const char *v, char *why, size_t len)
{
	return conf_check_word(v, "_-.", "user name", why, len);
}

static const char *const conf_severity_names[] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info",
	"debug", NULL
};

static int
conf_check_severity(const char *v, char *why, size_t len)
{
	size_t i;

	for (i = 0; conf_severity_names[i] != NULL; i++)
		if (strcmp(v, conf_severity_names[i]) == 0)
			return 0;
	snprintf(why, len, "\"%s\" is not a syslog severity (emerg, alert, "
	    "crit, err, warning, notice, info, debug)", v);
	return -1;
}

static int
conf_check_exec(const char *v, char *why, size_t len)
{
	struct stat st;

	if (v[0] != '/') {
		snprintf(why, len, "\"%s\" must be an absolute path", v);
		return -1;
	}
	if (stat(v, &st) == -1) {
		snprintf(why, len, "%s: %s", v, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) || access(v, X_OK) == -1) {
		snprintf(why, len, "%s: not an executable file", v);
		return -1;
	}
	/* Others could make it run anything as failoverd. */
	if ((st.st_mode & 0002) != 0) {
		snprintf(why, len, "%s: mode %04o lets others write it; "
		    "chmod o-w", v, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

static int
conf_check_group_name(const char *v, char *why, size_t len)
{
	struct group	 gr, *res = NULL;
	char		 buf[4096];

	if (getgrnam_r(v, &gr, buf, sizeof(buf), &res) == 0 && res != NULL)
		return 0;
	snprintf(why, len, "\"%s\": no such group", v);
	return -1;
}

/* Ordinary settings ---------------------------------------------------- */

static int
conf_type_is_number(int type)
{
	return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64 ||
	    type == CONFIG_TYPE_FLOAT;
}

static double
conf_number(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		return config_setting_get_int(s);
	case CONFIG_TYPE_INT64:
		return (double)config_setting_get_int64(s);
	default:
		return config_setting_get_float(s);
	}
}

/*
 * Every number has a floor and a ceiling, and the message says both the
 * unit and what the file said: "must be at least 0.01 s (got 0.001)" is
 * the whole diagnosis of a seconds-for-milliseconds slip.
 */
static int
conf_check_range(struct conf_walk *w, const config_setting_t *s,
    const struct conf_setting *d, double v)
{
	const char	*unit = "";
	char		 a[32], b[32], got[32];

	if (d->min == d->max)
		return 0;
	if (d->kind == K_SECS) {
		unit = d->unit != NULL ? d->unit : "s";
		conf_secs_str(d->min, a, sizeof(a));
		conf_secs_str(d->max, b, sizeof(b));
		snprintf(got, sizeof(got), "%g", v);
	} else {
		snprintf(a, sizeof(a), "%.0f", d->min);
		snprintf(b, sizeof(b), "%.0f", d->max);
		snprintf(got, sizeof(got), "%.0f", v);
	}
	if ((d->flags & F_ZEROOFF) && v == 0)
		return 0;
	if ((d->flags & F_MINEXCL) && v <= d->min) {
		conf_err(w, s, "must be greater than %s%s%s (got %s)", a,
		    *unit ? " " : "", unit, got);
		return -1;
	}
	if (v < d->min) {
		conf_err(w, s, "must be %sat least %s%s%s (got %s)",
		    (d->flags & F_ZEROOFF) ? "0 (off) or " : "", a,
		    *unit ? " " : "", unit, got);
		return -1;
	}
	if (v > d->max) {
		conf_err(w, s, "must be at most %s%s%s (got %s)", b,
		    *unit ? " " : "", unit, got);
		return -1;
	}
	return 0;
}

static int
conf_check_file(struct conf_walk *w, const config_setting_t *s,
    const struct conf_setting *d, const char *v)
{
	struct stat st;

	if (stat(v, &st) == -1) {
		conf_err(w, s, "%s: %s", v, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		conf_err(w, s, "%s: not a regular file", v);
		return -1;
	}
	/* Read at every connection, long after start: say it now. */
	if ((d->flags & F_READABLE) && access(v, R_OK) == -1) {
		conf_err(w, s, "%s: not readable: %s", v, strerror(errno));
		return -1;
	}
	/* A private key others can read is no longer private. */
	if ((d->flags & F_SECRET) && (st.st_mode & 0007) != 0) {
		conf_err(w, s, "%s: mode %04o lets others read it; chmod "
		    "o-rwx", v, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	/*
	 * Whoever can write a known_hosts or CA file decides which hosts
	 * are genuine; whoever can write user data runs code on the
	 * replacement.
	 */
	if ((d->flags & F_TRUSTED) && (st.st_mode & 0002) != 0) {
		conf_err(w, s, "%s: mode %04o lets others write it; chmod "
		    "o-w", v, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* Checks one string (a K_STR, or an element of a K_STRLIST). */
static int
conf_string_ok(struct conf_walk *w, const config_setting_t *s,
    const struct conf_setting *d, const char *v)
{
	char	 why[512];
	size_t	 max = d->maxlen != 0 ? d->maxlen : CONF_STR_MAX;
	size_t	 len = strlen(v);

	if ((d->flags & F_NONEMPTY) && *v == '\0') {
		conf_err(w, s, "must not be empty");
		return -1;
	}
	/* Checked first: the checks below quote the value. */
	if (len > max) {
		conf_err(w, s, "is %zu characters long; at most %zu", len,
		    max);
		return -1;
	}
	if ((d->flags & F_ABSPATH) && v[0] != '/') {
		conf_err(w, s, "\"%s\" must be an absolute path", v);
		return -1;
	}
	if (d->check != NULL && d->check(v, why, sizeof(why)) == -1) {
		conf_err(w, s, "%s", why);
		return -1;
	}
	if ((d->flags & F_FILE) && conf_check_file(w, s, d, v) == -1)
		return -1;
	return 0;
}

static char *
conf_strdup(const char *s)
{
	char *p;

	if (s == NULL)
		return NULL;
	p = strdup(s);
	if (p == NULL)
		fatal("strdup");
	return p;
}

static void *
conf_calloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size);

	if (p == NULL)
		fatal("calloc");
	return p;
}

/*
 * The length of the list s: not 0 when F_NONEMPTY, at most maxcount;
 * -1 (said) when not.
 */
static int
conf_list_count(struct conf_walk *w, const config_setting_t *s,
    const struct conf_setting *d)
{
	int	 n = config_setting_length(s);
	int	 max = d->maxcount != 0 ? d->maxcount : CONF_LIST_MAX;

	if ((d->flags & F_NONEMPTY) && n == 0) {
		conf_err(w, s, "must not be empty");
		return -1;
	}
	/* Cross checks compare every pair: the count bounds their cost. */
	if (n > max) {
		conf_err(w, s, "has %d elements; at most %d", n, max);
		return -1;
	}
	return n;
}

static void
conf_parse_strlist(struct conf_walk *w, const config_setting_t *s,
    const struct conf_setting *d, char ***listp, size_t *np)
{
	int	 n, i;
	size_t	 old;

	if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(s) != CONFIG_TYPE_LIST) {
		conf_err(w, s, "must be a list of strings, such as "
		    "[\"a\", \"b\"]");
		return;
	}
	if ((n = conf_list_count(w, s, d)) == -1)
		return;
	*listp = conf_calloc((size_t)n, sizeof(char *));
	*np = 0;
	for (i = 0; i < n; i++) {
		const config_setting_t	*e = config_setting_get_elem(s, i);
		const char		*v;

		old = conf_path_push(w, NULL, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			conf_err(w, e, "must be a string");
		else {
			v = config_setting_get_string(e);
			if (conf_string_ok(w, e, d, v) == 0)
				(*listp)[(*np)++] = conf_strdup(v);
		}
		conf_path_pop(w, old);
	}
}

static void
conf_parse_list(struct conf_walk *w, const config_setting_t *s,
    const struct conf_setting *d, void *base)
{
	const struct conf_group	*g = d->sub;
	void			**arrp = (void **)((char *)base + d->off);
	size_t			*np = (size_t *)((char *)base + d->off2);
	char			*arr;
	int			 n, i;
	size_t			 old;

	if (config_setting_type(s) != CONFIG_TYPE_LIST) {
		conf_err(w, s, "must be a list of groups, such as "
		    "( { ... }, { ... } )");
		return;
	}
	if ((n = conf_list_count(w, s, d)) == -1)
		return;
	arr = conf_calloc((size_t)n, g->size);
	*arrp = arr;
	*np = (size_t)n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);

		old = conf_path_push(w, NULL, i);
		conf_group_default(w, g, arr + (size_t)i * g->size);
		conf_walk_if_group(w, e, g, arr + (size_t)i * g->size);
		conf_path_pop(w, old);
	}
}

/* Parses the setting s described by d into the struct at base. */
static void
conf_parse_setting(struct conf_walk *w, const config_setting_t *s,
    const struct conf_setting *d, void *base)
{
	char	*field = (char *)base + d->off;
	int	 type = config_setting_type(s);
	double	 v;
	size_t	 i;

	switch (d->kind) {
	case K_BOOL:
		if (type != CONFIG_TYPE_BOOL) {
			conf_err(w, s, "must be true or false");
			break;
		}
		*(int *)field = config_setting_get_bool(s);
		break;
	case K_INT:
	case K_LONG:
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
			conf_err(w, s, "must be an integer");
			break;
		}
		v = conf_number(s);
		if (conf_check_range(w, s, d, v) != 0)
			break;
		if (d->kind == K_LONG)
			*(long *)field = (long)v;
		else
			*(int *)field = (int)v;
		break;
	case K_SECS:
		if (!conf_type_is_number(type)) {
			conf_err(w, s, "must be a number of seconds");
			break;
		}
		v = conf_number(s);
		if (!isfinite(v))
			conf_err(w, s, "must be a finite number of seconds");
		else if (conf_check_range(w, s, d, v) == 0)
			*(double *)field = v;
		break;
	case K_STR:
		if (type != CONFIG_TYPE_STRING) {
			conf_err(w, s, "must be a string");
			break;
		}
		if (conf_string_ok(w, s, d, config_setting_get_string(s)) ==
		    0) {
			free(*(char **)field);
			*(char **)field = conf_strdup(
			    config_setting_get_string(s));
		}
		break;
	case K_STRLIST:
		conf_parse_strlist(w, s, d, (char ***)field,
		    (size_t *)((char *)base + d->off2));
		break;
	case K_ENUM:
		if (type != CONFIG_TYPE_STRING) {
			conf_err(w, s, "must be a string");
			break;
		}
		for (i = 0; d->enum_names[i] != NULL; i++)
			if (strcmp(d->enum_names[i],
			    config_setting_get_string(s)) == 0)
				break;
		if (d->enum_names[i] == NULL) {
			char	 names[256];
			size_t	 j, used = 0;

			names[0] = '\0';
			for (j = 0; d->enum_names[j] != NULL; j++) {
				int n = snprintf(names + used,
				    sizeof(names) - used, "%s\"%s\"",
				    j > 0 ? ", " : "", d->enum_names[j]);

				if (n > 0 && used + (size_t)n < sizeof(names))
					used += (size_t)n;
			}
			conf_err(w, s, "\"%s\" is not one of %s",
			    config_setting_get_string(s), names);
			break;
		}
		*(int *)field = (int)i;
		break;
	case K_GROUP:
		conf_walk_if_group(w, s, d->sub, field);
		break;
	case K_LIST:
		conf_parse_list(w, s, d, base);
		break;
	case K_CUSTOM:
		d->custom->parse(w, s, base);
		break;
	}
}

static void
conf_default_setting(struct conf_walk *w, const struct conf_setting *d,
    void *base)
{
	char	*field = (char *)base + d->off;
	size_t	 i;

	switch (d->kind) {
	case K_BOOL:
	case K_INT:
		*(int *)field = (int)d->defnum;
		break;
	case K_LONG:
		*(long *)field = (long)d->defnum;
		break;
	case K_SECS:
		*(double *)field = d->defnum;
		break;
	case K_STR:
		*(char **)field = conf_strdup(d->defstr);
		break;
	case K_STRLIST:
	case K_LIST:
		*(void **)field = NULL;
		*(size_t *)((char *)base + d->off2) = 0;
		break;
	case K_ENUM:
		for (i = 0; d->enum_names[i] != NULL; i++)
			if (strcmp(d->enum_names[i], d->defstr) == 0)
				break;
		*(int *)field = (int)i;
		break;
	case K_GROUP:
		conf_group_default(w, d->sub, field);
		break;
	case K_CUSTOM:
		d->custom->deflt(w, base);
		break;
	}
}

static void
conf_group_default(struct conf_walk *w, const struct conf_group *g,
    void *base)
{
	size_t i;

	for (i = 0; i < g->nsettings; i++)
		conf_default_setting(w, &g->settings[i], base);
}

static const struct conf_setting *
conf_group_find(const struct conf_group *g, const char *name)
{
	size_t i;

	for (i = 0; i < g->nsettings; i++)
		if (strcmp(g->settings[i].name, name) == 0)
			return &g->settings[i];
	return NULL;
}

/*
 * Walks the group cs against g, filling base, which already holds the
 * defaults: every member of the file must be in g, and every required
 * member of g must be in the file.
 */
static void
conf_walk_group(struct conf_walk *w, const config_setting_t *cs,
    const struct conf_group *g, void *base)
{
	const struct conf_setting	*d;
	int				 n, i, allowed = F_HTTP | F_SSH;
	size_t				 j, old;

	if (g->variant != NULL)
		allowed = g->variant(w, cs, base);
	n = config_setting_length(cs);
	for (i = 0; i < n; i++) {
		const config_setting_t	*s = config_setting_get_elem(cs, i);
		const char		*name = config_setting_name(s);

		old = conf_path_push(w, name, i);
		d = conf_group_find(g, name);
		if (d == NULL)
			conf_err(w, s, "unknown setting");
		else if ((d->flags & (F_HTTP | F_SSH)) != 0 &&
		    (d->flags & allowed) == 0)
			conf_err(w, s, "is a setting of %s probes only",
			    (d->flags & F_HTTP) ? "http" : "ssh");
		else
			conf_parse_setting(w, s, d, base);
		conf_path_pop(w, old);
	}
	for (j = 0; j < g->nsettings; j++) {
		d = &g->settings[j];
		if (!(d->flags & F_REQUIRED) ||
		    config_setting_get_member(cs, d->name) != NULL)
			continue;
		if (d->kind == K_LIST)
			conf_err_member(w, cs, d->name, "missing: at least one "
			    "is required");
		else
			conf_err_member(w, cs, d->name, "missing (required)");
	}
	if (g->check != NULL)
		g->check(w, cs, base);
}

/* conf_walk_group, when s is a group at all; -1 (said) when not. */
static int
conf_walk_if_group(struct conf_walk *w, const config_setting_t *s,
    const struct conf_group *g, void *base)
{
	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		conf_err(w, s, "must be a group { ... }");
		return -1;
	}
	conf_walk_group(w, s, g, base);
	return 0;
}

/* Freeing and comparing, both driven by the same tables ---------------- */

static void
conf_strlist_free(char **list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static void
conf_setting_free(const struct conf_setting *d, void *base)
{
	char	*field = (char *)base + d->off;
	size_t	 i, n;

	switch (d->kind) {
	case K_STR:
		free(*(char **)field);
		*(char **)field = NULL;
		break;
	case K_STRLIST:
		conf_strlist_free(*(char ***)field,
		    *(size_t *)((char *)base + d->off2));
		*(char ***)field = NULL;
		break;
	case K_GROUP:
		conf_group_free(d->sub, field);
		break;
	case K_LIST:
		n = *(size_t *)((char *)base + d->off2);
		for (i = 0; i < n; i++)
			conf_group_free(d->sub, *(char **)field +
			    i * d->sub->size);
		free(*(void **)field);
		*(void **)field = NULL;
		break;
	case K_CUSTOM:
		d->custom->free(base);
		break;
	default:
		break;
	}
}

static void
conf_group_free(const struct conf_group *g, void *base)
{
	size_t i;

	for (i = 0; i < g->nsettings; i++)
		conf_setting_free(&g->settings[i], base);
}

static int
conf_str_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
conf_setting_equal(const struct conf_setting *d, const void *a,
    const void *b)
{
	const char	*fa = (const char *)a + d->off;
	const char	*fb = (const char *)b + d->off;
	size_t		 i, n;

	switch (d->kind) {
	case K_BOOL:
	case K_INT:
	case K_ENUM:
		return *(const int *)fa == *(const int *)fb;
	case K_LONG:
		return *(const long *)fa == *(const long *)fb;
	case K_SECS:
		return *(const double *)fa == *(const double *)fb;
	case K_STR:
		return conf_str_equal(*(char *const *)fa, *(char *const *)fb);
	case K_STRLIST:
		n = *(const size_t *)((const char *)a + d->off2);
		if (n != *(const size_t *)((const char *)b + d->off2))
			return 0;
		for (i = 0; i < n; i++)
			if (!conf_str_equal((*(char **const *)fa)[i],
			    (*(char **const *)fb)[i]))
				return 0;
		return 1;
	case K_GROUP:
		return conf_group_equal(d->sub, fa, fb);
	case K_LIST:
		n = *(const size_t *)((const char *)a + d->off2);
		if (n != *(const size_t *)((const char *)b + d->off2))
			return 0;
		for (i = 0; i < n; i++)
			if (!conf_group_equal(d->sub,
			    *(char *const *)fa + i * d->sub->size,
			    *(char *const *)fb + i * d->sub->size))
				return 0;
		return 1;
	case K_CUSTOM:
		return d->custom->equal(a, b);
	}
	return 0;
}

static int
conf_group_equal(const struct conf_group *g, const void *a, const void *b)
{
	size_t i;

	for (i = 0; i < g->nsettings; i++)
		if (!conf_setting_equal(&g->settings[i], a, b))
			return 0;
	return 1;
}

/* Custom settings ------------------------------------------------------ */

/* syslog_facility: a name in the file, a LOG_* value in the struct. */
static int
conf_facility_parse(struct conf_walk *w, const config_setting_t *s,
    void *base)
{
	struct config	*c = base;
	int		 fac;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		conf_err(w, s, "must be a string");
		return -1;
	}
	fac = log_facility_from_name(config_setting_get_string(s));
	if (fac == -1) {
		conf_err(w, s, "\"%s\" is not a syslog facility (daemon, "
		    "user, local0..local7, auth, authpriv)",
		    config_setting_get_string(s));
		return -1;
	}
	c->syslog_facility = fac;
	return 0;
}

static void
conf_facility_default(struct conf_walk *w, void *base)
{
	((struct config *)base)->syslog_facility = LOG_DAEMON;
}

static void
conf_nothing_free(void *base)
{
}

static int
conf_facility_equal(const void *a, const void *b)
{
	return ((const struct config *)a)->syslog_facility ==
	    ((const struct config *)b)->syslog_facility;
}

static const struct conf_custom conf_facility_ops = {
	conf_facility_parse, conf_facility_default, conf_nothing_free,
	conf_facility_equal
};

/*
 * control_mode: a string of octal digits. libconfig reads 0660 as the
 * decimal 660, so a bare number would silently mean something else.
 */
static int
conf_mode_parse(struct conf_walk *w, const config_setting_t *s, void *base)
{
	struct config	*c = base;
	const char	*v;
	char		*end;
	long		 mode;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		conf_err(w, s, "must be a string of octal digits such as "
		    "\"0660\" (libconfig reads 0660 as decimal 660)");
		return -1;
	}
	v = config_setting_get_string(s);
	errno = 0;
	/* strtol takes "+660", " 660" and "-0": only digits are a mode. */
	mode = strtol(v, &end, 8);
	if (*v == '\0' || strspn(v, "01234567") != strlen(v) ||
	    *end != '\0' || errno != 0 || mode < 0 || mode > 0777) {
		conf_err(w, s, "\"%s\" is not a file mode (octal, such as "
		    "\"0660\")", v);
		return -1;
	}
	/* Anyone who can connect can order a failover. */
	if (mode & 0007) {
		conf_err(w, s, "\"%s\" lets every local user reach the "
		    "control socket; give access through control_group", v);
		return -1;
	}
	if ((mode & 0600) != 0600) {
		conf_err(w, s, "\"%s\" must let the owner read and write",
		    v);
		return -1;
	}
	c->control_mode = (int)mode;
	return 0;
}

static void
conf_mode_default(struct conf_walk *w, void *base)
{
	((struct config *)base)->control_mode = 0660;
}

static int
conf_mode_equal(const void *a, const void *b)
{
	return ((const struct config *)a)->control_mode ==
	    ((const struct config *)b)->control_mode;
}

static const struct conf_custom conf_mode_ops = {
	conf_mode_parse, conf_mode_default, conf_nothing_free, conf_mode_equal
};

/*
 * expect_status: "200-399", "200,204,301-302", or one number. Parsed by
 * hand because it is a list of numbers and ranges, not a config syntax.
 */
static int
conf_status_from_str(const char *v, struct status_range **rp, size_t *np,
    char *why, size_t whylen)
{
	struct status_range	*r = NULL;
	size_t			 n = 0, cap = 0;
	const char		*p = v;
	char			*end;
	long			 lo, hi;

	for (;;) {
		while (*p == ' ')
			p++;
		if (!isdigit((unsigned char)*p))
			goto bad;
		lo = strtol(p, &end, 10);
		p = end;
		hi = lo;
		if (*p == '-') {
			p++;
			if (!isdigit((unsigned char)*p))
				goto bad;
			hi = strtol(p, &end, 10);
			p = end;
		}
		while (*p == ' ')
			p++;
		if (*p != '\0' && *p != ',')
			goto bad;
		if (lo == hi && (lo < 100 || lo > 599)) {
			snprintf(why, whylen, "\"%s\": %ld is not an HTTP "
			    "status code (100-599)", v, lo);
			goto fail;
		}
		if (lo < 100 || hi > 599 || lo > hi) {
			snprintf(why, whylen, "\"%s\": %ld-%ld is not a "
			    "range of HTTP status codes (100-599, low first)",
			    v, lo, hi);
			goto fail;
		}
		if (n == cap) {
			struct status_range *nr;

			cap = cap == 0 ? 4 : cap * 2;
			nr = reallocarray(r, cap, sizeof(*r));
			if (nr == NULL)
				fatal("reallocarray");
			r = nr;
		}
		r[n].lo = (int)lo;
		r[n].hi = (int)hi;
		n++;
		if (*p == '\0')
			break;
		p++;
	}
	*rp = r;
	*np = n;
	return 0;
 bad:
	snprintf(why, whylen, "\"%s\" is not a list of status codes and "
	    "ranges (such as \"200-399\" or \"200,204,301-302\")", v);
 fail:
	free(r);
	return -1;
}

static int
conf_status_parse(struct conf_walk *w, const config_setting_t *s,
    void *base)
{
	struct http_conf	*h = &((struct probe_conf *)base)->http;
	struct status_range	*r;
	size_t			 n;
	char			 buf[32], why[256];
	const char		*v;

	if (config_setting_type(s) == CONFIG_TYPE_INT) {
		snprintf(buf, sizeof(buf), "%d", config_setting_get_int(s));
		v = buf;
	} else if (config_setting_type(s) == CONFIG_TYPE_STRING)
		v = config_setting_get_string(s);
	else {
		conf_err(w, s, "must be a string such as \"200-399\"");
		return -1;
	}
	if (conf_status_from_str(v, &r, &n, why, sizeof(why)) == -1) {
		conf_err(w, s, "%s", why);
		return -1;
	}
	free(h->expect_status);
	h->expect_status = r;
	h->nexpect_status = n;
	return 0;
}

static void
conf_status_default(struct conf_walk *w, void *base)
{
	struct http_conf	*h = &((struct probe_conf *)base)->http;
	char			 why[128];

	if (conf_status_from_str("200-399", &h->expect_status,
	    &h->nexpect_status, why, sizeof(why)) == -1)
		fatalx("conf: bad default expect_status");
}

static void
conf_status_free(void *base)
{
	struct http_conf *h = &((struct probe_conf *)base)->http;

	free(h->expect_status);
	h->expect_status = NULL;
	h->nexpect_status = 0;
}

static int
conf_status_equal(const void *a, const void *b)
{
	const struct http_conf	*x = &((const struct probe_conf *)a)->http;
	const struct http_conf	*y = &((const struct probe_conf *)b)->http;
	size_t			 i;

	if (x->nexpect_status != y->nexpect_status)
		return 0;
	for (i = 0; i < x->nexpect_status; i++)
		if (x->expect_status[i].lo != y->expect_status[i].lo ||
		    x->expect_status[i].hi != y->expect_status[i].hi)
			return 0;
	return 1;
}

static const struct conf_custom conf_status_ops = {
	conf_status_parse, conf_status_default, conf_status_free,
	conf_status_equal
};

/* failover_when: "all", "any", or a list of probe names. */
static int
conf_when_parse(struct conf_walk *w, const config_setting_t *s, void *base)
{
	static const struct conf_setting names = {
		.name = "failover_when", .kind = K_STRLIST,
		.flags = F_NONEMPTY
	};
	struct policy_conf	*p = base;
	const char		*v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_STRING:
		v = config_setting_get_string(s);
		if (strcmp(v, "all") == 0)
			p->when = POLICY_WHEN_ALL;
		else if (strcmp(v, "any") == 0)
			p->when = POLICY_WHEN_ANY;
		else {
			conf_err(w, s, "\"%s\" is not \"all\", \"any\" or a "
			    "list of probe names such as [\"web\"]", v);
			return -1;
		}
		return 0;
	case CONFIG_TYPE_ARRAY:
	case CONFIG_TYPE_LIST:
		conf_parse_strlist(w, s, &names, &p->failover_probes,
		    &p->nfailover_probes);
		p->when = POLICY_WHEN_LIST;
		return 0;
	default:
		conf_err(w, s, "must be \"all\", \"any\" or a list of probe "
		    "names such as [\"web\"]");
		return -1;
	}
}

static void
conf_when_default(struct conf_walk *w, void *base)
{
	struct policy_conf *p = base;

	p->when = POLICY_WHEN_ALL;
	p->failover_probes = NULL;
	p->nfailover_probes = 0;
}

static void
conf_when_free(void *base)
{
	struct policy_conf *p = base;

	conf_strlist_free(p->failover_probes, p->nfailover_probes);
	p->failover_probes = NULL;
	p->nfailover_probes = 0;
}

static int
conf_when_equal(const void *a, const void *b)
{
	const struct policy_conf	*x = a, *y = b;
	size_t				 i;

	if (x->when != y->when || x->nfailover_probes != y->nfailover_probes)
		return 0;
	for (i = 0; i < x->nfailover_probes; i++)
		if (strcmp(x->failover_probes[i], y->failover_probes[i]) != 0)
			return 0;
	return 1;
}

static const struct conf_custom conf_when_ops = {
	conf_when_parse, conf_when_default, conf_when_free, conf_when_equal
};

/* tags = { Name = "web"; team = "x"; }: the member names are the keys. */
static int
conf_tags_parse(struct conf_walk *w, const config_setting_t *s, void *base)
{
	struct launch_conf	*l = base;
	int			 n, i;
	size_t			 old;

	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		conf_err(w, s, "must be a group such as { Name = \"web\"; }");
		return -1;
	}
	n = config_setting_length(s);
	if (n > CONF_MAX_TAGS) {
		conf_err(w, s, "at most %d tags (AWS allows 50 and failoverd "
		    "adds its own)", CONF_MAX_TAGS);
		return -1;
	}
	l->tags = conf_calloc((size_t)n, sizeof(*l->tags));
	l->ntags = 0;
	for (i = 0; i < n; i++) {
		const config_setting_t	*e = config_setting_get_elem(s, i);
		const char		*k = config_setting_name(e), *v;

		old = conf_path_push(w, k, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			conf_err(w, e, "must be a string");
		else if (strncmp(k, "failoverd", 9) == 0)
			conf_err(w, e, "tag keys starting with \"failoverd\" "
			    "are failoverd's own");
		else if (strlen(k) > 128 ||
		    strlen(config_setting_get_string(e)) > 256)
			conf_err(w, e, "too long (AWS allows 128 characters "
			    "for a key, 256 for a value)");
		else {
			v = config_setting_get_string(e);
			l->tags[l->ntags].key = conf_strdup(k);
			l->tags[l->ntags].value = conf_strdup(v);
			l->ntags++;
		}
		conf_path_pop(w, old);
	}
	return 0;
}

static void
conf_tags_default(struct conf_walk *w, void *base)
{
	struct launch_conf *l = base;

	l->tags = NULL;
	l->ntags = 0;
}

static void
conf_tags_free(void *base)
{
	struct launch_conf	*l = base;
	size_t			 i;

	for (i = 0; i < l->ntags; i++) {
		free(l->tags[i].key);
		free(l->tags[i].value);
	}
	free(l->tags);
	l->tags = NULL;
	l->ntags = 0;
}

static int
conf_tags_equal(const void *a, const void *b)
{
	const struct launch_conf	*x = a, *y = b;
	size_t				 i;

	if (x->ntags != y->ntags)
		return 0;
	for (i = 0; i < x->ntags; i++)
		if (strcmp(x->tags[i].key, y->tags[i].key) != 0 ||
		    strcmp(x->tags[i].value, y->tags[i].value) != 0)
			return 0;
	return 1;
}

static const struct conf_custom conf_tags_ops = {
	conf_tags_parse, conf_tags_default, conf_tags_free, conf_tags_equal
};

/* snapshot window = "HH:MM-HH:MM", UTC; may wrap past midnight. */
static int
conf_hhmm(const char *p, int *minutes)
{
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
	    p[2] != ':' || !isdigit((unsigned char)p[3]) ||
	    !isdigit((unsigned char)p[4]))
		return -1;
	*minutes = ((p[0] - '0') * 10 + (p[1] - '0')) * 60 +
	    (p[3] - '0') * 10 + (p[4] - '0');
	if ((p[0] - '0') * 10 + (p[1] - '0') > 23 ||
	    (p[3] - '0') * 10 + (p[4] - '0') > 59)
		return -1;
	return 0;
}

static int
conf_window_parse(struct conf_walk *w, const config_setting_t *s,
    void *base)
{
	struct snapshot_conf	*sn = base;
	const char		*v;
	int			 a, b;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		conf_err(w, s, "must be a string such as \"02:00-04:00\"");
		return -1;
	}
	v = config_setting_get_string(s);
	if (strlen(v) != 11 || v[5] != '-' || conf_hhmm(v, &a) == -1 ||
	    conf_hhmm(v + 6, &b) == -1) {
		conf_err(w, s, "\"%s\" is not a window \"HH:MM-HH:MM\" (UTC, "
		    "24-hour)", v);
		return -1;
	}
	if (a == b) {
		conf_err(w, s, "\"%s\" is an empty window", v);
		return -1;
	}
	sn->window_start = a;
	sn->window_end = b;
	return 0;
}

static void
conf_window_default(struct conf_walk *w, void *base)
{
	struct snapshot_conf *sn = base;

	sn->window_start = -1;
	sn->window_end = -1;
}

static int
conf_window_equal(const void *a, const void *b)
{
	const struct snapshot_conf *x = a, *y = b;

	return x->window_start == y->window_start &&
	    x->window_end == y->window_end;
}

static const struct conf_custom conf_window_ops = {
	conf_window_parse, conf_window_default, conf_nothing_free,
	conf_window_equal
};

/*
 * port: one name in the file for both probe types, two fields in the
 * struct. The walk knows the probe's type before it parses port.
 */
static int
conf_port_parse(struct conf_walk *w, const config_setting_t *s, void *base)
{
	static const struct conf_setting range = {
		.name = "port", .kind = K_INT, .min = 1, .max = 65535
	};
	struct probe_conf *p = base;

	if (config_setting_type(s) != CONFIG_TYPE_INT) {
		conf_err(w, s, "must be an integer");
		return -1;
	}
	if (conf_check_range(w, s, &range, config_setting_get_int(s)) == -1)
		return -1;
	if (p->type == PROBE_SSH)
		p->ssh.port = config_setting_get_int(s);
	else
		p->http.port = config_setting_get_int(s);
	return 0;
}

static void
conf_port_default(struct conf_walk *w, void *base)
{
	struct probe_conf *p = base;

	p->http.port = 0;	/* the scheme's */
	p->ssh.port = 22;
}

static int
conf_port_equal(const void *a, const void *b)
{
	const struct probe_conf *x = a, *y = b;

	return x->http.port == y->http.port && x->ssh.port == y->ssh.port;
}

/*
 * cluster.quorum: a count, a fraction of the members, or "majority".
 * Resolved to a count by conf_cluster_check, once the members are known.
 */
static int
conf_quorum_parse(struct conf_walk *w, const config_setting_t *s, void *base)
{
	struct cluster_conf	*c = base;
	double			 v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		v = conf_number(s);
		if (v < 1) {
			conf_err(w, s, "must be at least 1 (got %.0f)", v);
			return -1;
		}
		c->quorum_rule = CLUSTER_QUORUM_COUNT;
		c->quorum = v > INT_MAX ? INT_MAX : (int)v;
		return 0;
	case CONFIG_TYPE_FLOAT:
		v = config_setting_get_float(s);
		if (!(v > 0 && v <= 1)) {
			conf_err(w, s, "a fraction of the members must be "
			    "greater than 0 and at most 1 (got %g)", v);
			return -1;
		}
		c->quorum_rule = CLUSTER_QUORUM_FRACTION;
		c->quorum_fraction = v;
		return 0;
	case CONFIG_TYPE_STRING:
		if (strcmp(config_setting_get_string(s), "majority") == 0) {
			c->quorum_rule = CLUSTER_QUORUM_MAJORITY;
			return 0;
		}
		break;
	}
	conf_err(w, s, "must be a count (2), a fraction of the members (0.5) "
	    "or \"majority\"");
	return -1;
}

static void
conf_quorum_default(struct conf_walk *w, void *base)
{
	struct cluster_conf *c = base;

	c->quorum_rule = CLUSTER_QUORUM_MAJORITY;
	c->quorum = 0;
	c->quorum_fraction = 0;
}

static int
conf_quorum_equal(const void *a, const void *b)
{
	const struct cluster_conf *x = a, *y = b;

	return x->quorum_rule == y->quorum_rule && x->quorum == y->quorum &&
	    x->quorum_fraction == y->quorum_fraction;
}

static const struct conf_custom conf_quorum_ops = {
	conf_quorum_parse, conf_quorum_default, conf_nothing_free,
	conf_quorum_equal
};

static const struct conf_custom conf_port_ops = {
	conf_port_parse, conf_port_default, conf_nothing_free, conf_port_equal
};

/* Cross-setting checks ------------------------------------------------- */

static int
conf_probe_variant(struct conf_walk *w, const config_setting_t *cs,
    void *base)
{
	struct probe_conf	*p = base;
	const config_setting_t	*t = config_setting_get_member(cs, "type");

	if (t == NULL || config_setting_type(t) != CONFIG_TYPE_STRING)
		return F_HTTP | F_SSH;	/* reported by the walk */
	if (strcmp(config_setting_get_string(t), "http") == 0) {
		p->type = PROBE_HTTP;
		return F_HTTP;
	}
	if (strcmp(config_setting_get_string(t), "ssh") == 0) {
		p->type = PROBE_SSH;
		return F_SSH;
	}
	return F_HTTP | F_SSH;
}

static void
conf_probe_check(struct conf_walk *w, const config_setting_t *cs,
    void *base)
{
	static const char *const url_parts[] = {
		"scheme", "port", "path", "host", NULL
	};
	struct probe_conf	*p = base;
	char			 a[32];
	size_t			 i;
	regex_t			 re;
	int			 rc;

	/* No default name for a probe of no known type: it would only
	 * collide with a real probe's name and confuse the report. */
	if (p->name == NULL && conf_probe_variant(w, cs, p) !=
	    (F_HTTP | F_SSH))
		p->name = conf_strdup(probe_type_str(p->type));
	if (p->timeout >= p->interval)
		conf_err_member(w, cs, "timeout", "must be less than "
		    "interval (%s)", conf_secs_str(p->interval, a, sizeof(a)));
	if (p->type == PROBE_HTTP) {
		if (p->http.connect_timeout == 0)
			p->http.connect_timeout = p->timeout;
		else if (p->http.connect_timeout > p->timeout)
			conf_err_member(w, cs, "connect_timeout", "must not "
			    "exceed timeout (%s)", conf_secs_str(p->timeout,
			    a, sizeof(a)));
		if (p->http.url != NULL) {
			for (i = 0; url_parts[i] != NULL; i++)
				if (config_setting_get_member(cs,
				    url_parts[i]) != NULL)
					conf_err_member(w, cs, url_parts[i],
					    "conflicts with url (give one "
					    "or the other)");
		}
		if (p->http.expect_body_regex != NULL) {
			rc = regcomp(&re, p->http.expect_body_regex,
			    REG_EXTENDED | REG_NOSUB);
			if (rc != 0) {
				char why[256];

				regerror(rc, &re, why, sizeof(why));
				conf_err_member(w, cs, "expect_body_regex",
				    "does not compile: %s", why);
			} else
				regfree(&re);
		}
	} else {
		if (p->ssh.key_file != NULL && p->ssh.user == NULL)
			conf_err_member(w, cs, "user", "missing: key_file "
			    "is set, so authentication needs a user");
		if (p->ssh.command != NULL && p->ssh.key_file == NULL)
			conf_err_member(w, cs, "key_file", "missing: a "
			    "command needs authentication");
		if (p->ssh.expect_output != NULL && p->ssh.command == NULL)
			conf_err_member(w, cs, "command", "missing: "
			    "expect_output needs a command");
	}
}

static void
conf_launch_check(struct conf_walk *w, const config_setting_t *cs,
    void *base)
{
	struct launch_conf	*l = base;
	struct stat		 st;

	/*
	 * The EC2 User Guide: "User data is limited to 16 KB, in raw form,
	 * before it is base64-encoded." The file is the raw form.
	 */
	if (l->user_data_file != NULL && stat(l->user_data_file, &st) == 0 &&
	    st.st_size > CONF_USER_DATA_MAX)
		conf_err_member(w, cs, "user_data_file", "%s is %lld bytes; "
		    "EC2 takes at most %d bytes of user data (before base64)",
		    l->user_data_file, (long long)st.st_size,
		    CONF_USER_DATA_MAX);
}

static void
conf_snapshot_check(struct conf_walk *w, const config_setting_t *cs,
    void *base)
{
	struct snapshot_conf *sn = base;

	/* A pre_command such as fsfreeze without its undo would leave the
	 * service frozen. */
	if (sn->pre_command != NULL && sn->post_command == NULL)
		conf_err_member(w, cs, "post_command", "missing: pre_command "
		    "is set and must be undone after the snapshot");
	if (sn->interval == 0 && sn->window_start != -1)
		conf_err_member(w, cs, "window", "needs an interval");
}

static void
conf_policy_check(struct conf_walk *w, const config_setting_t *cs,
    void *base)
{
	struct policy_conf *p = base;

	if (p->evacuate && p->nevacuation_subnets == 0)
		conf_err_member(w, cs, "evacuation_subnets", "missing: "
		    "evacuate is true, so at least one subnet in another "
		    "zone is required");
}

static void
conf_service_check(struct conf_walk *w, const config_setting_t *cs,
    void *base)
{
	struct service_conf	*s = base;
	const config_setting_t	*pol, *list;
	size_t			 i, j, old;

	list = config_setting_get_member(cs, "probes");
	for (i = 0; i < s->nprobes; i++)
		for (j = 0; j < i; j++) {
			const config_setting_t *e;

			if (s->probes[i].name == NULL ||
			    s->probes[j].name == NULL ||
			    strcmp(s->probes[i].name, s->probes[j].name) != 0)
				continue;
			e = config_setting_get_elem(list, (int)i);
			old = conf_path_push(w, "probes", 0);
			conf_path_push(w, NULL, (int)i);
			conf_err_member(w, e, "name", "\"%s\" is already the "
			    "name of probes.[%zu]%s", s->probes[i].name, j,
			    config_setting_get_member(e, "name") == NULL ?
			    " (a probe's name defaults to its type)" : "");
			conf_path_pop(w, old);
			break;
		}
	list = config_setting_get_member(cs, "volumes");
	for (i = 0; i < s->nvolumes; i++)
		for (j = 0; j < i; j++) {
			const config_setting_t *e;

			e = config_setting_get_elem(list, (int)i);
			old = conf_path_push(w, "volumes", 0);
			conf_path_push(w, NULL, (int)i);
			if (s->volumes[i].id != NULL && s->volumes[j].id !=
			    NULL && strcmp(s->volumes[i].id,
			    s->volumes[j].id) == 0)
				conf_err_member(w, e, "id", "\"%s\" is already "
				    "volumes.[%zu]", s->volumes[i].id, j);
			if (s->volumes[i].device != NULL &&
			    s->volumes[j].device != NULL &&
			    strcmp(s->volumes[i].device,
			    s->volumes[j].device) == 0)
				conf_err_member(w, e, "device", "\"%s\" is "
				    "already the device of volumes.[%zu]",
				    s->volumes[i].device, j);
			else if (conf_device_letter(s->volumes[i].device) !=
			    0 && conf_device_letter(s->volumes[i].device) ==
			    conf_device_letter(s->volumes[j].device))
				conf_err_member(w, e, "device", "\"%s\" is "
				    "the same device as \"%s\" of "
				    "volumes.[%zu] (/dev/xvdX is /dev/sdX)",
				    s->volumes[i].device,
				    s->volumes[j].device, j);
			conf_path_pop(w, old);
		}
	/* The replacement must come up in the volumes' zone, and a subnet
	 * is what pins a launch to a zone. */
	if (s->nvolumes > 0 && s->launch.subnet == NULL &&
	    config_setting_get_member(cs, "launch") != NULL) {
		old = conf_path_push(w, "launch", 0);
		conf_err_member(w, config_setting_get_member(cs, "launch"),
		    "subnet", "missing: required when the service has "
		    "volumes (the replacement must be in their zone)");
		conf_path_pop(w, old);
	}
	pol = config_setting_get_member(cs, "policy");
	for (i = 0; i < s->policy.nfailover_probes; i++) {
		const char *n = s->policy.failover_probes[i];

		for (j = 0; j < i; j++)
			if (strcmp(s->policy.failover_probes[j], n) == 0)
				break;
		if (j < i) {
			old = conf_path_push(w, "policy", 0);
			conf_err_member(w, pol, "failover_when", "\"%s\" is "
			    "named twice", n);
			conf_path_pop(w, old);
			continue;
		}

		for (j = 0; j < s->nprobes; j++)
			if (s->probes[j].name != NULL &&
			    strcmp(s->probes[j].name, n) == 0)
				break;
		if (j < s->nprobes)
			continue;
		old = conf_path_push(w, "policy", 0);
		conf_err_member(w, pol, "failover_when", "\"%s\" is not the "
		    "name of a probe of this service", n);
		conf_path_pop(w, old);
	}
	conf_hook_check(w, cs, s);
	conf_listed_check(w, cs, s);
	conf_host_keys_check(w, cs, s);
}

/*
 * host_keys = "known_hosts" trusts the probes' own files alone: an ssh
 * probe following the EIP without one could never pass after a move.
 */
static void
conf_host_keys_check(struct conf_walk *w, const config_setting_t *cs,
    struct service_conf *s)
{
	const config_setting_t	*g;
	size_t			 i, old;

	g = config_setting_get_member(cs, "launch");
	if (s->launch.host_keys != HOST_KEYS_KNOWN_HOSTS || g == NULL)
		return;
	for (i = 0; i < s->nprobes; i++) {
		if (s->probes[i].type != PROBE_SSH ||
		    s->probes[i].address != NULL ||
		    s->probes[i].ssh.known_hosts != NULL)
			continue;
		old = conf_path_push(w, "launch", 0);
		conf_err_member(w, g, "host_keys", "\"known_hosts\" needs a "
		    "known_hosts in every ssh probe that follows the EIP; "
		    "probe \"%s\" has none", s->probes[i].name ?
		    s->probes[i].name : "ssh");
		conf_path_pop(w, old);
	}
}

/*
 * Retention lists all of a service's snapshots in one DescribeSnapshots
 * reply, and ec2.c caps a reply at 4 MiB (about 2,500 snapshot items):
 * what retention keeps must fit, with room for the ones not yet deleted.
 */
static void
conf_listed_check(struct conf_walk *w, const config_setting_t *cs,
    struct service_conf *s)
{
	const struct snapshot_conf	*sn = &s->snapshot;
	const config_setting_t		*g;
	double				 per, n;
	size_t				 old, nvol = s->nvolumes > 0 ?
					    s->nvolumes : 1;

	if (sn->interval == 0)
		return;
	g = config_setting_get_member(cs, "snapshot");
	old = conf_path_push(w, "snapshot", 0);
	if (sn->keep == 0 && sn->max_age == 0)
		conf_err_member(w, g, "keep", "0 with no max_age keeps every "
		    "snapshot forever; set keep or max_age");
	else {
		per = sn->keep;
		if (sn->keep == 0 || (sn->max_age > 0 &&
		    sn->max_age / sn->interval + 1 < per))
			per = floor(sn->max_age / sn->interval) + 1;
		n = per * (double)nvol;
		if (n > CONF_MAX_LISTED)
			conf_err_member(w, g, sn->keep != 0 ? "keep" :
			    "max_age", "keeps up to %.0f snapshots (%.0f for "
			    "each of %zu volumes); at most %d fit the one "
			    "DescribeSnapshots reply retention reads", n, per,
			    nvol, CONF_MAX_LISTED);
	}
	conf_path_pop(w, old);
}

/*
 * Snapshot hooks run over SSH with a probe's user and key: name the probe,
 * or let the first ssh probe with a key do it.
 */
static void
conf_hook_check(struct conf_walk *w, const config_setting_t *cs,
    struct service_conf *s)
{
	const struct snapshot_conf	*sn = &s->snapshot;
	const config_setting_t		*g;
	const struct probe_conf		*p;
	size_t				 i, old;

	if (sn->pre_command == NULL && sn->post_command == NULL &&
	    sn->hook_probe == NULL)
		return;
	g = config_setting_get_member(cs, "snapshot");
	old = conf_path_push(w, "snapshot", 0);
	for (i = 0; i < s->nprobes; i++) {
		p = &s->probes[i];
		if (sn->hook_probe != NULL) {
			if (p->name != NULL && strcmp(p->name,
			    sn->hook_probe) == 0)
				break;
		} else if (p->type == PROBE_SSH && p->ssh.key_file != NULL)
			break;
	}
	if (i == s->nprobes) {
		if (sn->hook_probe != NULL)
			conf_err_member(w, g, "hook_probe", "\"%s\" is not "
			    "the name of a probe of this service",
			    sn->hook_probe);
		else
			conf_err_member(w, g, "pre_command" , "needs an ssh "
			    "probe with a key_file to run over");
	} else if (s->probes[i].type != PROBE_SSH ||
	    s->probes[i].ssh.key_file == NULL)
		conf_err_member(w, g, "hook_probe", "\"%s\" is not an ssh "
		    "probe with a key_file", sn->hook_probe);
	conf_path_pop(w, old);
}

/*
 * Each probe gets the daemon-wide probe_source_address unless it names
 * its own, so that the probe alone says where it binds (and a reload
 * that changes either restarts exactly the probes it moves). A source
 * of the other family than the target could never connect: the target
 * is the probe's address, or the Elastic IP, which is IPv4.
 */
static void
conf_top_check_sources(struct conf_walk *w, const struct config *c,
    struct service_conf *s, const config_setting_t *e)
{
	const config_setting_t	*list, *pe;
	struct probe_conf	*p;
	size_t			 i, old, o2;
	int			 sf, tf;

	list = e != NULL ? config_setting_get_member(e, "probes") : NULL;
	for (i = 0; i < s->nprobes; i++) {
		p = &s->probes[i];
		if (p->source_address == NULL)
			p->source_address = conf_strdup(
			    c->probe_source_address);
		sf = conf_addr_family(p->source_address);
		if (sf == 0)
			continue;
		tf = p->address != NULL ? conf_addr_family(p->address) :
		    AF_INET;
		if (tf == 0 || tf == sf)
			continue;
		pe = list != NULL ? config_setting_get_elem(list, (int)i) :
		    NULL;
		old = conf_path_push(w, "probes", 0);
		o2 = conf_path_push(w, NULL, (int)i);
		if (pe != NULL &&
		    config_setting_get_member(pe, "source_address") != NULL)
			conf_err_member(w, pe, "source_address", "\"%s\" is "
			    "IPv%d and the probe's target (%s) is IPv%d",
			    p->source_address, sf == AF_INET ? 4 : 6,
			    p->address != NULL ? p->address :
			    "the Elastic IP", tf == AF_INET ? 4 : 6);
		else
			conf_err(w, pe, "probe_source_address \"%s\" is "
			    "IPv%d and this probe's target (%s) is IPv%d: "
			    "give the probe its own source_address",
			    p->source_address, sf == AF_INET ? 4 : 6,
			    p->address != NULL ? p->address :
			    "the Elastic IP", tf == AF_INET ? 4 : 6);
		conf_path_pop(w, o2);
		conf_path_pop(w, old);
	}
}

/*
 * A member's own state_dir secret would give a replacement a key the
 * member that resumes the launch does not know, and a RunInstances sent
 * again under the same ClientToken different user data: EC2 refuses it
 * (IdempotentParameterMismatch). So a cluster whose launches hand over
 * a key the ssh probes check needs one secret on every member.
 */
static void
conf_top_check_secret(struct conf_walk *w, const config_setting_t *cs,
    const struct config *c)
{
	const config_setting_t	*g = config_setting_get_member(cs, "cluster");
	size_t			 i, j, old;

	if (c->cluster == NULL || g == NULL ||
	    config_setting_get_member(g, "host_key_secret") != NULL)
		return;
	for (i = 0; i < c->nservices; i++) {
		const struct service_conf *s = &c->services[i];

		if (s->launch.host_keys != HOST_KEYS_USER_DATA)
			continue;
		for (j = 0; j < s->nprobes; j++)
			if (s->probes[j].type == PROBE_SSH)
				break;
		if (j == s->nprobes)
			continue;
		old = conf_path_push(w, "cluster", 0);
		conf_err_member(w, g, "host_key_secret", "is required: "
		    "service \"%s\" launches with host_keys = \"user_data\" "
		    "and has an ssh probe, and every member must give a "
		    "replacement the same host key; make one file (head -c "
		    "%d /dev/urandom > F; chmod 600 F) and copy it to every "
		    "member", s->name != NULL ? s->name : "?",
		    HOSTKEY_SEED_LEN);
		conf_path_pop(w, old);
		return;
	}
}

static void
conf_top_check(struct conf_walk *w, const config_setting_t *cs, void *base)
{
	struct config		*c = base;
	const config_setting_t	*list = config_setting_get_member(cs,
	    "services");
	size_t			 i, j, k, l, old, o2;

	for (i = 0; i < c->nservices; i++) {
		struct service_conf		*s = &c->services[i];
		const config_setting_t		*e;

		e = config_setting_get_elem(list, (int)i);
		old = conf_path_push(w, "services", 0);
		o2 = conf_path_push(w, NULL, (int)i);
		for (j = 0; j < i; j++) {
			const struct service_conf *t = &c->services[j];

			if (s->name != NULL && t->name != NULL &&
			    strcmp(s->name, t->name) == 0)
				conf_err_member(w, e, "name", "\"%s\" is "
				    "already the name of services.[%zu]",
				    s->name, j);
			if (s->eip_allocation_id != NULL &&
			    t->eip_allocation_id != NULL &&
			    strcmp(s->eip_allocation_id,
			    t->eip_allocation_id) == 0)
				conf_err_member(w, e, "eip_allocation_id",
				    "\"%s\" is already the address of "
				    "services.[%zu]", s->eip_allocation_id, j);
			for (k = 0; k < s->nvolumes; k++)
				for (l = 0; l < t->nvolumes; l++)
					if (s->volumes[k].id != NULL &&
					    t->volumes[l].id != NULL &&
					    strcmp(s->volumes[k].id,
					    t->volumes[l].id) == 0)
						conf_err_member(w, e,
						    "volumes", "\"%s\" is "
						    "already a volume of "
						    "services.[%zu]",
						    s->volumes[k].id, j);
		}
		conf_top_check_sources(w, c, s, e);
		conf_path_pop(w, o2);
		conf_path_pop(w, old);
	}
	conf_top_check_secret(w, cs, c);
}

static int
conf_service_name_check(const char *v, char *why, size_t len)
{
	size_t n = conf_span_word(v, "-_.");

	if (n > 0 && v[n] == '\0' && n <= 64)
		return 0;
	snprintf(why, len, "\"%s\" is not a name (1 to 64 letters, digits, "
	    "'-', '_', '.')", v);
	return -1;
}

/* The schema ----------------------------------------------------------- */

#define NSETTINGS(a)	(sizeof(a) / sizeof((a)[0]))
#define HOFF(f)		offsetof(struct probe_conf, http.f)
#define SOFF(f)		offsetof(struct probe_conf, ssh.f)

static const char *const conf_probe_types[] = { "http", "ssh", NULL };
static const char *const conf_fence_names[] = {
	"graceful", "skip_os_shutdown", NULL
};

static const char *const conf_host_keys_names[] = {
	"user_data", "console", "known_hosts", NULL
};
static const char *const conf_old_names[] = {
	"stop", "terminate", "keep", NULL
};

static const struct conf_setting conf_probe_settings[] = {
	{ .name = "name", .kind = K_STR,
	  .off = offsetof(struct probe_conf, name),
	  .check = conf_service_name_check },
	{ .name = "type", .kind = K_ENUM, .flags = F_REQUIRED,
	  .off = offsetof(struct probe_conf, type),
	  .enum_names = conf_probe_types, .defstr = "http" },
	{ .name = "port", .kind = K_CUSTOM, .custom = &conf_port_ops },
	{ .name = "address", .kind = K_STR,
	  .off = offsetof(struct probe_conf, address),
	  .check = conf_check_address },
	{ .name = "source_address", .kind = K_STR,
	  .off = offsetof(struct probe_conf, source_address),
	  .check = conf_check_source },
	/* Floors: 10 checks a second per probe at most, and a timeout no
	 * network round trip can meet is a slip of the unit. */
	{ .name = "interval", .kind = K_SECS,
	  .off = offsetof(struct probe_conf, interval),
	  .min = 0.1, .max = 86400, .defnum = 5 },
	{ .name = "timeout", .kind = K_SECS,
	  .off = offsetof(struct probe_conf, timeout),
	  .min = 0.01, .max = 600, .defnum = 2 },
	{ .name = "fall", .kind = K_INT,
	  .off = offsetof(struct probe_conf, fall),
	  .min = 1, .max = 1000, .defnum = 3 },
	{ .name = "rise", .kind = K_INT,
	  .off = offsetof(struct probe_conf, rise),
	  .min = 1, .max = 1000, .defnum = 2 },
	/* http */
	{ .name = "url", .kind = K_STR, .flags = F_HTTP, .off = HOFF(url),
	  .maxlen = CONF_URL_MAX, .check = conf_check_url },
	{ .name = "scheme", .kind = K_STR, .flags = F_HTTP,
	  .off = HOFF(scheme), .defstr = "http", .check = conf_check_scheme },
	{ .name = "path", .kind = K_STR, .flags = F_HTTP, .off = HOFF(path),
	  .defstr = "/", .maxlen = 1024, .check = conf_check_http_path },
	{ .name = "host", .kind = K_STR, .flags = F_HTTP, .off = HOFF(host),
	  .maxlen = 255, .check = conf_check_host },
	{ .name = "method", .kind = K_STR, .flags = F_HTTP,
	  .off = HOFF(method), .defstr = "GET", .check = conf_check_method },
	{ .name = "expect_status", .kind = K_CUSTOM, .flags = F_HTTP,
	  .custom = &conf_status_ops },
	{ .name = "expect_body", .kind = K_STR, .flags = F_HTTP | F_NONEMPTY,
	  .off = HOFF(expect_body) },
	{ .name = "expect_body_regex", .kind = K_STR,
	  .flags = F_HTTP | F_NONEMPTY, .off = HOFF(expect_body_regex) },
	{ .name = "headers", .kind = K_STRLIST, .flags = F_HTTP,
	  .off = HOFF(headers), .off2 = HOFF(nheaders), .maxlen = 8192,
	  .maxcount = 32, .check = conf_check_header },
	{ .name = "connect_timeout", .kind = K_SECS,
	  .flags = F_HTTP | F_ZEROOFF, .off = HOFF(connect_timeout),
	  .min = 0.01, .max = 600, .defnum = 0 },
	{ .name = "tls_verify", .kind = K_BOOL, .flags = F_HTTP,
	  .off = HOFF(tls_verify), .defnum = 1 },
	{ .name = "ca_file", .kind = K_STR,
	  .flags = F_HTTP | F_ABSPATH | F_FILE | F_TRUSTED,
	  .off = HOFF(ca_file) },
	{ .name = "reuse_connection", .kind = K_BOOL, .flags = F_HTTP,
	  .off = HOFF(reuse_connection), .defnum = 0 },
	/* ssh */
	{ .name = "user", .kind = K_STR, .flags = F_SSH, .off = SOFF(user),
	  .maxlen = 32, .check = conf_check_user },
	{ .name = "key_file", .kind = K_STR,
	  .flags = F_SSH | F_ABSPATH | F_FILE | F_SECRET,
	  .off = SOFF(key_file) },
	{ .name = "known_hosts", .kind = K_STR,
	  .flags = F_SSH | F_ABSPATH | F_FILE | F_TRUSTED,
	  .off = SOFF(known_hosts) },
	{ .name = "command", .kind = K_STR, .flags = F_SSH | F_NONEMPTY,
	  .off = SOFF(command) },
	{ .name = "expect_output", .kind = K_STR, .flags = F_SSH | F_NONEMPTY,
	  .off = SOFF(expect_output) },
};

static const struct conf_group conf_probe_group = {
	conf_probe_settings, NSETTINGS(conf_probe_settings),
	sizeof(struct probe_conf), conf_probe_variant, conf_probe_check
};

static const struct conf_setting conf_volume_settings[] = {
	{ .name = "id", .kind = K_STR, .flags = F_REQUIRED,
	  .off = offsetof(struct volume_conf, id), .check = conf_check_vol },
	{ .name = "device", .kind = K_STR, .flags = F_REQUIRED,
	  .off = offsetof(struct volume_conf, device),
	  .check = conf_check_device },
};

static const struct conf_group conf_volume_group = {
	conf_volume_settings, NSETTINGS(conf_volume_settings),
	sizeof(struct volume_conf), NULL, NULL
};

#define LOFF(f)		offsetof(struct launch_conf, f)

static const struct conf_setting conf_launch_settings[] = {
	{ .name = "ami", .kind = K_STR, .flags = F_REQUIRED, .off = LOFF(ami),
	  .check = conf_check_ami },
	{ .name = "instance_type", .kind = K_STR, .flags = F_REQUIRED,
	  .off = LOFF(instance_type), .check = conf_check_instance_type },
	{ .name = "subnet", .kind = K_STR, .off = LOFF(subnet),
	  .check = conf_check_subnet },
	{ .name = "security_groups", .kind = K_STRLIST,
	  .off = LOFF(security_groups), .off2 = LOFF(nsecurity_groups),
	  .maxcount = CONF_MAX_SGS, .check = conf_check_sg },
	{ .name = "key_name", .kind = K_STR, .flags = F_NONEMPTY,
	  .off = LOFF(key_name), .maxlen = CONF_KEY_NAME_MAX,
	  .check = conf_check_key_name },
	{ .name = "iam_instance_profile", .kind = K_STR, .flags = F_NONEMPTY,
	  .off = LOFF(iam_instance_profile), .maxlen = CONF_PROFILE_MAX,
	  .check = conf_check_profile },
	{ .name = "tags", .kind = K_CUSTOM, .custom = &conf_tags_ops },
	{ .name = "user_data_file", .kind = K_STR,
	  .flags = F_ABSPATH | F_FILE | F_TRUSTED,
	  .off = LOFF(user_data_file) },
	{ .name = "host_keys", .kind = K_ENUM, .off = LOFF(host_keys),
	  .enum_names = conf_host_keys_names, .defstr = "user_data" },
};

static const struct conf_group conf_launch_group = {
	conf_launch_settings, NSETTINGS(conf_launch_settings), 0, NULL,
	conf_launch_check
};

#define POFF(f)		offsetof(struct policy_conf, f)

static const struct conf_setting conf_policy_settings[] = {
	{ .name = "auto_failover", .kind = K_BOOL, .off = POFF(auto_failover),
	  .defnum = 1 },
	{ .name = "failover_when", .kind = K_CUSTOM, .custom = &conf_when_ops },
	{ .name = "failover_on_degraded", .kind = K_BOOL,
	  .off = POFF(failover_on_degraded), .defnum = 0 },
	{ .name = "corroborate", .kind = K_BOOL, .off = POFF(corroborate),
	  .defnum = 1 },
	{ .name = "cooldown", .kind = K_SECS, .off = POFF(cooldown),
	  .min = 0, .max = 30 * 86400, .defnum = 900 },
	{ .name = "max_failovers", .kind = K_INT, .off = POFF(max_failovers),
	  .min = 1, .max = 1000, .defnum = 3 },
	{ .name = "window", .kind = K_SECS,
	  .off = POFF(window), .min = 1, .max = 365 * 86400,
	  .defnum = 86400 },
	{ .name = "old_instance", .kind = K_ENUM, .off = POFF(old_instance),
	  .enum_names = conf_old_names, .defstr = "stop" },
	{ .name = "restart_in_place", .kind = K_BOOL,
	  .off = POFF(restart_in_place), .defnum = 1 },
	{ .name = "fence", .kind = K_ENUM, .off = POFF(fence),
	  .enum_names = conf_fence_names, .defstr = "graceful" },
	/* Covers EC2's graceful attempt on a hung OS, which it does not
	 * bound in writing and which takes minutes. */
	{ .name = "fence_timeout", .kind = K_SECS,
	  .off = POFF(fence_timeout), .min = 1, .max = 86400,
	  .defnum = 300 },
	{ .name = "launch_timeout", .kind = K_SECS,
	  .off = POFF(launch_timeout), .min = 1, .max = 86400,
	  .defnum = 300 },
	{ .name = "detach_timeout", .kind = K_SECS,
	  .off = POFF(detach_timeout), .min = 1, .max = 86400,
	  .defnum = 60 },
	{ .name = "attach_timeout", .kind = K_SECS,
	  .off = POFF(attach_timeout), .min = 1, .max = 86400,
	  .defnum = 60 },
	{ .name = "associate_timeout", .kind = K_SECS,
	  .off = POFF(associate_timeout), .min = 1, .max = 86400,
	  .defnum = 30 },
	{ .name = "verify_timeout", .kind = K_SECS,
	  .off = POFF(verify_timeout), .min = 1, .max = 86400,
	  .defnum = 120 },
	{ .name = "evacuate", .kind = K_BOOL, .off = POFF(evacuate),
	  .defnum = 0 },
	{ .name = "evacuation_subnets", .kind = K_STRLIST,
	  .off = POFF(evacuation_subnets), .off2 = POFF(nevacuation_subnets),
	  .maxcount = 16, .check = conf_check_subnet },
};

static const struct conf_group conf_policy_group = {
	conf_policy_settings, NSETTINGS(conf_policy_settings), 0, NULL,
	conf_policy_check
};

#define NOFF(f)		offsetof(struct snapshot_conf, f)

static const struct conf_setting conf_snapshot_settings[] = {
	{ .name = "interval", .kind = K_SECS, .flags = F_ZEROOFF,
	  .off = NOFF(interval), .min = 1, .max = 365 * 86400,
	  .defnum = 0 },
	{ .name = "window", .kind = K_CUSTOM, .custom = &conf_window_ops },
	/* ec2.c's reply cap is sized for DescribeSnapshots of this many. */
	{ .name = "keep", .kind = K_INT, .off = NOFF(keep),
	  .min = 0, .max = 1000, .defnum = 7 },
	{ .name = "max_age", .kind = K_SECS, .flags = F_ZEROOFF,
	  .off = NOFF(max_age), .min = 60, .max = 10 * 365 * 86400,
	  .defnum = 0 },
	{ .name = "pre_command", .kind = K_STR, .flags = F_NONEMPTY,
	  .off = NOFF(pre_command) },
	{ .name = "post_command", .kind = K_STR, .flags = F_NONEMPTY,
	  .off = NOFF(post_command) },
	{ .name = "hook_timeout", .kind = K_SECS,
	  .off = NOFF(hook_timeout), .min = 1, .max = 3600, .defnum = 60 },
	{ .name = "hook_probe", .kind = K_STR, .off = NOFF(hook_probe),
	  .check = conf_service_name_check },
};

static const struct conf_group conf_snapshot_group = {
	conf_snapshot_settings, NSETTINGS(conf_snapshot_settings), 0, NULL,
	conf_snapshot_check
};

#define VOFF(f)		offsetof(struct service_conf, f)

static const struct conf_setting conf_service_settings[] = {
	{ .name = "name", .kind = K_STR, .flags = F_REQUIRED,
	  .off = VOFF(name), .check = conf_service_name_check },
	{ .name = "eip_allocation_id", .kind = K_STR, .flags = F_REQUIRED,
	  .off = VOFF(eip_allocation_id), .check = conf_check_eipalloc },
	{ .name = "volumes", .kind = K_LIST, .off = VOFF(volumes),
	  .off2 = VOFF(nvolumes), .sub = &conf_volume_group },
	{ .name = "launch", .kind = K_GROUP, .flags = F_REQUIRED,
	  .off = VOFF(launch), .sub = &conf_launch_group },
	{ .name = "probes", .kind = K_LIST, .flags = F_REQUIRED | F_NONEMPTY,
	  .off = VOFF(probes), .off2 = VOFF(nprobes),
	  .sub = &conf_probe_group },
	{ .name = "policy", .kind = K_GROUP, .off = VOFF(policy),
	  .sub = &conf_policy_group },
	{ .name = "snapshot", .kind = K_GROUP, .off = VOFF(snapshot),
	  .sub = &conf_snapshot_group },
};

static const struct conf_group conf_service_group = {
	conf_service_settings, NSETTINGS(conf_service_settings),
	sizeof(struct service_conf), NULL, conf_service_check
};

#define AOFF(f)		offsetof(struct aws_conf, f)

static const struct conf_setting conf_aws_settings[] = {
	{ .name = "region", .kind = K_STR, .off = AOFF(region),
	  .check = conf_check_region },
	{ .name = "endpoint", .kind = K_STR, .off = AOFF(endpoint),
	  .maxlen = CONF_URL_MAX, .check = conf_check_url },
	{ .name = "imds_endpoint", .kind = K_STR, .off = AOFF(imds_endpoint),
	  .maxlen = CONF_URL_MAX, .check = conf_check_url },
	{ .name = "sts_endpoint", .kind = K_STR, .off = AOFF(sts_endpoint),
	  .maxlen = CONF_URL_MAX, .check = conf_check_url },
	{ .name = "container_endpoint", .kind = K_STR,
	  .off = AOFF(container_endpoint), .maxlen = CONF_URL_MAX,
	  .check = conf_check_url },
	{ .name = "profile", .kind = K_STR, .flags = F_NONEMPTY,
	  .off = AOFF(profile) },
	{ .name = "ca_file", .kind = K_STR,
	  .flags = F_ABSPATH | F_FILE | F_TRUSTED, .off = AOFF(ca_file) },
	/* Below one call in ten seconds a failover's dozens of calls would
	 * outlast every step deadline. */
	{ .name = "calls_per_second", .kind = K_SECS,
	  .off = AOFF(calls_per_second), .min = 0.1, .max = 1000,
	  .unit = "calls/s", .defnum = 5 },
	{ .name = "burst", .kind = K_INT, .off = AOFF(burst),
	  .min = 1, .max = 10000, .defnum = 10 },
	{ .name = "call_timeout", .kind = K_SECS,
	  .off = AOFF(call_timeout), .min = 1, .max = 600, .defnum = 30 },
	/* A credential_process that has not answered by then is killed. */
	{ .name = "credential_process_timeout", .kind = K_SECS,
	  .off = AOFF(credential_process_timeout), .min = 1, .max = 600,
	  .defnum = 60 },
};

static const struct conf_group conf_aws_group = {
	conf_aws_settings, NSETTINGS(conf_aws_settings), 0, NULL, NULL
};

#define EOFF(f)		offsetof(struct alerts_conf, f)

static const struct conf_setting conf_alerts_settings[] = {
	{ .name = "exec", .kind = K_STR, .off = EOFF(exec),
	  .check = conf_check_exec },
	{ .name = "webhook", .kind = K_STR, .off = EOFF(webhook),
	  .maxlen = CONF_URL_MAX, .check = conf_check_url },
	{ .name = "rate_limit", .kind = K_SECS, .off = EOFF(rate_limit),
	  .min = 0, .max = 86400, .defnum = 60 },
	{ .name = "min_severity", .kind = K_STR, .off = EOFF(min_severity),
	  .defstr = "warning", .check = conf_check_severity },
};

static const struct conf_group conf_alerts_group = {
	conf_alerts_settings, NSETTINGS(conf_alerts_settings), 0, NULL, NULL
};

#define MOFF(f)		offsetof(struct metrics_conf, f)

/*
 * node_exporter reads the textfile directory at each scrape (15 s to a
 * minute apart); writing more often than once a second would only cost
 * the disk, and a file older than an hour tells nobody anything.
 */
static const struct conf_setting conf_metrics_settings[] = {
	{ .name = "textfile_dir", .kind = K_STR,
	  .flags = F_ABSPATH | F_NONEMPTY, .off = MOFF(textfile_dir) },
	{ .name = "period", .kind = K_SECS, .off = MOFF(period),
	  .min = 1, .max = 3600, .defnum = 15 },
	{ .name = "fsync", .kind = K_BOOL, .off = MOFF(fsync), .defnum = 0 },
};

static const struct conf_group conf_metrics_group = {
	conf_metrics_settings, NSETTINGS(conf_metrics_settings), 0, NULL,
	NULL
};

#define KOFF(f)		offsetof(struct cluster_conf, f)

/*
 * cert_file and key_file are one credential: half of it is a mistake.
 * Asked of the file, so that a bad key_file is not also called missing.
 */
static void
conf_cluster_tls_check(struct conf_walk *w, const config_setting_t *cs,
    void *base)
{
	int	 cert = config_setting_get_member(cs, "cert_file") != NULL;
	int	 key = config_setting_get_member(cs, "key_file") != NULL;

	(void)base;
	if (cert && !key)
		conf_err_member(w, cs, "key_file", "missing: cert_file and "
		    "key_file go together");
	else if (key && !cert)
		conf_err_member(w, cs, "cert_file", "missing: cert_file and "
		    "key_file go together");
}

/* The tls group fills the cluster_conf itself: its files sit there. */
static const struct conf_setting conf_cluster_tls_settings[] = {
	{ .name = "ca_file", .kind = K_STR, .off = KOFF(ca_file),
	  .flags = F_ABSPATH | F_FILE | F_TRUSTED | F_READABLE },
	{ .name = "cert_file", .kind = K_STR, .off = KOFF(cert_file),
	  .flags = F_ABSPATH | F_FILE | F_READABLE },
	{ .name = "key_file", .kind = K_STR, .off = KOFF(key_file),
	  .flags = F_ABSPATH | F_FILE | F_SECRET | F_READABLE },
};

static const struct conf_group conf_cluster_tls_group = {
	conf_cluster_tls_settings, NSETTINGS(conf_cluster_tls_settings), 0,
	NULL, conf_cluster_tls_check
};

/*
 * What needs every member known: the name among them, each once, and
 * the quorum as a count of them. A keepalive (every lease_ttl / 3) that
 * times out must leave time for another before the lease expires.
 */
static void
conf_cluster_check(struct conf_walk *w, const config_setting_t *cs,
    void *base)
{
	struct cluster_conf	*c = base;
	const config_setting_t	*list = config_setting_get_member(cs,
	    "members");
	size_t			 i, j, old, o2;
	int			 n = (int)c->nmembers;
	struct stat		 st;

	old = conf_path_push(w, "members", 0);
	for (i = 0; i < c->nmembers; i++)
		for (j = 0; j < i; j++)
			if (strcmp(c->members[i], c->members[j]) == 0) {
				o2 = conf_path_push(w, NULL, (int)i);
				conf_err(w, config_setting_get_elem(list,
				    (int)i), "\"%s\" is already "
				    "members.[%zu]", c->members[i], j);
				conf_path_pop(w, o2);
			}
	conf_path_pop(w, old);
	if (c->name != NULL && c->nmembers > 0) {
		for (i = 0; i < c->nmembers; i++)
			if (strcmp(c->name, c->members[i]) == 0)
				break;
		if (i == c->nmembers)
			conf_err_member(w, cs, "name", "\"%s\" is not one "
			    "of members", c->name);
	}
	if (n > 0) {
		switch (c->quorum_rule) {
		case CLUSTER_QUORUM_MAJORITY:
			c->quorum = n / 2 + 1;
			break;
		case CLUSTER_QUORUM_FRACTION:
			/* 0.6 * 5 is 3.0000000000000004 in binary. */
			c->quorum = (int)ceil(c->quorum_fraction * n - 1e-9);
			if (c->quorum < 1)
				c->quorum = 1;
			break;
		case CLUSTER_QUORUM_COUNT:
			if (c->quorum > n)
				conf_err_member(w, cs, "quorum", "%d is more "
				    "than the %d members", c->quorum, n);
			break;
		}
	}
	if (c->timeout >= (double)c->lease_ttl / 3)
		conf_err_member(w, cs, "timeout", "must be less than a third "
		    "of lease_ttl (%lds), so that a keepalive that times out "
		    "can be sent again before the lease expires (got %g s)",
		    c->lease_ttl, c->timeout);
	/* Found now, not at a failover when the key is made from it. */
	if (c->host_key_secret != NULL &&
	    stat(c->host_key_secret, &st) == 0 &&
	    st.st_size != HOSTKEY_SEED_LEN)
		conf_err_member(w, cs, "host_key_secret", "%s is %lld bytes; "
		    "it must hold exactly %d bytes (head -c %d /dev/urandom)",
		    c->host_key_secret, (long long)st.st_size,
		    HOSTKEY_SEED_LEN, HOSTKEY_SEED_LEN);
}

static const struct conf_setting conf_cluster_settings[] = {
	{ .name = "name", .kind = K_STR, .flags = F_REQUIRED,
	  .off = KOFF(name), .check = conf_service_name_check },
	{ .name = "members", .kind = K_STRLIST,
	  .flags = F_REQUIRED | F_NONEMPTY, .off = KOFF(members),
	  .off2 = KOFF(nmembers), .maxcount = CONF_MAX_CLUSTER_MEMBERS,
	  .check = conf_service_name_check },
	{ .name = "endpoints", .kind = K_STRLIST,
	  .flags = F_REQUIRED | F_NONEMPTY, .off = KOFF(endpoints),
	  .off2 = KOFF(nendpoints), .maxcount = CONF_MAX_ENDPOINTS,
	  .maxlen = CONF_URL_MAX, .check = conf_check_endpoint },
	{ .name = "prefix", .kind = K_STR, .flags = F_NONEMPTY,
	  .off = KOFF(prefix), .maxlen = CONF_PREFIX_MAX,
	  .defstr = "/failoverd", .check = conf_check_prefix },
	/* etcd's lease TTL is whole seconds; under 2 a keepalive every
	 * third of it would be a busy loop. */
	{ .name = "lease_ttl", .kind = K_LONG, .off = KOFF(lease_ttl),
	  .min = 2, .max = 300, .defnum = 10 },
	{ .name = "quorum", .kind = K_CUSTOM, .custom = &conf_quorum_ops },
	{ .name = "timeout", .kind = K_SECS, .off = KOFF(timeout),
	  .min = 0.1, .max = 30, .defnum = 2 },
	{ .name = "tls", .kind = K_GROUP, .off = 0,
	  .sub = &conf_cluster_tls_group },
	/* Read at every launch; whoever reads it can impersonate a
	 * replacement. */
	{ .name = "host_key_secret", .kind = K_STR,
	  .flags = F_ABSPATH | F_FILE | F_SECRET | F_READABLE,
	  .off = KOFF(host_key_secret) },
};

static const struct conf_group conf_cluster_group = {
	conf_cluster_settings, NSETTINGS(conf_cluster_settings), 0, NULL,
	conf_cluster_check
};

/* cluster: absent is NULL (one watchdog), so it is allocated here. */
static int
conf_cluster_parse(struct conf_walk *w, const config_setting_t *s,
    void *base)
{
	struct config *c = base;

	c->cluster = conf_calloc(1, sizeof(*c->cluster));
	conf_group_default(w, &conf_cluster_group, c->cluster);
	return conf_walk_if_group(w, s, &conf_cluster_group, c->cluster);
}

static void
conf_cluster_default(struct conf_walk *w, void *base)
{
	((struct config *)base)->cluster = NULL;
}

static void
conf_cluster_free(void *base)
{
	struct config *c = base;

	if (c->cluster == NULL)
		return;
	conf_group_free(&conf_cluster_group, c->cluster);
	free(c->cluster);
	c->cluster = NULL;
}

static int
conf_cluster_equal(const void *a, const void *b)
{
	const struct cluster_conf *x = ((const struct config *)a)->cluster;
	const struct cluster_conf *y = ((const struct config *)b)->cluster;

	if (x == NULL || y == NULL)
		return x == y;
	return conf_group_equal(&conf_cluster_group, x, y);
}

static const struct conf_custom conf_cluster_ops = {
	conf_cluster_parse, conf_cluster_default, conf_cluster_free,
	conf_cluster_equal
};

#define COFF(f)		offsetof(struct config, f)

static const struct conf_setting conf_top_settings[] = {
	{ .name = "state_dir", .kind = K_STR, .flags = F_ABSPATH,
	  .off = COFF(state_dir), .defstr = FOD_PATH_STATE_DIR },
	/* sun_path holds 107 bytes and a NUL. */
	{ .name = "control_socket", .kind = K_STR, .flags = F_ABSPATH,
	  .off = COFF(control_socket), .maxlen = CONF_SUN_PATH_MAX,
	  .defstr = FOD_PATH_CONTROL_SOCKET },
	{ .name = "control_group", .kind = K_STR, .off = COFF(control_group),
	  .check = conf_check_group_name },
	{ .name = "control_mode", .kind = K_CUSTOM, .custom = &conf_mode_ops },
	{ .name = "syslog_facility", .kind = K_CUSTOM,
	  .custom = &conf_facility_ops },
	{ .name = "debug", .kind = K_BOOL, .off = COFF(debug), .defnum = 0 },
	{ .name = "watchdog_interval", .kind = K_SECS, .flags = F_ZEROOFF,
	  .off = COFF(watchdog_interval), .min = 0.1, .max = 3600,
	  .defnum = 0 },
	{ .name = "probe_max_in_flight", .kind = K_INT,
	  .off = COFF(probe_max_in_flight), .min = 1, .max = 100000,
	  .defnum = 256 },
	{ .name = "probe_source_address", .kind = K_STR,
	  .off = COFF(probe_source_address), .check = conf_check_source },
	/* TILT_PERIOD_DEFAULT of tilt.h. */
	{ .name = "tilt_period", .kind = K_SECS, .off = COFF(tilt_period),
	  .min = 1, .max = 3600, .defnum = 30 },
	{ .name = "aws", .kind = K_GROUP, .off = COFF(aws),
	  .sub = &conf_aws_group },
	{ .name = "alerts", .kind = K_GROUP, .off = COFF(alerts),
	  .sub = &conf_alerts_group },
	{ .name = "metrics", .kind = K_GROUP, .off = COFF(metrics),
	  .sub = &conf_metrics_group },
	{ .name = "cluster", .kind = K_CUSTOM, .custom = &conf_cluster_ops },
	{ .name = "services", .kind = K_LIST, .flags = F_REQUIRED | F_NONEMPTY,
	  .off = COFF(services), .off2 = COFF(nservices),
	  .maxcount = CONF_MAX_SERVICES, .sub = &conf_service_group },
};

static const struct conf_group conf_top_group = {
	conf_top_settings, NSETTINGS(conf_top_settings), 0, NULL,
	conf_top_check
};

/* Reading: sizes, file types, @include and nesting ----------------------- */

/*
 * Bounds on what a reload reads. Parsing runs on the event loop, so its
 * cost must be small whatever the file says: rather than move it off the
 * loop (a thread would share libconfig's and the walk's state with the
 * loop), the input is bounded. A large real configuration (64 services
 * of a few probes) is under 200 KB; 1 MiB with its @include files parses
 * and validates in well under a second on a slow machine, and anything
 * bigger is refused before libconfig sees it.
 */
#define CONF_MAX_BYTES		(16 * 1024 * 1024)

/*
 * libconfig 1.5 checks each new member of a group against every earlier
 * one, so one group of n members costs n * n: 100,000 of them take
 * minutes. The schema's largest group has a few dozen settings; a group
 * with more than this is refused before libconfig reads it. A list
 * (10,000 services) costs nothing of the kind and is not bounded here.
 */
#define CONF_MAX_MEMBERS	256

/* libconfig 1.5 stops at 10 levels of @include (MAX_INCLUDE_DEPTH). */
#define CONF_MAX_INCLUDE_DEPTH	10

/*
 * The schema nests at most 7 deep (services, a service, probes, a probe,
 * headers, a header); anything deeper is an error, found before any
 * recursion over the tree can go deep.
 */
#define CONF_MAX_DEPTH		16

static void __attribute__((format(printf, 2, 3)))
conf_load_err(struct conf_walk *w, const char *fmt, ...)
{
	va_list ap;

	if (w->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(w->err, w->errlen, fmt, ap);
	va_end(ap);
	w->nerrors++;
}

static const char *
conf_file_type(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	return "not a regular file";
}

/*
 * Refuses a group of more than CONF_MAX_MEMBERS settings before
 * libconfig spends n * n on it. This is not a parser: it follows
 * libconfig's lexical rules only as far as needed to know which '=' or
 * ':' belongs to which group (strings with their escapes, the three
 * kinds of comments, the brackets), and any input it misjudges is still
 * parsed, and judged, by libconfig itself.
 */
static int
conf_count_members(struct conf_walk *w, const char *where, const char *path,
    const char *text)
{
	unsigned int	 count[CONF_MAX_DEPTH + 2];
	const char	*p;
	int		 top = 0, line = 1;

	count[0] = 0;	/* the file itself is a group */
	for (p = text; *p != '\0'; p++) {
		switch (*p) {
		case '\n':
			line++;
			break;
		case '"':
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				else if (*p == '\n')
					line++;
			}
			if (*p == '\0')
				return 0;
			break;
		case '#':
			while (p[1] != '\0' && p[1] != '\n')
				p++;
			break;
		case '/':
			if (p[1] == '/') {
				while (p[1] != '\0' && p[1] != '\n')
					p++;
			} else if (p[1] == '*') {
				for (p += 2; *p != '\0' && !(*p == '*' &&
				    p[1] == '/'); p++)
					if (*p == '\n')
						line++;
				if (*p == '\0')
					return 0;
				p++;
			}
			break;
		case '{':
		case '(':
		case '[':
			/* Deeper than the schema: conf_check_depth says so. */
			if (top == CONF_MAX_DEPTH + 1)
				return 0;
			count[++top] = *p == '{' ? 0 : UINT_MAX;
			break;
		case '}':
		case ')':
		case ']':
			if (top > 0)
				top--;
			break;
		case '=':
		case ':':
			if (count[top] != UINT_MAX &&
			    ++count[top] > CONF_MAX_MEMBERS) {
				conf_load_err(w, "%s%s:%d: a group of more than "
				    "%d settings; failoverd refuses it rather "
				    "than stall while parsing\n", where, path,
				    line, CONF_MAX_MEMBERS);
				return -1;
			}
			break;
		}
	}
	return 0;
}

/*
 * Reads the whole of path into *textp, NUL-terminated, charging its size
 * to *budget. Only a regular file is read: a FIFO would block the loop
 * until a writer came, a directory makes libconfig's scanner exit(), a
 * device may never end. The open does not block (O_NONBLOCK) and the
 * type is checked on the open descriptor, so what is read is what was
 * checked. where prefixes the messages ("file:line: @include ...: ").
 */
static int
conf_read_text(struct conf_walk *w, const char *where, const char *path,
    char **textp, size_t *budget)
{
	struct stat	 st;
	char		*text = NULL, *more;
	size_t		 len = 0, cap;
	ssize_t		 n;
	int		 fd;

	*textp = NULL;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd == -1) {
		conf_load_err(w, "%s%s: %s\n", where, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		conf_load_err(w, "%s%s: %s\n", where, path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		conf_load_err(w, "%s%s: %s, not a regular file\n", where, path,
		    conf_file_type(st.st_mode));
		goto fail;
	}
	/* Whoever can write the file decides which instances get
	 * replaced. */
	if ((st.st_mode & 0002) != 0) {
		conf_load_err(w, "%s%s: mode %04o lets others write it; "
		    "chmod o-w\n", where, path,
		    (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if (st.st_size > (off_t)*budget)
		goto big;
	/* st_size may lie (procfs): read to the end, never past budget. */
	cap = (size_t)st.st_size + 1;
	text = conf_calloc(1, cap + 1);
	for (;;) {
		if (len == cap) {
			if (cap > *budget)
				goto big;
			cap = cap * 2 > *budget + 1 ? *budget + 1 : cap * 2;
			more = realloc(text, cap + 1);
			if (more == NULL)
				fatal("conf: reading %s", path);
			text = more;
		}
		n = read(fd, text + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			conf_load_err(w, "%s%s: %s\n", where, path,
			    strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > *budget)
			goto big;
	}
	if (memchr(text, '\0', len) != NULL) {
		conf_load_err(w, "%s%s: contains a NUL byte: not a text "
		    "file\n", where, path);
		goto fail;
	}
	text[len] = '\0';
	if (conf_count_members(w, where, path, text) == -1)
		goto fail;
	*budget -= len;
	close(fd);
	*textp = text;
	return 0;
 big:
	conf_load_err(w, "%s%s: the configuration with its @include files "
	    "is larger than %d bytes; failoverd refuses it rather than "
	    "stall while parsing\n", where, path, CONF_MAX_BYTES);
 fail:
	free(text);
	close(fd);
	return -1;
}

/*
 * libconfig 1.5 has no hook that sees an @include before it opens the
 * file (1.7's config_set_include_func), and its scanner calls exit()
 * when a read fails, as on a directory. So every file is read here
 * first with the scanner's own rule for the directive, a line that is
 * `^[ \t]*@include[ \t]+"` then the name up to the closing quote, with
 * \" and \\ escaped, and each name is checked (and its own includes,
 * recursively) before libconfig runs. The rule also matches such a line
 * inside a block comment, which libconfig would skip: that only checks
 * one file too many. Names are resolved as conf_parse() has libconfig
 * resolve them: an absolute path as it is, a relative one from the main
 * file's directory (libconfig 1.5 uses that directory for every level).
 */
static int
conf_prescan(struct conf_walk *w, const char *file, const char *text,
    int depth, size_t *budget)
{
	static const char	 pat[] =
	    "^[ \t]*@include[ \t]+\"(([^\"\\\\]|\\\\.)*)\"";
	regex_t			 re;
	regmatch_t		 m[2];
	const char		*p = text, *q, *lstart;
	char			 name[PATH_MAX], path[PATH_MAX];
	char			 where[PATH_MAX + 64];
	char			*inc;
	size_t			 nlen;
	int			 line = 1, rc = -1, eflags = 0;

	if (regcomp(&re, pat, REG_EXTENDED | REG_NEWLINE) != 0)
		fatalx("conf: the @include pattern does not compile");
	for (;;) {
		if (regexec(&re, p, 2, m, eflags) != 0)
			break;
		for (q = p; q < p + m[0].rm_so; q++)
			if (*q == '\n')
				line++;
		lstart = p + m[1].rm_so;
		nlen = 0;
		for (q = lstart; q < p + m[1].rm_eo && nlen + 1 <
		    sizeof(name); q++) {
			if (*q == '\\' && q + 1 < p + m[1].rm_eo)
				q++;
			name[nlen++] = *q;
		}
		name[nlen] = '\0';
		if (depth + 1 > CONF_MAX_INCLUDE_DEPTH) {
			conf_load_err(w, "%s:%d: @include \"%s\": included "
			    "files nest deeper than %d\n", file, line, name,
			    CONF_MAX_INCLUDE_DEPTH);
			goto done;
		}
		if (name[0] == '\0') {
			conf_load_err(w, "%s:%d: @include \"\": no file "
			    "name\n", file, line);
			goto done;
		}
		if (name[0] == '/' || w->incdir == NULL)
			rc = snprintf(path, sizeof(path), "%s", name);
		else
			rc = snprintf(path, sizeof(path), "%s/%s",
			    w->incdir[0] != '\0' ? w->incdir : "", name);
		if (rc < 0 || (size_t)rc >= sizeof(path) || q < p +
		    m[1].rm_eo) {
			rc = -1;
			conf_load_err(w, "%s:%d: @include: the file name is "
			    "too long\n", file, line);
			goto done;
		}
		rc = -1;
		snprintf(where, sizeof(where), "%s:%d: @include \"%.64s%s\": ",
		    file, line, name, strlen(name) > 64 ? "..." : "");
		if (conf_read_text(w, where, path, &inc, budget) == -1)
			goto done;
		if (conf_prescan(w, path, inc, depth + 1, budget) == -1) {
			free(inc);
			goto done;
		}
		free(inc);
		for (q = p + m[0].rm_so; q < p + m[0].rm_eo; q++)
			if (*q == '\n')
				line++;
		p += m[0].rm_eo;
		eflags = p > text && p[-1] != '\n' ? REG_NOTBOL : 0;
	}
	rc = 0;
 done:
	regfree(&re);
	return rc;
}

/*
 * Nesting deeper than the schema is refused before anything recurses
 * over the tree; this walk itself stops at CONF_MAX_DEPTH.
 */
static int
conf_check_depth(struct conf_walk *w, const config_setting_t *s, int depth)
{
	const config_setting_t	*c;
	int			 i, n;

	if (!config_setting_is_aggregate(s))
		return 0;
	if (depth > CONF_MAX_DEPTH) {
		const char *f = config_setting_source_file(s);

		conf_load_err(w, "%s:%d: lists and groups nest deeper than %d "
		    "levels\n", f != NULL ? f : w->file,
		    config_setting_source_line(s), CONF_MAX_DEPTH);
		return -1;
	}
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		c = config_setting_get_elem(s, (unsigned int)i);
		if (c != NULL && conf_check_depth(w, c, depth + 1) == -1)
			return -1;
	}
	return 0;
}

/*
 * Has libconfig parse text, the content of the main file. It opens the
 * @include files itself; 1.5 joins include_dir and the name even when
 * the name is absolute ("dir//abs/path"), so instead of include_dir the
 * parse runs in the main file's directory, where a relative name is
 * found and an absolute one is itself. The daemon has no other thread
 * that uses relative paths, and the directory is restored at once.
 */
static int
conf_parse(struct conf_walk *w, config_t *cf, const char *text)
{
	int	 cwd = -1, rc;

	if (w->incdir != NULL) {
		cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cwd == -1) {
			conf_load_err(w, "%s: cannot note the working "
			    "directory: %s\n", w->file, strerror(errno));
			return -1;
		}
		if (chdir(w->incdir[0] != '\0' ? w->incdir : "/") == -1) {
			conf_load_err(w, "%s: %s\n", w->incdir[0] != '\0' ?
			    w->incdir : "/", strerror(errno));
			close(cwd);
			return -1;
		}
	}
	rc = config_read_string(cf, text);
	if (cwd != -1) {
		if (fchdir(cwd) == -1)
			fatal("conf: fchdir back from %s", w->incdir);
		close(cwd);
	}
	return rc == CONFIG_TRUE ? 0 : -1;
}

/* The interface -------------------------------------------------------- */

struct config *
conf_load(const char *path, char *err, size_t errlen)
{
	struct conf_walk	 w;
	struct config		*conf;
	config_t		 cf;
	char			 dir[PATH_MAX], *slash, *text;
	size_t			 budget = CONF_MAX_BYTES;

	memset(&w, 0, sizeof(w));
	w.file = path;
	w.err = err;
	w.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';

	/* @include paths are relative to the file that includes them. */
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash != NULL) {
		*slash = '\0';
		w.incdir = dir;
	}
	if (conf_read_text(&w, "", path, &text, &budget) == -1)
		return NULL;
	if (conf_prescan(&w, path, text, 0, &budget) == -1) {
		free(text);
		return NULL;
	}

	config_init(&cf);
	if (conf_parse(&w, &cf, text) == -1) {
		const char	*f = config_error_file(&cf);
		char		 incfile[PATH_MAX];

		free(text);
		if (w.nerrors > 0) {
			config_destroy(&cf);
			return NULL;
		}
		if (f != NULL && f[0] != '/' && w.incdir != NULL) {
			snprintf(incfile, sizeof(incfile), "%s/%s", w.incdir,
			    f);
			f = incfile;
		}
		if (config_error_line(&cf) > 0)
			snprintf(err, errlen, "%s:%d: %s\n",
			    f != NULL ? f : path, config_error_line(&cf),
			    config_error_text(&cf));
		else
			snprintf(err, errlen, "%s: %s\n",
			    f != NULL ? f : path, config_error_text(&cf));
		config_destroy(&cf);
		return NULL;
	}
	free(text);

	if (conf_check_depth(&w, config_root_setting(&cf), 0) == -1) {
		config_destroy(&cf);
		return NULL;
	}

	conf = conf_calloc(1, sizeof(*conf));
	conf->path = conf_strdup(path);
	w.conf = conf;
	conf_group_default(&w, &conf_top_group, conf);
	conf_walk_group(&w, config_root_setting(&cf), &conf_top_group, conf);
	config_destroy(&cf);
	if (w.nerrors > 0) {
		if (w.nerrors > CONF_MAX_ERRORS && w.used + 1 < w.errlen)
			snprintf(err + w.used, errlen - w.used,
			    "%s: %d more errors not shown\n", path,
			    w.nerrors - CONF_MAX_ERRORS);
		conf_free(conf);
		return NULL;
	}
	return conf;
}

/*
 * What daemon start needs of the machine beyond the file: the daemon
 * and `failoverd -t` (the unit's ExecStartPre) both call this, so -t
 * never passes a configuration start would refuse.
 */
int
conf_check_start(const struct config *conf, char *err, size_t errlen)
{
	struct stat	 st;
	char		 dir[PATH_MAX], *slash;

	if (stat(conf->state_dir, &st) == -1) {
		snprintf(err, errlen, "state_dir %s: %s", conf->state_dir,
		    strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state_dir %s: not a directory",
		    conf->state_dir);
		return -1;
	}
	if (access(conf->state_dir, W_OK) == -1) {
		snprintf(err, errlen, "state_dir %s: not writable: %s",
		    conf->state_dir, strerror(errno));
		return -1;
	}
	/* bind(2) creates the socket, not its directory. */
	snprintf(dir, sizeof(dir), "%s", conf->control_socket);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (stat(dir, &st) == -1) {
			snprintf(err, errlen, "control_socket %s: directory "
			    "%s: %s", conf->control_socket, dir,
			    strerror(errno));
			return -1;
		}
		if (!S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "control_socket %s: %s is not "
			    "a directory", conf->control_socket, dir);
			return -1;
		}
	}
	return 0;
}

/*
 * A source address this host does not hold now. Not an error, at -t or
 * at start: an address may come up after the daemon (a secondary
 * private IP attached at boot, a virtual address), and until it does
 * each probe from it fails as the watchdog's own fault (EADDRNOTAVAIL,
 * selfcheck.h), never against the service. -t says so on stderr.
 */
int
conf_warn_sources(const struct config *conf, FILE *fp)
{
	struct sockaddr_storage	 ss;
	const char		*a, *seen[CONF_LIST_MAX];
	size_t			 i, j, k, nseen = 0;
	socklen_t		 len;
	int			 fd, err, nwarn = 0;

	for (i = 0; i < conf->nservices; i++)
		for (j = 0; j < conf->services[i].nprobes; j++) {
			a = conf->services[i].probes[j].source_address;
			if (a == NULL)
				continue;
			for (k = 0; k < nseen; k++)
				if (strcmp(seen[k], a) == 0)
					break;
			if (k < nseen)
				continue;
			if (nseen < CONF_LIST_MAX)
				seen[nseen++] = a;
			memset(&ss, 0, sizeof(ss));
			if (conf_addr_family(a) == AF_INET) {
				struct sockaddr_in *in = (void *)&ss;

				in->sin_family = AF_INET;
				inet_pton(AF_INET, a, &in->sin_addr);
				len = sizeof(*in);
			} else {
				struct sockaddr_in6 *in6 = (void *)&ss;

				in6->sin6_family = AF_INET6;
				inet_pton(AF_INET6, a, &in6->sin6_addr);
				len = sizeof(*in6);
			}
			fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC,
			    0);
			if (fd == -1)
				continue;
			err = bind(fd, (struct sockaddr *)&ss, len) == -1 ?
			    errno : 0;
			close(fd);
			if (err == 0)
				continue;
			fprintf(fp, "failoverd: warning: source address %s "
			    "(services.[%zu] %s, probe %s): bind: %s; its "
			    "probes fail as the watchdog's own fault until "
			    "this host holds it\n", a, i,
			    conf->services[i].name,
			    conf->services[i].probes[j].name, strerror(err));
			nwarn++;
		}
	return nwarn;
}

void
conf_free(struct config *conf)
{
	if (conf == NULL)
		return;
	conf_group_free(&conf_top_group, conf);
	free(conf->path);
	free(conf);
}

int
conf_service_equal(const struct service_conf *a, const struct service_conf *b)
{
	return conf_group_equal(&conf_service_group, a, b);
}

int
conf_probe_equal(const struct probe_conf *a, const struct probe_conf *b)
{
	return conf_group_equal(&conf_probe_group, a, b);
}

const struct service_conf *
conf_find_service(const struct config *conf, const char *name)
{
	size_t i;

	for (i = 0; i < conf->nservices; i++)
		if (strcmp(conf->services[i].name, name) == 0)
			return &conf->services[i];
	return NULL;
}

const char *
probe_type_str(enum probe_type t)
{
	switch (t) {
	case PROBE_HTTP:
		return "http";
	case PROBE_SSH:
		return "ssh";
	}
	return "?";
}

static void
conf_print_probe(const struct probe_conf *p, FILE *fp)
{
	const char	*addr = p->address != NULL ? p->address : "EIP";
	char		 url[CONF_URL_MAX + 64], shown[CONF_URL_MAX + 64];

	fprintf(fp, "  probe %-10s %s ", p->name, probe_type_str(p->type));
	if (p->type == PROBE_HTTP) {
		if (p->http.url != NULL)
			snprintf(url, sizeof(url), "%s", p->http.url);
		else if (p->http.port != 0)
			snprintf(url, sizeof(url), "%s://%s:%d%s",
			    p->http.scheme, addr, p->http.port, p->http.path);
		else
			snprintf(url, sizeof(url), "%s://%s%s",
			    p->http.scheme, addr, p->http.path);
		/* -t output goes to the journal at every start. */
		fprintf(fp, "%s %s", p->http.method,
		    redact_url(url, shown, sizeof(shown)));
		if (p->http.host != NULL)
			fprintf(fp, " host %s", p->http.host);
		if (!p->http.tls_verify)
			fprintf(fp, " (TLS NOT VERIFIED)");
	} else {
		fprintf(fp, "%s%s%s:%d", p->ssh.user != NULL ? p->ssh.user :
		    "", p->ssh.user != NULL ? "@" : "", addr, p->ssh.port);
		if (p->ssh.key_file == NULL)
			fprintf(fp, " handshake only");
		else if (p->ssh.command != NULL)
			fprintf(fp, " \"%s\"", p->ssh.command);
	}
	if (p->source_address != NULL)
		fprintf(fp, " from %s", p->source_address);
	fprintf(fp, ", every %gs, timeout %gs, fall %d, rise %d\n",
	    p->interval, p->timeout, p->fall, p->rise);
}

/* The key file's path only: its contents never reach -t. */
static void
conf_print_cluster(const struct cluster_conf *c, FILE *fp)
{
	char	 ep[CONF_URL_MAX + 8];
	size_t	 i;

	fprintf(fp, "  cluster member %s of", c->name);
	for (i = 0; i < c->nmembers; i++)
		fprintf(fp, "%s %s", i > 0 ? "," : "", c->members[i]);
	fprintf(fp, "\n    etcd");
	for (i = 0; i < c->nendpoints; i++)
		fprintf(fp, "%s %s", i > 0 ? "," : "",
		    redact_url(c->endpoints[i], ep, sizeof(ep)));
	fprintf(fp, ", prefix %s, lease_ttl %lds, timeout %gs\n", c->prefix,
	    c->lease_ttl, c->timeout);
	fprintf(fp, "    quorum %d of %zu", c->quorum, c->nmembers);
	if (c->quorum_rule == CLUSTER_QUORUM_MAJORITY)
		fprintf(fp, " (majority)");
	else if (c->quorum_rule == CLUSTER_QUORUM_FRACTION)
		fprintf(fp, " (%g of the members)", c->quorum_fraction);
	fprintf(fp, "\n");
	if (c->ca_file != NULL || c->cert_file != NULL)
		fprintf(fp, "    tls ca %s, cert %s, key %s\n",
		    c->ca_file != NULL ? c->ca_file : "(system's)",
		    c->cert_file != NULL ? c->cert_file : "(none)",
		    c->key_file != NULL ? c->key_file : "(none)");
	if (c->host_key_secret != NULL)
		fprintf(fp, "    host_key_secret %s\n", c->host_key_secret);
}

void
conf_print_summary(const struct config *conf, FILE *fp)
{
	static const char *const when[] = { "all", "any", "list" };
	char	 ep[CONF_URL_MAX + 8], hook[CONF_URL_MAX + 8];
	size_t	 i, j;

	fprintf(fp, "file %s\n", conf->path);
	fprintf(fp, "  state_dir %s\n", conf->state_dir);
	fprintf(fp, "  control_socket %s, mode %04o, group %s\n",
	    conf->control_socket, conf->control_mode,
	    conf->control_group != NULL ? conf->control_group : "(daemon's)");
	fprintf(fp, "  syslog facility %s%s\n",
	    log_facility_name(conf->syslog_facility),
	    conf->debug ? ", debug" : "");
	fprintf(fp, "  aws region %s, endpoint %s, profile %s, %g calls/s, "
	    "burst %d\n",
	    conf->aws.region != NULL ? conf->aws.region : "(AWS_REGION)",
	    conf->aws.endpoint != NULL ? redact_url(conf->aws.endpoint, ep,
	    sizeof(ep)) : "(default)",
	    conf->aws.profile != NULL ? conf->aws.profile : "(default)",
	    conf->aws.calls_per_second, conf->aws.burst);
	if (conf->alerts.exec != NULL || conf->alerts.webhook != NULL)
		fprintf(fp, "  alerts %s%s%s from %s\n",
		    conf->alerts.exec != NULL ? conf->alerts.exec : "",
		    conf->alerts.exec != NULL && conf->alerts.webhook !=
		    NULL ? ", " : "",
		    conf->alerts.webhook != NULL ? redact_url(
		    conf->alerts.webhook, hook, sizeof(hook)) : "",
		    conf->alerts.min_severity);
	if (conf->metrics.textfile_dir != NULL)
		fprintf(fp, "  metrics %s/failoverd.prom every %gs%s\n",
		    conf->metrics.textfile_dir, conf->metrics.period,
		    conf->metrics.fsync ? ", fsync" : "");
	if (conf->cluster != NULL)
		conf_print_cluster(conf->cluster, fp);
	fprintf(fp, "%zu service%s\n", conf->nservices,
	    conf->nservices == 1 ? "" : "s");
	for (i = 0; i < conf->nservices; i++) {
		const struct service_conf	*s = &conf->services[i];
		const struct policy_conf	*p = &s->policy;

		fprintf(fp, "service %s\n", s->name);
		fprintf(fp, "  eip %s\n", s->eip_allocation_id);
		for (j = 0; j < s->nvolumes; j++)
			fprintf(fp, "  volume %s at %s\n", s->volumes[j].id,
			    s->volumes[j].device);
		fprintf(fp, "  launch %s %s in %s\n", s->launch.ami,
		    s->launch.instance_type, s->launch.subnet != NULL ?
		    s->launch.subnet : "(default subnet)");
		for (j = 0; j < s->nprobes; j++)
			conf_print_probe(&s->probes[j], fp);
		fprintf(fp, "  policy %s, down when %s",
		    p->auto_failover ? "auto failover" : "alert only",
		    when[p->when]);
		for (j = 0; j < p->nfailover_probes; j++)
			fprintf(fp, "%s%s", j == 0 ? " [" : ",",
			    p->failover_probes[j]);
		fprintf(fp, "%s%s, %scorroborate, cooldown %gs, max %d per "
		    "%gs, old instance: %s%s%s\n",
		    p->nfailover_probes > 0 ? "]" : "",
		    p->failover_on_degraded ? " or degraded" : "",
		    p->corroborate ? "" : "no ", p->cooldown,
		    p->max_failovers, p->window,
		    conf_old_names[p->old_instance],
		    p->restart_in_place ? ", restart in place" : "",
		    p->evacuate ? ", evacuate" : "");
		if (s->snapshot.interval > 0) {
			fprintf(fp, "  snapshots every %gs",
			    s->snapshot.interval);
			if (s->snapshot.window_start != -1)
				fprintf(fp, " in %02d:%02d-%02d:%02d UTC",
				    s->snapshot.window_start / 60,
				    s->snapshot.window_start % 60,
				    s->snapshot.window_end / 60,
				    s->snapshot.window_end % 60);
			fprintf(fp, ", keep %d\n", s->snapshot.keep);
		}
	}
}
