/*
 * DOC: C shim for the Linux facilities Swift cannot reach directly.
 *
 * Each function exists for one of three reasons, named in its comment:
 *  [gnu]    a GNU-only name (memfd_create, F_ADD_SEALS, struct ucred, accept4);
 *  [macro]  a function-like macro or varargs call (CMSG_*, syscall());
 *  [uring]  liburing, kept behind an opaque ring so Swift never imports its headers.
 * Conventions: every function returns a value >= 0 on success and -errno on
 * failure (the wait-status helpers just decode). The caller's errno is left as it
 * was: each function saves it on entry and restores it on return. No function
 * retries EINTR; it is returned, and the Swift layer retries in one place (the
 * funnel in Bus1Linux/LinuxError.swift). A call that must not repeat work it has
 * done makes the retry safe instead: the futex wait takes an absolute deadline,
 * and an interrupted io_uring park or wake leaves its requests in flight for the
 * next call of the same kind to finish (see b1l_ring_futex_park).
 *
 * This header must not define _GNU_SOURCE (b1l_internal.h does, for the .c
 * files: memfd_futex.c, ring.c, socket.c, process.c).
 */
#ifndef BUS1_LINUX_H
#define BUS1_LINUX_H

#include <features.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

/* memfd and seals [gnu] */
#define B1L_SEAL_SEAL         0x0001
#define B1L_SEAL_SHRINK       0x0002
#define B1L_SEAL_GROW         0x0004
#define B1L_SEAL_WRITE        0x0008
#define B1L_SEAL_FUTURE_WRITE 0x0010

/* lseek whence values for sparse files [gnu] */
#define B1L_SEEK_DATA 3
#define B1L_SEEK_HOLE 4

/* memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING). */
int b1l_memfd_create(const char *name);
/* fcntl(F_ADD_SEALS). */
int b1l_add_seals(int fd, unsigned int seals);
/* fcntl(F_GET_SEALS). */
int b1l_get_seals(int fd);
/* A new read-only open file description of fd's file: open("/proc/self/fd/N", O_RDONLY). */
int b1l_reopen(int fd, int writable);

/* futex(2) on a word shared between processes (never FUTEX_PRIVATE) [macro: syscall()] */
/*
 * Waits while *word == expected, until deadline_ns on CLOCK_MONOTONIC (an absolute
 * time, so calling again after -EINTR keeps the deadline; < 0 waits forever).
 * 0, or -EAGAIN (*word != expected), -ETIMEDOUT, -EINTR.
 */
int b1l_futex_wait_until(uint32_t *word, uint32_t expected, int64_t deadline_ns);
/* Wakes up to count waiters; returns how many were woken. */
int b1l_futex_wake(uint32_t *word, int count);

/* io_uring [uring] */
struct b1l_ring;
/* Creates a ring with `entries` SQEs into *ring (NULL on failure). */
int b1l_ring_create(unsigned int entries, struct b1l_ring **ring);
void b1l_ring_destroy(struct b1l_ring *ring);
/* 1 if the kernel supports IORING_OP_FUTEX_WAIT and _WAKE, 0 if not, -errno if the probe failed. */
int b1l_ring_supports_futex(struct b1l_ring *ring);
/*
 * Parks on a shared futex word through io_uring: an IORING_OP_FUTEX_WAIT linked to
 * a timeout (timeout_ns < 0: none), submitted and reaped in one io_uring_enter.
 * Returns 0 when woken or the word no longer equals expected, -ETIME on timeout,
 * -errno otherwise. The ring must have no other requests in flight.
 * Resumable: when it fails after submitting (-EINTR from the wait, typically),
 * the requests stay in flight and the next park on this ring finishes them
 * instead of submitting new ones (its arguments are then unused), so the timeout
 * runs once from the first call.
 */
int b1l_ring_futex_park(struct b1l_ring *ring, uint32_t *word, uint32_t expected, int64_t timeout_ns);
/* Wakes up to count waiters of a shared futex word through io_uring (IORING_OP_FUTEX_WAKE);
 * returns how many were woken. Resumable like b1l_ring_futex_park. */
int b1l_ring_futex_wake(struct b1l_ring *ring, uint32_t *word, uint32_t count);
/* Wakes up to count waiters of each of the n words through n FUTEX_WAKEs in one
 * submission (one system call for a multicast's n sleeping receivers); returns how
 * many were woken in all. -EBUSY if the submission queue has no room for n.
 * Resumable like b1l_ring_futex_park. */
int b1l_ring_futex_wake_many(struct b1l_ring *ring, uint32_t *const *words, int n, uint32_t count);
/* Queues a one-shot IORING_OP_POLL_ADD; the completion carries user_data.
 * -EBUSY: the submission queue is full (submit, then queue again). */
int b1l_ring_poll_add(struct b1l_ring *ring, int fd, unsigned int events, uint64_t user_data);
/* Queues an IORING_OP_FUTEX_WAIT on a shared 32-bit word without waiting for it:
 * it completes (carrying user_data) when the word is woken, or at once if the word
 * no longer equals expected. -EBUSY: the submission queue is full. Not to be mixed
 * with b1l_ring_futex_park on the same ring (its sync requests reap everything). */
int b1l_ring_futex_wait_add(struct b1l_ring *ring, uint32_t *word, uint32_t expected, uint64_t user_data);
/* The ring's own file descriptor: poll(2)/epoll report it readable while
 * completions wait to be reaped. Owned by the ring. */
