/*
 * The service's identity, the monitoring half of the engine: which
 * instance the Elastic IP points at (production), its address, the data
 * volumes' AZ and holder, refreshed every FO_REFRESH; the volume ids and
 * the subnet as they stand after an evacuation. At most
 * FO_REFRESH_ACTIVE services refresh at a time, the others wait in line.
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

static void	fo_refresh_volumes_send(struct failover *fo);
static void	fo_refresh_send(struct failover *fo);
static void	fo_on_address(struct failover *fo, struct ec2_result *res,
		    void *arg);
static void	fo_on_refresh_volumes(struct failover *fo,
		    struct ec2_result *res, void *arg);

/*
 * A data volume's id now: the configured one, or the volume an
 * evacuation restored it into (ident_vols, identity.<configured id>).
 */
const char *
fo_vol_id(const struct failover *fo, const char *conf_id)
{
	const struct service_conf	*sc = fo_conf(fo);
	size_t				 i;

	for (i = 0; i < fo->nident && i < sc->nvolumes; i++)
		if (strcmp(sc->volumes[i].id, conf_id) == 0)
			return fo->ident_vols[i] != NULL ?
			    fo->ident_vols[i] : conf_id;
	return conf_id;
}

/*
 * The production instance's own host keys, from its console, unless
 * they are learnt already: ssh probes without a known_hosts of their
 * own trust exactly these (never the first key that shows up).
 */
static void
fo_learn_current(struct failover *fo)
{
	struct ec2_request	*req;

	if (fo->eip_instance == NULL || !fo_has_ssh_probe(fo))
		return;
	if (fo_is(fo->learned_instance, fo->eip_instance))
		return;
	req = fo_req_instance(EC2_GET_CONSOLE_OUTPUT, "InstanceId",
	    fo->eip_instance);
	/*
	 * A replacement another member launched (a cluster's follower)
	 * has its keys on the latest output long before the buffered one
	 * (fo_launch_poll); the buffered one is the fallback.
	 */
	if (req != NULL && !fo_is(fo->latest_refused, fo->eip_instance) &&
	    ec2_request_add(req, "Latest", "true") != 0) {
		ec2_request_free(req);
		req = NULL;
	}
	if (req != NULL)
		fo_send(fo, FO_REFRESH_BR, req, FO_POLL_DEADLINE,
		    fo_on_current_console, NULL);
}

/*
 * Services waiting for their turn to refresh, process-wide (a process
 * runs one daemon; its EC2 call budget is one). At start every service
 * looks its EIP up at once: thousands of calls that would all wait in
 * the budget's queue holding their requests, and ahead of a failover's.
 * At most FO_REFRESH_ACTIVE services refresh at a time; the others
 * wait in this admission line holding nothing. The engines share it:
 * the first one makes it, the last one frees it.
 */
static struct admission	*fo_refresh_line;
static unsigned int	 fo_refresh_users;

static void	fo_refresh_go(struct failover *fo);

static void
fo_on_refresh_turn(void *arg)
{
	fo_refresh_go(arg);
}

/* The engine's ticket, and the line made by the first engine. */
void
fo_refresh_line_join(struct failover *fo)
{
	admission_ticket_init(&fo->refresh_ticket, fo_on_refresh_turn, fo);
	if (fo_refresh_users++ == 0)
		fo_refresh_line = admission_new(fo->env->loop,
		    FO_REFRESH_ACTIVE);
}

void
fo_refresh_line_leave(struct failover *fo)
{
	if (fo_refresh_line != NULL) {
		admission_cancel(fo_refresh_line, &fo->refresh_ticket);
		admission_leave(fo_refresh_line, &fo->refresh_ticket);
	}
	if (--fo_refresh_users == 0) {
		admission_free(fo_refresh_line);
		fo_refresh_line = NULL;
	}
}

/* The refresh branch has nothing in flight any more: next in line. */
void
fo_refresh_over(struct failover *fo)
{
	if (fo_refresh_line == NULL || fo->busy[FO_REFRESH_BR] > 0)
		return;
	admission_leave(fo_refresh_line, &fo->refresh_ticket);
}

static void
fo_refresh_send(struct failover *fo)
{
	if (fo->busy[FO_REFRESH_BR] > 0 || !fo_has_ec2(fo))
		return;
	/* Without a line (out of memory when it was made): at once. */
	if (fo_refresh_line != NULL &&
	    !admission_ticket_in(&fo->refresh_ticket) &&
	    admission_enter(fo_refresh_line, &fo->refresh_ticket) == 0)
		return;		/* fo_on_refresh_turn, in turn */
	fo_refresh_go(fo);
}

