/* liburing behind an opaque ring [uring]: futex park and wake, polls (bus1_linux.h). */
#include "b1l_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <liburing.h>

/* io_uring futex opcodes (kernel >= 6.7); liburing 2.3 predates them. */
#define B1L_IORING_OP_FUTEX_WAIT 51
#define B1L_IORING_OP_FUTEX_WAKE 52
/* futex2 flags: 32-bit word, shared (no FUTEX2_PRIVATE: other processes wake it). */
#define B1L_FUTEX2_SIZE_U32 0x02
#define B1L_FUTEX_BITSET_MATCH_ANY 0xffffffffull

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
	int sync_result;  /* the result of its FUTEX_WAIT, or the waiters its FUTEX_WAKEs woke */
	int sync_error;   /* the first failed FUTEX_WAKE's -errno, else 0 */
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
			if (cqe->user_data == PARK_USER_DATA)
				ring->sync_result = cqe->res;
			else if (cqe->user_data == WAKE_USER_DATA && cqe->res < 0 && !ring->sync_error)
				ring->sync_error = cqe->res;
			else if (cqe->user_data == WAKE_USER_DATA && cqe->res > 0)
				ring->sync_result += cqe->res;
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
	return b1l_ring_futex_wake_many(ring, &word, 1, count);
}

int b1l_ring_futex_wake_many(struct b1l_ring *ring, uint32_t *const *words, int n, uint32_t count) {
	KEEP_ERRNO();
	struct io_uring *r = &ring->ring;
	int ret = sync_begin(ring, SYNC_WAKE);
	if (ret < 0)
		return ret;
	if (ret == 0) {
		if (n < 1 || io_uring_sq_space_left(r) < (unsigned int)n)
			return -EBUSY;
		for (int i = 0; i < n; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(r);
			prep_futex(sqe, B1L_IORING_OP_FUTEX_WAKE, words[i], count);
			sqe->user_data = WAKE_USER_DATA;
		}
		ring->sync_op = SYNC_WAKE;
		ring->sync_pending = n;
		ring->sync_result = 0;
		ring->sync_error = 0;
	}
	ret = sync_finish(ring);
	if (ret < 0)
		return ret;
	return ring->sync_error ? ring->sync_error : ring->sync_result;
}

int b1l_ring_poll_add(struct b1l_ring *ring, int fd, unsigned int events, uint64_t user_data) {
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring->ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, fd, events);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

int b1l_ring_futex_wait_add(struct b1l_ring *ring, uint32_t *word, uint32_t expected, uint64_t user_data) {
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring->ring);
	if (!sqe)
		return -EBUSY;
	prep_futex(sqe, B1L_IORING_OP_FUTEX_WAIT, word, expected);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

int b1l_ring_fd(struct b1l_ring *ring) {
	return ring->ring.ring_fd;
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
