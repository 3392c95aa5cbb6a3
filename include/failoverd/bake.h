/*
 * bake: an AMI of a service's current instance (the one its Elastic IP
 * points at): CreateImage, tagged, then wait until it is available. With
 * --use it becomes the service's replacement AMI, kept in
 * <state_dir>/<service>.bake.journal and shown in status; the
 * configuration's launch.ami stays the default and comes back when the
 * replacement is cleared.
 *
 * Without NoReboot, AWS reboots the instance for a consistent image:
 * the probes will see a short outage, so say --no-reboot for a service
 * that must not blink (and accept a crash-consistent image).
 */
#ifndef FAILOVERD_BAKE_H
#define FAILOVERD_BAKE_H

#include <stddef.h>
#include <time.h>

#include <ev.h>

#include "failoverd/buf.h"

struct ec2_client;
struct service;
struct bake;

struct bake_env {
	struct ev_loop		*loop;
	struct ec2_client	*ec2;		/* NULL: AWS not usable */
	const char		*state_dir;
};

/* Loads the replacement AMI kept by an earlier bake. NULL: no memory. */
struct bake	*bake_new(const struct bake_env *env, struct service *svc);
void		 bake_free(struct bake *b);

/* Starts a bake; -1 with why in out (one is running, no AWS). */
int		 bake_start(struct bake *b, int no_reboot, int use,
		    struct buf *out);
int		 bake_running(const struct bake *b);

/* The AMI a replacement should launch from, or NULL: launch.ami. */
const char	*bake_replacement_ami(const struct bake *b);

/* The bake part of `failoverctl status`: a line, or JSON members. */
void		 bake_status(const struct bake *b, struct buf *out, int json);

/* The image name for a bake at t (UTC): "failoverd-web-20261126-152049". */
void		 bake_image_name(const char *service, time_t t, char *out,
		    size_t len);

#endif
