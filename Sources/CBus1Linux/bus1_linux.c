/* Implementation of bus1_linux.h. _GNU_SOURCE lives here, never in a header Swift imports. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <liburing.h>

#include "bus1_linux.h"

#define NEG_ERRNO() (-(errno ? errno : EIO))

/*
 * KEEP_ERRNO() opens every function that may make a system call: the
 * caller's errno is put back when the function returns (after its return value,
 * which may read errno through NEG_ERRNO, is computed).
 */
static inline void restore_errno(const int *saved) { errno = *saved; }
#define KEEP_ERRNO() int saved_errno_ __attribute__((cleanup(restore_errno))) = errno

/* io_uring futex opcodes (kernel >= 6.7); liburing 2.3 predates them. */
#define B1L_IORING_OP_FUTEX_WAIT 51
#define B1L_IORING_OP_FUTEX_WAKE 52
/* futex2 flags: 32-bit word, shared (no FUTEX2_PRIVATE: other processes wake it). */
#define B1L_FUTEX2_SIZE_U32 0x02
#define B1L_FUTEX_BITSET_MATCH_ANY 0xffffffffull
#define B1L_SO_PEERPIDFD 77

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

/* The synchronous requests: a futex park (a FUTEX_WAIT, maybe with its linked timeout) or wake. */
enum { SYNC_NONE, SYNC_PARK, SYNC_WAKE };
#define PARK_USER_DATA    1
#define TIMEOUT_USER_DATA 2
#define WAKE_USER_DATA    3

struct b1l_ring {
	struct io_uring ring;
	/*
	 * The synchronous request in flight, if a call returned before its completions
	 * were all reaped (-EINTR from the wait, say): the next call of the same kind
	 * resumes it instead of submitting another.
	 */
	int sync_op;      /* SYNC_* */
	int sync_pending; /* its completions not reaped yet */
	int sync_result;  /* the result of its FUTEX_WAIT or FUTEX_WAKE, once reaped */
	struct __kernel_timespec park_timeout; /* read by the kernel when the park is submitted */
};

int b1l_ring_create(unsigned int entries, struct b1l_ring **ring) {
	KEEP_ERRNO();
	*ring = NULL;
	struct b1l_ring *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	int ret = io_uring_queue_init(entries, &r->ring, 0);
	if (ret < 0) {
		free(r);
		return ret;
	}
	*ring = r;
	return 0;
}

void b1l_ring_destroy(struct b1l_ring *ring) {
	KEEP_ERRNO();
	if (!ring)
		return;
	io_uring_queue_exit(&ring->ring);
	free(ring);
}

int b1l_ring_supports_futex(struct b1l_ring *ring) {
	KEEP_ERRNO();
	struct io_uring_probe *probe = io_uring_get_probe_ring(&ring->ring);
	if (!probe)
		return -ENOSYS;
	int ok = probe->last_op >= B1L_IORING_OP_FUTEX_WAKE
		&& (probe->ops[B1L_IORING_OP_FUTEX_WAIT].flags & IO_URING_OP_SUPPORTED)
		&& (probe->ops[B1L_IORING_OP_FUTEX_WAKE].flags & IO_URING_OP_SUPPORTED);
	io_uring_free_probe(probe);
	return ok;
}

static void prep_futex(struct io_uring_sqe *sqe, int op, uint32_t *word, uint64_t value) {
	io_uring_prep_rw(op, sqe, B1L_FUTEX2_SIZE_U32, word, 0, value);
	sqe->addr3 = B1L_FUTEX_BITSET_MATCH_ANY;
}

/*
 * Submits what is queued and reaps the synchronous request's completions. Returns
 * 0 when all are in, else -errno with the request left in flight for the next call
 * (no retry here: an -EINTR goes back to the caller, which calls again).
 */
static int sync_finish(struct b1l_ring *ring) {
	struct io_uring *r = &ring->ring;
	while (ring->sync_pending > 0) {
		struct io_uring_cqe *cqe;
		if (io_uring_peek_cqe(r, &cqe) == 0) {
			if (cqe->user_data == PARK_USER_DATA || cqe->user_data == WAKE_USER_DATA)
				ring->sync_result = cqe->res;
			io_uring_cqe_seen(r, cqe);
			ring->sync_pending--;
			continue;
		}
		int ret = io_uring_submit_and_wait(r, 1);
		if (ret < 0)
			return ret;
	}
	ring->sync_op = SYNC_NONE;
	return 0;
}

