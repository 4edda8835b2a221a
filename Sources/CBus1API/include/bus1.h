/*
 * bus1.h: the C API of Bus1, capability-based zero-copy IPC for Linux.
 *
 * libbus1 (`swift build -c release --product bus1` -> libbus1.so) is the Bus1
 * client library behind a stable C ABI: opaque objects, fixed-width integers,
 * and `int` results that are 0 (or a count) on success and a negative errno
 * value on failure (`bus1_strerror` names them). No Swift type crosses it.
 *
 * Ownership, in one place:
 *   - a bus1_peer is used by one thread at a time, and so are its loans and
 *     messages: freeing a loan or releasing a message counts as using the peer
 *     (do it on the peer's thread); bus1_peer_free frees it (bus1_disconnect
 *     only disconnects: later calls fail with -ENOTCONN);
 *   - a bus1_loan is the caller's until a send takes it (bus1_send*, which free
 *     it whatever they return, except bus1_try_send returning -EAGAIN) or
 *     bus1_loan_free gives it back;
 *   - a bus1_message is the caller's until bus1_message_release, which returns
 *     its slice to the sender; its data pointer is valid until then only;
 *   - a loan is sent only through the peer it came from (-EINVAL otherwise);
 *   - loans and messages may outlive their peer (each keeps the memory it needs),
 *     but a pointer into one is valid only until it is sent, freed or released.
 *
 * Timeouts are in nanoseconds: BUS1_FOREVER (-1) waits forever, 0 never waits.
 */
#ifndef BUS1_H
#define BUS1_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BUS1_VERSION_MAJOR 0
#define BUS1_VERSION_MINOR 10
#define BUS1_VERSION_PATCH 0

/* Wait forever. */
#define BUS1_FOREVER ((int64_t)-1)

/* How a receive waits (bus1_receive's `mode`). */
#define BUS1_WAIT_DEFAULT 0 /* the peer's: spin a little, then park */
#define BUS1_WAIT_BUSY 1    /* spin on the CPU, never sleep */
#define BUS1_WAIT_SPIN 2    /* spin 20 µs, then park */
#define BUS1_WAIT_PARK 3    /* park at once */

/* What a message is (bus1_message_kind). */
#define BUS1_MESSAGE_DATA 0           /* bytes (and perhaps handles and fds) */
#define BUS1_MESSAGE_NODE_DESTROYED 1 /* the node the handle names was destroyed */
#define BUS1_MESSAGE_NODE_RELEASED 2  /* nobody else holds a handle to this node */

typedef struct bus1_peer bus1_peer;
typedef struct bus1_loan bus1_loan;
typedef struct bus1_message bus1_message;

/* Counters of one peer (bus1_peer_statistics). */
typedef struct bus1_statistics {
    uint64_t messages_sent;
    uint64_t messages_received;
    uint64_t pool_bytes_in_use;
    uint64_t slices_in_use;
    uint64_t parks;
    uint64_t credit_waits;
    uint64_t loan_waits;
    uint64_t messages_abandoned;
    uint64_t violations_detected;
} bus1_statistics;

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *bus1_version(void);

/* A static description of an error code (a negative errno value). */
const char *bus1_strerror(int error);

/* Connects to the bus at `address` (NULL: $BUS1_ADDRESS, then
 * $XDG_RUNTIME_DIR/bus1/bus, then /tmp/bus1-<uid>/bus). */
int bus1_connect(const char *address, bus1_peer **peer);

/* Disconnects `peer`: its channels close, what it did not read is gone, and every
 * later call on it fails with -ENOTCONN. */
int bus1_disconnect(bus1_peer *peer);

/* Disconnects `peer` if it is connected and frees it (NULL is ignored). */
void bus1_peer_free(bus1_peer *peer);

/* This peer's id on the bus. */
uint64_t bus1_peer_id(const bus1_peer *peer);

/* Creates a node of this peer; its handle goes to `*node`. */
int bus1_node_create(bus1_peer *peer, uint64_t *node);

/* Publishes one of this peer's nodes under `name` (1..255 bytes of UTF-8). */
int bus1_name_publish(bus1_peer *peer, uint64_t node, const char *name);

/* Looks `name` up, retrying until `timeout_ns` while nothing is published under
 * it; the handle goes to `*handle`. */
int bus1_name_lookup(bus1_peer *peer, const char *name, int64_t timeout_ns, uint64_t *handle);

/* Gives back one reference to a handle of another peer's node. */
int bus1_handle_release(bus1_peer *peer, uint64_t handle);

