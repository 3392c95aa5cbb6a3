/*
 * Preflight (preflight.h): reads first, because the dry runs need what
 * they learn (the instance the EIP points at, the volumes' AZ and
 * attachments), then every dry run at once. A check is added to the
 * run when its call is sent and filled in when the answer comes, so the
 * report lists them in a fixed order.
 *
 * At most PREFLIGHT_CONCURRENT preflights have calls out at once; the
 * others wait in the daemon's line of preflights (preflight_line_new),
 * holding nothing but their ticket, and build their calls when their
 * turn comes. At start the
 * daemon begins one for every service: with 10,000 services every one
 * of them built and queued its EC2 calls at once (tens of MB waiting
 * behind the EC2 client's call budget, which paces them anyway), and a
 * failover's own calls waited behind all of them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "failoverd/admission.h"
#include "failoverd/alert.h"
#include "failoverd/launch.h"
#include "failoverd/log.h"
#include "failoverd/preflight.h"
#include "failoverd/service.h"
#include "failoverd/snapshot.h"

#define PREFLIGHT_DEADLINE	60.0
#define PREFLIGHT_CONCURRENT	4

enum pf_kind {
	PF_EIP,
	PF_VOLUMES,
	PF_IMAGE,
	PF_DRY
};

struct pf_check {
	char			*name;		/* "StopInstances i-..." */
	char			*action;	/* for the denied list */
	enum preflight_result	 result;
	char			*detail;
	int			 done;
};

struct pf_call {
	struct preflight	*p;
	enum pf_kind		 kind;
	size_t			 check;		/* first check it fills */
	size_t			 vol;		/* AttachVolume's volume */
	int			 subnet_check;	/* RunInstances: index + 1 */
	struct ec2_call		*call;
	struct pf_call		*next;
};

struct pf_vol {
	char	*id;
	char	*device;
	char	*az;
	char	*attached_to;
	int	 found;
};

struct pf_run {
	struct pf_check		*checks;
	size_t			 nchecks;
	time_t			 finished;
	char			*ami;
};

struct preflight {
	struct preflight_env	 env;
	struct service		*svc;
	char			*name;

	int			 running;
	struct admission_ticket	 line;		/* env.line's */
	size_t			 pending;
	struct pf_call		*calls;
	struct pf_run		 cur;
	struct pf_run		 last;

	/* Learned by the reads. */
	char			*instance;
	char			*eip_ip;
	char			*az;
	struct pf_vol		*vols;
	size_t			 nvols;
	char			*subnet;	/* the launch's; NULL: none */
};


static const char *const preflight_result_names[] = {
	[PREFLIGHT_OK] = "OK",
	[PREFLIGHT_DENIED] = "DENIED",
	[PREFLIGHT_INVALID] = "INVALID"
};

const char *
preflight_result_str(enum preflight_result r)
{
	if ((size_t)r >= sizeof(preflight_result_names) /
	    sizeof(preflight_result_names[0]))
		return "INVALID";
	return preflight_result_names[r];
}

enum preflight_result
preflight_classify(int dry_run, enum ec2_status st, const char *code)
{
	if (st == EC2_DRY_RUN_OK)
		return dry_run ? PREFLIGHT_OK : PREFLIGHT_INVALID;
	if (st == EC2_OK)
		return dry_run ? PREFLIGHT_INVALID : PREFLIGHT_OK;
	if (st == EC2_ERR_AWS && code != NULL &&
	    (strcmp(code, "UnauthorizedOperation") == 0 ||
	    strcmp(code, "Client.UnauthorizedOperation") == 0 ||
	    strcmp(code, "AccessDenied") == 0 ||
	    strcmp(code, "AccessDeniedException") == 0))
		return PREFLIGHT_DENIED;
	return PREFLIGHT_INVALID;
}

/* --- the checks of a run -------------------------------------------- */

static void
pf_run_clear(struct pf_run *r)
{
	size_t i;

	for (i = 0; i < r->nchecks; i++) {
		free(r->checks[i].name);
		free(r->checks[i].action);
		free(r->checks[i].detail);
	}
	free(r->checks);
	free(r->ami);
	memset(r, 0, sizeof(*r));
}

