/*
 * EC2 reply parsing: documents shaped like the ones EC2 sends (from the
 * API reference's examples, namespace and all) become the right typed
 * values; malformed, truncated and error documents become clear errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failoverd/ec2.h"
#include "../../src/ec2_priv.h"

#define NS "xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\""

static const char describe_instances[] =
"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
"<DescribeInstancesResponse " NS ">\n"
"  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>\n"
"  <reservationSet>\n"
"    <item>\n"
"      <reservationId>r-1234567890abcdef0</reservationId>\n"
"      <ownerId>123456789012</ownerId>\n"
"      <groupSet/>\n"
"      <instancesSet>\n"
"        <item>\n"
"          <instanceId>i-1234567890abcdef0</instanceId>\n"
"          <imageId>ami-bff32ccc</imageId>\n"
"          <instanceState><code>16</code><name>running</name>"
"</instanceState>\n"
"          <privateDnsName>ip-192-168-1-88.eu-west-1.compute.internal"
"</privateDnsName>\n"
"          <keyName>my_keypair</keyName>\n"
"          <instanceType>t2.micro</instanceType>\n"
"          <launchTime>2018-05-08T16:46:19.000Z</launchTime>\n"
"          <placement><availabilityZone>eu-west-1c</availabilityZone>"
"<groupName/><tenancy>default</tenancy></placement>\n"
"          <subnetId>subnet-56f5f633</subnetId>\n"
"          <vpcId>vpc-11112222</vpcId>\n"
"          <privateIpAddress>192.168.1.88</privateIpAddress>\n"
"          <ipAddress>54.194.252.215</ipAddress>\n"
"          <rootDeviceName>/dev/xvda</rootDeviceName>\n"
"          <blockDeviceMapping>\n"
"            <item><deviceName>/dev/xvda</deviceName><ebs>"
"<volumeId>vol-1234567890abcdef0</volumeId><status>attached</status>"
"<attachTime>2018-05-08T16:46:20.000Z</attachTime>"
"<deleteOnTermination>true</deleteOnTermination></ebs></item>\n"
"            <item><deviceName>/dev/sdf</deviceName><ebs>"
"<volumeId>vol-0badc0ffee0000001</volumeId><status>attached</status>"
"<deleteOnTermination>false</deleteOnTermination></ebs></item>\n"
"          </blockDeviceMapping>\n"
"          <tagSet>\n"
"            <item><key>Name</key><value>production web</value></item>\n"
"            <item><key>failoverd:service</key><value>web</value></item>\n"
"          </tagSet>\n"
"        </item>\n"
"      </instancesSet>\n"
"    </item>\n"
"    <item>\n"
"      <reservationId>r-2</reservationId>\n"
"      <instancesSet>\n"
"        <item>\n"
"          <instanceId>i-0000000000000002</instanceId>\n"
"          <instanceState><code>80</code><name>stopped</name>"
"</instanceState>\n"
"          <placement><availabilityZone>eu-west-1a</availabilityZone>"
"</placement>\n"
"        </item>\n"
"      </instancesSet>\n"
"    </item>\n"
"  </reservationSet>\n"
"  <nextToken>page2</nextToken>\n"
"</DescribeInstancesResponse>\n";

static const char error_doc[] =
"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
"<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>"
"<Message>The instance ID 'i-1a2b3c4d' does not exist</Message>"
"</Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID>"
"</Response>";

static const char dry_run_doc[] =
"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
"<Response><Errors><Error><Code>DryRunOperation</Code>"
"<Message>Request would have succeeded, but DryRun flag is set.</Message>"
"</Error></Errors><RequestID>11111111-2222</RequestID></Response>";

static const char describe_volumes[] =
"<DescribeVolumesResponse " NS ">\n"
"  <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>\n"
"  <volumeSet>\n"
"    <item>\n"
"      <volumeId>vol-1234567890abcdef0</volumeId>\n"
"      <size>80</size>\n"
"      <snapshotId/>\n"
"      <availabilityZone>us-east-1a</availabilityZone>\n"
"      <status>in-use</status>\n"
"      <createTime>YYYY-MM-DDTHH:MM:SS.SSSZ</createTime>\n"
"      <attachmentSet>\n"
"        <item>\n"
"          <volumeId>vol-1234567890abcdef0</volumeId>\n"
"          <instanceId>i-1234567890abcdef0</instanceId>\n"
"          <device>/dev/sdh</device>\n"
"          <status>attached</status>\n"
"          <attachTime>YYYY-MM-DDTHH:MM:SS.SSSZ</attachTime>\n"
"          <deleteOnTermination>false</deleteOnTermination>\n"
"        </item>\n"
"      </attachmentSet>\n"
"      <volumeType>gp3</volumeType>\n"
"      <iops>6000</iops>\n"
"      <throughput>250</throughput>\n"
"      <encrypted>false</encrypted>\n"
"      <tagSet><item><key>role</key><value>data</value></item></tagSet>\n"
"    </item>\n"
"  </volumeSet>\n"
"</DescribeVolumesResponse>";

static const char describe_addresses[] =
"<DescribeAddressesResponse " NS ">\n"
"   <requestId>f7de5e98-491a-4c19-a92d-908d6EXAMPLE</requestId>\n"
"   <addressesSet>\n"
"      <item>\n"
"         <publicIp>203.0.113.41</publicIp>\n"
"         <allocationId>eipalloc-08229861</allocationId>\n"
"         <domain>vpc</domain>\n"
"         <instanceId>i-0598c7d356eba48d7</instanceId>\n"
"         <associationId>eipassoc-f0229899</associationId>\n"
"         <networkInterfaceId>eni-ef229886</networkInterfaceId>\n"
"         <networkInterfaceOwnerId>053230519467</networkInterfaceOwnerId>\n"
"         <privateIpAddress>10.0.0.228</privateIpAddress>\n"
"      </item>\n"
"      <item>\n"
"         <publicIp>198.51.100.2</publicIp>\n"
"         <allocationId>eipalloc-unassociated</allocationId>\n"
"         <domain>vpc</domain>\n"
"      </item>\n"
"   </addressesSet>\n"
"</DescribeAddressesResponse>";

static const char describe_status[] =
"<DescribeInstanceStatusResponse " NS ">\n"
"  <requestId>3be1508e-c444-4fef-89cc-0b1223c4f02fEXAMPLE</requestId>\n"
"  <instanceStatusSet>\n"
"    <item>\n"
"      <instanceId>i-1234567890abcdef0</instanceId>\n"
"      <availabilityZone>us-east-1d</availabilityZone>\n"
"      <instanceState><code>16</code><name>running</name>"
"</instanceState>\n"
"      <systemStatus><status>impaired</status><details><item>"
"<name>reachability</name><status>failed</status></item></details>"
"</systemStatus>\n"
"      <instanceStatus><status>ok</status><details><item>"
"<name>reachability</name><status>passed</status></item></details>"
"</instanceStatus>\n"
"    </item>\n"
"  </instanceStatusSet>\n"
"</DescribeInstanceStatusResponse>";

static const char describe_azs[] =
"<DescribeAvailabilityZonesResponse " NS ">\n"
"  <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>\n"
"  <availabilityZoneInfo>\n"
"    <item><zoneName>us-east-1a</zoneName><zoneState>available"
"</zoneState><regionName>us-east-1</regionName><zoneId>use1-az6</zoneId>"
"<messageSet/></item>\n"
"    <item><zoneName>us-east-1b</zoneName><zoneState>impaired"
"</zoneState><regionName>us-east-1</regionName><zoneId>use1-az1</zoneId>"
"<messageSet/></item>\n"
"  </availabilityZoneInfo>\n"
"</DescribeAvailabilityZonesResponse>";

/* "hello\nconsole" in base64, wrapped as EC2 sometimes does. */
static const char console_output[] =
"<GetConsoleOutputResponse " NS ">\n"
"  <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>\n"
"  <instanceId>i-1234567890abcdef0</instanceId>\n"
"  <timestamp>2010-10-14T01:12:41.000Z</timestamp>\n"
"  <output>aGVsbG8K\nY29uc29sZQ==</output>\n"
"</GetConsoleOutputResponse>";