/*
 * Starts a synchronous request of kind op: 1 if one of that kind is already in
 * flight (resume it), 0 if the caller queues its own, -errno if a request of the
 * other kind could not be finished first.
 */
static int sync_begin(struct b1l_ring *ring, int op) {
	if (ring->sync_op == op)
		return 1;
	if (ring->sync_op != SYNC_NONE) {
		int ret = sync_finish(ring);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int b1l_ring_futex_park(struct b1l_ring *ring, uint32_t *word, uint32_t expected, int64_t timeout_ns) {
	KEEP_ERRNO();
	struct io_uring *r = &ring->ring;
	int ret = sync_begin(ring, SYNC_PARK);
	if (ret < 0)
		return ret;
	if (ret == 0) {
		unsigned int needed = timeout_ns >= 0 ? 2 : 1;
		if (io_uring_sq_space_left(r) < needed)
			return -EBUSY;
		struct io_uring_sqe *sqe = io_uring_get_sqe(r);
		prep_futex(sqe, B1L_IORING_OP_FUTEX_WAIT, word, expected);
		sqe->user_data = PARK_USER_DATA;
		if (timeout_ns >= 0) {
			ring->park_timeout.tv_sec = timeout_ns / 1000000000;
			ring->park_timeout.tv_nsec = timeout_ns % 1000000000;
			sqe->flags |= IOSQE_IO_LINK;
			struct io_uring_sqe *timeout = io_uring_get_sqe(r);
			io_uring_prep_link_timeout(timeout, &ring->park_timeout, 0);
			timeout->user_data = TIMEOUT_USER_DATA;
		}
		ring->sync_op = SYNC_PARK;
		ring->sync_pending = (int)needed;
		ring->sync_result = 0;
	}
	ret = sync_finish(ring);
	if (ret < 0)
		return ret;
	/* The wait ended: woken (0), value changed (-EAGAIN), or cancelled by the timeout. */
	int result = ring->sync_result;
	if (result == 0 || result == -EAGAIN)
		return 0;
	if (result == -ECANCELED || result == -ETIME)
		return -ETIME;
	return result;
}

int b1l_ring_futex_wake(struct b1l_ring *ring, uint32_t *word, uint32_t count) {
	KEEP_ERRNO();
	struct io_uring *r = &ring->ring;
	int ret = sync_begin(ring, SYNC_WAKE);
	if (ret < 0)
		return ret;
	if (ret == 0) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(r);
		if (!sqe)
			return -EBUSY;
		prep_futex(sqe, B1L_IORING_OP_FUTEX_WAKE, word, count);
		sqe->user_data = WAKE_USER_DATA;
		ring->sync_op = SYNC_WAKE;
		ring->sync_pending = 1;
		ring->sync_result = 0;
	}
	ret = sync_finish(ring);
	return ret < 0 ? ret : ring->sync_result;
}

int b1l_ring_poll_add(struct b1l_ring *ring, int fd, unsigned int events, uint64_t user_data) {
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring->ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, fd, events);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

int b1l_ring_poll_remove(struct b1l_ring *ring, uint64_t target_user_data, uint64_t user_data) {
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring->ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_remove(sqe, target_user_data);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

int b1l_ring_submit(struct b1l_ring *ring) {
	KEEP_ERRNO();
	int ret = io_uring_submit(&ring->ring);
	return ret < 0 ? ret : 0;
}

int b1l_ring_submit_and_wait(struct b1l_ring *ring, int64_t timeout_ns) {
	KEEP_ERRNO();
	struct io_uring_cqe *cqe = NULL;
	if (timeout_ns < 0) {
		int ret = io_uring_submit_and_wait(&ring->ring, 1);
		return ret < 0 ? ret : 0;
	}
	struct __kernel_timespec ts = {
		.tv_sec = timeout_ns / 1000000000,
		.tv_nsec = timeout_ns % 1000000000,
	};
	int ret = io_uring_submit_and_wait_timeout(&ring->ring, &cqe, 1, &ts, NULL);
	return (ret < 0 && ret != -ETIME) ? ret : 0;
}

int b1l_ring_reap(struct b1l_ring *ring, uint64_t *user_data, int32_t *result, int max) {
	KEEP_ERRNO(); /* io_uring_peek_cqe enters the kernel to flush overflowed completions */
	int n = 0;
	struct io_uring_cqe *cqe;
	while (n < max && io_uring_peek_cqe(&ring->ring, &cqe) == 0) {
		user_data[n] = cqe->user_data;
		result[n] = cqe->res;
		io_uring_cqe_seen(&ring->ring, cqe);
		n++;
	}
	return n;
}

static int fill_address(struct sockaddr_un *addr, const char *path) {
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr->sun_path))
		return -ENAMETOOLONG;
	strcpy(addr->sun_path, path);
	return 0;
}

