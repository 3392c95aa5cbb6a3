/*
 * SSH host keys of the instances the probes talk to: parsed from the
 * console (cloud-init prints them on a first boot), given in the user
 * data (host_keys = "user_data"), or vouched for by the probes' own
 * known_hosts; written to the learned-hosts file the probes trust.
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

size_t
failover_console_keys(const char *console, struct buf *out)
{
	static const char begin[] = "-----BEGIN SSH HOST KEY KEYS-----";
	static const char end[] = "-----END SSH HOST KEY KEYS-----";
	const char	*p, *e, *nl, *sp1, *sp2;
	size_t		 n = 0;

	if (console == NULL)
		return 0;
	p = strstr(console, begin);
	if (p == NULL)
		return 0;
	p += sizeof(begin) - 1;
	e = strstr(p, end);
	if (e == NULL)
		return 0;	/* the console is still being written */
	while (p < e) {
		while (p < e && (*p == '\n' || *p == '\r'))
			p++;
		nl = memchr(p, '\n', (size_t)(e - p));
		if (nl == NULL)
			nl = e;
		/* "type base64 comment": keep the first two words. */
		sp1 = memchr(p, ' ', (size_t)(nl - p));
		if (sp1 != NULL && sp1 > p) {
			sp2 = memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1));
			if (sp2 == NULL)
				sp2 = nl;
			while (sp2 > sp1 && sp2[-1] == '\r')
				sp2--;
			if (sp2 > sp1 + 1) {
				buf_append(out, p, (size_t)(sp2 - p));
				buf_puts(out, "\n");
				n++;
			}
		}
		p = nl + 1;
	}
	return n;
}

void
fo_learned_path(const struct failover *fo, char *out, size_t len)
{
	snprintf(out, len, "%s/%s.learned_hosts", fo->env->state_dir,
	    fo->name);
}

/* The file as it is: a switch keeps the keys of the kept instance. */
static void
fo_read_learned(const char *path, struct buf *out)
{
	char	chunk[4096];
	ssize_t	n;
	int	fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return;
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n <= 0 || out->len >= 1024 * 1024)
			break;
		buf_append(out, chunk, (size_t)n);
	}
	close(fd);
}

/*
 * Writes the replacement's keys for the EIP's address at each ssh
 * probe's port, in known_hosts form, through a temporary file and a
 * rename so a probe never reads half a file. A switch or a rollback
 * keeps the lines already there (the EIP must still match the instance
 * it may move back to) and adds the new instance's private address,
 * where the switch checks it before touching production.
 */
static int
fo_write_learned(struct failover *fo, const struct buf *keys)
{
	const struct service_conf	*sc = fo_conf(fo);
	struct buf			 file;
	char				 path[1024], tmp[1100], host[300];
	const char			*p, *nl, *ips[2];
	size_t				 i, k;
	int				 fd, rc = -1;

	buf_init(&file);
	fo_learned_path(fo, path, sizeof(path));
	ips[0] = fo->eip_ip;
	ips[1] = NULL;
	if (fo_active(fo) && fo->kind != KIND_FAILOVER) {
		fo_read_learned(path, &file);
		ips[1] = fo->new_ip;
	}
	for (k = 0; k < 2; k++) {
		if (ips[k] == NULL)
			continue;
		for (i = 0; i < sc->nprobes; i++) {
			if (sc->probes[i].type != PROBE_SSH ||
			    sc->probes[i].address != NULL)
				continue;
			if (sc->probes[i].ssh.port == 22)
				snprintf(host, sizeof(host), "%s", ips[k]);
			else
				snprintf(host, sizeof(host), "[%s]:%d",
				    ips[k], sc->probes[i].ssh.port);
			for (p = buf_str(keys); *p != '\0'; p = nl + 1) {
				nl = strchr(p, '\n');
				if (nl == NULL)
					break;
				buf_printf(&file, "%s %.*s\n", host,
				    (int)(nl - p), p);
			}
		}
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1) {
		log_warn("failover %s: %s", fo->name, tmp);
		goto done;
	}
	if (write(fd, file.data ? file.data : "", file.len) !=
	    (ssize_t)file.len || fsync(fd) == -1) {
		log_warn("failover %s: %s", fo->name, tmp);
		close(fd);
		unlink(tmp);
		goto done;
	}
	close(fd);
	if (rename(tmp, path) == -1) {
		log_warn("failover %s: %s", fo->name, path);
		unlink(tmp);
		goto done;
	}
	service_set_learned_hosts(fo->svc, path);
	rc = 0;
done:
	buf_free(&file);
	return rc;
}

