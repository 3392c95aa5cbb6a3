/*
 * ec2_xml: EC2 results and the parsing of EC2's XML replies (libxml2).
 *
 * Replies are walked by element local name, so the versioned default
 * namespace does not matter. Every string of a result lives in its pool
 * and goes with it. A reply we cannot read is an error with a reason,
 * never a crash and never a half-filled success.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>

#include "failoverd/ec2.h"
#include "ec2_priv.h"

struct ec2_pool {
	struct ec2_pool	*next;
	max_align_t	 data[];
};

static const char *const ec2_action_names[] = {
	[EC2_RUN_INSTANCES] = "RunInstances",
	[EC2_DESCRIBE_INSTANCES] = "DescribeInstances",
	[EC2_DESCRIBE_INSTANCE_STATUS] = "DescribeInstanceStatus",
	[EC2_DESCRIBE_VOLUMES] = "DescribeVolumes",
	[EC2_DESCRIBE_ADDRESSES] = "DescribeAddresses",
	[EC2_DESCRIBE_SNAPSHOTS] = "DescribeSnapshots",
	[EC2_DESCRIBE_IMAGES] = "DescribeImages",
	[EC2_DESCRIBE_AVAILABILITY_ZONES] = "DescribeAvailabilityZones",
	[EC2_START_INSTANCES] = "StartInstances",
	[EC2_STOP_INSTANCES] = "StopInstances",
	[EC2_TERMINATE_INSTANCES] = "TerminateInstances",
	[EC2_CREATE_VOLUME] = "CreateVolume",
	[EC2_ATTACH_VOLUME] = "AttachVolume",
	[EC2_DETACH_VOLUME] = "DetachVolume",
	[EC2_CREATE_SNAPSHOT] = "CreateSnapshot",
	[EC2_DELETE_SNAPSHOT] = "DeleteSnapshot",
	[EC2_ASSOCIATE_ADDRESS] = "AssociateAddress",
	[EC2_DISASSOCIATE_ADDRESS] = "DisassociateAddress",
	[EC2_CREATE_IMAGE] = "CreateImage",
	[EC2_DEREGISTER_IMAGE] = "DeregisterImage",
	[EC2_CREATE_TAGS] = "CreateTags",
	[EC2_GET_CONSOLE_OUTPUT] = "GetConsoleOutput",
};

static const char *const ec2_status_names[] = {
	[EC2_OK] = "ok",
	[EC2_DRY_RUN_OK] = "dry-run-ok",
	[EC2_ERR_AWS] = "aws-error",
	[EC2_ERR_NETWORK] = "network-error",
	[EC2_ERR_TIMEOUT] = "timeout",
	[EC2_ERR_REPLY] = "bad-reply",
	[EC2_ERR_CREDS] = "no-credentials",
	[EC2_ERR_CONFIG] = "config-error",
	[EC2_ERR_INTERNAL] = "internal-error",
	[EC2_ERR_GATED] = "not-leader",
};

const char *
ec2_action_str(enum ec2_action a)
{
	if ((unsigned int)a >= EC2_ACTION_COUNT)
		return "?";
	return ec2_action_names[a];
}

int
ec2_action_from_str(const char *s)
{
	int i;

	for (i = 0; i < EC2_ACTION_COUNT; i++)
		if (strcmp(ec2_action_names[i], s) == 0)
			return i;
	return -1;
}

const char *
ec2_status_str(enum ec2_status s)
{
	if ((unsigned int)s >= sizeof(ec2_status_names) /
	    sizeof(ec2_status_names[0]))
		return "?";
	return ec2_status_names[s];
}

/* --- the result object --------------------------------------------- */

struct ec2_result *
ec2_result_new(enum ec2_action action)
{
	struct ec2_result *res;

	res = calloc(1, sizeof(*res));
	if (res == NULL)
		return NULL;
	res->action = action;
	res->status = EC2_OK;
	return res;
}

static void *
pool_alloc(struct ec2_result *res, size_t n)
{
	struct ec2_pool *p;

	p = calloc(1, sizeof(*p) + n);
	if (p == NULL)
		return NULL;
	p->next = res->pool;
	res->pool = p;
	return p->data;
}

