/* memfd and seals [gnu], futex(2) waits and wakes [macro] (bus1_linux.h). */
#include "b1l_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

int b1l_memfd_create(const char *name) {
	KEEP_ERRNO();
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd < 0 ? NEG_ERRNO() : fd;
}

int b1l_add_seals(int fd, unsigned int seals) {
	KEEP_ERRNO();
	return fcntl(fd, F_ADD_SEALS, seals) < 0 ? NEG_ERRNO() : 0;
}

int b1l_get_seals(int fd) {
	KEEP_ERRNO();
	int seals = fcntl(fd, F_GET_SEALS);
	return seals < 0 ? NEG_ERRNO() : seals;
}

int b1l_reopen(int fd, int writable) {
	KEEP_ERRNO();
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int new_fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	return new_fd < 0 ? NEG_ERRNO() : new_fd;
}

int b1l_futex_wait_until(uint32_t *word, uint32_t expected, int64_t deadline_ns) {
	KEEP_ERRNO();
	struct timespec ts, *tsp = NULL;
	if (deadline_ns >= 0) {
		ts.tv_sec = deadline_ns / 1000000000;
		ts.tv_nsec = deadline_ns % 1000000000;
		tsp = &ts;
	}
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time (FUTEX_WAIT a relative one). */
	long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
	return r < 0 ? NEG_ERRNO() : 0;
}

int b1l_futex_wake(uint32_t *word, int count) {
	KEEP_ERRNO();
	long r = syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0);
	return r < 0 ? NEG_ERRNO() : (int)r;
}