int
fo_has_ssh_probe(const struct failover *fo)
{
	const struct service_conf	*sc = fo_conf(fo);
	size_t				 i;

	for (i = 0; i < sc->nprobes; i++)
		if (sc->probes[i].type == PROBE_SSH &&
		    sc->probes[i].address == NULL)
			return 1;
	return 0;
}

#define FO_LEARNED_MAX	8	/* instances the learned file holds */

/*
 * Whether the learned file holds this instance's keys: the instances
 * are journaled as the file is written (learned_instances, newest
 * last; learned_instance alone in journals of older versions).
 */
static int
fo_keys_learnt(const struct failover *fo, const char *instance)
{
	const char	*p;
	size_t		 n;

	if (instance == NULL)
		return 0;
	if (fo_is(fo->learned_instance, instance))
		return 1;
	n = strlen(instance);
	for (p = fo->learned_instances; p != NULL;
	    p = strchr(p, ' ') != NULL ? strchr(p, ' ') + 1 : NULL)
		if (strncmp(p, instance, n) == 0 &&
		    (p[n] == ' ' || p[n] == '\0'))
			return 1;
	return 0;
}

/*
 * After fo_write_learned: the file kept its lines (a switch, a
 * rollback) or holds this instance's alone; the list says the same.
 */
static void
fo_learned_note(struct failover *fo, const char *instance)
{
	const char	*had = fo->learned_instances;
	const char	*p, *sp;
	char		 list[FO_LEARNED_MAX * 24];
	size_t		 words = 0, skip, off = 0, n;

	list[0] = '\0';
	if (fo_active(fo) && fo->kind != KIND_FAILOVER && had != NULL) {
		for (p = had; *p != '\0'; p = *sp ? sp + 1 : sp) {
			sp = strchr(p, ' ');
			if (sp == NULL)
				sp = p + strlen(p);
			words++;
		}
		skip = words >= FO_LEARNED_MAX ? words - FO_LEARNED_MAX + 1 :
		    0;
		for (p = had; *p != '\0'; p = *sp ? sp + 1 : sp) {
			sp = strchr(p, ' ');
			if (sp == NULL)
				sp = p + strlen(p);
			n = (size_t)(sp - p);
			if (skip > 0) {
				skip--;
				continue;
			}
			if (n == 0 || n > 23 || (n == strlen(instance) &&
			    strncmp(p, instance, n) == 0))
				continue;
			off += (size_t)snprintf(list + off, sizeof(list) - off,
			    "%.*s ", (int)n, p);
		}
	}
	snprintf(list + off, sizeof(list) - off, "%s", instance);
	/*
	 * Out of memory: none rather than a stale list, which would
	 * claim keys the file no longer holds (they are learnt again).
	 */
	if (fo_set_str(&fo->learned_instances, list) == -1 ||
	    fo_set_str(&fo->learned_instance, instance) == -1) {
		free(fo->learned_instances);
		free(fo->learned_instance);
		fo->learned_instances = fo->learned_instance = NULL;
	}
}

/*
 * The key failoverd gives this failover's launches: the same for every
 * launch of one failover id, also after a crash (hostkey.h).
 */
static struct hostkey *
fo_hostkey(const struct failover *fo, char *why, size_t len)
{
	char path[1024], comment[128];

	snprintf(path, sizeof(path), "%s/" HOSTKEY_SECRET_NAME,
	    fo->env->state_dir);
	snprintf(comment, sizeof(comment), "failoverd@%.100s", fo->name);
	if (fo->env->hostkey_secret != NULL)
		return hostkey_for_launch_shared(fo->env->hostkey_secret,
		    fo->id, comment, why, len);
	return hostkey_for_launch(path, fo->id, comment, why, len);
}