void
ec2_result_clear(struct ec2_result *res)
{
	struct ec2_pool *p, *next;

	for (p = res->pool; p != NULL; p = next) {
		next = p->next;
		free(p);
	}
	res->pool = NULL;
	free(res->instances);
	free(res->statuses);
	free(res->volumes);
	free(res->addresses);
	free(res->snapshots);
	free(res->images);
	free(res->zones);
	free(res->changes);
	res->instances = NULL;
	res->statuses = NULL;
	res->volumes = NULL;
	res->addresses = NULL;
	res->snapshots = NULL;
	res->images = NULL;
	res->zones = NULL;
	res->changes = NULL;
	res->ninstances = res->nstatuses = res->nvolumes = 0;
	res->naddresses = res->nsnapshots = res->nimages = 0;
	res->nzones = res->nchanges = 0;
	res->cap_instances = res->cap_statuses = res->cap_volumes = 0;
	res->cap_addresses = res->cap_snapshots = res->cap_images = 0;
	res->cap_zones = res->cap_changes = 0;
	memset(&res->attachment, 0, sizeof(res->attachment));
	res->has_attachment = 0;
	res->id = NULL;
	free(res->console);
	res->console = NULL;
	free(res->next_token);
	res->next_token = NULL;
}

void
ec2_result_free(struct ec2_result *res)
{
	if (res == NULL)
		return;
	ec2_result_clear(res);
	free(res->code);
	free(res->message);
	free(res->request_id);
	free(res->error_line);
	free(res);
}

void
ec2_result_set_error(struct ec2_result *res, enum ec2_status st,
    const char *code, const char *fmt, ...)
{
	va_list ap;
	char *ncode, *nmsg = NULL;

	/*
	 * Build the new strings before freeing the old ones: callers pass
	 * the result's own code or message ("the last error was ...").
	 */
	ncode = code != NULL ? strdup(code) : NULL;
	if (fmt != NULL) {
		va_start(ap, fmt);
		if (vasprintf(&nmsg, fmt, ap) == -1)
			nmsg = NULL;
		va_end(ap);
	}
	res->status = st;
	free(res->code);
	res->code = ncode;
	free(res->message);
	res->message = nmsg;
}

void
ec2_result_finish(struct ec2_result *res)
{
	char *line = NULL;
	int n;

	free(res->error_line);
	res->error_line = NULL;
	if (res->status == EC2_OK || res->status == EC2_DRY_RUN_OK)
		n = asprintf(&line, "%s: %s", ec2_action_str(res->action),
		    ec2_status_str(res->status));
	else
		n = asprintf(&line, "%s: %s%s%s: %s (HTTP %ld, request id "
		    "%s, %u attempt%s)", ec2_action_str(res->action),
		    ec2_status_str(res->status), res->code ? " " : "",
		    res->code ? res->code : "",
		    res->message ? res->message : "no message",
		    res->http_status,
		    res->request_id ? res->request_id : "none",
		    res->attempts, res->attempts == 1 ? "" : "s");
	if (n != -1)
		res->error_line = line;
}

/* --- accessors ----------------------------------------------------- */

enum ec2_action
ec2_result_action(const struct ec2_result *res)
{
	return res->action;
}

enum ec2_status
ec2_result_status(const struct ec2_result *res)
{
	return res->status;
}

const char *
ec2_result_code(const struct ec2_result *res)
{
	return res->code;
}

const char *
ec2_result_message(const struct ec2_result *res)
{
	return res->message;
}

const char *
ec2_result_request_id(const struct ec2_result *res)
{
	return res->request_id;
}

long
ec2_result_http_status(const struct ec2_result *res)
{
	return res->http_status;
}

unsigned int
ec2_result_attempts(const struct ec2_result *res)
{
	return res->attempts;
}

int
ec2_result_retryable(const struct ec2_result *res)
{
	return res->retryable;
}

const char *
ec2_result_error(const struct ec2_result *res)
{
	return res->error_line ? res->error_line :
	    ec2_status_str(res->status);
}

#define ACCESSOR(fn, type, field)				\
size_t								\
fn(const struct ec2_result *res, const type **out)		\
{								\
	*out = res->field;					\
	return res->n##field;					\
}