static size_t
pf_add(struct preflight *p, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds a check; out of memory leaves it out and returns (size_t)-1. */
static size_t
pf_add(struct preflight *p, const char *action, const char *fmt, ...)
{
	struct pf_check	*grown, *c;
	va_list		 ap;
	int		 rc;

	grown = realloc(p->cur.checks, (p->cur.nchecks + 1) *
	    sizeof(*grown));
	if (grown == NULL)
		return (size_t)-1;
	p->cur.checks = grown;
	c = &grown[p->cur.nchecks];
	memset(c, 0, sizeof(*c));
	va_start(ap, fmt);
	rc = vasprintf(&c->name, fmt, ap);
	va_end(ap);
	if (rc == -1)
		return (size_t)-1;
	c->action = strdup(action != NULL ? action : "");
	if (c->action == NULL) {
		free(c->name);
		return (size_t)-1;
	}
	c->result = PREFLIGHT_INVALID;
	return p->cur.nchecks++;
}

static void
pf_set(struct preflight *p, size_t i, enum preflight_result r,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
pf_set(struct preflight *p, size_t i, enum preflight_result r,
    const char *fmt, ...)
{
	struct pf_check	*c;
	va_list		 ap;

	if (i >= p->cur.nchecks)
		return;
	c = &p->cur.checks[i];
	free(c->detail);
	c->detail = NULL;
	va_start(ap, fmt);
	if (vasprintf(&c->detail, fmt, ap) == -1)
		c->detail = NULL;
	va_end(ap);
	c->result = r;
	c->done = 1;
}

/* AWS's own words for a failed answer. */
static const char *
pf_why(const struct ec2_result *res)
{
	const char *m = ec2_result_message(res);

	if (m != NULL && m[0] != '\0')
		return m;
	return ec2_result_error(res);
}

static void
pf_set_from(struct preflight *p, size_t i, int dry,
    const struct ec2_result *res, const char *ok_detail)
{
	enum preflight_result r;

	r = preflight_classify(dry, ec2_result_status(res),
	    ec2_result_code(res));
	if (r == PREFLIGHT_OK)
		pf_set(p, i, r, "%s", ok_detail);
	else if (r == PREFLIGHT_INVALID && ec2_result_status(res) == EC2_OK)
		pf_set(p, i, r, "the call was not a dry run: it may have "
		    "changed something");
	else
		pf_set(p, i, r, "%s%s%s", ec2_result_code(res) != NULL ?
		    ec2_result_code(res) : "", ec2_result_code(res) != NULL ?
		    ": " : "", pf_why(res));
}

/* --- learned state -------------------------------------------------- */

static void
pf_forget(struct preflight *p)
{
	size_t i;

	for (i = 0; i < p->nvols; i++) {
		free(p->vols[i].id);
		free(p->vols[i].device);
		free(p->vols[i].az);
		free(p->vols[i].attached_to);
	}
	free(p->vols);
	p->vols = NULL;
	p->nvols = 0;
	free(p->instance);
	free(p->eip_ip);
	free(p->az);
	free(p->subnet);
	p->instance = p->eip_ip = p->az = p->subnet = NULL;
}

static const char *
pf_volume_id(const struct preflight *p, const char *conf_id)
{
	const char *id = NULL;

	if (p->env.volume_id != NULL)
		id = p->env.volume_id(p->env.arg, p->svc, conf_id);
	return id != NULL ? id : conf_id;
}

static void
pf_cancel_calls(struct preflight *p)
{
	struct pf_call *c, *next;

	for (c = p->calls; c != NULL; c = next) {
		next = c->next;
		ec2_call_cancel(c->call);
		free(c);
	}
	p->calls = NULL;
	p->pending = 0;
}

static void pf_on_answer(struct ec2_result *res, void *arg);

/* Sends req (taken whatever happens); 0, or -1 when out of memory. */
static int
pf_send(struct preflight *p, struct ec2_request *req, enum pf_kind kind,
    size_t check, size_t vol, int dry)
{
	struct pf_call *c;

	if (req == NULL)
		return -1;
	if (dry)
		ec2_request_set_dry_run(req, 1);
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		ec2_request_free(req);
		return -1;
	}
	c->p = p;
	c->kind = kind;
	c->check = check;
	c->vol = vol;
	c->call = ec2_call(p->env.ec2, req, PREFLIGHT_DEADLINE, pf_on_answer,
	    c);
	if (c->call == NULL) {
		free(c);
		return -1;
	}
	c->next = p->calls;
	p->calls = c;
	p->pending++;
	return 0;
}

static void
pf_unlink(struct preflight *p, struct pf_call *c)
{
	struct pf_call **pp;

	for (pp = &p->calls; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	p->pending--;
}

/* --- the line of preflights ------------------------------------------ */

static int	pf_reads(struct preflight *p);

/* Sends the reads of a run; -1 (run dropped) when out of memory. */
static int
pf_begin(struct preflight *p)
{
	const char *subnet = service_conf(p->svc)->launch.subnet;

	if (p->env.subnet != NULL)
		subnet = p->env.subnet(p->env.arg, p->svc);
	if (subnet != NULL)
		p->subnet = strdup(subnet);
	if ((subnet != NULL && p->subnet == NULL) || pf_reads(p) == -1) {
		pf_cancel_calls(p);
		pf_run_clear(&p->cur);
		pf_forget(p);
		p->running = 0;
		admission_leave(p->env.line, &p->line);
		return -1;
	}
	return 0;
}

/* A waiting run's turn came: its place in the line is its. */
static void
pf_on_turn(void *arg)
{
	struct preflight *p = arg;

	if (pf_begin(p) == -1)
		log_warnx("preflight %s: out of memory, not run", p->name);
}

struct admission *
preflight_line_new(struct ev_loop *loop)
{
	return admission_new(loop, PREFLIGHT_CONCURRENT);
}

/* --- the end of a run ----------------------------------------------- */

static void
pf_finish(struct preflight *p)
{
	struct buf	 failed, denied;
	size_t		 i, nfail = 0;
	char		 count[32];
	const char	*a;

	buf_init(&failed);
	buf_init(&denied);
	for (i = 0; i < p->cur.nchecks; i++) {
		if (!p->cur.checks[i].done)
			pf_set(p, i, PREFLIGHT_INVALID, "not checked: an "
			    "earlier check failed");
		if (p->cur.checks[i].result == PREFLIGHT_OK)
			continue;
		nfail++;
		buf_printf(&failed, "%s%s", failed.len > 0 ? "," : "",
		    p->cur.checks[i].name);
		a = p->cur.checks[i].action;
		if (p->cur.checks[i].result == PREFLIGHT_DENIED &&
		    a[0] != '\0' && strstr(buf_str(&denied), a) == NULL)
			buf_printf(&denied, "%s%s", denied.len > 0 ? "," : "",
			    a);
	}
	p->cur.finished = time(NULL);
	pf_run_clear(&p->last);
	p->last = p->cur;
	memset(&p->cur, 0, sizeof(p->cur));
	p->running = 0;
	for (i = 0; i < p->last.nchecks; i++)
		log_info("preflight %s: %-7s %s: %s", p->name,
		    preflight_result_str(p->last.checks[i].result),
		    p->last.checks[i].name, p->last.checks[i].detail != NULL ?
		    p->last.checks[i].detail : "");
	snprintf(count, sizeof(count), "%zu/%zu", nfail, p->last.nchecks);
	if (nfail > 0)
		alert_emit(ALERT_PREFLIGHT_FAILED, p->name, "failed_checks",
		    count, "denied", denied.len > 0 ? buf_str(&denied) : "-",
		    "failed", buf_str(&failed), "action", "a failover would "
		    "not work: fix the permissions or the configuration",
		    NULL);
	else {
		snprintf(count, sizeof(count), "%zu", p->last.nchecks);
		alert_emit(ALERT_PREFLIGHT_PASSED, p->name, "checks", count,
		    NULL);
	}
	buf_free(&failed);
	buf_free(&denied);
	pf_forget(p);
	/* The next in line begins, from the loop. */
	admission_leave(p->env.line, &p->line);
}

/* --- phase 2: the dry runs ------------------------------------------ */

static struct ec2_request *
pf_run_instances(struct preflight *p)
{
	/* Exactly the failover engine's launch, with a stand-in id. */
	return launch_request_new(service_conf(p->svc), p->cur.ami,
	    p->subnet, p->az, NULL, "preflight");
}

static struct ec2_request *
pf_req(enum ec2_action a, ...)
{
	struct ec2_request	*req;
	const char		*k, *v;
	va_list			 ap;
	int			 bad = 0;

	req = ec2_request_new(a);
	if (req == NULL)
		return NULL;
	va_start(ap, a);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		bad |= ec2_request_add(req, k, v);
	}
	va_end(ap);
	if (bad) {
		ec2_request_free(req);
		return NULL;
	}
	return req;
}

static void
pf_dry(struct preflight *p, struct ec2_request *req, size_t check,
    size_t vol)
{
	if (check == (size_t)-1) {
		ec2_request_free(req);
		return;
	}
	if (pf_send(p, req, PF_DRY, check, vol, 1) == -1)
		pf_set(p, check, PREFLIGHT_INVALID, "out of memory");
}

/* A check that cannot be sent because a read found nothing to use. */
static void
pf_skip(struct preflight *p, const char *action, const char *target,
    const char *why)
{
	size_t i;

	i = pf_add(p, action, "%s %s", action, target);
	if (i != (size_t)-1)
		pf_set(p, i, PREFLIGHT_INVALID, "not checked: %s", why);
}

static void
pf_snapshot_tags(struct preflight *p, struct pf_vol *v, struct ec2_tag *t)
{
	t[0].key = SNAPSHOT_TAG_SERVICE;
	t[0].value = p->name;
	t[1].key = SNAPSHOT_TAG_VOLUME;
	t[1].value = v->id;
	t[2].key = SNAPSHOT_TAG_DEVICE;
	t[2].value = v->device;
	t[3].key = SNAPSHOT_TAG_TAKEN_BY;
	t[3].value = SNAPSHOT_TAKEN_BY;
}

static void
pf_dry_runs(struct preflight *p)
{
	const struct service_conf	*sc = service_conf(p->svc);
	const char			*inst = p->instance;
	const char			*noinst = "the Elastic IP is not "
					    "associated with an instance";
	struct ec2_request		*req;
	struct ec2_tag			 tags[4];
	struct pf_call			*c;
	char				 name[160];
	size_t				 i, chk, sub;

	chk = pf_add(p, "RunInstances", "RunInstances %s", p->cur.ami);
	/* The RunInstances dry run is what checks it. */
	sub = pf_add(p, "RunInstances", "subnet %s",
	    p->subnet != NULL ? p->subnet : "(default of the AZ)");
	pf_dry(p, pf_run_instances(p), chk, 0);
	/* The answer fills the subnet line too. */
	for (c = p->calls; c != NULL; c = c->next)
		if (c->check == chk && c->kind == PF_DRY)
			c->subnet_check = (int)sub + 1;
	if (inst != NULL) {
		chk = pf_add(p, "StopInstances", "StopInstances %s", inst);
		pf_dry(p, pf_req(EC2_STOP_INSTANCES, "InstanceId.1", inst,
		    "Force", "true", NULL), chk, 0);
	} else
		pf_skip(p, "StopInstances", "-", noinst);
	for (i = 0; i < p->nvols; i++) {
		if (!p->vols[i].found)
			continue;
		if (p->vols[i].attached_to != NULL) {
			chk = pf_add(p, "DetachVolume", "DetachVolume %s",
			    p->vols[i].id);
			pf_dry(p, pf_req(EC2_DETACH_VOLUME, "VolumeId",
			    p->vols[i].id, "InstanceId",
			    p->vols[i].attached_to, NULL), chk, i);
		} else {
			chk = pf_add(p, "DetachVolume", "DetachVolume %s",
			    p->vols[i].id);
			pf_set(p, chk, PREFLIGHT_OK, "not attached now: "
			    "nothing to detach");
		}
		if (inst == NULL) {
			pf_skip(p, "AttachVolume", p->vols[i].id, noinst);
			continue;
		}
		chk = pf_add(p, "AttachVolume", "AttachVolume %s",
		    p->vols[i].id);
		pf_dry(p, pf_req(EC2_ATTACH_VOLUME, "VolumeId", p->vols[i].id,
		    "InstanceId", inst, "Device", p->vols[i].device, NULL),
		    chk, i);
	}
	if (inst != NULL) {
		chk = pf_add(p, "AssociateAddress", "AssociateAddress %s",
		    sc->eip_allocation_id);
		pf_dry(p, pf_req(EC2_ASSOCIATE_ADDRESS, "AllocationId",
		    sc->eip_allocation_id, "InstanceId", inst,
		    "AllowReassociation", "true", NULL), chk, 0);
	} else
		pf_skip(p, "AssociateAddress", sc->eip_allocation_id, noinst);
	for (i = 0; i < p->nvols; i++) {
		if (!p->vols[i].found)
			continue;
		chk = pf_add(p, "CreateSnapshot", "CreateSnapshot %s",
		    p->vols[i].id);
		req = pf_req(EC2_CREATE_SNAPSHOT, "VolumeId", p->vols[i].id,
		    NULL);
		pf_snapshot_tags(p, &p->vols[i], tags);
		if (req != NULL && ec2_request_add_tag_spec(req, "snapshot",
		    tags, 4) == -1) {
			ec2_request_free(req);
			req = NULL;
		}
		pf_dry(p, req, chk, i);
	}
	if (inst == NULL) {
		pf_skip(p, "CreateTags", "-", noinst);
		pf_skip(p, "CreateImage", "-", noinst);
		return;
	}
	chk = pf_add(p, "CreateTags", "CreateTags %s", inst);
	pf_dry(p, pf_req(EC2_CREATE_TAGS, "ResourceId.1", inst, "Tag.1.Key",
	    "failoverd:preflight", "Tag.1.Value", p->name, NULL), chk, 0);
	snprintf(name, sizeof(name), "failoverd-preflight-%s-%lld", p->name,
	    (long long)time(NULL));
	chk = pf_add(p, "CreateImage", "CreateImage %s", inst);
	req = pf_req(EC2_CREATE_IMAGE, "InstanceId", inst, "Name", name,
	    "NoReboot", "true", NULL);
	/* As bake asks: without the data volumes. */
	if (req != NULL && launch_no_data_devices(req, sc,
	    "BlockDeviceMapping") == -1) {
		ec2_request_free(req);
		req = NULL;
	}
	pf_dry(p, req, chk, 0);
}

/* --- answers -------------------------------------------------------- */

static void
pf_on_eip(struct preflight *p, struct pf_call *c, struct ec2_result *res)
{
	const struct ec2_address	*a;
	size_t				 n;

	if (ec2_result_status(res) != EC2_OK) {
		pf_set_from(p, c->check, 0, res, "");
		return;
	}
	n = ec2_result_addresses(res, &a);
	if (n == 0) {
		pf_set(p, c->check, PREFLIGHT_INVALID, "not found");
		return;
	}
	if (a->instance_id != NULL && a->instance_id[0] != '\0')
		p->instance = strdup(a->instance_id);
	if (a->public_ip != NULL)
		p->eip_ip = strdup(a->public_ip);
	pf_set(p, c->check, PREFLIGHT_OK, "%s, associated with %s",
	    a->public_ip != NULL ? a->public_ip : "?",
	    p->instance != NULL ? p->instance : "no instance");
}

static void
pf_on_volumes(struct preflight *p, struct pf_call *c, struct ec2_result *res)
{
	const struct ec2_volume	*v;
	size_t			 n, i, j;

	if (ec2_result_status(res) != EC2_OK) {
		for (i = 0; i < p->nvols; i++)
			pf_set_from(p, c->check + i, 0, res, "");
		return;
	}
	n = ec2_result_volumes(res, &v);
	for (i = 0; i < p->nvols; i++) {
		for (j = 0; j < n; j++)
			if (v[j].volume_id != NULL &&
			    strcmp(v[j].volume_id, p->vols[i].id) == 0)
				break;
		if (j == n) {
			pf_set(p, c->check + i, PREFLIGHT_INVALID,
			    "not found");
			continue;
		}
		p->vols[i].found = 1;
		p->vols[i].az = strdup(v[j].az != NULL ? v[j].az : "");
		if (v[j].nattachments > 0 &&
		    v[j].attachments[0].instance_id != NULL)
			p->vols[i].attached_to =
			    strdup(v[j].attachments[0].instance_id);
		if (p->az == NULL && p->vols[i].az != NULL)
			p->az = strdup(p->vols[i].az);
		if (p->az != NULL && p->vols[i].az != NULL &&
		    strcmp(p->az, p->vols[i].az) != 0)
			pf_set(p, c->check + i, PREFLIGHT_INVALID, "in %s, "
			    "the other volumes in %s: one instance cannot "
			    "attach both", p->vols[i].az, p->az);
		else
			pf_set(p, c->check + i, PREFLIGHT_OK, "%s, %s%s%s",
			    v[j].az != NULL ? v[j].az : "?",
			    v[j].state != NULL ? v[j].state : "?",
			    p->vols[i].attached_to != NULL ? " to " : "",
			    p->vols[i].attached_to != NULL ?
			    p->vols[i].attached_to : "");
	}
}

/*
 * An image made from production (CreateImage without NoDevice) maps its
 * data volumes: an instance launched from it as is gets stale copies at
 * the very devices the failover attaches the real volumes to. Every
 * launch of failoverd leaves those devices out (NoDevice), so this is
 * said, not failed; an image whose root device is a data device cannot
 * be fixed so (EC2 refuses NoDevice on the root).
 */
static void
pf_image_devices(struct preflight *p, size_t check,
    const struct ec2_image *im)
{
	const struct service_conf	*sc = service_conf(p->svc);
	struct buf			 b;
	size_t				 i, k;

	buf_init(&b);
	for (i = 0; i < sc->nvolumes; i++) {
		for (k = 0; k < im->nbdm; k++)
			if (im->bdm[k].device_name != NULL &&
			    strcmp(im->bdm[k].device_name,
			    sc->volumes[i].device) == 0)
				break;
		if (k == im->nbdm)
			continue;
		if (im->root_device_name != NULL && strcmp(
		    im->root_device_name, sc->volumes[i].device) == 0) {
			pf_set(p, check, PREFLIGHT_INVALID, "data device %s "
			    "is the image's root device: no launch can leave "
			    "it out", sc->volumes[i].device);
			buf_free(&b);
			return;
		}
		buf_printf(&b, "%s%s (%s)", b.len > 0 ? ", " : "",
		    sc->volumes[i].device, im->bdm[k].volume_id != NULL ?
		    im->bdm[k].volume_id : "no snapshot");
	}
	if (b.oom)
		pf_set(p, check, PREFLIGHT_INVALID, "out of memory");
	else if (b.len > 0) {
		log_warnx("preflight %s: image %s maps the data devices %s",
		    p->name, im->image_id, buf_str(&b));
		pf_set(p, check, PREFLIGHT_OK, "conflict: the image maps the "
		    "data devices %s (copies of the volumes it was made "
		    "with); each launch leaves them out (NoDevice); an "
		    "image baked by failoverd has none", buf_str(&b));
	} else
		pf_set(p, check, PREFLIGHT_OK, "no data device mapped");
	buf_free(&b);
}

static void
pf_on_image(struct preflight *p, struct pf_call *c, struct ec2_result *res)
{
	const struct ec2_image	*im;
	size_t			 n;

	if (ec2_result_status(res) != EC2_OK) {
		pf_set_from(p, c->check, 0, res, "");
		return;
	}
	n = ec2_result_images(res, &im);
	if (n > 0)
		pf_image_devices(p, c->check + 1, im);
	if (n == 0)
		pf_set(p, c->check, PREFLIGHT_INVALID, "not found");
	else if (im->state == NULL || strcmp(im->state, "available") != 0)
		pf_set(p, c->check, PREFLIGHT_INVALID, "%s is %s, not "
		    "available", im->image_id, im->state != NULL ? im->state :
		    "in no state");
	else
		pf_set(p, c->check, PREFLIGHT_OK, "%s, available",
		    im->name != NULL ? im->name : im->image_id);
}

static void
pf_on_dry(struct preflight *p, struct pf_call *c, struct ec2_result *res)
{
	const char	*code = ec2_result_code(res);
	size_t		 sub;

	/*
	 * AWS checks the permission first: a volume that is attached now
	 * (as it must be, to the production instance) answers
	 * IncorrectState or VolumeInUse only when the call was allowed.
	 */
	if (ec2_result_action(res) == EC2_ATTACH_VOLUME &&
	    ec2_result_status(res) == EC2_ERR_AWS && code != NULL &&
	    (strcmp(code, "IncorrectState") == 0 ||
	    strcmp(code, "VolumeInUse") == 0) &&
	    p->vols[c->vol].attached_to != NULL) {
		pf_set(p, c->check, PREFLIGHT_OK, "allowed (the volume is "
		    "attached to %s now, as expected)",
		    p->vols[c->vol].attached_to);
		return;
	}
	pf_set_from(p, c->check, 1, res, "dry run: would have succeeded");
	if (c->subnet_check == 0)
		return;
	sub = (size_t)c->subnet_check - 1;
	if (ec2_result_status(res) == EC2_DRY_RUN_OK)
		pf_set(p, sub, PREFLIGHT_OK, "launches in %s",
		    p->az != NULL ? p->az : "the default AZ");
	else if (code != NULL && strstr(pf_why(res), "vailability") != NULL)
		pf_set(p, sub, PREFLIGHT_INVALID, "%s", pf_why(res));
	else if (code != NULL && strncmp(code, "InvalidSubnet", 13) == 0)
		pf_set(p, sub, PREFLIGHT_INVALID, "%s: %s", code,
		    pf_why(res));
	else
		pf_set(p, sub, preflight_classify(1, ec2_result_status(res),
		    code), "not known: RunInstances answered %s",
		    code != NULL ? code : ec2_status_str(
		    ec2_result_status(res)));
}

static void
pf_on_answer(struct ec2_result *res, void *arg)
{
	struct pf_call		*c = arg;
	struct preflight	*p = c->p;
	enum pf_kind		 kind = c->kind;

	pf_unlink(p, c);
	switch (kind) {
	case PF_EIP:
		pf_on_eip(p, c, res);
		break;
	case PF_VOLUMES:
		pf_on_volumes(p, c, res);
		break;
	case PF_IMAGE:
		pf_on_image(p, c, res);
		break;
	case PF_DRY:
		pf_on_dry(p, c, res);
		break;
	}
	free(c);
	ec2_result_free(res);
	if (p->pending > 0)
		return;
	if (kind != PF_DRY) {
		pf_dry_runs(p);
		if (p->pending > 0)
			return;
	}
	pf_finish(p);
}

/* --- phase 1: the reads --------------------------------------------- */

static int
pf_reads(struct preflight *p)
{
	const struct service_conf	*sc = service_conf(p->svc);
	const struct launch_conf	*lc = &sc->launch;
	struct ec2_request		*req;
	const char			**ids;
	size_t				 i, chk, first = 0;

	chk = pf_add(p, "", "key pair");
	if (lc->key_name != NULL)
		pf_set(p, chk, PREFLIGHT_OK, "%s (RunInstances checks it)",
		    lc->key_name);
	else
		pf_set(p, chk, PREFLIGHT_INVALID, "launch.key_name is not "
		    "set: nobody could log in to the replacement");
	chk = pf_add(p, "", "instance profile");
	if (lc->iam_instance_profile != NULL)
		pf_set(p, chk, PREFLIGHT_OK, "%s (RunInstances checks it)",
		    lc->iam_instance_profile);
	else
		/* Optional (RunInstances' default is none): left out, it
		 * is not a failure. */
		pf_set(p, chk, PREFLIGHT_OK, "not configured (optional): "
		    "the replacement runs without a role, as production "
		    "may");

	chk = pf_add(p, "DescribeAddresses", "Elastic IP %s",
	    sc->eip_allocation_id);
	if (pf_send(p, pf_req(EC2_DESCRIBE_ADDRESSES, "AllocationId.1",
	    sc->eip_allocation_id, NULL), PF_EIP, chk, 0, 0) == -1)
		return -1;

	p->vols = calloc(sc->nvolumes > 0 ? sc->nvolumes : 1,
	    sizeof(*p->vols));
	if (p->vols == NULL)
		return -1;
	for (i = 0; i < sc->nvolumes; i++) {
		p->vols[i].id = strdup(pf_volume_id(p, sc->volumes[i].id));
		p->vols[i].device = strdup(sc->volumes[i].device);
		p->nvols = i + 1;
		if (p->vols[i].id == NULL || p->vols[i].device == NULL)
			return -1;
		chk = pf_add(p, "DescribeVolumes", "volume %s (%s)",
		    p->vols[i].id, sc->volumes[i].device);
		if (chk == (size_t)-1)
			return -1;
		if (i == 0)
			first = chk;
	}
	if (sc->nvolumes > 0) {
		ids = calloc(sc->nvolumes, sizeof(*ids));
		req = ec2_request_new(EC2_DESCRIBE_VOLUMES);
		for (i = 0; ids != NULL && i < sc->nvolumes; i++)
			ids[i] = p->vols[i].id;
		if (ids == NULL || req == NULL || ec2_request_add_list(req,
		    "VolumeId", ids, sc->nvolumes) == -1) {
			free(ids);
			ec2_request_free(req);
			return -1;
		}
		free(ids);
		if (pf_send(p, req, PF_VOLUMES, first, 0, 0) == -1)
			return -1;
	}

	chk = pf_add(p, "DescribeImages", "image %s", p->cur.ami);
	/* Filled by the same answer: chk + 1. */
	if (chk == (size_t)-1 || pf_add(p, "DescribeImages", "block devices "
	    "of %s", p->cur.ami) != chk + 1)
		return -1;
	return pf_send(p, pf_req(EC2_DESCRIBE_IMAGES, "ImageId.1", p->cur.ami,
	    NULL), PF_IMAGE, chk, 0, 0);
}

/* --- the public face ------------------------------------------------ */

struct preflight *
preflight_new(const struct preflight_env *env, struct service *svc)
{
	struct preflight *p;

	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->env = *env;
	p->svc = svc;
	admission_ticket_init(&p->line, pf_on_turn, p);
	p->name = strdup(service_name(svc));
	if (p->name == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

void
preflight_free(struct preflight *p)
{
	if (p == NULL)
		return;
	admission_cancel(p->env.line, &p->line);
	pf_cancel_calls(p);
	admission_leave(p->env.line, &p->line);
	pf_run_clear(&p->cur);
	pf_run_clear(&p->last);
	pf_forget(p);
	free(p->name);
	free(p);
}

int
preflight_running(const struct preflight *p)
{
	return p->running;
}

int
preflight_start(struct preflight *p, const char *ami, struct buf *out)
{
	const struct service_conf *sc = service_conf(p->svc);

	if (p->running) {
		buf_printf(out, "service %s: a preflight is in progress",
		    p->name);
		return -1;
	}
	if (p->env.ec2 == NULL) {
		buf_printf(out, "service %s: no preflight: the EC2 client is "
		    "not usable", p->name);
		alert_emit(ALERT_PREFLIGHT_FAILED, p->name, "failed",
		    "EC2 client", "action", "a failover would not work: the "
		    "EC2 client is not usable", NULL);
		return -1;
	}
	pf_run_clear(&p->cur);
	pf_forget(p);
	p->cur.ami = strdup(ami != NULL ? ami : sc->launch.ami);
	if (p->cur.ami == NULL)
		goto oom;
	p->running = 1;
	/* Else its calls are built when its turn comes (pf_on_turn). */
	if (admission_enter(p->env.line, &p->line) && pf_begin(p) == -1)
		goto oom;
	buf_printf(out, "preflight of service %s started (AMI %s); "
	    "`failoverctl preflight %s --result` shows it\n", p->name,
	    ami != NULL ? ami : sc->launch.ami, p->name);
	log_info("preflight %s: started", p->name);
	return 0;
oom:
	buf_printf(out, "service %s: preflight: out of memory", p->name);
	return -1;
}

int
preflight_report(const struct preflight *p, struct buf *out, int json)
{
	const struct pf_run	*r = &p->last;
	char			 when[32];
	struct tm		 tm;
	size_t			 i, nfail = 0;

	if (r->finished == 0) {
		buf_printf(out, "service %s: no preflight has finished yet%s",
		    p->name, p->running ? " (one is running)" : "");
		return -1;
	}
	for (i = 0; i < r->nchecks; i++)
		if (r->checks[i].result != PREFLIGHT_OK)
			nfail++;
	gmtime_r(&r->finished, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (json) {
		buf_puts(out, "{\"service\":");
		buf_json_str(out, p->name);
		buf_puts(out, ",\"finished\":");
		buf_json_str(out, when);
		buf_puts(out, ",\"ami\":");
		buf_json_str(out, r->ami);
		buf_printf(out, ",\"running\":%s,\"ok\":%s,\"checks\":[",
		    p->running ? "true" : "false", nfail == 0 ? "true" :
		    "false");
		for (i = 0; i < r->nchecks; i++) {
			buf_puts(out, i > 0 ? ",{\"check\":" :
			    "{\"check\":");
			buf_json_str(out, r->checks[i].name);
			buf_puts(out, ",\"action\":");
			buf_json_str(out, r->checks[i].action);
			buf_puts(out, ",\"result\":");
			buf_json_str(out,
			    preflight_result_str(r->checks[i].result));
			buf_puts(out, ",\"detail\":");
			buf_json_str(out, r->checks[i].detail != NULL ?
			    r->checks[i].detail : "");
			buf_puts(out, "}");
		}
		buf_puts(out, "]}\n");
		return 0;
	}
	buf_printf(out, "preflight of service %s at %s (AMI %s): %s\n",
	    p->name, when, r->ami, nfail == 0 ? "a failover would work" :
	    "A FAILOVER WOULD NOT WORK");
	for (i = 0; i < r->nchecks; i++)
		buf_printf(out, "  %-7s %s: %s\n",
		    preflight_result_str(r->checks[i].result),
		    r->checks[i].name, r->checks[i].detail != NULL ?
		    r->checks[i].detail : "");
	if (p->running)
		buf_puts(out, "(a newer preflight is running)\n");
	return 0;
}
