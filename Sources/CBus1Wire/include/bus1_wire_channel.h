/*
 * Bus1 wire format: channels (descriptor and completion rings) and the coordinator ring.
 * Part of the Bus1 wire format: include "bus1_wire.h", which owns the rules.
 */
#ifndef BUS1_WIRE_CHANNEL_H
#define BUS1_WIRE_CHANNEL_H

#include "bus1_wire_memory.h"

/* ------------------------------------------------------------------------ */
/* Channel: one per (sender, receiver) pair.                                 */
/* ------------------------------------------------------------------------ */

/*
 * Layout: [bus1_channel_header][capacity x bus1_descriptor][capacity x bus1_completion]
 *
 * Ring indices are free-running uint64 counters; slot = index & (capacity - 1).
 * Both sides map the channel read-write, so each side validates every index it
 * reads from the other: 0 <= tail - head <= capacity, and never moving backwards
 * (receivers read no index of the sender's at all). A violation closes the
 * channel (reported to the coordinator).
 *
 * Submission ring: the sender fills descriptor[sub_tail & mask], storing its
 * `ticket` (never 0) last (release), then stores sub_tail + 1 (for inspectors
 * and the coordinator ring's credit; receivers do not read it). The receiver
 * polls descriptor[sub_head & mask].ticket (acquire): non-zero means the slot
 * is published. It reads the descriptor, validates it, stores ticket = 0 and
 * sub_head + 1 (release) when it has taken it.
 *
 * Completion ring: when the receiver releases a message it writes the slice
 * offset to completion[comp_tail & mask] and stores comp_tail + 1 (release).
 * The sender loads comp_tail (acquire) and reclaims the slice after checking it
 * sent exactly that slice on this channel and has not had it back yet.
 *
 * Credit: the sender keeps at most `capacity` slices outstanding on a channel
 * (sent and not yet completed), so neither ring can overflow.
 *
 * Global order (unless the bus is FIFO-only): before taking a ticket, a sender
 * stores the clock's current value into `staging` of every destination channel
 * (then fetch_add, acquire-release, on the clock), publishes the descriptor
 * into every destination, and only then stores `staging` = 0 (release). A
 * receiver may deliver ticket t only when every other inbound channel has a
 * descriptor waiting (its ticket is > t) or has `staging` == 0 or > t, reading
 * `staging` (acquire) BEFORE that channel's head slot: a cleared mark is only
 * visible after the publish it guards, and a sender that took a ticket < t
 * stored its mark before t existed: its store is sequenced before its
 * fetch_add, which t's fetch_add read from (release sequence), and t's sender
 * published t (the slot's ticket store, release) after its own fetch_add, so the
 * receiver that acquired t happens after the mark. A mark older than the
 * receiver's stall timeout is skipped and reported (BUS1_MSG_ORDERING_STALL):
 * liveness wins. `staging` has a cache line of its own: receivers read it only
 * while merging several channels, so the sender's two stores per send never
 * wait for the lines the receiver polls (the slots).
 */
struct bus1_channel_header {
	uint32_t magic;            /* BUS1_MAGIC_CHANNEL; coordinator */
	uint32_t version;          /* coordinator */
	uint64_t channel_id;       /* coordinator */
	uint64_t sender_peer;      /* coordinator */
	uint64_t receiver_peer;    /* coordinator */
	uint32_t capacity;         /* entries per ring, a power of two; coordinator */
	uint32_t _reserved0;
	uint64_t submission_offset;/* from the channel start; coordinator */
	uint64_t completion_offset;/* from the channel start; coordinator */
	uint8_t  _reserved_line0[8];
	/* cache line 1: written by the sender (receivers poll the slots instead) */
	uint64_t sub_tail;         /* descriptors published */
	uint64_t comp_head;        /* completions consumed */
	uint8_t  _reserved1[48];
	/* cache line 2: written by the receiver */
	uint64_t sub_head;         /* descriptors consumed */
	uint64_t comp_tail;        /* completions published */
	uint8_t  _reserved2[48];
	/* cache line 3: written by the sender, read by a receiver merging channels */
	uint64_t staging;          /* ordering: lower bound of the ticket being sent, or 0 (see above) */
	uint8_t  _reserved3[56];
};

