/*
 * launch: the one RunInstances request a replacement is launched with.
 * The failover engine sends it; preflight sends it with DryRun, so what
 * preflight proves is exactly what a failover will ask for.
 */
#ifndef FAILOVERD_LAUNCH_H
#define FAILOVERD_LAUNCH_H

#include "failoverd/conf.h"

struct ec2_request;

/*
 * subnet and az may be NULL (az is then EC2's choice: the subnet's);
 * client_token may be NULL (a dry run needs none). NULL when out of
 * memory.
 */
struct ec2_request *launch_request_new(const struct service_conf *sc,
		    const char *ami, const char *subnet, const char *az,
		    const char *client_token, const char *failover_id);

/*
 * Adds PREFIX.N.DeviceName and PREFIX.N.NoDevice for each of the
 * service's data devices (RunInstances, CreateImage). -1 when out of
 * memory.
 */
int		 launch_no_data_devices(struct ec2_request *req,
		    const struct service_conf *sc, const char *prefix);

#endif