/* The place in the line is ours: DescribeAddresses, and the volumes. */
static void
fo_refresh_go(struct failover *fo)
{
	const struct service_conf	*sc = fo_conf(fo);
	struct ec2_request		*req;

	if (fo->busy[FO_REFRESH_BR] > 0 || !fo_has_ec2(fo)) {
		fo_refresh_over(fo);
		return;
	}
	req = fo_req_instance(EC2_DESCRIBE_ADDRESSES, "AllocationId.1",
	    sc->eip_allocation_id);
	if (req == NULL || fo_send(fo, FO_REFRESH_BR, req,
	    FO_POLL_DEADLINE, fo_on_address, NULL) == -1) {
		fo_refresh_over(fo);
		return;
	}
	/* While EC2 is away the address alone tells when it is back. */
	if (fo->aws_ok)
		fo_refresh_volumes_send(fo);
}

static void
fo_refresh_volumes_send(struct failover *fo)
{
	const struct service_conf	*sc = fo_conf(fo);
	struct ec2_request		*req;
	const char			**ids;
	size_t				 i;

	if (sc->nvolumes == 0)
		return;
	ids = calloc(sc->nvolumes, sizeof(*ids));
	req = fo_req(EC2_DESCRIBE_VOLUMES);
	if (ids == NULL || req == NULL) {
		free(ids);
		ec2_request_free(req);
		return;
	}
	for (i = 0; i < sc->nvolumes; i++)
		ids[i] = fo_vol_id(fo, sc->volumes[i].id);
	if (ec2_request_add_list(req, "VolumeId", ids, sc->nvolumes) == 0)
		fo_send(fo, FO_REFRESH_BR, req, FO_POLL_DEADLINE,
		    fo_on_refresh_volumes, NULL);
	else
		ec2_request_free(req);
	free(ids);
}

/*
 * A cluster's member that does not act, seeing the service unhealthy:
 * the leader may be moving it. It looks at the EIP often, so that it
 * learns the replacement (and its host keys) soon after the move and
 * its vote turns healthy again, rather than keeping the quorum at DOWN.
 */
static int
fo_follows_a_move(const struct failover *fo)
{
	char why[300];

	return fo->env->may_act != NULL && !fo_may_act(fo, why,
	    sizeof(why)) && service_verdict(fo->svc) != SERVICE_HEALTHY;
}

void
fo_on_refresh_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct failover *fo = w->data;

	/*
	 * During a failover the engine, not the EIP, says who is who; a
	 * resumed one still needs the address for its probes.
	 */
	if (!fo_active(fo) || fo->eip_ip == NULL)
		fo_refresh_send(fo);
	/*
	 * With EC2 away, look again soon, then less and less often (each
	 * look is a few attempts): an idle watchdog that cannot reach AWS
	 * must not keep waking up for it.
	 */
	if (fo->aws_ok) {
		fo->refresh_fails = 0;
		w->repeat = FO_REFRESH;
		if (fo_follows_a_move(fo))
			w->repeat = FO_REFRESH_FOLLOW;
	} else {
		w->repeat = FO_REFRESH_RETRY * (double)(1u <<
		    (fo->refresh_fails < 4 ? fo->refresh_fails : 4));
		if (w->repeat > FO_REFRESH)
			w->repeat = FO_REFRESH;
		fo->refresh_fails++;
	}
	ev_timer_again(loop, w);
}

/*
 * The EIP moved: what the engine did is the service's identity until
 * EC2 shows it, whether VERIFY passes or not (journaled with the step,
 * so a restart right after the move knows it).
 */
void
fo_settle_begin(struct failover *fo)
{
	/* Out of memory: no settling; EC2's view is taken as it is. */
	if (fo_set_str(&fo->moved_from, fo->old) == -1 ||
	    fo_set_str(&fo->moved_to, fo->new) == -1) {
		fo_set_str(&fo->moved_to, NULL);
		fo->moved_at = 0;
		return;
	}
	fo->moved_at = (long long)time(NULL);
}

/*
 * The instance the last move went to, when "seen" (what a Describe
 * says the EIP or a volume is on; NULL: nothing) is only the view from
 * before that move: the instance it moved away from, or nothing, within
 * FO_SETTLE of it. NULL when "seen" is to be believed.
 */
