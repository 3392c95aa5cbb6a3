/*
 * Evacuation: a failover whose volumes' AZ is impaired. The launch
 * goes to an evacuation subnet; DETACH restores the newest completed
 * snapshot of each volume into a new volume in the AZ the launch landed
 * in; the new ids become the service's identity when it completes.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "failover_priv.h"

/* DETACH of an evacuation, where its replies still matter. */
static int
fo_evac_restoring(const struct failover *fo)
{
	return fo->step == FAILOVER_DETACH && fo->kind == KIND_EVACUATE;
}

/*
 * The volumes' AZ is impaired (DescribeAvailabilityZones, or no
 * capacity there after the retry budget): go on as an evacuation. The
 * fence goes on as it was; the launch starts again in the first
 * evacuation subnet (fo_move_turn: the evacuation's beginning).
 */
int
fo_evacuate_begin(struct failover *fo, const struct fo_move *m)
{
	const struct policy_conf	*p = fo_policy(fo);
	char				 subnets[512];
	size_t				 i, off = 0;
	int				 n;

	subnets[0] = '\0';
	for (i = 0; i < p->nevacuation_subnets; i++) {
		n = snprintf(subnets + off, sizeof(subnets) - off, "%s%s",
		    i ? "," : "", p->evacuation_subnets[i]);
		if (n < 0 || (size_t)n >= sizeof(subnets) - off)
			break;
		off += (size_t)n;
	}
	fo->restart = 0;
	fo->evac_subnet = 0;
	fo->launch = LAUNCH_TODO;
	fo->launch_tries = 0;
	fo->launch_next = 0;
	fo->launch_looked_up = 1;
	fo->launch_start = fo_now(fo);
	fo_set_str(&fo->new, NULL);
	/*
	 * The old volumes may be free already (no capacity shows late):
	 * what DETACH waits for now is their restored copies.
	 */
	fo->t[T_DETACH] = -1;
	alert_emit(ALERT_EVACUATION_STARTED, fo->name, "failover_id", fo->id,
	    "az", fo->vol_az ? fo->vol_az : "-", "reason", m->why, "subnets",
	    subnets, "action", "restoring the newest completed snapshot of "
	    "each volume in another AZ: the writes since then are lost; the "
	    "old volumes are left untouched", NULL);
	fo_save(fo);
	fo_poll(fo);
	return 0;
}

void
fo_evac_next_subnet(struct failover *fo, const char *why)
{
	char msg[400];

	fo->evac_subnet++;
	fo->launch_tries = 0;
	fo->launch_next = 0;
	if (fo->evac_subnet >= fo_policy(fo)->nevacuation_subnets) {
		snprintf(msg, sizeof(msg), "no capacity in any evacuation "
		    "subnet: %.300s", why);
		fo_fail(fo, msg);
		return;
	}
	log_warnx("failover %s: evacuation subnet %s: %s; trying %s",
	    fo->name, fo_policy(fo)->evacuation_subnets[fo->evac_subnet - 1],
	    why, fo_policy(fo)->evacuation_subnets[fo->evac_subnet]);
	fo_save(fo);
}

void
fo_on_zones(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const struct ec2_zone	*z;
	char			 why[200];

	if (!fo_active(fo) || !fo_kinds[fo->kind].may_evacuate)
		return;		/* a change of plan since it was asked */
	fo->az_checked = 1;
	if (ec2_result_status(res) != EC2_OK ||
	    ec2_result_zones(res, &z) == 0 || z->state == NULL)
		return;		/* launch there, as usual */
	/*
	 * Evacuating loses the writes since the last snapshot: only a
	 * zone EC2 calls impaired or unavailable is worth that. Any other
	 * state (information, constrained, and whatever AWS adds) is a
	 * notice; the launch there tells whether capacity is short.
	 */
	if (!fo_is(z->state, "impaired") && !fo_is(z->state, "unavailable")) {
		if (!fo_is(z->state, "available"))
			log_info("failover %s: %s is %s: not a reason to "
			    "evacuate; launching there", fo->name, fo->vol_az,
			    z->state);
		return;
	}
	snprintf(why, sizeof(why), "DescribeAvailabilityZones: %s is %s",
	    fo->vol_az, z->state);
	fo_move_turn(fo, KIND_EVACUATE, why);
}

/* The evacuated volumes' own ids, for a filter; NULL: no memory. */
static const char **
fo_evac_from_ids(const struct failover *fo)
{
	const char	**ids;
	size_t		  i;

	ids = calloc(fo->nvols > 0 ? fo->nvols : 1, sizeof(*ids));
	if (ids == NULL)
		return NULL;
	for (i = 0; i < fo->nvols; i++)
		ids[i] = fo->vols[i].from;
	return ids;
}