/* Destroys `count` (1..32; more: -E2BIG, read no further) nodes of this peer at once. */
int bus1_node_destroy(bus1_peer *peer, const uint64_t *nodes, size_t count);

/* Loans `size` bytes of this peer's pool, readable by the owner of `reader`'s
 * node (0: readable by this peer's uid), waiting up to `timeout_ns` for room. */
int bus1_loan_create(bus1_peer *peer, size_t size, uint64_t reader, int64_t timeout_ns, bus1_loan **loan);

/* Where to write the loan's bytes, and how many fit. */
void *bus1_loan_data(bus1_loan *loan);
size_t bus1_loan_capacity(const bus1_loan *loan);

/* The bytes to send (0..capacity; it starts at the size asked for). */
int bus1_loan_set_size(bus1_loan *loan, size_t size);

/* Gives an unsent loan back to the pool (NULL is ignored). */
void bus1_loan_free(bus1_loan *loan);

/* Sends `loan` to the node `handle` names, waiting up to `timeout_ns` for room
 * in the receiver's ring. Takes the loan whatever it returns. */
int bus1_send(bus1_peer *peer, bus1_loan *loan, uint64_t handle, int64_t timeout_ns);

/* Sends `loan` if the receiver's ring has room now: 0 (the loan is taken), or
 * -EAGAIN (the loan is still the caller's). Other errors take the loan. */
int bus1_try_send(bus1_peer *peer, bus1_loan *loan, uint64_t handle);

/* Sends one slice to `count` (1..256; more: -EINVAL, read no further) nodes
 * atomically (all get it, under one ticket, or none), waiting up to `timeout_ns`
 * for room in every ring. Takes the loan. */
int bus1_send_multicast(bus1_peer *peer, bus1_loan *loan, const uint64_t *handles, size_t count, int64_t timeout_ns);

/* Sends `loan` with up to 16 handles this peer holds and up to 4 fds attached
 * (the caller keeps its fds; the receiver gets its own handles and fds). Costs a
 * coordinator round trip. Takes the loan. */
int bus1_send_attached(bus1_peer *peer, bus1_loan *loan, uint64_t handle, const uint64_t *handles, size_t handle_count,
                       const int *fds, size_t fd_count, int64_t timeout_ns);

/* Receives the next message, waiting in `mode` (BUS1_WAIT_*) up to `timeout_ns`
 * (0: only if one is ready: -EAGAIN if none). */
int bus1_receive(bus1_peer *peer, int mode, int64_t timeout_ns, bus1_message **message);

/* The message's bytes, read in place in the sender's pool (valid until release). */
const void *bus1_message_data(const bus1_message *message);
size_t bus1_message_size(const bus1_message *message);
int bus1_message_kind(const bus1_message *message);
uint64_t bus1_message_ticket(const bus1_message *message);
/* This peer's node the message was sent to (for BUS1_MESSAGE_NODE_DESTROYED:
 * this peer's handle to the destroyed node). */
uint64_t bus1_message_node(const bus1_message *message);
uint64_t bus1_message_sender(const bus1_message *message);
/* The sender's uid and pid as the coordinator stamped them (-ENODATA for
 * notifications). */
int bus1_message_credentials(const bus1_message *message, uint32_t *uid, int32_t *pid);

/* Handles that came with the message: how many, and the `index`th (each holds a
 * reference: bus1_handle_release it). 0 for a handle whose node was destroyed. */
size_t bus1_message_handle_count(const bus1_message *message);
uint64_t bus1_message_handle(const bus1_message *message, size_t index);

/* Takes the fds that came with the message (up to `capacity` into `fds`; the
 * caller closes them); returns how many. Fds not taken close with the message. */
int bus1_message_take_fds(bus1_message *message, int *fds, size_t capacity);

/* Returns the message's slice to its sender and frees it (NULL is ignored). */
void bus1_message_release(bus1_message *message);

/* A descriptor that turns readable when the peer may have something to do (for
 * epoll, poll, io_uring). The loop: bus1_receive with timeout 0 until -EAGAIN,
 * then bus1_readiness_arm, then wait on the descriptor. */
int bus1_readiness_fd(bus1_peer *peer);

/* Arms the readiness descriptor: 1 if the peer is ready now (receive again
 * instead of waiting), 0 when armed. */
int bus1_readiness_arm(bus1_peer *peer);

/* The peer's counters, current. */
int bus1_peer_statistics(bus1_peer *peer, bus1_statistics *statistics);

/*
 * Patterns: topics (publish/subscribe) and request/reply, as the Swift library
 * has them (README, "Patterns"). Each object connects a peer of its own, which
 * belongs to it (one thread at a time, as for a bus1_peer). Topic messages and
 * requests arrive as bus1_message objects: bus1_message_data is the payload after
 * the pattern's frame, read in place; bus1_message_release gives it back.
 */
