/*
 * libFuzzer harness for EC2 replies (issue 9): whatever an endpoint (or
 * something pretending to be one) sends back, ec2_result_parse() gives a
 * result for every action, never crashes, and every string the typed
 * result hands out is readable: the failover engine trusts them.
 *
 * Input: byte 0 picks the action, byte 1 the HTTP status, the rest is
 * the body. With bit 7 of byte 1 set, the body is two pages cut at the
 * first form feed, read into one result the way ec2.c merges the pages
 * of a Describe call (ec2_priv.h).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "failoverd/ec2.h"
#include "ec2_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

/* Reads a string the way a caller would; ASan flags a bad pointer. */
static void
touch(const char *s)
{
	if (s != NULL)
		sink += strlen(s);
}

static void
touch_tags(const struct ec2_tag *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		touch(t[i].key);
		touch(t[i].value);
	}
}

static void
touch_bdm(const struct ec2_block_device *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		touch(b[i].device_name);
		touch(b[i].volume_id);
		touch(b[i].status);
	}
}

static void
touch_attachment(const struct ec2_attachment *a)
{
	touch(a->volume_id);
	touch(a->instance_id);
	touch(a->device);
	touch(a->state);
}

static void
touch_result(const struct ec2_result *res)
{
	const struct ec2_instance	*in;
	const struct ec2_instance_status *st;
	const struct ec2_volume		*vo;
	const struct ec2_address	*ad;
	const struct ec2_snapshot	*sn;
	const struct ec2_image		*im;
	const struct ec2_zone		*zo;
	const struct ec2_state_change	*ch;
	const struct ec2_attachment	*at;
	size_t				 i, j, n;

	touch(ec2_result_code(res));
	touch(ec2_result_message(res));
	touch(ec2_result_request_id(res));
	touch(ec2_result_id(res));
	touch(ec2_result_console_output(res));
	/* Every result, error or not, has a line for a person. */
	if (ec2_result_error(res) == NULL)
		abort();
	touch(ec2_result_error(res));
	n = ec2_result_instances(res, &in);
	for (i = 0; i < n; i++) {
		touch(in[i].instance_id);
		touch(in[i].state);
		touch(in[i].az);
		touch(in[i].subnet_id);
		touch(in[i].vpc_id);
		touch(in[i].private_ip);
		touch(in[i].public_ip);
		touch(in[i].image_id);
		touch(in[i].instance_type);
		touch(in[i].key_name);
		touch(in[i].launch_time);
		touch(in[i].root_device_name);
		touch_tags(in[i].tags, in[i].ntags);
		touch_bdm(in[i].bdm, in[i].nbdm);
	}
	n = ec2_result_instance_statuses(res, &st);
	for (i = 0; i < n; i++) {
		touch(st[i].instance_id);
		touch(st[i].az);
		touch(st[i].state);
		touch(st[i].instance_status);
		touch(st[i].system_status);
	}
	n = ec2_result_volumes(res, &vo);
	for (i = 0; i < n; i++) {
		touch(vo[i].volume_id);
		touch(vo[i].state);
		touch(vo[i].az);
		touch(vo[i].snapshot_id);
		touch(vo[i].volume_type);
		touch(vo[i].create_time);
		for (j = 0; j < vo[i].nattachments; j++)
			touch_attachment(&vo[i].attachments[j]);
		touch_tags(vo[i].tags, vo[i].ntags);
	}
	n = ec2_result_addresses(res, &ad);
	for (i = 0; i < n; i++) {
		touch(ad[i].public_ip);
		touch(ad[i].allocation_id);
		touch(ad[i].association_id);
		touch(ad[i].instance_id);
		touch(ad[i].network_interface_id);
		touch(ad[i].private_ip);
		touch(ad[i].domain);
		touch_tags(ad[i].tags, ad[i].ntags);
	}
	n = ec2_result_snapshots(res, &sn);
	for (i = 0; i < n; i++) {
		touch(sn[i].snapshot_id);
		touch(sn[i].volume_id);
		touch(sn[i].state);
		touch(sn[i].progress);
		touch(sn[i].start_time);
		touch(sn[i].description);
		touch_tags(sn[i].tags, sn[i].ntags);
	}
	n = ec2_result_images(res, &im);
	for (i = 0; i < n; i++) {
		touch(im[i].image_id);
		touch(im[i].name);
		touch(im[i].state);
		touch(im[i].creation_date);
		touch(im[i].description);
		touch(im[i].root_device_name);
		touch_bdm(im[i].bdm, im[i].nbdm);
		touch_tags(im[i].tags, im[i].ntags);
	}
	n = ec2_result_zones(res, &zo);
	for (i = 0; i < n; i++) {
		touch(zo[i].zone_name);
		touch(zo[i].zone_id);
		touch(zo[i].state);
		touch(zo[i].region);
	}
	n = ec2_result_state_changes(res, &ch);
	for (i = 0; i < n; i++) {
		touch(ch[i].instance_id);
		touch(ch[i].current_state);
		touch(ch[i].previous_state);
	}
	at = ec2_result_attachment(res);
	if (at != NULL)
		touch_attachment(at);
}

/* What ec2.c does with the pages of one call, without the transport. */
static struct ec2_result *
parse_pages(enum ec2_action action, const char *body, size_t len,
    long status)
{
	struct ec2_result	*res;
	const char		*ff;
	size_t			 first;

	ff = memchr(body, '\f', len);
	first = ff != NULL ? (size_t)(ff - body) : len;
	res = ec2_result_new(action);
	if (res == NULL)
		return NULL;
	res->attempts = 1;
	ec2_result_set_error(res, EC2_OK, NULL, NULL);
	ec2_result_parse_into(res, body, first, status);
	if (res->status == EC2_OK && ff != NULL) {
		free(res->next_token);
		res->next_token = NULL;
		ec2_result_set_error(res, EC2_OK, NULL, NULL);
		ec2_result_parse_into(res, ff + 1, len - first - 1, status);
	}
	if (res->status != EC2_OK)
		ec2_result_clear(res);
	ec2_result_finish(res);
	return res;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long	 statuses[] = {
	    200, 400, 401, 403, 412, 500, 503
	};
	struct ec2_result	*res;
	enum ec2_action		 action;
	long			 status;

	if (size < 2)
		return 0;
	action = (enum ec2_action)(data[0] % EC2_ACTION_COUNT);
	status = statuses[(data[1] & 0x7f) %
	    (sizeof(statuses) / sizeof(*statuses))];
	if (data[1] & 0x80)
		res = parse_pages(action, (const char *)data + 2, size - 2,
		    status);
	else
		res = ec2_result_parse(action, (const char *)data + 2,
		    size - 2, status);
	if (res == NULL)
		return 0;	/* out of memory */
	if (ec2_result_action(res) != action)
		abort();
	touch_result(res);
	ec2_result_free(res);
	return 0;
}