/* One message: `length` payload bytes at `offset` in the sender's pool (segment in
 * the top bits, see "Pool segments"), sent to
 * the receiver's node `node` (the receiver's own handle id for it). */
struct bus1_descriptor {
	uint64_t ticket;           /* from the clock page; never decreasing per channel; written last (0: slot empty) */
	uint64_t node;             /* receiver-local node id */
	uint64_t offset;           /* slice start in the sender's pool */
	uint32_t length;           /* payload bytes */
	uint32_t flags;            /* data channels: BUS1_DESC_*; coordinator ring: bus1_notification */
};

/*
 * The message carries the oldest attachment (handles, fds) the coordinator
 * delivered to the receiver for this channel (BUS1_MSG_ATTACHMENT) and that no
 * earlier message took. The sender asks for it with BUS1_MSG_ATTACH and
 * publishes the descriptor only after the reply, so the attachment is in the
 * receiver's socket before the descriptor can be seen; a descriptor with this
 * flag and no attachment waiting is BUS1_CLOSE_BAD_DESCRIPTOR.
 */
#define BUS1_DESC_ATTACHMENT 0x1u

/*
 * Coordinator ring: one per peer, a channel (same layout) whose sender is the
 * coordinator (sender_peer BUS1_COORDINATOR_PEER) and which has no completion
 * traffic: the coordinator takes credit from `sub_head`. It carries the
 * notifications that must be ordered with data. The coordinator publishes them
 * exactly as a sender publishes a multicast: stage every destination ring, one
 * ticket for the whole batch, write (each slot publishes itself), unstage, ring.
 * So a receiver's merge orders them with every data message, and on a globally
 * ordered bus a batch (a destroy of several nodes, a peer's disconnect) is seen
 * as one step: one ticket, and the staging mark holds later data back until the
 * whole batch is written. (A FIFO-only bus orders each channel only.)
 * Descriptor fields: ticket; flags = bus1_notification; node = the receiver's id
 * (see below); offset = the peer that caused it; length = 0.
 * A ring with no room is a receiver that does not consume its notifications: the
 * coordinator disconnects it rather than wait or drop one.
 */
#define BUS1_COORDINATOR_PEER 0u

enum bus1_notification {
	/* The node the receiver's handle `node` names was destroyed (by its owner,
	 * or because the owner left). Messages to it with a later ticket are dropped
	 * by the owner; the coordinator has forgotten the receiver's handle. */
	BUS1_NOTE_NODE_DESTROYED = 1,
	/* The last handle another peer held to the receiver's node `node` was
	 * released (decided when the coordinator serves the release: a handle
	 * already attached to a message in flight counts, so such a transfer
	 * cancels it). Ordered after every message the releasing peer sent before. */
	BUS1_NOTE_NODE_RELEASED  = 2,
};

/* One released slice, receiver -> sender. */
struct bus1_completion {
	uint64_t offset;           /* the `offset` of a descriptor received on this channel */
};

#ifndef __cplusplus
_Static_assert(sizeof(struct bus1_channel_header) == 256, "channel header layout");
_Static_assert(__builtin_offsetof(struct bus1_channel_header, staging) == 192, "staging line");
_Static_assert(__builtin_offsetof(struct bus1_channel_header, sub_tail) == 64, "sender line");
_Static_assert(__builtin_offsetof(struct bus1_channel_header, sub_head) == 128, "receiver line");
_Static_assert(sizeof(struct bus1_descriptor) == 32, "descriptor layout");
_Static_assert(sizeof(struct bus1_completion) == 8, "completion layout");
#endif

#endif /* BUS1_WIRE_CHANNEL_H */