static const char stop_instances[] =
"<StopInstancesResponse " NS ">\n"
"  <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>\n"
"  <instancesSet><item><instanceId>i-1234567890abcdef0</instanceId>"
"<currentState><code>64</code><name>stopping</name></currentState>"
"<previousState><code>16</code><name>running</name></previousState>"
"</item></instancesSet>\n"
"</StopInstancesResponse>";

static const char attach_volume[] =
"<AttachVolumeResponse " NS ">\n"
"  <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>\n"
"  <volumeId>vol-1234567890abcdef0</volumeId>\n"
"  <instanceId>i-1234567890abcdef0</instanceId>\n"
"  <device>/dev/sdh</device>\n"
"  <status>attaching</status>\n"
"  <attachTime>2018-05-08T16:46:20.000Z</attachTime>\n"
"</AttachVolumeResponse>";

static struct ec2_result *
parse(enum ec2_action a, const char *xml, long status)
{
	struct ec2_result *res;

	res = ec2_result_parse(a, xml, strlen(xml), status);
	assert_non_null(res);
	return res;
}

static void
test_describe_instances_gives_typed_instances(void **state)
{
	struct ec2_result *res;
	const struct ec2_instance *in;
	size_t n;

	res = parse(EC2_DESCRIBE_INSTANCES, describe_instances, 200);
	assert_int_equal(ec2_result_status(res), EC2_OK);
	assert_string_equal(ec2_result_request_id(res),
	    "8f7724cf-496f-496e-8fe3-example");
	n = ec2_result_instances(res, &in);
	assert_int_equal(n, 2);
	assert_string_equal(in[0].instance_id, "i-1234567890abcdef0");
	assert_string_equal(in[0].state, "running");
	assert_int_equal(in[0].state_code, 16);
	assert_string_equal(in[0].az, "eu-west-1c");
	assert_string_equal(in[0].subnet_id, "subnet-56f5f633");
	assert_string_equal(in[0].private_ip, "192.168.1.88");
	assert_string_equal(in[0].public_ip, "54.194.252.215");
	assert_string_equal(in[0].image_id, "ami-bff32ccc");
	assert_string_equal(in[0].launch_time, "2018-05-08T16:46:19.000Z");
	assert_int_equal(in[0].ntags, 2);
	assert_string_equal(in[0].tags[1].key, "failoverd:service");
	assert_string_equal(in[0].tags[1].value, "web");
	assert_int_equal(in[0].nbdm, 2);
	assert_string_equal(in[0].bdm[1].device_name, "/dev/sdf");
	assert_string_equal(in[0].bdm[1].volume_id, "vol-0badc0ffee0000001");
	assert_false(in[0].bdm[1].delete_on_termination);
	assert_true(in[0].bdm[0].delete_on_termination);
	/* The second reservation's instance is there, absent fields NULL. */
	assert_string_equal(in[1].instance_id, "i-0000000000000002");
	assert_string_equal(in[1].state, "stopped");
	assert_null(in[1].public_ip);
	assert_int_equal(in[1].ntags, 0);
	ec2_result_free(res);
}

