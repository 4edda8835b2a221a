/* epoll and eventfd (bus1_linux.h): the Glibc module Swift imports has neither. */
#include "b1l_internal.h"

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

int b1l_epoll_create(void) {
	KEEP_ERRNO();
	int fd = epoll_create1(EPOLL_CLOEXEC);
	return fd < 0 ? NEG_ERRNO() : fd;
}

int b1l_epoll_add(int epfd, int fd, uint32_t events, uint64_t data) {
	KEEP_ERRNO();
	struct epoll_event event = { .events = events, .data.u64 = data };
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) < 0 ? NEG_ERRNO() : 0;
}

int b1l_epoll_modify(int epfd, int fd, uint32_t events, uint64_t data) {
	KEEP_ERRNO();
	struct epoll_event event = { .events = events, .data.u64 = data };
	return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event) < 0 ? NEG_ERRNO() : 0;
}

int b1l_epoll_remove(int epfd, int fd) {
	KEEP_ERRNO();
	return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? NEG_ERRNO() : 0;
}

int b1l_epoll_wait(int epfd, uint64_t *data, uint32_t *events, int max, int timeout_ms) {
	KEEP_ERRNO();
	struct epoll_event ready[64];
	if (max > 64)
		max = 64;
	int n = epoll_wait(epfd, ready, max, timeout_ms);
	if (n < 0)
		return NEG_ERRNO();
	for (int i = 0; i < n; i++) {
		data[i] = ready[i].data.u64;
		events[i] = ready[i].events;
	}
	return n;
}

int b1l_eventfd_create(void) {
	KEEP_ERRNO();
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return fd < 0 ? NEG_ERRNO() : fd;
}

int b1l_eventfd_signal(int fd) {
	KEEP_ERRNO();
	uint64_t one = 1;
	ssize_t n = write(fd, &one, sizeof(one));
	/* EAGAIN: the counter is at its maximum, so the descriptor is readable anyway. */
	return n < 0 && errno != EAGAIN ? NEG_ERRNO() : 0;
}

int b1l_eventfd_drain(int fd) {
	KEEP_ERRNO();
	uint64_t value;
	ssize_t n = read(fd, &value, sizeof(value));
	if (n < 0)
		return errno == EAGAIN ? 0 : NEG_ERRNO();
	return 1;
}