static void
fo_evac_snapshots_send(struct failover *fo)
{
	struct ec2_request	*req;
	const char		**ids, *st[1] = { "completed" };
	const char		*self = SNAPSHOT_OWNER;

	ids = fo_evac_from_ids(fo);
	req = fo_req(EC2_DESCRIBE_SNAPSHOTS);
	if (ids == NULL || req == NULL) {
		free(ids);
		ec2_request_free(req);
		return;
	}
	/* Ours only: a public snapshot of anyone's would restore too. */
	if (ec2_request_add_list(req, "Owner", &self, 1) == 0 &&
	    ec2_request_add(req, "MaxResults", SNAPSHOT_PAGE) == 0 &&
	    ec2_request_add_filter(req, "volume-id", ids, fo->nvols) == 0 &&
	    ec2_request_add_filter(req, "status", st, 1) == 0)
		fo_send(fo, FO_MAIN, req, FO_POLL_DEADLINE,
		    fo_on_evac_snapshots, NULL);
	else
		ec2_request_free(req);
	free(ids);
}

/* The newest completed snapshot of each volume, or the evacuation fails. */
void
fo_on_evac_snapshots(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const struct ec2_snapshot	*sn;
	struct fo_volume		*v;
	size_t				 n, i, k;
	time_t				 t;
	char				 why[256];

	if (!fo_evac_restoring(fo) || fo_outcome(fo, res) != FO_OK)
		return;
	n = ec2_result_snapshots(res, &sn);
	for (i = 0; i < fo->nvols; i++) {
		v = &fo->vols[i];
		for (k = 0; k < n; k++) {
			if (!fo_is(sn[k].volume_id, v->from) ||
			    !fo_is(sn[k].state, "completed") ||
			    sn[k].snapshot_id == NULL ||
			    snapshot_parse_time(sn[k].start_time, &t) == -1)
				continue;
			if (v->snap != NULL && (long long)t <= v->snap_time)
				continue;
			if (fo_set_str(&v->snap, sn[k].snapshot_id) == -1) {
				fo_fail(fo, "out of memory for the snapshots");
				return;
			}
			v->snap_time = (long long)t;
		}
		if (v->snap == NULL) {
			snprintf(why, sizeof(why), "evacuation: volume %s has "
			    "no completed snapshot to restore", v->from);
			fo_fail(fo, why);
			return;
		}
		log_info("failover %s: evacuation restores %s from %s "
		    "(%llds old)", fo->name, v->from, v->snap,
		    (long long)time(NULL) - v->snap_time);
	}
	fo->snaps_known = 1;
	fo_save(fo);
	fo_poll(fo);
}

/*
 * CreateVolume makes a gp2 volume unless told otherwise: a restored
 * io2 or gp3 volume would serve the database at a fraction of its
 * IOPS. The old volumes are read (the API is regional: an impaired AZ
 * still answers) for their type, IOPS and throughput.
 */
static void
fo_evac_sources_send(struct failover *fo)
{
	struct ec2_request	*req;
	const char		**ids;

	ids = fo_evac_from_ids(fo);
	req = fo_req(EC2_DESCRIBE_VOLUMES);
	if (ids == NULL || req == NULL) {
		free(ids);
		ec2_request_free(req);
		return;
	}
	if (ec2_request_add_list(req, "VolumeId", ids, fo->nvols) == -1)
		ec2_request_free(req);
	else
		fo_send(fo, FO_MAIN, req, FO_POLL_DEADLINE,
		    fo_on_evac_sources, NULL);
	free(ids);
}

void
fo_on_evac_sources(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const struct ec2_volume	*ev;
	struct fo_volume	*v;
	size_t			 n, i, k;
	enum fo_outcome		 out;

	if (!fo_evac_restoring(fo))
		return;
	out = fo_outcome(fo, res);
	if (out == FO_AGAIN)
		return;
	n = out == FO_OK ? ec2_result_volumes(res, &ev) : 0;
	for (i = 0; i < fo->nvols; i++) {
		v = &fo->vols[i];
		for (k = 0; k < n; k++)
			if (fo_is(ev[k].volume_id, v->from))
				break;
		if (k == n || ev[k].volume_type == NULL) {
			log_warnx("failover %s: the type of %s is not known "
			    "(%s): restored with EC2's default type", fo->name,
			    v->from, out == FO_OK ? "not described" :
			    ec2_result_error(res));
			continue;
		}
		fo_set_str(&v->vtype, ev[k].volume_type);
		v->iops = ev[k].iops;
		v->throughput = ev[k].throughput;
	}
	fo->src_known = 1;
	fo_poll(fo);
}

/* The source's performance, as far as CreateVolume takes it. */
static int
fo_evac_add_type(struct ec2_request *req, const struct fo_volume *v)
{
	int bad = 0;

	if (v->vtype == NULL)
		return 0;
	bad |= ec2_request_add(req, "VolumeType", v->vtype);
	/* Iops: io1, io2, gp3 only; Throughput: gp3 only. */
	if (v->iops > 0 && (fo_is(v->vtype, "io1") ||
	    fo_is(v->vtype, "io2") || fo_is(v->vtype, "gp3")))
		bad |= ec2_request_addf(req, "Iops", "%d", v->iops);
	if (v->throughput > 0 && fo_is(v->vtype, "gp3"))
		bad |= ec2_request_addf(req, "Throughput", "%d",
		    v->throughput);
	return bad;
}

