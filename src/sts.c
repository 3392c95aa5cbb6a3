/*
 * sts: AssumeRole and AssumeRoleWithWebIdentity requests and replies
 * (STS API Reference; botocore's data/sts/2011-06-15/service-2.json).
 *
 * The reply is XML like EC2's, read with libxml2:
 *   <AssumeRoleResponse><AssumeRoleResult><Credentials>
 *     <AccessKeyId/><SecretAccessKey/><SessionToken/><Expiration/>
 *   </Credentials><AssumedRoleUser><Arn/></AssumedRoleUser>...
 * and an error is <ErrorResponse><Error><Code/><Message/></Error>.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>

#include "failoverd/sigv4.h"
#include "failoverd/sts.h"

#define STS_CONTENT_TYPE \
	"application/x-www-form-urlencoded; charset=utf-8"

static void
wipe_free(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

int
sts_endpoint_for(const char *region, char *out, size_t outlen)
{
	const char *c;
	int n;

	if (region == NULL || *region == '\0')
		return -1;
	for (c = region; *c != '\0'; c++)
		if (!islower((unsigned char)*c) && !isdigit((unsigned char)*c) &&
		    *c != '-')
			return -1;
	n = snprintf(out, outlen, "https://sts.%s.amazonaws.com%s", region,
	    strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Appends &key=escaped(value); -1 when out of memory. */
static int
form_add(CURL *e, char **body, const char *key, const char *value)
{
	char *esc, *nb;
	int n;

	if (value == NULL)
		return 0;
	esc = curl_easy_escape(e, value, 0);
	if (esc == NULL)
		return -1;
	n = asprintf(&nb, "%s%s%s=%s", *body != NULL ? *body : "",
	    *body != NULL ? "&" : "", key, esc);
	OPENSSL_cleanse(esc, strlen(esc));
	curl_free(esc);
	if (n == -1)
		return -1;
	wipe_free(*body);
	*body = nb;
	return 0;
}

static int
hdr_add(struct curl_slist **l, const char *name, const char *v)
{
	struct curl_slist *n;
	char line[8192];
	int len;

	len = snprintf(line, sizeof(line), "%s: %s", name, v);
	if (len < 0 || (size_t)len >= sizeof(line))
		return -1;
	n = curl_slist_append(*l, line);
	OPENSSL_cleanse(line, sizeof(line));
	if (n == NULL)
		return -1;
	*l = n;
	return 0;
}