static void
test_error_document_gives_code_message_and_request_id(void **state)
{
	struct ec2_result *res;
	const struct ec2_instance *in;

	res = parse(EC2_DESCRIBE_INSTANCES, error_doc, 400);
	assert_int_equal(ec2_result_status(res), EC2_ERR_AWS);
	assert_string_equal(ec2_result_code(res),
	    "InvalidInstanceID.NotFound");
	assert_string_equal(ec2_result_message(res),
	    "The instance ID 'i-1a2b3c4d' does not exist");
	assert_string_equal(ec2_result_request_id(res),
	    "ea966190-f9aa-478e-9ede-example");
	assert_int_equal(ec2_result_http_status(res), 400);
	assert_int_equal(ec2_result_instances(res, &in), 0);
	assert_non_null(strstr(ec2_result_error(res),
	    "InvalidInstanceID.NotFound"));
	assert_non_null(strstr(ec2_result_error(res), "DescribeInstances"));
	ec2_result_free(res);
}

static void
test_dry_run_operation_is_success_of_a_dry_run(void **state)
{
	struct ec2_result *res;

	res = parse(EC2_RUN_INSTANCES, dry_run_doc, 412);
	assert_int_equal(ec2_result_status(res), EC2_DRY_RUN_OK);
	assert_string_equal(ec2_result_code(res), "DryRunOperation");
	ec2_result_free(res);
}

