/*
 * The state directory's lock (statelock.h).
 */
#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failoverd/statelock.h"

/* The pid in the file, for the message; 0 when it says none. */
static long
statelock_holder(int fd)
{
	char	buf[32];
	ssize_t	n;

	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

int
statelock_take(const char *state_dir, char *err, size_t errlen)
{
	char	path[4096], pid[32];
	int	fd, n;
	long	holder;

	n = snprintf(path, sizeof(path), "%s/%s", state_dir, STATELOCK_NAME);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		snprintf(err, errlen, "state_dir %s: path too long",
		    state_dir);
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd == -1) {
		snprintf(err, errlen, "lock file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK) {
			holder = statelock_holder(fd);
			if (holder > 0)
				snprintf(err, errlen, "state_dir %s is in use "
				    "by another failoverd, pid %ld (lock "
				    "file %s); one daemon per state "
				    "directory", state_dir, holder, path);
			else
				snprintf(err, errlen, "state_dir %s is in use "
				    "by another failoverd (lock file %s); "
				    "one daemon per state directory",
				    state_dir, path);
		} else
			snprintf(err, errlen, "lock file %s: flock: %s", path,
			    strerror(errno));
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, pid, (size_t)n, 0) != n) {
		snprintf(err, errlen, "lock file %s: write: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void
statelock_release(int fd)
{
	if (fd != -1)
		close(fd);
}
