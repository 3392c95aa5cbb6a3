/*
 * The state directory's lock (statelock.h).
 *
 * The descriptor that holds the lock is read-only: flock needs no write
 * access, and a file kept open for writing pins the file system
 * writable (a remount read-only fails with EBUSY), where a disk going
 * read-only must be something failoverd survives, not something it
 * prevents. The pid is written through a second descriptor, closed at
 * once.
 */
#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failoverd/buf.h"
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
	int	fd, wfd, n;
	long	holder;

	n = snprintf(path, sizeof(path), "%s/%s", state_dir, STATELOCK_NAME);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		return errf(err, errlen, "state_dir %s: path too long",
		    state_dir);
	}
	fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd == -1) {
		return errf(err, errlen, "lock file %s: %s", path,
		    strerror(errno));
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK) {
			holder = statelock_holder(fd);
			if (holder > 0)
				errf(err, errlen, "state_dir %s is in use "
				    "by another failoverd, pid %ld (lock "
				    "file %s); one daemon per state "
				    "directory", state_dir, holder, path);
			else
				errf(err, errlen, "state_dir %s is in use "
				    "by another failoverd (lock file %s); "
				    "one daemon per state directory",
				    state_dir, path);
		} else
			errf(err, errlen, "lock file %s: flock: %s", path,
			    strerror(errno));
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	wfd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
	if (wfd == -1 || write(wfd, pid, (size_t)n) != n) {
		errf(err, errlen, "lock file %s: write: %s", path,
		    strerror(errno));
		if (wfd != -1)
			close(wfd);
		close(fd);
		return -1;
	}
	close(wfd);
	return fd;
}

void
statelock_release(int fd)
{
	if (fd != -1)
		close(fd);
}