int
sts_request(const char *url, const struct sts_params *p,
    const struct sts_signer *s, char **bodyp, struct curl_slist **hdrsp,
    char *err, size_t errlen)
{
	struct sigv4_header sh[2];
	struct sigv4_input in;
	struct sigv4_result sig;
	struct curl_slist *hdrs = NULL;
	CURLU *u = NULL;
	CURL *e = NULL;
	char *body = NULL, *host = NULL, *port = NULL, *path = NULL;
	char hostport[512], dur[16];
	int rc = -1;

	memset(&sig, 0, sizeof(sig));
	*bodyp = NULL;
	*hdrsp = NULL;
	u = curl_url();
	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) !=
	    CURLUE_OK || curl_url_get(u, CURLUPART_HOST, &host, 0) !=
	    CURLUE_OK) {
		snprintf(err, errlen, "STS endpoint '%s' is not a URL", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL;
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		path = NULL;
	snprintf(hostport, sizeof(hostport), "%s%s%s", host,
	    port != NULL ? ":" : "", port != NULL ? port : "");
	e = curl_easy_init();
	if (e == NULL)
		goto nomem;
	snprintf(dur, sizeof(dur), "%d", p->duration);
	if (form_add(e, &body, "Action", p->web_token != NULL ?
	    "AssumeRoleWithWebIdentity" : "AssumeRole") < 0 ||
	    form_add(e, &body, "Version", STS_API_VERSION) < 0 ||
	    form_add(e, &body, "RoleArn", p->role_arn) < 0 ||
	    form_add(e, &body, "RoleSessionName", p->session_name) < 0 ||
	    (p->web_token == NULL &&
	    form_add(e, &body, "ExternalId", p->external_id) < 0) ||
	    form_add(e, &body, "WebIdentityToken", p->web_token) < 0 ||
	    (p->duration > 0 &&
	    form_add(e, &body, "DurationSeconds", dur) < 0))
		goto nomem;
	if (hdr_add(&hdrs, "Host", hostport) < 0 ||
	    hdr_add(&hdrs, "Content-Type", STS_CONTENT_TYPE) < 0 ||
	    hdr_add(&hdrs, "Expect", "") < 0)
		goto nomem;
	if (s != NULL && s->access_key_id != NULL) {
		sh[0].name = "Host";
		sh[0].value = hostport;
		sh[1].name = "Content-Type";
		sh[1].value = STS_CONTENT_TYPE;
		memset(&in, 0, sizeof(in));
		in.method = "POST";
		in.path = path != NULL && *path != '\0' ? path : "/";
		in.headers = sh;
		in.nheaders = 2;
		in.payload = body;
		in.payload_len = strlen(body);
		in.region = s->region;
		in.service = "sts";
		in.when = s->when;
		in.access_key_id = s->access_key_id;
		in.secret_access_key = s->secret_access_key;
		in.session_token = s->session_token;
		in.flags = SIGV4_NORMALIZE_PATH;
		if (sigv4_sign(&in, &sig, err, errlen) < 0)
			goto out;
		if (hdr_add(&hdrs, "X-Amz-Date", sig.amz_date) < 0 ||
		    (s->session_token != NULL && hdr_add(&hdrs,
		    "X-Amz-Security-Token", s->session_token) < 0) ||
		    hdr_add(&hdrs, "Authorization", sig.authorization) < 0)
			goto nomem;
	}
	*bodyp = body;
	*hdrsp = hdrs;
	body = NULL;
	hdrs = NULL;
	rc = 0;
	goto out;
nomem:
	snprintf(err, errlen, "STS request: out of memory");
out:
	sigv4_result_free(&sig);
	wipe_free(body);
	curl_slist_free_all(hdrs);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	if (e != NULL)
		curl_easy_cleanup(e);
	return rc;
}

time_t
sts_parse_time(const char *s)
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

static xmlNode *
find_elem(xmlNode *n, const char *name)
{
	xmlNode *f;

	for (; n != NULL; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (xmlStrcmp(n->name, (const xmlChar *)name) == 0)
			return n;
		f = find_elem(n->children, name);
		if (f != NULL)
			return f;
	}
	return NULL;
}

/* The text of child name of parent, malloc'ed, or NULL. */
static char *
child_text(xmlNode *parent, const char *name)
{
	xmlNode *c;
	xmlChar *t;
	char *s;

	if (parent == NULL)
		return NULL;
	for (c = parent->children; c != NULL; c = c->next) {
		if (c->type != XML_ELEMENT_NODE ||
		    xmlStrcmp(c->name, (const xmlChar *)name) != 0)
			continue;
		t = xmlNodeGetContent(c);
		if (t == NULL)
			return NULL;
		s = strdup((const char *)t);
		OPENSSL_cleanse(t, (size_t)xmlStrlen(t));
		xmlFree(t);
		return s;
	}
	return NULL;
}

void
sts_creds_clear(struct sts_creds *c)
{
	free(c->access_key_id);
	wipe_free(c->secret_access_key);
	wipe_free(c->session_token);
	free(c->arn);
	memset(c, 0, sizeof(*c));
}

int
sts_parse_reply(const char *xml, size_t len, long http_status,
    struct sts_creds *out, char *err, size_t errlen)
{
	xmlDoc *doc;
	xmlNode *root, *n;
	char *code = NULL, *msg = NULL, *exp = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (len > (size_t)1 << 20) {
		snprintf(err, errlen, "STS reply too large");
		return -1;
	}
	doc = xmlReadMemory(xml, (int)len, NULL, NULL, XML_PARSE_NONET |
	    XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL || (root = xmlDocGetRootElement(doc)) == NULL) {
		snprintf(err, errlen, "STS reply (HTTP %ld) is not XML",
		    http_status);
		goto out;
	}
	n = find_elem(root, "Error");
	if (n != NULL || http_status != 200) {
		code = child_text(n, "Code");
		msg = child_text(n, "Message");
		snprintf(err, errlen, "STS: %s: %s (HTTP %ld)",
		    code != NULL ? code : "no error code",
		    msg != NULL ? msg : "no message", http_status);
		goto out;
	}
	n = find_elem(root, "Credentials");
	out->access_key_id = child_text(n, "AccessKeyId");
	out->secret_access_key = child_text(n, "SecretAccessKey");
	out->session_token = child_text(n, "SessionToken");
	exp = child_text(n, "Expiration");
	out->arn = child_text(find_elem(root, "AssumedRoleUser"), "Arn");
	if (out->access_key_id == NULL || out->secret_access_key == NULL ||
	    out->session_token == NULL || exp == NULL) {
		snprintf(err, errlen, "STS reply: no Credentials with "
		    "AccessKeyId, SecretAccessKey, SessionToken, Expiration");
		goto out;
	}
	out->expiration = sts_parse_time(exp);
	if (out->expiration == -1) {
		snprintf(err, errlen, "STS reply: Expiration '%s' is not "
		    "ISO 8601 UTC", exp);
		goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		sts_creds_clear(out);
	free(code);
	free(msg);
	free(exp);
	xmlFreeDoc(doc);
	return rc;
}