/*
 * RunInstances' UserData: the user's file and, with host_keys =
 * "user_data", the replacement's host key. The request wipes its
 * copy when freed; this function wipes its own.
 */
int
fo_add_user_data(struct failover *fo, struct ec2_request *req, char *why,
    size_t len)
{
	const struct launch_conf	*lc = &fo_conf(fo)->launch;
	struct hostkey			*hk = NULL;
	char				*b64 = NULL;
	int				 rc = -1;

	if (lc->host_keys == HOST_KEYS_USER_DATA && fo_has_ssh_probe(fo)) {
		hk = fo_hostkey(fo, why, len);
		if (hk == NULL)
			return -1;
	}
	if (userdata_build(lc->user_data_file, hk, &b64, why, len) == -1)
		goto done;
	if (b64 != NULL && ec2_request_add(req, "UserData", b64) != 0) {
		snprintf(why, len, "RunInstances: out of memory");
		goto done;
	}
	rc = 0;
done:
	hostkey_free(hk);
	userdata_free(b64);
	return rc;
}

/* The probes' own known_hosts vouch for the new instance's address. */
static int
fo_known_hosts_cover(const struct failover *fo)
{
	const struct service_conf	*sc = fo_conf(fo);
	const struct probe_conf		*p;
	const char			*ips[2];
	size_t				 i, k, n = 0;

	ips[0] = fo->eip_ip;
	ips[1] = fo->kind == KIND_SWITCH ? fo->new_ip : NULL;
	if (ips[0] == NULL)
		return 0;
	for (i = 0; i < sc->nprobes; i++) {
		p = &sc->probes[i];
		if (p->type != PROBE_SSH || p->address != NULL)
			continue;
		if (p->ssh.known_hosts == NULL)
			return 0;
		for (k = 0; k < 2; k++)
			if (ips[k] != NULL && sshcmd_known_has(
			    p->ssh.known_hosts, ips[k], p->ssh.port) != 1)
				return 0;
		n++;
	}
	return n > 0;
}

/* The key given in the user data, trusted before the instance boots. */
static int
fo_learn_given_key(struct failover *fo)
{
	struct hostkey	*hk;
	struct buf	 keys;
	char		 why[512];
	int		 rc = -1;

	hk = fo_hostkey(fo, why, sizeof(why));
	if (hk == NULL) {
		fo_fail(fo, why);
		return -1;
	}
	buf_init(&keys);
	buf_printf(&keys, "%s\n", hostkey_public_key(hk));
	hostkey_free(hk);
	if (fo_write_learned(fo, &keys) == 0) {
		log_info("failover %s: %s's SSH host key is the one failoverd "
		    "gave it in its user data", fo->name, fo->new);
		fo_learned_note(fo, fo->new);
		fo_save(fo);
		rc = 1;
	} else {
		/*
		 * The watchdog's own disk, not the replacement: say so once
		 * and try again at the next poll, within launch_timeout.
		 */
		fo_journal_failed(fo, "cannot write the file of learned SSH "
		    "host keys (see the log)");
		rc = 2;
	}
	buf_free(&keys);
	return rc;
}

/*
 * Whether the new instance's host keys are known without its console:
 * 1 yes (in the learned file or the probes' known_hosts), 0 no (wait
 * for the console), 2 not yet (the state_dir cannot be written: try
 * again), -1 the failover failed. An instance that booted
 * before (restart in place, rollback) prints no keys any more: cloud-
 * init prints them on a first boot only.
 */
int
fo_keys_known(struct failover *fo)
{
	enum host_keys_source	src = fo_conf(fo)->launch.host_keys;
	int			again = fo->restart ||
				    fo->kind == KIND_ROLLBACK;

	if (again && fo_keys_learnt(fo, fo->new)) {
		log_info("failover %s: %s's SSH host keys are known from "
		    "before it was stopped", fo->name, fo->new);
		return 1;
	}
	if (src == HOST_KEYS_KNOWN_HOSTS) {
		log_info("failover %s: the probes' known_hosts are to hold "
		    "%s's SSH host keys (host_keys = \"known_hosts\")",
		    fo->name, fo->new);
		return 1;
	}
	if (src == HOST_KEYS_USER_DATA && !again)
		return fo_learn_given_key(fo);
	if (fo_known_hosts_cover(fo)) {
		log_info("failover %s: the probes' known_hosts hold keys for "
		    "%s: not waiting for %s's console", fo->name, fo->eip_ip,
		    fo->new);
		return 1;
	}
	return 0;
}