static void
fo_evac_create(struct failover *fo, struct fo_volume *v, size_t idx)
{
	struct ec2_request	*req;
	struct ec2_tag		 tags[4];
	char			 token[96];
	int			 bad = 0;

	/* One token per volume: a resumed evacuation creates it once. */
	snprintf(token, sizeof(token), "%.58s-v%zu", fo->id, idx % 100);
	token[FO_TOKEN_MAX] = '\0';
	req = fo_req_instance(EC2_CREATE_VOLUME, "SnapshotId", v->snap);
	if (req == NULL)
		return;
	bad |= ec2_request_add(req, "AvailabilityZone", fo->evac_az);
	bad |= fo_evac_add_type(req, v);
	bad |= ec2_request_add(req, "ClientToken", token);
	tags[0].key = "failoverd:service";
	tags[0].value = fo->name;
	tags[1].key = "failoverd:failover-id";
	tags[1].value = fo->id;
	tags[2].key = "failoverd:restored-from";
	tags[2].value = v->from;
	tags[3].key = "failoverd:snapshot";
	tags[3].value = v->snap;
	bad |= ec2_request_add_tag_spec(req, "volume", tags, 4);
	if (bad) {
		ec2_request_free(req);
		return;
	}
	fo_send(fo, FO_MAIN, req, FO_ACT_DEADLINE, fo_on_evac_create, NULL);
}

void
fo_on_evac_create(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	const char	*id;
	size_t		 i;
	enum fo_outcome	 out;

	if (!fo_evac_restoring(fo))
		return;
	out = fo_outcome(fo, res);
	if (out == FO_REFUSED)
		fo_fail(fo, ec2_result_error(res));
	id = ec2_result_id(res);
	if (out != FO_OK || id == NULL)
		return;
	for (i = 0; i < fo->nvols; i++) {
		if (fo->vols[i].restored)
			continue;
		if (fo_set_str(&fo->vols[i].id, id) == -1) {
			fo_fail(fo, "out of memory for a restored volume's id");
			return;
		}
		fo->vols[i].restored = 1;
		fo->vols[i].st = VOL_UNKNOWN;
		log_info("failover %s: volume %s restored from %s as %s in %s "
		    "(%s)", fo->name, fo->vols[i].from, fo->vols[i].snap, id,
		    fo->evac_az, fo->vols[i].vtype != NULL ?
		    fo->vols[i].vtype : "EC2's default type");
		break;
	}
	fo_save(fo);
	fo_poll(fo);
}

/*
 * DETACH of an evacuation: the old volumes stay where they are; the
 * new ones are made (one CreateVolume at a time, in order). 1 once
 * every volume to attach exists.
 */
int
fo_evac_volumes(struct failover *fo)
{
	size_t i;

	if (fo->busy[FO_MAIN] > 0)
		return 0;
	if (!fo->snaps_known) {
		fo_evac_snapshots_send(fo);
		return 0;
	}
	if (fo->evac_az == NULL)
		return 0;	/* the launch tells where */
	for (i = 0; i < fo->nvols; i++)
		if (!fo->vols[i].restored) {
			if (!fo->src_known)
				fo_evac_sources_send(fo);
			else
				fo_evac_create(fo, &fo->vols[i], i);
			return 0;
		}
	return 1;
}

/* The new volumes are the service's from now on; the alert says so. */
void
fo_evac_done(struct failover *fo)
{
	struct fo_volume	*v;
	char			 vols[600], age[32];
	long long		 oldest = 0, now = (long long)time(NULL);
	size_t			 i, off = 0;
	int			 n;

	vols[0] = '\0';
	for (i = 0; i < fo->nvols; i++) {
		v = &fo->vols[i];
		/* fo->vols are the configured volumes, in their order. */
		if (i < fo->nident && fo_set_str(&fo->ident_vols[i], v->id) ==
		    -1)
			log_warnx("service %s: out of memory: volume %s "
			    "is now %s, not recorded: configure %s",
			    fo->name, v->conf_id, v->id, v->id);
		if (oldest == 0 || v->snap_time < oldest)
			oldest = v->snap_time;
		n = snprintf(vols + off, sizeof(vols) - off, "%s%s<-%s<-%s",
		    i ? "," : "", v->id, v->snap ? v->snap : "?", v->from);
		if (n > 0 && (size_t)n < sizeof(vols) - off)
			off += (size_t)n;
	}
	fo_set_str(&fo->ident_subnet,
	    fo_policy(fo)->evacuation_subnets[fo->evac_subnet]);
	fo_set_str(&fo->vol_az, fo->evac_az);
	snprintf(age, sizeof(age), "%lld", now - oldest);
	alert_emit(ALERT_EVACUATION_COMPLETED, fo->name, "failover_id",
	    fo->id, "az", fo->evac_az, "instance", fo->new, "volumes", vols,
	    "snapshot_age", age, "data", "as of the snapshots: the writes of "
	    "the last snapshot_age seconds are lost", "note", "restored "
	    "volumes start slow: blocks load lazily from S3 on first read",
	    "action", "old volumes left untouched; later failovers move the "
	    "new volumes", NULL);
}