typedef struct bus1_topic bus1_topic;
typedef struct bus1_subscription bus1_subscription;
typedef struct bus1_service bus1_service;
typedef struct bus1_client bus1_client;

/* What a publish does about a subscriber whose ring is full (bus1_topic_host). */
#define BUS1_WHEN_FULL_BLOCK 0      /* wait for room */
#define BUS1_WHEN_FULL_SKIP 1       /* leave it out; it sees the gap in the sequence */
#define BUS1_WHEN_FULL_DISCONNECT 2 /* drop it */

/* Hosts the topic `name` on a new peer at `address` (NULL: the default bus),
 * keeping its last `history` (0..1024) messages for late subscribers. */
int bus1_topic_host(const char *address, const char *name, int when_full, uint32_t history, bus1_topic **topic);

/* Publishes a copy of `size` bytes to every subscriber; its sequence number goes
 * to `*sequence` (may be NULL). */
int bus1_topic_publish(bus1_topic *topic, const void *data, size_t size, int64_t timeout_ns, uint64_t *sequence);

/* Takes subscriptions and contributions in; returns the number of subscribers. */
int bus1_topic_serve(bus1_topic *topic);

/* Waits until at least `count` subscribers are in. */
int bus1_topic_wait_for_subscribers(bus1_topic *topic, size_t count, int64_t timeout_ns);

/* Waits until every subscriber released everything published so far. */
int bus1_topic_flush(bus1_topic *topic, int64_t timeout_ns);

/* Ends the topic (its subscribers learn it is gone) and frees it (NULL is ignored). */
void bus1_topic_free(bus1_topic *topic);

/* Subscribes a new peer at `address` to the topic `name`, waiting up to
 * `timeout_ns` for a host to take the subscription. */
int bus1_subscribe(const char *address, const char *name, int64_t timeout_ns, bus1_subscription **subscription);

/* The next topic message; its sequence number and how many were missed right
 * before it go to `*sequence` and `*missed_before` (either may be NULL). A
 * subscription that ended (the host left or dropped it) is -ESHUTDOWN; timeout 0
 * is -ETIMEDOUT if none is waiting. */
int bus1_subscription_receive(bus1_subscription *subscription, int64_t timeout_ns, bus1_message **message,
                              uint64_t *sequence, uint64_t *missed_before);

/* Messages missed in all (skipped by the host, or unreadable for this uid). */
uint64_t bus1_subscription_missed(const bus1_subscription *subscription);

/* Unsubscribes and frees (NULL is ignored). */
void bus1_subscription_free(bus1_subscription *subscription);

/* Serves `name` on a new peer at `address`. */
int bus1_service_create(const char *address, const char *name, bus1_service **service);

/* The next call; its payload is the request (bus1_message_sender: the caller).
 * Timeout 0: -ETIMEDOUT if none is waiting. */
int bus1_service_next(bus1_service *service, int64_t timeout_ns, bus1_message **request);

/* Replies to `request` with a copy of `size` bytes (release the request after).
 * 0 also when the reply was dropped (the client left, or its ring or this
 * service's pool stayed full for the reply timeout; the service counts them). */
int bus1_service_reply(bus1_service *service, const bus1_message *request, const void *data, size_t size);

/* Fails `request`: its caller gets -EREMOTEIO. */
int bus1_service_fail(bus1_service *service, const bus1_message *request, const char *reason);

/* Stops serving and frees (NULL is ignored). */
void bus1_service_free(bus1_service *service);

/* A client of the service `name` on a new peer at `address`, waiting up to
 * `timeout_ns` for the service to be published. */
int bus1_client_create(const char *address, const char *name, int64_t timeout_ns, bus1_client **client);

/* Calls the service with a copy of `size` bytes and waits up to `timeout_ns` for
 * the reply, copied into a malloc'd buffer the caller frees (`*reply`,
 * `*reply_size`). A service that is gone is -ESHUTDOWN; one that failed the call
 * -EREMOTEIO. Several threads may call one client at once. It blocks the calling
 * thread while a Swift task makes the call: never call it (or bus1_client_create)
 * from a thread of Swift's concurrency pool, which it would deadlock. */
int bus1_client_call(bus1_client *client, const void *request, size_t size, int64_t timeout_ns, void **reply,
                     size_t *reply_size);

/* Frees the client (NULL is ignored). */
void bus1_client_free(bus1_client *client);

#ifdef __cplusplus
}
#endif

#endif /* BUS1_H */
