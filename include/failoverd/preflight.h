/*
 * preflight: prove that a failover of a service would work, without
 * changing anything.
 *
 * First the reads: the Elastic IP allocation exists (and which instance
 * it points at), the data volumes exist (and their AZ), the AMI the
 * next failover launches (bake --use's, else launch.ami) exists, is
 * available, and which data devices its block device mappings hold
 * (an image made from production carries copies of the volumes), the
 * key pair and instance profile are named.
 * Then every mutating call a failover (or a snapshot, or a bake) makes
 * is sent with DryRun and the real parameters: RunInstances,
 * StopInstances, DetachVolume, AttachVolume, AssociateAddress,
 * CreateSnapshot, CreateTags, CreateImage. The RunInstances dry run also
 * tells whether the subnet is in the volumes' AZ.
 *
 * Each check ends OK, DENIED (IAM refuses: AWS's message) or INVALID
 * (anything else: missing, wrong state, bad parameter). A run with a
 * check not OK alerts preflight_failed (crit), naming the failed checks
 * and the denied actions; a clean one alerts preflight_passed.
 */
#ifndef FAILOVERD_PREFLIGHT_H
#define FAILOVERD_PREFLIGHT_H

#include <ev.h>

#include "failoverd/buf.h"
#include "failoverd/ec2.h"

struct admission;
struct service;
struct preflight;

enum preflight_result {
	PREFLIGHT_OK,
	PREFLIGHT_DENIED,
	PREFLIGHT_INVALID
};

const char	*preflight_result_str(enum preflight_result r);

/*
 * How one answer counts (pure, unit-tested): a DryRunOperation is OK,
 * UnauthorizedOperation (or AccessDenied) DENIED, anything else
 * INVALID. For a dry run, a plain success is INVALID: the call was not
 * a dry run and may have changed something.
 */
enum preflight_result preflight_classify(int dry_run, enum ec2_status st,
		    const char *code);

/*
 * The line of preflights (admission.h), one per daemon: its services'
 * preflights share its EC2 client's budget, and all of them begin at
 * start. The daemon owns it (admission_free), after every preflight.
 */
struct admission *preflight_line_new(struct ev_loop *loop);

struct preflight_env {
	struct ev_loop		*loop;
	struct ec2_client	*ec2;		/* NULL: AWS not usable */
	/*
	 * The identity after any evacuation (failover_volume_id,
	 * failover_subnet): a preflight proves what the next failover
	 * would do, on the volumes and subnet it would use. NULL: the
	 * configuration's.
	 */
	const char		*(*volume_id)(void *arg,
				    const struct service *svc,
				    const char *conf_id);
	const char		*(*subnet)(void *arg,
				    const struct service *svc);
	void			*arg;
	struct admission	*line;		/* preflight_line_new */
};

/* The service's configuration is read through svc at each run. */
struct preflight *preflight_new(const struct preflight_env *env,
		    struct service *svc);
void		 preflight_free(struct preflight *p);

/*
 * Starts a run. ami, when not NULL, is launched instead of the
 * configuration's (the replacement AMI that bake made). -1 with why in
 * out when a run is in progress or AWS is not usable.
 */
int		 preflight_start(struct preflight *p, const char *ami,
		    struct buf *out);
int		 preflight_running(const struct preflight *p);

/*
 * The last finished run, one line per check, or a JSON object. -1 with
 * why in out when none finished yet.
 */
int		 preflight_report(const struct preflight *p, struct buf *out,
		    int json);

#endif