ACCESSOR(ec2_result_instances, struct ec2_instance, instances)
ACCESSOR(ec2_result_instance_statuses, struct ec2_instance_status, statuses)
ACCESSOR(ec2_result_volumes, struct ec2_volume, volumes)
ACCESSOR(ec2_result_addresses, struct ec2_address, addresses)
ACCESSOR(ec2_result_snapshots, struct ec2_snapshot, snapshots)
ACCESSOR(ec2_result_images, struct ec2_image, images)
ACCESSOR(ec2_result_zones, struct ec2_zone, zones)
ACCESSOR(ec2_result_state_changes, struct ec2_state_change, changes)

const struct ec2_attachment *
ec2_result_attachment(const struct ec2_result *res)
{
	return res->has_attachment ? &res->attachment : NULL;
}

const char *
ec2_result_id(const struct ec2_result *res)
{
	return res->id;
}

const char *
ec2_result_console_output(const struct ec2_result *res)
{
	return res->console;
}

/* --- XML helpers --------------------------------------------------- */

struct pctx {
	struct ec2_result	*res;
	int			 oom;
};

static int
is_el(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE &&
	    strcmp((const char *)n->name, name) == 0;
}

static xmlNode *
child(xmlNode *n, const char *name)
{
	xmlNode *c;

	if (n == NULL)
		return NULL;
	for (c = n->children; c != NULL; c = c->next)
		if (is_el(c, name))
			return c;
	return NULL;
}

/* "a/b/c": nested children by name. */
static xmlNode *
path(xmlNode *n, const char *p)
{
	char name[64];
	const char *slash;
	size_t len;

	while (n != NULL && *p != '\0') {
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (len >= sizeof(name))
			return NULL;
		memcpy(name, p, len);
		name[len] = '\0';
		n = child(n, name);
		p += len + (slash ? 1 : 0);
	}
	return n;
}

static const char *
pdup(struct pctx *pc, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d;

	d = pool_alloc(pc->res, n);
	if (d == NULL) {
		pc->oom = 1;
		return NULL;
	}
	memcpy(d, s, n);
	return d;
}

/* The text of the element at p under n, in the pool; NULL if absent. */
static const char *
text(struct pctx *pc, xmlNode *n, const char *p)
{
	xmlChar *c;
	const char *s;

	n = path(n, p);
	if (n == NULL)
		return NULL;
	c = xmlNodeGetContent(n);
	if (c == NULL)
		return NULL;
	s = pdup(pc, (const char *)c);
	xmlFree(c);
	return s;
}

static int
text_int(struct pctx *pc, xmlNode *n, const char *p)
{
	const char *s = text(pc, n, p);

	return s != NULL ? atoi(s) : 0;
}

static int
text_bool(struct pctx *pc, xmlNode *n, const char *p)
{
	const char *s = text(pc, n, p);

	return s != NULL && strcmp(s, "true") == 0;
}

/* Counts the <item> children of the element at p under n. */
static size_t
count_items(xmlNode *n, const char *p, xmlNode **set)
{
	xmlNode *c;
	size_t k = 0;

	*set = path(n, p);
	if (*set == NULL)
		return 0;
	for (c = (*set)->children; c != NULL; c = c->next)
		if (is_el(c, "item"))
			k++;
	return k;
}

#define FOREACH_ITEM(it, set)						\
	for ((it) = (set) ? (set)->children : NULL; (it) != NULL;	\
	    (it) = (it)->next)						\
		if (is_el((it), "item"))

/* Appends a zeroed element to a result array, or NULL. */
static void *
grow(struct pctx *pc, void **arr, size_t *n, size_t *cap, size_t size)
{
	size_t ncap;
	void *p;

	if (*n == *cap) {
		ncap = *cap ? *cap * 2 : 8;
		p = realloc(*arr, ncap * size);
		if (p == NULL) {
			pc->oom = 1;
			return NULL;
		}
		*arr = p;
		*cap = ncap;
	}
	p = (char *)*arr + *n * size;
	memset(p, 0, size);
	(*n)++;
	return p;
}

