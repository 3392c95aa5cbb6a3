#include <stddef.h>
#include <stdio.h>

#include "failoverd/ec2.h"
#include "failoverd/launch.h"

#define LAUNCH_MAX_TAGS	32

/*
 * An image made from production maps its data volumes (CreateImage
 * records every attached EBS volume), and an instance launched from it
 * gets stale copies at those devices, where the real volumes must go.
 * NoDevice (an empty string, as the EC2 API reference asks) leaves
 * each data device out, whatever the image says.
 */
int
launch_no_data_devices(struct ec2_request *req,
    const struct service_conf *sc, const char *prefix)
{
	char	key[128];
	size_t	i;
	int	bad = 0;

	for (i = 0; i < sc->nvolumes; i++) {
		snprintf(key, sizeof(key), "%s.%zu.DeviceName", prefix, i + 1);
		bad |= ec2_request_add(req, key, sc->volumes[i].device);
		snprintf(key, sizeof(key), "%s.%zu.NoDevice", prefix, i + 1);
		bad |= ec2_request_add(req, key, "");
	}
	return bad ? -1 : 0;
}

struct ec2_request *
launch_request_new(const struct service_conf *sc, const char *ami,
    const char *subnet, const char *az, const char *client_token,
    const char *failover_id)
{
	const struct launch_conf	*lc = &sc->launch;
	struct ec2_request		*req;
	struct ec2_tag			 tags[LAUNCH_MAX_TAGS];
	size_t				 n = 0, i;
	int				 bad = 0;

	req = ec2_request_new(EC2_RUN_INSTANCES);
	if (req == NULL)
		return NULL;
	bad |= ec2_request_add(req, "ImageId", ami);
	bad |= ec2_request_add(req, "MinCount", "1");
	bad |= ec2_request_add(req, "MaxCount", "1");
	if (lc->instance_type != NULL)
		bad |= ec2_request_add(req, "InstanceType",
		    lc->instance_type);
	if (subnet != NULL)
		bad |= ec2_request_add(req, "SubnetId", subnet);
	/* The volumes' AZ: EC2 refuses a subnet elsewhere, as it should. */
	if (az != NULL)
		bad |= ec2_request_add(req, "Placement.AvailabilityZone", az);
	if (lc->nsecurity_groups > 0)
		bad |= ec2_request_add_list(req, "SecurityGroupId",
		    (const char *const *)lc->security_groups,
		    lc->nsecurity_groups);
	if (lc->key_name != NULL)
		bad |= ec2_request_add(req, "KeyName", lc->key_name);
	if (lc->iam_instance_profile != NULL)
		bad |= ec2_request_add(req, "IamInstanceProfile.Name",
		    lc->iam_instance_profile);
	bad |= launch_no_data_devices(req, sc, "BlockDeviceMapping");
	/* Same token, same instance: a resumed launch never makes two. */
	if (client_token != NULL)
		bad |= ec2_request_add(req, "ClientToken", client_token);
	tags[n].key = "failoverd:service";
	tags[n++].value = sc->name;
	if (failover_id != NULL) {
		tags[n].key = "failoverd:failover-id";
		tags[n++].value = failover_id;
	}
	for (i = 0; i < lc->ntags && n < LAUNCH_MAX_TAGS; i++) {
		tags[n].key = lc->tags[i].key;
		tags[n++].value = lc->tags[i].value;
	}
	bad |= ec2_request_add_tag_spec(req, "instance", tags, n);
	if (bad) {
		ec2_request_free(req);
		return NULL;
	}
	return req;
}