int b1l_ring_fd(struct b1l_ring *ring);
/* Queues an IORING_OP_POLL_REMOVE of the poll queued with user_data. */
int b1l_ring_poll_remove(struct b1l_ring *ring, uint64_t target_user_data, uint64_t user_data);
/* Submits queued requests without waiting (frees the submission queue).
 * -EBUSY/-EAGAIN: the kernel has no room for completions; reap, then retry. */
int b1l_ring_submit(struct b1l_ring *ring);
/* Submits queued requests and waits for at least one completion or the timeout.
 * After -EINTR the requests are submitted or still queued; a new call waits anew,
 * with the whole timeout (the coordinator's loop only uses it to bound a turn). */
int b1l_ring_submit_and_wait(struct b1l_ring *ring, int64_t timeout_ns);
/* Moves up to max completions out of the ring; returns how many. Never fails: a
 * failed peek (which may enter the kernel to flush overflowed completions) ends it. */
int b1l_ring_reap(struct b1l_ring *ring, uint64_t *user_data, int32_t *result, int max);

/* epoll and eventfd [gnu: sys/epoll.h, sys/eventfd.h are not in Swift's Glibc module] */
#define B1L_EPOLLIN 0x001u
#define B1L_EPOLLERR 0x008u
#define B1L_EPOLLHUP 0x010u
#define B1L_EPOLLONESHOT (1u << 30)
/* epoll_create1(EPOLL_CLOEXEC). */
int b1l_epoll_create(void);
/* epoll_ctl(EPOLL_CTL_ADD) with events and data.u64. */
int b1l_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
/* epoll_ctl(EPOLL_CTL_MOD) with events and data.u64 (re-arms a one-shot registration). */
int b1l_epoll_modify(int epfd, int fd, uint32_t events, uint64_t data);
/* epoll_ctl(EPOLL_CTL_DEL). */
int b1l_epoll_remove(int epfd, int fd);
/* epoll_wait for up to max (at most 64) events; timeout_ms < 0: no limit. Returns
 * how many, their data.u64 and events in data[] and events[]. */
int b1l_epoll_wait(int epfd, uint64_t *data, uint32_t *events, int max, int timeout_ms);
/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). */
int b1l_eventfd_create(void);
/* Adds 1 to an eventfd's counter (a full counter counts as done: it is readable). */
int b1l_eventfd_signal(int fd);
/* Reads an eventfd's counter back to 0: 1 if it was signalled, 0 if it was empty. */
int b1l_eventfd_drain(int fd);

/* Unix SOCK_SEQPACKET sockets [gnu: accept4, ucred; macro: CMSG_*] */
/* socket + bind + listen; fd is CLOEXEC and NONBLOCK. */
int b1l_listen_seqpacket(const char *path, int backlog);
/* socket + connect; fd is CLOEXEC (blocking; timeout_ns > 0 sets SO_SNDTIMEO/SO_RCVTIMEO first). */
int b1l_connect_seqpacket(const char *path, int64_t timeout_ns);
/* SO_SNDTIMEO and SO_RCVTIMEO (timeout_ns <= 0: block without limit). With them a
 * connect to a full backlog, or a send or receive, fails with -EAGAIN in time. */
int b1l_socket_set_timeouts(int fd, int64_t timeout_ns);
/* accept4(fd, SOCK_CLOEXEC | SOCK_NONBLOCK). */
int b1l_accept(int fd);
/* sendmsg with fds as SCM_RIGHTS (nfds may be 0); flags are MSG_* flags. Returns bytes sent. */
ssize_t b1l_send_with_fds(int fd, const void *buf, size_t len, const int *fds, int nfds, int flags);
/*
 * recvmsg with MSG_CMSG_CLOEXEC; received fds go to fds (up to max_fds, the rest
 * closed), their count to *nfds. *truncated is 1 if the data or the control data
 * was cut (MSG_TRUNC / MSG_CTRUNC). Returns bytes received, 0 on hang-up.
 */
ssize_t b1l_recv_with_fds(int fd, void *buf, size_t len, int *fds, int max_fds, int *nfds, int *truncated, int flags);
/* SO_PEERCRED. */
int b1l_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);
/* SO_PEERPIDFD (Linux >= 6.5): a pidfd of the connected peer. */
int b1l_peer_pidfd(int fd);
/* pidfd_open(pid, 0). */
int b1l_pidfd_open(int32_t pid);

/* Misc [gnu] */
/* sched_setaffinity(0, {cpu}). */
int b1l_pin_to_cpu(int cpu);
/*
 * sched_getaffinity(0) [gnu, macro: CPU_ISSET]: the CPUs this thread may run on
 * (the kernel leaves out CPUs that are offline). Writes up to max_cpus ids to
 * cpus, ascending; returns how many there are.
 */
int b1l_allowed_cpus(int *cpus, int max_cpus);
/* pipe2(fds, O_CLOEXEC) [gnu]: both ends close-on-exec. */
int b1l_pipe_cloexec(int fds[2]);
/* Exit status helpers for waitpid results [macro]. */
int b1l_wifexited(int status);
int b1l_wexitstatus(int status);
int b1l_wifsignaled(int status);
int b1l_wtermsig(int status);

#define B1L_POLLIN  0x001
#define B1L_POLLERR 0x008
#define B1L_POLLHUP 0x010
#define B1L_POLLRDHUP 0x2000

#endif /* BUS1_LINUX_H */