static void
test_truncated_reply_is_a_clear_error(void **state)
{
	struct ec2_result *res;
	const struct ec2_instance *in;
	size_t cut;

	/* Every prefix: never a crash, never a success. */
	for (cut = 0; cut < sizeof(describe_instances) - 1; cut += 7) {
		res = ec2_result_parse(EC2_DESCRIBE_INSTANCES,
		    describe_instances, cut, 200);
		assert_non_null(res);
		assert_int_equal(ec2_result_status(res), EC2_ERR_REPLY);
		assert_int_equal(ec2_result_instances(res, &in), 0);
		assert_non_null(ec2_result_message(res));
		ec2_result_free(res);
	}
	res = ec2_result_parse(EC2_DESCRIBE_INSTANCES, describe_instances,
	    200, 200);
	assert_non_null(strstr(ec2_result_message(res), "not XML"));
	assert_non_null(strstr(ec2_result_message(res), "line"));
	ec2_result_free(res);
}

static void
test_malformed_and_unexpected_replies_are_errors(void **state)
{
	static const char *const bad[] = {
		"not xml at all",
		"<DescribeInstancesResponse><reservationSet><item>"
		    "</reservationSet></DescribeInstancesResponse>",
		"<html><body>502 Bad Gateway</body></html>",
		"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM "
		    "\"http://127.0.0.1:1/x\">]><DescribeInstancesResponse>"
		    "&e;</DescribeInstancesResponse",
		"<Response><Errors></Errors></Response>",
		"",
	};
	struct ec2_result *res;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		res = parse(EC2_DESCRIBE_INSTANCES, bad[i], 200);
		assert_int_equal(ec2_result_status(res), EC2_ERR_REPLY);
		assert_non_null(ec2_result_message(res));
		ec2_result_free(res);
	}
	/* A 5xx with an HTML body is an AWS-side failure, not a bad reply. */
	res = parse(EC2_DESCRIBE_INSTANCES, "<html>oops", 503);
	assert_int_equal(ec2_result_status(res), EC2_ERR_AWS);
	assert_int_equal(ec2_result_http_status(res), 503);
	ec2_result_free(res);
}

static void
test_volumes_with_attachments(void **state)
{
	struct ec2_result *res;
	const struct ec2_volume *v;

	res = parse(EC2_DESCRIBE_VOLUMES, describe_volumes, 200);
	assert_int_equal(ec2_result_status(res), EC2_OK);
	assert_int_equal(ec2_result_volumes(res, &v), 1);
	assert_string_equal(v[0].volume_id, "vol-1234567890abcdef0");
	assert_string_equal(v[0].state, "in-use");
	assert_string_equal(v[0].az, "us-east-1a");
	assert_string_equal(v[0].volume_type, "gp3");
	assert_int_equal(v[0].size_gib, 80);
	/* What an evacuation restores the volume with. */
	assert_int_equal(v[0].iops, 6000);
	assert_int_equal(v[0].throughput, 250);
	assert_string_equal(v[0].snapshot_id, "");
	assert_int_equal(v[0].nattachments, 1);
	assert_string_equal(v[0].attachments[0].instance_id,
	    "i-1234567890abcdef0");
	assert_string_equal(v[0].attachments[0].device, "/dev/sdh");
	assert_string_equal(v[0].attachments[0].state, "attached");
	assert_string_equal(v[0].tags[0].value, "data");
	ec2_result_free(res);
}

static void
test_addresses_with_and_without_association(void **state)
{
	struct ec2_result *res;
	const struct ec2_address *a;

	res = parse(EC2_DESCRIBE_ADDRESSES, describe_addresses, 200);
	assert_int_equal(ec2_result_addresses(res, &a), 2);
	assert_string_equal(a[0].public_ip, "203.0.113.41");
	assert_string_equal(a[0].allocation_id, "eipalloc-08229861");
	assert_string_equal(a[0].association_id, "eipassoc-f0229899");
	assert_string_equal(a[0].instance_id, "i-0598c7d356eba48d7");
	assert_string_equal(a[0].private_ip, "10.0.0.228");
	assert_null(a[1].association_id);
	assert_null(a[1].instance_id);
	ec2_result_free(res);
}

