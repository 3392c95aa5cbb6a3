/*
 * libFuzzer harness for the configuration (issue 9): any file is either
 * refused with at least one message or loaded into a config whose
 * summary prints and which a second load finds equal, never a crash,
 * never a leak.
 *
 * conf_load() reads a path, so the input goes into a private memfd
 * (mode 0600, or conf_load would rightly refuse a file others may
 * write) that is read back through /proc/self/fd.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failoverd/conf.h"

#define FUZZ_ERRLEN	16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int	 fuzz_fd = -1;
static char	 fuzz_path[64];
static FILE	*fuzz_null;

static int
fuzz_setup(void)
{
	fuzz_fd = memfd_create("failoverd.conf", 0);
	if (fuzz_fd == -1 || fchmod(fuzz_fd, 0600) == -1)
		return -1;
	snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
	fuzz_null = fopen("/dev/null", "w");
	return fuzz_null != NULL ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*conf, *again;
	static char	 err[FUZZ_ERRLEN];
	size_t		 i;

	if (fuzz_fd == -1 && fuzz_setup() == -1)
		abort();
	/*
	 * An @include may name any file on this machine: conf_load reads
	 * only regular files, bounded, before libconfig opens them, so
	 * /dev/stdin, a directory or /dev/zero is an error, not a hang or
	 * an exit (the seeds bad-include-*.conf are such cases).
	 */
	if (ftruncate(fuzz_fd, 0) == -1 ||
	    pwrite(fuzz_fd, data, size, 0) != (ssize_t)size)
		abort();
	memset(err, 'x', 8);
	err[8] = '\0';
	conf = conf_load(fuzz_path, err, sizeof(err));
	if (conf == NULL) {
		/* Refused: always with a message, always terminated. */
		if (err[0] == '\0' || strcmp(err, "xxxxxxxx") == 0 ||
		    memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		return 0;
	}
	conf_print_summary(conf, fuzz_null);
	/*
	 * A reload of the same file finds every service unchanged: SIGHUP
	 * compares the two loads setting by setting and must not restart
	 * (or fail to restart) a service on a whim.
	 */
	again = conf_load(fuzz_path, err, sizeof(err));
	if (again == NULL || again->nservices != conf->nservices)
		abort();
	for (i = 0; i < conf->nservices; i++) {
		if (!conf_service_equal(&conf->services[i],
		    &again->services[i]))
			abort();
		if (conf_find_service(conf, conf->services[i].name) !=
		    &conf->services[i])
			abort();
	}
	conf_free(again);
	conf_free(conf);
	return 0;
}