#define GROW(pc, f)							\
	grow((pc), (void **)&(pc)->res->f, &(pc)->res->n##f,		\
	    &(pc)->res->cap_##f, sizeof(*(pc)->res->f))

/* Allocates an array for the items of a set, in the pool. */
static void *
items_alloc(struct pctx *pc, size_t n, size_t size)
{
	void *p;

	if (n == 0)
		return NULL;
	p = pool_alloc(pc->res, n * size);
	if (p == NULL)
		pc->oom = 1;
	return p;
}

static void
parse_tags(struct pctx *pc, xmlNode *n, struct ec2_tag **tags, size_t *nt)
{
	xmlNode *set, *it;
	size_t k;

	k = count_items(n, "tagSet", &set);
	*tags = items_alloc(pc, k, sizeof(**tags));
	*nt = 0;
	if (*tags == NULL)
		return;
	FOREACH_ITEM(it, set) {
		(*tags)[*nt].key = text(pc, it, "key");
		(*tags)[*nt].value = text(pc, it, "value");
		(*nt)++;
	}
}

/* Instances hold ebs/volumeId; images hold ebs/snapshotId. */
static void
parse_bdm(struct pctx *pc, xmlNode *n, struct ec2_block_device **bdm,
    size_t *nb, const char *idfield)
{
	xmlNode *set, *it, *ebs;
	size_t k;

	k = count_items(n, "blockDeviceMapping", &set);
	*bdm = items_alloc(pc, k, sizeof(**bdm));
	*nb = 0;
	if (*bdm == NULL)
		return;
	FOREACH_ITEM(it, set) {
		ebs = child(it, "ebs");
		(*bdm)[*nb].device_name = text(pc, it, "deviceName");
		(*bdm)[*nb].volume_id = text(pc, ebs, idfield);
		(*bdm)[*nb].status = text(pc, ebs, "status");
		(*bdm)[*nb].delete_on_termination = text_bool(pc, ebs,
		    "deleteOnTermination");
		(*nb)++;
	}
}

static void
parse_instance(struct pctx *pc, xmlNode *it)
{
	struct ec2_instance *in;

	in = GROW(pc, instances);
	if (in == NULL)
		return;
	in->instance_id = text(pc, it, "instanceId");
	in->state = text(pc, it, "instanceState/name");
	in->state_code = text_int(pc, it, "instanceState/code");
	in->az = text(pc, it, "placement/availabilityZone");
	in->subnet_id = text(pc, it, "subnetId");
	in->vpc_id = text(pc, it, "vpcId");
	in->private_ip = text(pc, it, "privateIpAddress");
	in->public_ip = text(pc, it, "ipAddress");
	in->image_id = text(pc, it, "imageId");
	in->instance_type = text(pc, it, "instanceType");
	in->key_name = text(pc, it, "keyName");
	in->launch_time = text(pc, it, "launchTime");
	in->root_device_name = text(pc, it, "rootDeviceName");
	parse_tags(pc, it, &in->tags, &in->ntags);
	parse_bdm(pc, it, &in->bdm, &in->nbdm, "volumeId");
}

static void
parse_attachment(struct pctx *pc, xmlNode *n, struct ec2_attachment *a)
{
	a->volume_id = text(pc, n, "volumeId");
	a->instance_id = text(pc, n, "instanceId");
	a->device = text(pc, n, "device");
	a->state = text(pc, n, "status");
	a->delete_on_termination = text_bool(pc, n, "deleteOnTermination");
}

static void
parse_volume(struct pctx *pc, xmlNode *it)
{
	struct ec2_volume *v;
	xmlNode *set, *a;
	size_t k;

	v = GROW(pc, volumes);
	if (v == NULL)
		return;
	v->volume_id = text(pc, it, "volumeId");
	v->state = text(pc, it, "status");
	v->az = text(pc, it, "availabilityZone");
	v->snapshot_id = text(pc, it, "snapshotId");
	v->volume_type = text(pc, it, "volumeType");
	v->create_time = text(pc, it, "createTime");
	v->size_gib = text_int(pc, it, "size");
	v->iops = text_int(pc, it, "iops");
	v->throughput = text_int(pc, it, "throughput");
	parse_tags(pc, it, &v->tags, &v->ntags);
	k = count_items(it, "attachmentSet", &set);
	v->attachments = items_alloc(pc, k, sizeof(*v->attachments));
	if (v->attachments == NULL)
		return;
	FOREACH_ITEM(a, set)
		parse_attachment(pc, a, &v->attachments[v->nattachments++]);
}

static void
parse_address(struct pctx *pc, xmlNode *it)
{
	struct ec2_address *a;

	a = GROW(pc, addresses);
	if (a == NULL)
		return;
	a->public_ip = text(pc, it, "publicIp");
	a->allocation_id = text(pc, it, "allocationId");
	a->association_id = text(pc, it, "associationId");
	a->instance_id = text(pc, it, "instanceId");
	a->network_interface_id = text(pc, it, "networkInterfaceId");
	a->private_ip = text(pc, it, "privateIpAddress");
	a->domain = text(pc, it, "domain");
	parse_tags(pc, it, &a->tags, &a->ntags);
}

static void
parse_snapshot(struct pctx *pc, xmlNode *it)
{
	struct ec2_snapshot *s;

	s = GROW(pc, snapshots);
	if (s == NULL)
		return;
	s->snapshot_id = text(pc, it, "snapshotId");
	s->volume_id = text(pc, it, "volumeId");
	s->state = text(pc, it, "status");
	s->progress = text(pc, it, "progress");
	s->start_time = text(pc, it, "startTime");
	s->description = text(pc, it, "description");
	s->volume_size = text_int(pc, it, "volumeSize");
	parse_tags(pc, it, &s->tags, &s->ntags);
}

static void
parse_image(struct pctx *pc, xmlNode *it)
{
	struct ec2_image *im;

	im = GROW(pc, images);
	if (im == NULL)
		return;
	im->image_id = text(pc, it, "imageId");
	im->name = text(pc, it, "name");
	im->state = text(pc, it, "imageState");
	im->creation_date = text(pc, it, "creationDate");
	im->description = text(pc, it, "description");
	im->root_device_name = text(pc, it, "rootDeviceName");
	parse_bdm(pc, it, &im->bdm, &im->nbdm, "snapshotId");
	parse_tags(pc, it, &im->tags, &im->ntags);
}

static void
parse_status(struct pctx *pc, xmlNode *it)
{
	struct ec2_instance_status *s;

	s = GROW(pc, statuses);
	if (s == NULL)
		return;
	s->instance_id = text(pc, it, "instanceId");
	s->az = text(pc, it, "availabilityZone");
	s->state = text(pc, it, "instanceState/name");
	s->instance_status = text(pc, it, "instanceStatus/status");
	s->system_status = text(pc, it, "systemStatus/status");
}

static void
parse_zone(struct pctx *pc, xmlNode *it)
{
	struct ec2_zone *z;

	z = GROW(pc, zones);
	if (z == NULL)
		return;
	z->zone_name = text(pc, it, "zoneName");
	z->zone_id = text(pc, it, "zoneId");
	z->state = text(pc, it, "zoneState");
	z->region = text(pc, it, "regionName");
}

static void
parse_change(struct pctx *pc, xmlNode *it)
{
	struct ec2_state_change *s;

	s = GROW(pc, changes);
	if (s == NULL)
		return;
	s->instance_id = text(pc, it, "instanceId");
	s->current_state = text(pc, it, "currentState/name");
	s->previous_state = text(pc, it, "previousState/name");
}

static void
each_item(struct pctx *pc, xmlNode *n, const char *p,
    void (*fn)(struct pctx *, xmlNode *))
{
	xmlNode *set, *it;

	set = path(n, p);
	FOREACH_ITEM(it, set)
		fn(pc, it);
}

/* Base64 console output; EC2 may wrap it, so whitespace is dropped. */
static int
decode_console(struct ec2_result *res, const char *b64)
{
	char *clean, *out;
	size_t n = 0, i, pad = 0;
	int len;

	clean = malloc(strlen(b64) + 1);
	if (clean == NULL)
		return -1;
	for (i = 0; b64[i] != '\0'; i++)
		if (!isspace((unsigned char)b64[i]))
			clean[n++] = b64[i];
	clean[n] = '\0';
	if (n % 4 != 0) {
		free(clean);
		return -2;
	}
	out = malloc(n / 4 * 3 + 1);
	if (out == NULL) {
		free(clean);
		return -1;
	}
	len = n ? EVP_DecodeBlock((unsigned char *)out,
	    (const unsigned char *)clean, (int)n) : 0;
	if (len < 0) {
		free(clean);
		free(out);
		return -2;
	}
	/* EVP_DecodeBlock counts the padding as output bytes. */
	while (n > 0 && pad < 2 && clean[n - 1 - pad] == '=')
		pad++;
	len -= (int)pad;
	out[len] = '\0';
	free(clean);
	res->console = out;
	return 0;
}

/*
 * EC2 answers these with <return>true</return>; the API model declares
 * no output, so an absent element is accepted, but "false" is a failure.
 */
static void
parse_return(struct pctx *pc, xmlNode *root)
{
	const char *r = text(pc, root, "return");

	if (r != NULL && strcmp(r, "true") != 0)
		ec2_result_set_error(pc->res, EC2_ERR_AWS, NULL,
		    "the reply says <return>%s</return>", r);
}

static void
parse_success(struct pctx *pc, xmlNode *root)
{
	struct ec2_result *res = pc->res;
	const char *s;
	int r;

	switch (res->action) {
	case EC2_RUN_INSTANCES:
		res->id = text(pc, root, "reservationId");
		each_item(pc, root, "instancesSet", parse_instance);
		break;
	case EC2_DESCRIBE_INSTANCES: {
		xmlNode *set, *it;

		set = child(root, "reservationSet");
		FOREACH_ITEM(it, set)
			each_item(pc, it, "instancesSet", parse_instance);
		break;
	}
	case EC2_DESCRIBE_INSTANCE_STATUS:
		each_item(pc, root, "instanceStatusSet", parse_status);
		break;
	case EC2_DESCRIBE_VOLUMES:
		each_item(pc, root, "volumeSet", parse_volume);
		break;
	case EC2_CREATE_VOLUME:
		parse_volume(pc, root);
		res->id = text(pc, root, "volumeId");
		break;
	case EC2_DESCRIBE_ADDRESSES:
		each_item(pc, root, "addressesSet", parse_address);
		break;
	case EC2_DESCRIBE_SNAPSHOTS:
		each_item(pc, root, "snapshotSet", parse_snapshot);
		break;
	case EC2_CREATE_SNAPSHOT:
		parse_snapshot(pc, root);
		res->id = text(pc, root, "snapshotId");
		break;
	case EC2_DESCRIBE_IMAGES:
		each_item(pc, root, "imagesSet", parse_image);
		break;
	case EC2_CREATE_IMAGE:
		res->id = text(pc, root, "imageId");
		break;
	case EC2_DESCRIBE_AVAILABILITY_ZONES:
		each_item(pc, root, "availabilityZoneInfo", parse_zone);
		break;
	case EC2_START_INSTANCES:
	case EC2_STOP_INSTANCES:
	case EC2_TERMINATE_INSTANCES:
		each_item(pc, root, "instancesSet", parse_change);
		break;
	case EC2_ATTACH_VOLUME:
	case EC2_DETACH_VOLUME:
		parse_attachment(pc, root, &res->attachment);
		res->has_attachment = 1;
		break;
	case EC2_ASSOCIATE_ADDRESS:
		res->id = text(pc, root, "associationId");
		parse_return(pc, root);
		break;
	case EC2_DELETE_SNAPSHOT:
	case EC2_DISASSOCIATE_ADDRESS:
	case EC2_DEREGISTER_IMAGE:
	case EC2_CREATE_TAGS:
		parse_return(pc, root);
		break;
	case EC2_GET_CONSOLE_OUTPUT:
		s = text(pc, root, "output");
		if (s == NULL || *s == '\0')
			break;
		r = decode_console(res, s);
		if (r == -1)
			pc->oom = 1;
		else if (r == -2)
			ec2_result_set_error(res, EC2_ERR_REPLY, NULL,
			    "console output is not valid base64");
		break;
	default:
		break;
	}
	free(res->next_token);
	res->next_token = NULL;
	s = text(pc, root, "nextToken");
	if (s != NULL && *s != '\0')
		res->next_token = strdup(s);
}

/*
 * <Response><Errors><Error><Code/><Message/></Error></Errors>
 * <RequestID/></Response>
 */
static void
parse_error_doc(struct pctx *pc, xmlNode *root, long http_status)
{
	struct ec2_result *res = pc->res;
	xmlNode *err;
	const char *code, *msg;

	err = path(root, "Errors/Error");
	code = text(pc, err, "Code");
	msg = text(pc, err, "Message");
	if (code == NULL) {
		ec2_result_set_error(res, EC2_ERR_REPLY, NULL,
		    "error document without Errors/Error/Code "
		    "(HTTP %ld)", http_status);
		return;
	}
	if (strcmp(code, "DryRunOperation") == 0) {
		ec2_result_set_error(res, EC2_DRY_RUN_OK, code, "%s",
		    msg ? msg : "");
		return;
	}
	ec2_result_set_error(res, EC2_ERR_AWS, code, "%s",
	    msg ? msg : "(no message)");
}

static void
set_request_id(struct ec2_result *res, struct pctx *pc, xmlNode *root)
{
	const char *rid;

	rid = text(pc, root, "requestId");
	if (rid == NULL)
		rid = text(pc, root, "RequestID");
	if (rid == NULL)
		rid = text(pc, root, "RequestId");
	if (rid != NULL) {
		free(res->request_id);
		res->request_id = strdup(rid);
	}
}

void
ec2_result_parse_into(struct ec2_result *res, const char *body,
    size_t len, long http_status)
{
	struct pctx pc = { res, 0 };
	char want[64];
	xmlDoc *doc;
	xmlNode *root;
	const xmlError *xe;

	res->http_status = http_status;
	if (len == 0 || len > INT32_MAX) {
		ec2_result_set_error(res, http_status >= 400 ? EC2_ERR_AWS :
		    EC2_ERR_REPLY, NULL, "empty reply body (HTTP %ld)",
		    http_status);
		return;
	}
	xmlResetLastError();
	doc = xmlReadMemory(body, (int)len, "reply.xml", NULL,
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL) {
		xe = xmlGetLastError();
		ec2_result_set_error(res, http_status >= 400 ? EC2_ERR_AWS :
		    EC2_ERR_REPLY, NULL, "reply is not XML (HTTP %ld, %zu "
		    "bytes): line %d: %s", http_status, len,
		    xe ? xe->line : 0, xe && xe->message ? xe->message :
		    "parse error");
		/* libxml2's message ends in a newline; a log line does not. */
		if (res->message != NULL)
			res->message[strcspn(res->message, "\n")] = '\0';
		return;
	}
	root = xmlDocGetRootElement(doc);
	snprintf(want, sizeof(want), "%sResponse",
	    ec2_action_str(res->action));
	if (root == NULL) {
		ec2_result_set_error(res, EC2_ERR_REPLY, NULL,
		    "reply has no root element");
	} else if (is_el(root, "Response") || child(root, "Errors")) {
		set_request_id(res, &pc, root);
		parse_error_doc(&pc, root, http_status);
	} else if (!is_el(root, want)) {
		ec2_result_set_error(res, EC2_ERR_REPLY, NULL,
		    "unexpected reply <%s>, wanted <%s> (HTTP %ld)",
		    (const char *)root->name, want, http_status);
	} else if (http_status != 200) {
		set_request_id(res, &pc, root);
		ec2_result_set_error(res, EC2_ERR_AWS, NULL,
		    "<%s> with HTTP %ld", want, http_status);
	} else {
		set_request_id(res, &pc, root);
		res->status = EC2_OK;
		parse_success(&pc, root);
	}
	xmlFreeDoc(doc);
	if (pc.oom)
		ec2_result_set_error(res, EC2_ERR_INTERNAL, NULL,
		    "out of memory reading the reply");
}

struct ec2_result *
ec2_result_parse(enum ec2_action action, const char *body, size_t len,
    long http_status)
{
	struct ec2_result *res;

	res = ec2_result_new(action);
	if (res == NULL)
		return NULL;
	res->attempts = 1;
	ec2_result_parse_into(res, body, len, http_status);
	ec2_result_finish(res);
	return res;
}