static void
test_instance_status_checks(void **state)
{
	struct ec2_result *res;
	const struct ec2_instance_status *s;

	res = parse(EC2_DESCRIBE_INSTANCE_STATUS, describe_status, 200);
	assert_int_equal(ec2_result_instance_statuses(res, &s), 1);
	assert_string_equal(s[0].instance_id, "i-1234567890abcdef0");
	assert_string_equal(s[0].az, "us-east-1d");
	assert_string_equal(s[0].state, "running");
	assert_string_equal(s[0].instance_status, "ok");
	assert_string_equal(s[0].system_status, "impaired");
	ec2_result_free(res);
}

static void
test_zones_with_state(void **state)
{
	struct ec2_result *res;
	const struct ec2_zone *z;

	res = parse(EC2_DESCRIBE_AVAILABILITY_ZONES, describe_azs, 200);
	assert_int_equal(ec2_result_zones(res, &z), 2);
	assert_string_equal(z[1].zone_name, "us-east-1b");
	assert_string_equal(z[1].state, "impaired");
	assert_string_equal(z[1].zone_id, "use1-az1");
	assert_string_equal(z[1].region, "us-east-1");
	ec2_result_free(res);
}

static void
test_console_output_is_base64_decoded(void **state)
{
	struct ec2_result *res;

	res = parse(EC2_GET_CONSOLE_OUTPUT, console_output, 200);
	assert_int_equal(ec2_result_status(res), EC2_OK);
	assert_string_equal(ec2_result_console_output(res),
	    "hello\nconsole");
	ec2_result_free(res);

	res = parse(EC2_GET_CONSOLE_OUTPUT,
	    "<GetConsoleOutputResponse><output>!!!notbase64</output>"
	    "</GetConsoleOutputResponse>", 200);
	assert_int_equal(ec2_result_status(res), EC2_ERR_REPLY);
	ec2_result_free(res);
}

static void
test_state_changes_and_attachment(void **state)
{
	struct ec2_result *res;
	const struct ec2_state_change *c;
	const struct ec2_attachment *a;

	res = parse(EC2_STOP_INSTANCES, stop_instances, 200);
	assert_int_equal(ec2_result_state_changes(res, &c), 1);
	assert_string_equal(c[0].current_state, "stopping");
	assert_string_equal(c[0].previous_state, "running");
	ec2_result_free(res);

	res = parse(EC2_ATTACH_VOLUME, attach_volume, 200);
	a = ec2_result_attachment(res);
	assert_non_null(a);
	assert_string_equal(a->state, "attaching");
	assert_string_equal(a->device, "/dev/sdh");
	ec2_result_free(res);
}

static void
test_reply_of_another_action_is_refused(void **state)
{
	struct ec2_result *res;

	res = parse(EC2_DESCRIBE_VOLUMES, describe_addresses, 200);
	assert_int_equal(ec2_result_status(res), EC2_ERR_REPLY);
	assert_non_null(strstr(ec2_result_message(res),
	    "DescribeVolumesResponse"));
	ec2_result_free(res);
}

/*
 * A call that runs out of time reports the last error it saw, passing the
 * result's own code and message back in (ec2.c's deadline_cb).
 */
static void
test_error_rewritten_from_its_own_code_and_message(void **state)
{
	struct ec2_result *res;

	res = parse(EC2_DESCRIBE_INSTANCES, error_doc, 400);
	assert_int_equal(ec2_result_status(res), EC2_ERR_AWS);
	ec2_result_set_error(res, EC2_ERR_TIMEOUT, ec2_result_code(res),
	    "no answer within the deadline (last error: %s)",
	    ec2_result_message(res));
	assert_int_equal(ec2_result_status(res), EC2_ERR_TIMEOUT);
	assert_string_equal(ec2_result_code(res),
	    "InvalidInstanceID.NotFound");
	assert_non_null(strstr(ec2_result_message(res),
	    "(last error: The instance ID"));
	ec2_result_free(res);
}