static const char *
fo_settling(const struct failover *fo, const char *seen)
{
	const char	*from = fo->moved_from, *to = fo->moved_to;
	long long	 at = fo->moved_at, now = (long long)time(NULL);

	if (to == NULL || fo_is(seen, to) || now - at > FO_SETTLE ||
	    at > now)
		return NULL;
	/* from NULL: the move came from no instance (moved_from=""). */
	if (seen != NULL && *seen != '\0' && !fo_is(seen, from))
		return NULL;	/* somebody else moved it since */
	return to;
}

void
fo_refresh_address(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_address	*a;
	const char			*seen, *moved;
	size_t				 n;

	n = ec2_result_addresses(res, &a);
	if (n == 0 || a->public_ip == NULL) {
		alert_emit(ALERT_AWS_ERROR, fo->name, "error",
		    "DescribeAddresses: no such Elastic IP",
		    "allocation_id", fo_conf(fo)->eip_allocation_id, NULL);
		return;
	}
	if (fo->eip_ip == NULL || strcmp(fo->eip_ip, a->public_ip) != 0) {
		log_info("service %s: Elastic IP %s is %s", fo->name,
		    fo_conf(fo)->eip_allocation_id, a->public_ip);
		fo_set_str(&fo->eip_ip, a->public_ip);
		service_set_target(fo->svc, fo->eip_ip);
		fo_save(fo);	/* eip_ip, for a restart while EC2 is away */
	}
	if (fo_active(fo))
		return;
	seen = a->instance_id;
	moved = fo_settling(fo, seen);
	if (moved != NULL) {
		if (!fo_is(fo->eip_instance, moved))
			log_info("service %s: EC2 still shows the Elastic IP "
			    "on %s, from before the move to %s (eventual "
			    "consistency): %s is production", fo->name,
			    seen ? seen : "no instance", moved, moved);
		seen = moved;
	}
	if ((fo->eip_instance == NULL) != (seen == NULL) ||
	    (seen != NULL && strcmp(fo->eip_instance, seen) != 0))
		log_info("service %s: production instance is %s", fo->name,
		    seen ? seen : "none (EIP unassociated)");
	fo_set_str(&fo->eip_instance, seen);
	if (!fo->aws_ok) {
		log_info("service %s: EC2 answers again", fo->name);
		fo->aws_ok = 1;
		fo_refresh_volumes_send(fo);
	}
	fo_learn_current(fo);
}

void
fo_refresh_volumes(struct failover *fo, struct ec2_result *res)
{
	const struct ec2_volume	*v;
	const char		*seen, *moved;
	size_t			 n, i;

	n = ec2_result_volumes(res, &v);
	if (n == 0 || fo_active(fo))
		return;
	for (i = 1; i < n; i++)
		if (!fo_is(v[0].az, v[i].az))
			log_warnx("service %s: volumes %s in %s and %s in %s: "
			    "a replacement can attach only one AZ's",
			    fo->name, v[0].volume_id, v[0].az,
			    v[i].volume_id, v[i].az);
	fo_set_str(&fo->vol_az, v[0].az);
	seen = v[0].nattachments > 0 ? v[0].attachments[0].instance_id :
	    NULL;
	moved = fo_settling(fo, seen);
	fo_set_str(&fo->vol_instance, moved != NULL ? moved : seen);
}

const char *
failover_volume_id(const struct failover *fo, const char *conf_id)
{
	return fo_vol_id(fo, conf_id);
}

const char *
failover_subnet(const struct failover *fo)
{
	return fo->ident_subnet != NULL ? fo->ident_subnet :
	    fo_conf(fo)->launch.subnet;
}

/* The subnet of a launch: after an evacuation, one in the new AZ. */
const char *
fo_subnet(const struct failover *fo)
{
	const struct policy_conf	*p = fo_policy(fo);

	if (fo->kind == KIND_EVACUATE && fo->evac_subnet <
	    p->nevacuation_subnets)
		return p->evacuation_subnets[fo->evac_subnet];
	return failover_subnet(fo);
}

/* The refresh's DescribeAddresses: the EIP's address and instance. */
static void
fo_on_address(struct failover *fo, struct ec2_result *res, void *arg)
{
	if (ec2_result_status(res) == EC2_OK) {
		fo_refresh_address(fo, res);
		return;
	}
	if (fo->aws_ok || fo->eip_ip == NULL)
		alert_emit(ALERT_AWS_ERROR, fo->name, "error",
		    ec2_result_error(res), "action", "monitoring goes on; "
		    "retrying", NULL);
	fo->aws_ok = 0;
}

/* The refresh's DescribeVolumes: the volumes' AZ and holder. */
static void
fo_on_refresh_volumes(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	if (ec2_result_status(res) == EC2_OK)
		fo_refresh_volumes(fo, res);
}