void
fo_on_console(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	struct buf keys;

	if (fo->launch != LAUNCH_RUNNING)
		return;		/* answered before a change of plan */
	/*
	 * EC2 documents Latest for Nitro types only, not the refusal's
	 * code: any refusal falls back to the buffered output, which
	 * every type has, for the rest of this instance's launch.
	 */
	if (fo->console_latest && ec2_result_status(res) == EC2_ERR_AWS &&
	    !ec2_result_retryable(res)) {
		if (!fo_is(fo->latest_refused, fo->new))
			log_info("failover %s: %s gives no latest console "
			    "output (%s); reading its buffered output, "
			    "posted late", fo->name, fo->new,
			    ec2_result_error(res));
		fo_set_str(&fo->latest_refused, fo->new);
		return;
	}
	if (fo_outcome(fo, res) != FO_OK)
		return;
	buf_init(&keys);
	if (failover_console_keys(ec2_result_console_output(res), &keys) >
	    0 && fo->eip_ip != NULL && fo_write_learned(fo, &keys) == 0) {
		log_info("failover %s: learnt %s's SSH host keys from its "
		    "console", fo->name, fo->new);
		fo_learned_note(fo, fo->new);
		fo_launch_ready(fo);
	} else if (!fo->keys_waiting) {
		fo->keys_waiting = 1;
		log_info("failover %s: waiting for %s's SSH host keys on its "
		    "console", fo->name, fo->new);
	}
	buf_free(&keys);
}

void
fo_on_current_console(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	struct buf keys;

	if (fo_active(fo) || fo->eip_instance == NULL)
		return;
	/* No latest output on this type: the buffered one next time. */
	if (ec2_result_status(res) == EC2_ERR_AWS &&
	    !ec2_result_retryable(res)) {
		fo_set_str(&fo->latest_refused, fo->eip_instance);
		return;
	}
	if (ec2_result_status(res) != EC2_OK)
		return;
	buf_init(&keys);
	if (failover_console_keys(ec2_result_console_output(res), &keys) >
	    0 && fo->eip_ip != NULL && fo_write_learned(fo, &keys) == 0) {
		log_info("service %s: learnt %s's SSH host keys from its "
		    "console", fo->name, fo->eip_instance);
		fo_learned_note(fo, fo->eip_instance);
		fo_save(fo);
	}
	buf_free(&keys);
}

/*
 * A move taken over from another member of a cluster past DETACH: the
 * learned-hosts file is this member's own, and the one that launched
 * the replacement learnt its keys into its own file, not here. Read
 * them again from the console (the launch's own path has ended).
 */
static void
fo_on_relearn_console(struct failover *fo, struct ec2_result *res,
    void *arg)
{
	struct buf keys;

	if (!fo->keys_relearn || !fo_active(fo) || fo->new == NULL ||
	    ec2_result_status(res) != EC2_OK)
		return;		/* asked again next tick */
	buf_init(&keys);
	if (failover_console_keys(ec2_result_console_output(res), &keys) >
	    0 && fo->eip_ip != NULL && fo_write_learned(fo, &keys) == 0) {
		log_info("failover %s: learnt %s's SSH host keys from its "
		    "console (taken over)", fo->name, fo->new);
		fo_learned_note(fo, fo->new);
		fo->keys_relearn = 0;
		if (fo->step == FAILOVER_VERIFY)
			service_reset_probes(fo->svc);
		fo_save(fo);
	}
	buf_free(&keys);
}

void
fo_relearn_keys(struct failover *fo)
{
	struct ec2_request	*req;

	if (!fo->keys_relearn || fo->new == NULL || fo->busy[FO_LAUNCH] > 0)
		return;
	req = fo_req_instance(EC2_GET_CONSOLE_OUTPUT, "InstanceId", fo->new);
	if (req != NULL)
		fo_send(fo, FO_LAUNCH, req, FO_POLL_DEADLINE,
		    fo_on_relearn_console, NULL);
}
