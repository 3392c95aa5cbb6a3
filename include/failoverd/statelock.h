/*
 * statelock: one failoverd per state directory.
 *
 * Two daemons on one configuration (a manual start beside the systemd
 * one) both failed the same service over and both wrote its journal.
 * The first takes an exclusive flock(2) on state_dir/failoverd.lock,
 * before its control socket or any journal is touched, and holds it
 * until it exits (the kernel drops it with the process, even on a
 * crash, so a stale file never locks anyone out); a second one is
 * refused, told the holder's pid.
 */
#ifndef FAILOVERD_STATELOCK_H
#define FAILOVERD_STATELOCK_H

#include <stddef.h>

#define STATELOCK_NAME	"failoverd.lock"

/*
 * Returns the descriptor holding the lock on state_dir's lock file, our
 * pid written in it; or -1 with a message naming the file and, when it
 * is held, the holder's pid.
 */
int	statelock_take(const char *state_dir, char *err, size_t errlen);
/* Lets it go (close). -1 is ignored. */
void	statelock_release(int fd);

#endif