int b1l_listen_seqpacket(const char *path, int backlog) {
	KEEP_ERRNO();
	struct sockaddr_un addr;
	int ret = fill_address(&addr, path);
	if (ret < 0)
		return ret;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return NEG_ERRNO();
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, backlog) < 0) {
		ret = NEG_ERRNO();
		close(fd);
		return ret;
	}
	return fd;
}

int b1l_socket_set_timeouts(int fd, int64_t timeout_ns) {
	KEEP_ERRNO();
	struct timeval tv = { 0, 0 };
	if (timeout_ns > 0) {
		tv.tv_sec = timeout_ns / 1000000000;
		tv.tv_usec = (timeout_ns % 1000000000) / 1000;
		if (tv.tv_sec == 0 && tv.tv_usec == 0)
			tv.tv_usec = 1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return NEG_ERRNO();
	return 0;
}

int b1l_connect_seqpacket(const char *path, int64_t timeout_ns) {
	KEEP_ERRNO();
	struct sockaddr_un addr;
	int ret = fill_address(&addr, path);
	if (ret < 0)
		return ret;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NEG_ERRNO();
	if (timeout_ns > 0 && (ret = b1l_socket_set_timeouts(fd, timeout_ns)) < 0) {
		close(fd);
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = NEG_ERRNO();
		close(fd);
		return ret;
	}
	return fd;
}

int b1l_accept(int fd) {
	KEEP_ERRNO();
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	return c < 0 ? NEG_ERRNO() : c;
}

ssize_t b1l_send_with_fds(int fd, const void *buf, size_t len, const int *fds, int nfds, int flags) {
	KEEP_ERRNO();
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} control;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds < 0 || nfds > 8)
		return -EINVAL;
	if (nfds > 0) {
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}
	ssize_t n = sendmsg(fd, &msg, flags | MSG_NOSIGNAL);
	return n < 0 ? NEG_ERRNO() : n;
}

ssize_t b1l_recv_with_fds(int fd, void *buf, size_t len, int *fds, int max_fds, int *nfds, int *truncated, int flags) {
	KEEP_ERRNO();
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} control;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf, .msg_controllen = sizeof(control.buf),
	};
	*nfds = 0;
	*truncated = 0;
	ssize_t n = recvmsg(fd, &msg, flags | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return NEG_ERRNO();
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *received = (int *)CMSG_DATA(c);
		for (int i = 0; i < count; i++) {
			if (*nfds < max_fds)
				fds[(*nfds)++] = received[i];
			else
				close(received[i]); /* never leak fds a peer pushes at us */
		}
	}
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		*truncated = 1;
	return n;
}

int b1l_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
	KEEP_ERRNO();
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return NEG_ERRNO();
	*pid = cred.pid;
	*uid = cred.uid;
	*gid = cred.gid;
	return 0;
}

int b1l_peer_pidfd(int fd) {
	KEEP_ERRNO();
	int pidfd = -1;
	socklen_t len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, B1L_SO_PEERPIDFD, &pidfd, &len) < 0)
		return NEG_ERRNO();
	return pidfd;
}

int b1l_pidfd_open(int32_t pid) {
	KEEP_ERRNO();
	long fd = syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? NEG_ERRNO() : (int)fd;
}

int b1l_pin_to_cpu(int cpu) {
	KEEP_ERRNO();
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? NEG_ERRNO() : 0;
}

int b1l_allowed_cpus(int *cpus, int max_cpus) {
	KEEP_ERRNO();
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return NEG_ERRNO();
	int count = 0;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &set))
			continue;
		if (count < max_cpus)
			cpus[count] = cpu;
		count++;
	}
	return count;
}

int b1l_pipe_cloexec(int fds[2]) {
	KEEP_ERRNO();
	return pipe2(fds, O_CLOEXEC) < 0 ? NEG_ERRNO() : 0;
}

int b1l_wifexited(int status) { return WIFEXITED(status); }
int b1l_wexitstatus(int status) { return WEXITSTATUS(status); }
int b1l_wifsignaled(int status) { return WIFSIGNALED(status); }
int b1l_wtermsig(int status) { return WTERMSIG(status); }

_Static_assert(B1L_SEEK_DATA == SEEK_DATA && B1L_SEEK_HOLE == SEEK_HOLE, "lseek whence values");