static void
test_action_names_round_trip(void **state)
{
	int a;

	for (a = 0; a < EC2_ACTION_COUNT; a++)
		assert_int_equal(ec2_action_from_str(ec2_action_str(a)), a);
	assert_int_equal(ec2_action_from_str("RebootInstances"), -1);
}

static void
check_endpoint(const char *region, int fips, int dual, const char *want)
{
	char out[256], err[256];
	int rc;

	rc = ec2_endpoint_for(region, fips, dual, out, sizeof(out), err,
	    sizeof(err));
	if (want == NULL) {
		assert_int_equal(rc, -1);
		assert_true(err[0] != '\0');
		return;
	}
	assert_int_equal(rc, 0);
	assert_string_equal(out, want);
}

/* Hostnames as botocore's endpoints.json builds them for ec2. */
static void
test_default_endpoint_follows_the_partition(void **state)
{
	check_endpoint("us-east-1", 0, 0,
	    "https://ec2.us-east-1.amazonaws.com");
	check_endpoint("eu-west-3", 0, 0,
	    "https://ec2.eu-west-3.amazonaws.com");
	check_endpoint("us-east-1", 1, 0,
	    "https://ec2-fips.us-east-1.amazonaws.com");
	check_endpoint("us-east-1", 0, 1, "https://ec2.us-east-1.api.aws");
	check_endpoint("us-east-1", 1, 1,
	    "https://ec2-fips.us-east-1.api.aws");
	check_endpoint("cn-north-1", 0, 0,
	    "https://ec2.cn-north-1.amazonaws.com.cn");
	check_endpoint("cn-northwest-1", 0, 1,
	    "https://ec2.cn-northwest-1.api.amazonwebservices.com.cn");
	check_endpoint("cn-north-1", 1, 0,
	    "https://ec2-fips.cn-north-1.amazonaws.com.cn");
	/* GovCloud's EC2 endpoint is FIPS already. */
	check_endpoint("us-gov-west-1", 0, 0,
	    "https://ec2.us-gov-west-1.amazonaws.com");
	check_endpoint("us-gov-west-1", 1, 0,
	    "https://ec2.us-gov-west-1.amazonaws.com");
	check_endpoint("us-gov-east-1", 0, 1,
	    "https://ec2.us-gov-east-1.api.aws");
	check_endpoint("us-gov-east-1", 1, 1,
	    "https://ec2-fips.us-gov-east-1.api.aws");
	check_endpoint("us-iso-east-1", 0, 0,
	    "https://ec2.us-iso-east-1.c2s.ic.gov");
	check_endpoint("us-isob-east-1", 1, 0,
	    "https://ec2-fips.us-isob-east-1.sc2s.sgov.gov");
	/* No dual-stack in the isolated partitions; no odd regions. */
	check_endpoint("us-iso-east-1", 0, 1, NULL);
	check_endpoint("us-isob-east-1", 0, 1, NULL);
	check_endpoint("", 0, 0, NULL);
	check_endpoint("us-east-1/../x", 0, 0, NULL);
	check_endpoint("US-EAST-1", 0, 0, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_describe_instances_gives_typed_instances),
		cmocka_unit_test(
		    test_error_document_gives_code_message_and_request_id),
		cmocka_unit_test(test_dry_run_operation_is_success_of_a_dry_run),
		cmocka_unit_test(test_truncated_reply_is_a_clear_error),
		cmocka_unit_test(
		    test_malformed_and_unexpected_replies_are_errors),
		cmocka_unit_test(test_volumes_with_attachments),
		cmocka_unit_test(test_addresses_with_and_without_association),
		cmocka_unit_test(test_instance_status_checks),
		cmocka_unit_test(test_zones_with_state),
		cmocka_unit_test(test_console_output_is_base64_decoded),
		cmocka_unit_test(test_state_changes_and_attachment),
		cmocka_unit_test(test_reply_of_another_action_is_refused),
		cmocka_unit_test(test_action_names_round_trip),
		cmocka_unit_test(
		    test_error_rewritten_from_its_own_code_and_message),
		cmocka_unit_test(test_default_endpoint_follows_the_partition),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
