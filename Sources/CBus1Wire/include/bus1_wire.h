/*
 * DOC: Bus1 wire format
 *
 * This header owns every byte that crosses a process boundary in Bus1: the
 * shared-memory objects (wake page, clock page, pool header, channel) and every
 * message on the coordinator's control socket. Nothing else defines a layout;
 * Swift code reads and writes these structs through validated views.
 *
 * Rules:
 *  - fixed-width fields only, explicit padding, natural alignment, little endian
 *    (Bus1 is same-host IPC);
 *  - every shared object starts with a magic and BUS1_WIRE_VERSION;
 *  - offsets, never pointers: every offset is relative to the start of the object
 *    that holds it and is validated against that object's size before use;
 *  - (uint64_t)-1 (BUS1_INVALID_ID) is the invalid id;
 *  - fields written by different processes live on different cache lines; each
 *    field's comment says who writes it.
 *
 * Memory objects (all memfds are created and sealed by the coordinator):
 *  - wake page:    one per peer. Its doorbell futex word is incremented by anyone
 *                  that wants the peer to look at its queues; `sleeping` is written
 *                  by the owner only.
 *  - clock page:   one per bus. The global ticket counter (fetch_add by senders).
 *  - pool:         one or more segments per peer; payloads are written there by
 *                  the owner and read in place by receivers through a read-only
 *                  mapping. Each segment has an audience (a set of uids) and only
 *                  receivers of those uids can get it (see "Pool segments").
 *  - coordinator ring: one per peer, a channel whose sender is the coordinator:
 *                  node-destroyed and handle-released notifications, ordered
 *                  with data (see BUS1_COORDINATOR_PEER).
 *  - channel:      one per (sender, receiver) pair: a submission ring of
 *                  descriptors (sender -> receiver) and a completion ring of
 *                  released slices (receiver -> sender).
 */
#ifndef BUS1_WIRE_H
#define BUS1_WIRE_H

#include <stdint.h>

#define BUS1_WIRE_VERSION 3u
#define BUS1_INVALID_ID 0xffffffffffffffffull /* UINT64_MAX, spelled so Swift imports it */
#define BUS1_CACHE_LINE 64u
#define BUS1_PAGE_SIZE 4096u

#define BUS1_MAGIC_WAKE    0x454b4157u /* "WAKE" */
#define BUS1_MAGIC_CLOCK   0x4b434c43u /* "CLCK" */
#define BUS1_MAGIC_POOL    0x4c4f4f50u /* "POOL" */
#define BUS1_MAGIC_CHANNEL 0x4e414843u /* "CHAN" */
#define BUS1_MAGIC_MESSAGE 0x31535542u /* "BUS1" */

/* ------------------------------------------------------------------------ */
/* Wake page: one per peer, BUS1_PAGE_SIZE bytes.                            */
/* ------------------------------------------------------------------------ */

/*
 * Mapped read-write by its owner, by every peer that has a channel with it
 * (either direction) and by the coordinator.
 *
 * Wake protocol (a waiter clears its own flag; a waker never does):
 *   waiter: sleeping = 1; fence(seq_cst); re-check queues; if empty,
 *           futex_wait(&doorbell, value read before the re-check); sleeping = 0.
 *   waker:  publish (release); fence(seq_cst); if sleeping != 0 then
 *           doorbell += 1; futex_wake(&doorbell).
 * A hostile peer can ring or silence a doorbell (degrade wake-ups) but can
 * neither read nor forge data through it.
 */
/* The header lines of the wake and clock pages (magic, version, ids) are written by
 * the coordinator at creation and are informational only: every peer that may ring a
 * doorbell or take a ticket maps the page writable and could overwrite them, so no
 * peer and no coordinator decision reads them (identity comes over the socket);
 * inspectors report a damaged header. */
struct bus1_wake_page {
	uint32_t magic;            /* BUS1_MAGIC_WAKE; written by the coordinator */
	uint32_t version;          /* BUS1_WIRE_VERSION; written by the coordinator */
	uint64_t peer_id;          /* the owner; written by the coordinator */
	uint8_t  _reserved0[48];
	/* cache line 1: shared by wakers */
	uint32_t doorbell;         /* futex word; incremented by every waker */
	uint32_t sleeping;         /* 1 while the owner is (about to be) parked; owner only */
	uint64_t control_seq;      /* bumped by the coordinator after it queued a control event */
	uint8_t  _reserved1[48];
};

/* ------------------------------------------------------------------------ */
/* Clock page: one per bus, BUS1_PAGE_SIZE bytes.                            */
/* ------------------------------------------------------------------------ */

struct bus1_clock_page {
	uint32_t magic;            /* BUS1_MAGIC_CLOCK; written by the coordinator */
	uint32_t version;
	uint8_t  _reserved0[56];
	/* cache line 1 */
	uint64_t ticket;           /* next ticket; fetch_add(1) by every sender */
	uint8_t  _reserved1[56];
};

/* ------------------------------------------------------------------------ */
/* Pool: one per peer. A header page, the slice ledger, the payload area.    */
/* ------------------------------------------------------------------------ */

/*
 * Layout: [bus1_pool_header, one page][slice ledger][payload area]
 *
 * The payload area is a power of two, data_size bytes, at least
 * BUS1_POOL_DATA_MIN. The ledger holds one bus1_slice_record per BUS1_POOL_UNIT
 * of payload (data_size / 8 bytes, a whole number of pages), so the whole
 * layout follows from the pool's size alone: see bus1_pool_layout_of().
 *
 * The header is written once by the coordinator before the owner maps the
 * pool. Receivers do not trust it: they take the pool size from the sealed
 * memfd (fstat) and the layout from bus1_pool_layout_of().
 */
struct bus1_pool_header {
	uint32_t magic;            /* BUS1_MAGIC_POOL */
	uint32_t version;
	uint64_t peer_id;          /* owner */
	uint64_t size;             /* total bytes, header included */
	uint64_t data_offset;      /* == bus1_pool_layout_of().data_offset */
	uint8_t  _reserved[32];
};
/* Slices are allocated in multiples of this many bytes, aligned to it. */
#define BUS1_POOL_UNIT 256u
#define BUS1_POOL_LEDGER_OFFSET BUS1_PAGE_SIZE
#define BUS1_POOL_DATA_MIN (64u << 10)

/*
 * Slice ledger: what the owner has loaned and sent, for inspectors
 * (shm-inspect). Record i describes the slice starting at payload unit i;
 * records of units inside a slice, and of free units, are zero.
 *
 * Written by the owner only, with plain stores, in the same step as its own
 * allocator's bookkeeping: receivers map the pool read-only and nobody acts on
 * the ledger, so it needs no ordering. Readers see it racily (a record may be
 * torn while a send is in progress) and must validate every field.
 */
struct bus1_slice_record {
	uint64_t ticket;           /* the send's ticket; 0 while loaned */
	uint64_t receiver;         /* peer id of the only destination; BUS1_INVALID_ID: multicast; 0 while loaned */
	uint32_t block_bytes;      /* bytes reserved (a power of two of units); 0: no slice starts here */
	uint32_t length;           /* payload bytes sent; 0 while loaned */
	uint16_t pending;          /* descriptors not yet completed; 0 while loaned */
	uint16_t state;            /* bus1_slice_state */
	uint32_t since_ms;         /* CLOCK_MONOTONIC_COARSE in ms (low 32 bits) when loaned */
};

enum bus1_slice_state {
	BUS1_SLICE_FREE   = 0,
	BUS1_SLICE_LOANED = 1,     /* handed to the owner's code to fill */
	BUS1_SLICE_SENT   = 2,     /* in flight: `pending` receivers still hold it */
};

/*
 * Pool segments: who can read a payload.
 *
 * A receiver maps what its sender's payloads live in, so whoever can map a
 * segment can read every payload in it. A peer's pool is therefore split into
 * segments, each readable by one audience: a set of uids.
 *  - Segment 0 is the pool WELCOME hands out; its audience is the owner's uid.
 *  - The owner adds segments, one per other audience it sends to (a unicast to a
 *    peer of uid U: {U}; a multicast to peers of uids U and V: {U, V}), as it
 *    adds its pool: BUS1_MSG_SEGMENT_OPEN makes the memfd (charged to the owner's
 *    uid as pool bytes and as a channel: it costs the coordinator an fd), the
 *    owner maps it and sends BUS1_MSG_SEGMENT_SEAL, which seals it against new
 *    writers. Only a sealed segment is handed to receivers.
 *  - A receiver gets a segment only from the coordinator (BUS1_MSG_SEGMENT_GET,
 *    on the first descriptor that names it), and only if its uid is in the
 *    segment's audience: a peer never holds memory written for another uid.
 *  - A descriptor's and a completion's `offset` carry the segment in their top
 *    bits: offset = segment << BUS1_SEGMENT_SHIFT | offset in that segment.
 * Same-uid peers are no boundary: a process can read the memory of every other
 * process of its uid through /proc, so an audience is a set of uids, not of peers.
 */
#define BUS1_SEGMENT_SHIFT 48u
#define BUS1_SEGMENT_OFFSET_MASK 0xffffffffffffull /* (1 << BUS1_SEGMENT_SHIFT) - 1, spelled so Swift imports it */
#define BUS1_SEGMENTS_MAX 16u           /* per peer, segment 0 included */
#define BUS1_SEGMENT_AUDIENCE_MAX 16u   /* uids in one audience */

/* Where a pool of `pool_size` bytes keeps its ledger and payload. */
struct bus1_pool_layout {
	uint64_t ledger_offset;
	uint64_t data_offset;
	uint64_t data_size;
};

/* Pool bytes for a payload area of `data_size` (a power of two). */
static inline uint64_t bus1_pool_size_for(uint64_t data_size)
{
	return BUS1_POOL_LEDGER_OFFSET + data_size / BUS1_POOL_UNIT * sizeof(struct bus1_slice_record) + data_size;
}

/* The layout of a pool of `pool_size` bytes; 0, or -1 if no valid pool has that size. */
static inline int bus1_pool_layout_of(uint64_t pool_size, struct bus1_pool_layout *out)
{
	uint64_t data_size;

	if (pool_size <= BUS1_POOL_LEDGER_OFFSET || pool_size > (1ull << 48))
		return -1;
	/* size = ledger offset + data/8 + data */
	data_size = (pool_size - BUS1_POOL_LEDGER_OFFSET) / 9 * 8;
	if (data_size < BUS1_POOL_DATA_MIN || (data_size & (data_size - 1)) != 0 ||
	    bus1_pool_size_for(data_size) != pool_size)
		return -1;
	out->ledger_offset = BUS1_POOL_LEDGER_OFFSET;
	out->data_offset = pool_size - data_size;
	out->data_size = data_size;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Channel: one per (sender, receiver) pair.                                 */
/* ------------------------------------------------------------------------ */

/*
 * Layout: [bus1_channel_header][capacity x bus1_descriptor][capacity x bus1_completion]
 *
 * Ring indices are free-running uint64 counters; slot = index & (capacity - 1).
 * Both sides map the channel read-write, so each side validates every index it
 * reads from the other: 0 <= tail - head <= capacity, and never moving backwards.
 * A violation closes the channel (reported to the coordinator).
 *
 * Submission ring: the sender fills descriptor[sub_tail & mask], then stores
 * sub_tail + 1 (release). The receiver loads sub_tail (acquire), reads the
 * descriptor, validates it and stores sub_head + 1 (release) when it has taken it.
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
 * (then a seq_cst fence, then fetch_add on the clock), publishes the descriptor
 * into every destination, and only then stores `staging` = 0 (release). A
 * receiver may deliver ticket t only when every other inbound channel has a
 * descriptor waiting (its ticket is > t) or has `staging` == 0 or > t, reading
 * `staging` (acquire) BEFORE that channel's `sub_tail`: a cleared mark is only
 * visible after the publish it guards, and a sender that took a ticket < t
 * stored its mark before t existed. A mark older than the receiver's stall
 * timeout is skipped and reported (BUS1_MSG_ORDERING_STALL): liveness wins.
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
	/* cache line 1: written by the sender */
	uint64_t sub_tail;         /* descriptors published */
	uint64_t comp_head;        /* completions consumed */
	uint64_t staging;          /* ordering: lower bound of the ticket being sent, or 0 (see below) */
	uint8_t  _reserved1[40];
	/* cache line 2: written by the receiver */
	uint64_t sub_head;         /* descriptors consumed */
	uint64_t comp_tail;        /* completions published */
	uint8_t  _reserved2[48];
};

/* One message: `length` payload bytes at `offset` in the sender's pool (segment in
 * the top bits, see "Pool segments"), sent to
 * the receiver's node `node` (the receiver's own handle id for it). */
struct bus1_descriptor {
	uint64_t ticket;           /* from the clock page; never decreasing per channel, never 0 */
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
 * exactly as a sender publishes a multicast: stage every destination ring, seq_cst
 * fence, one ticket for the whole batch, write, publish, unstage, ring. So a
 * receiver's merge orders them with every data message, and a batch (a destroy of
 * several nodes, a peer's disconnect) is atomic: one ticket.
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

/* ------------------------------------------------------------------------ */
/* Control socket (SOCK_SEQPACKET): one datagram = header + one body.        */
/* ------------------------------------------------------------------------ */

/*
 * Peers send requests; the coordinator answers each with exactly one reply
 * carrying the same request_id (or BUS1_MSG_ERROR), and also sends events
 * (request_id 0) at any time. Events a peer has no room for wait, in order, in
 * the coordinator; a HANDLE_GRANTED reply goes out only once the node's owner
 * has the matching CHANNEL_OPENED or CHANNEL_GRANT in its socket. File descriptors travel as SCM_RIGHTS, in the
 * order each body's comment lists them. A datagram whose size, magic, version,
 * type or fd count does not match is a protocol error: the coordinator answers
 * BUS1_MSG_ERROR(BUS1_ERR_PROTOCOL) and keeps serving.
 */
enum bus1_msg_type {
	/* requests: peer -> coordinator */
	BUS1_MSG_HELLO          = 1,  /* bus1_msg_hello -> WELCOME */
	BUS1_MSG_POOL_MAPPED    = 2,  /* (no body) -> OK; coordinator seals future writes */
	BUS1_MSG_NODE_CREATE    = 3,  /* (no body) -> NODE_CREATED */
	BUS1_MSG_NAME_PUBLISH   = 4,  /* bus1_msg_name -> OK */
	BUS1_MSG_NAME_LOOKUP    = 5,  /* bus1_msg_name -> HANDLE_GRANTED */
	BUS1_MSG_HANDLE_RELEASE = 6,  /* bus1_msg_handle -> OK */
	BUS1_MSG_VIOLATION      = 7,  /* bus1_msg_violation -> OK; coordinator closes the channel */
	BUS1_MSG_CHANNEL_CLOSE  = 8,  /* bus1_msg_channel -> OK; closes a channel cleanly */
	BUS1_MSG_ORDERING_STALL = 9,  /* bus1_msg_channel -> OK; a staged sender stalled past the timeout */
	BUS1_MSG_INTROSPECT     = 10, /* (no body) -> SNAPSHOT; instead of HELLO, from the bus's uid or root only */
	BUS1_MSG_GET_OBJECTS    = 11, /* bus1_msg_objects (first; count ignored) -> OBJECTS; after SNAPSHOT */
	BUS1_MSG_NODE_DESTROY   = 12, /* bus1_msg_node_destroy -> DESTROYED; owner only, atomic */
	BUS1_MSG_ATTACH         = 13, /* bus1_msg_attach; fds: fd_count -> OK (see BUS1_DESC_ATTACHMENT) */
	BUS1_MSG_RESET          = 14, /* (no body) -> DESTROYED; destroys every node, releases every handle, closes every channel */
	BUS1_MSG_SEGMENT_OPEN   = 15, /* bus1_msg_segment (owner, index 0) -> SEGMENT_GRANTED (writable, to its owner) */
	BUS1_MSG_SEGMENT_SEAL   = 16, /* bus1_msg_segment_ref (channel_id 0): the owner mapped it -> OK */
	BUS1_MSG_SEGMENT_GET    = 17, /* bus1_msg_segment_ref: of the sender of an inbound channel -> SEGMENT_GRANTED (read-only) */

	/* replies: coordinator -> peer */
	BUS1_MSG_OK             = 64, /* (no body) */
	BUS1_MSG_ERROR          = 65, /* bus1_msg_error */
	BUS1_MSG_WELCOME        = 66, /* bus1_msg_welcome; fds: pool, wake page, clock page, coordinator ring */
	BUS1_MSG_NODE_CREATED   = 67, /* bus1_msg_handle */
	BUS1_MSG_HANDLE_GRANTED = 68, /* bus1_msg_handle_granted; fds if new channel: channel, receiver wake page */
	BUS1_MSG_SNAPSHOT       = 69, /* bus1_msg_snapshot; fds: the snapshot (sealed memfd) */
	BUS1_MSG_OBJECTS        = 70, /* bus1_msg_objects; fds: objects first ... first + count - 1, read-only */
	BUS1_MSG_DESTROYED      = 71, /* bus1_msg_ticket: the destruction's ticket (0: nothing was destroyed) */
	BUS1_MSG_SEGMENT_GRANTED = 72,/* bus1_msg_segment; fds: the segment memfd */

	/* events: coordinator -> peer, request_id 0 */
	BUS1_MSG_CHANNEL_OPENED = 128,/* bus1_msg_channel_opened; fds: channel, sender wake page (segments: SEGMENT_GET) */
	BUS1_MSG_CHANNEL_GRANT  = 129,/* bus1_msg_channel_grant: the sender may now address `node` */
	BUS1_MSG_CHANNEL_CLOSED = 130,/* bus1_msg_channel_closed */
	BUS1_MSG_HANDLE_ARRIVED = 131,/* bus1_msg_handle_granted: a handle that came in an attachment; fds as HANDLE_GRANTED */
	BUS1_MSG_ATTACHMENT     = 132,/* bus1_msg_attachment; fds: fd_count, close-on-exec */
};

enum bus1_error_code {
	BUS1_ERR_PROTOCOL       = 1,  /* malformed or unexpected control message */
	BUS1_ERR_VERSION        = 2,  /* wire version mismatch */
	BUS1_ERR_NAME_TAKEN     = 3,
	BUS1_ERR_NAME_UNKNOWN   = 4,
	BUS1_ERR_NAME_INVALID   = 5,
	BUS1_ERR_HANDLE_UNKNOWN = 6,
	BUS1_ERR_NOT_OWNER      = 7,
	BUS1_ERR_PERMISSION     = 8,  /* policy refused (default: same uid) */
	BUS1_ERR_QUOTA          = 9,  /* detail: which quota (bus1_quota) */
	BUS1_ERR_STATE          = 10, /* request not valid in the peer's current state */
	BUS1_ERR_INTERNAL       = 11, /* the coordinator failed a syscall; detail: errno */
	BUS1_ERR_FD_REFUSED     = 12, /* an attached fd may not travel; detail: bus1_fd_refusal */
	BUS1_ERR_TIMEOUT        = 13, /* the reply waited for a peer that did not read its socket in time; the request was undone */
	BUS1_ERR_SEGMENT        = 14, /* no such segment, or one that fails its checks; detail: bus1_segment_refusal */
};

/* Fds BUS1_MSG_ATTACH refuses (as BUS1 does: they could form reference cycles
 * no one can collect, or hand a bus object to a peer it was not made for). */
enum bus1_fd_refusal {
	BUS1_FD_UNIX_SOCKET     = 1,
	BUS1_FD_BUS_OBJECT      = 2,  /* a memfd the coordinator made (pool, ring, wake or clock page) */
};

enum bus1_segment_refusal {
	BUS1_SEGMENT_UNKNOWN      = 1,  /* GET, SEAL: no such channel or segment (or, for GET, not sealed yet) */
	BUS1_SEGMENT_NOT_AUDIENCE = 2,  /* GET: the caller's uid is not in the segment's audience */
	BUS1_SEGMENT_BAD_SIZE     = 3,  /* OPEN: no pool of that size fits the bus's limits */
};

enum bus1_quota {
	BUS1_QUOTA_PEERS        = 1,
	BUS1_QUOTA_NODES        = 2,
	BUS1_QUOTA_HANDLES      = 3,
	BUS1_QUOTA_CHANNELS     = 4,
	BUS1_QUOTA_POOL_BYTES   = 5,
	BUS1_QUOTA_FDS          = 6,  /* fds in attachments in flight, per uid */
	BUS1_QUOTA_MESSAGES     = 7,  /* coordinator-path messages queued for one receiver, per sending uid (fair share) */
	BUS1_QUOTA_HANDSHAKES   = 8,  /* connections that have not finished HELLO, per uid or on the whole bus */
	BUS1_QUOTA_UID_POOL_BYTES = 9,  /* pool bytes of all peers of one uid */
	BUS1_QUOTA_UID_NODES    = 10, /* nodes owned by all peers of one uid */
	BUS1_QUOTA_UID_HANDLES  = 11, /* handles charged to one uid (held by its peers, or attached by them to others) */
	BUS1_QUOTA_UID_CHANNELS = 12, /* channels made at the request of one uid */
	BUS1_QUOTA_CONNECTIONS_SHARE = 13, /* the uid's fair share of the bus's connections (what other uids leave free) */
	BUS1_QUOTA_HANDLES_SHARE = 14, /* the uid's fair share of a receiver's handle table (handles attached by other uids) */
	BUS1_QUOTA_CHANNELS_SHARE = 15, /* the uid's fair share of the bus's channels (what other uids leave free) */
	BUS1_QUOTA_SEGMENTS     = 16, /* pool segments of one peer (BUS1_SEGMENTS_MAX) */
};

/* Why a channel was closed (bus1_msg_violation.kind, bus1_msg_channel_closed.reason). */
enum bus1_close_reason {
	BUS1_CLOSE_BY_PEER          = 1,  /* the other side closed it or released its last handle */
	BUS1_CLOSE_PEER_GONE        = 2,  /* the other side disconnected or died */
	BUS1_CLOSE_BAD_RING_INDEX   = 3,  /* an index moved backwards or past capacity */
	BUS1_CLOSE_BAD_SLICE        = 4,  /* offset/length outside the sender's pool */
	BUS1_CLOSE_BAD_NODE         = 5,  /* a node the sender may not address */
	BUS1_CLOSE_BAD_TICKET       = 6,  /* ticket went backwards (or 0) */
	BUS1_CLOSE_BAD_COMPLETION   = 7,  /* a completion for a slice not outstanding */
	BUS1_CLOSE_BAD_DESCRIPTOR   = 8,  /* reserved fields not zero */
};

#define BUS1_NAME_MAX 255u

struct bus1_msg_header {
	uint32_t magic;            /* BUS1_MAGIC_MESSAGE */
	uint16_t version;          /* BUS1_WIRE_VERSION */
	uint16_t type;             /* bus1_msg_type */
	uint32_t size;             /* header + body bytes; must equal the datagram size */
	uint32_t request_id;       /* echoed in the reply; 0 for events */
};

struct bus1_msg_hello {
	uint64_t pool_size;        /* requested bytes, header included; 0 = coordinator default */
	uint32_t ring_capacity;    /* requested entries per inbound ring; 0 = default */
	uint32_t _reserved;
};

struct bus1_msg_welcome {
	uint64_t peer_id;
	uint64_t pool_size;        /* granted bytes, header included */
	uint32_t ring_capacity;    /* granted entries per inbound ring */
	uint32_t flags;            /* BUS1_WELCOME_* */
	uint64_t coordinator_ring; /* channel id of the coordinator ring (its header says so too) */
	uint32_t coordinator_ring_capacity;
	uint32_t _reserved;
};

/*
 * The bus delivers per-channel FIFO only: senders take peer-local tickets and
 * never stage, receivers take channels round-robin. Without it (the default),
 * every receiver sees one global order that respects causality (see the
 * channel's `staging` word).
 */
#define BUS1_WELCOME_FIFO_ONLY 0x1u

struct bus1_msg_error {
	uint32_t code;             /* bus1_error_code */
	uint32_t detail;           /* errno or bus1_quota, or 0 */
};

struct bus1_msg_name {
	uint64_t handle;           /* publish: the node's owner handle; lookup: ignored (0) */
	uint32_t length;           /* bytes of name used, 1...BUS1_NAME_MAX */
	uint8_t  name[BUS1_NAME_MAX + 1];
	uint32_t _reserved;
};

struct bus1_msg_handle {
	uint64_t handle;
};

struct bus1_msg_handle_granted {
	uint64_t handle;           /* the caller's new or existing handle id */
	uint64_t node;             /* the node's id at its owner (what descriptors carry) */
	uint64_t owner_peer;       /* the node's owner */
	uint64_t channel_id;       /* channel caller -> owner; BUS1_INVALID_ID if the caller owns the node */
	uint32_t capacity;         /* entries per ring of that channel */
	uint32_t new_channel;      /* 1: fds attached (channel, owner's wake page); a peer that knows the channel closes them */
	uint32_t owner_uid;        /* the owner's uid: which audience can read what is sent to it */
	uint32_t _reserved;
};

struct bus1_msg_channel_opened {
	uint64_t channel_id;
	uint64_t sender_peer;
	uint64_t node;             /* first node the sender may address */
	uint64_t _reserved0;
	uint32_t capacity;
	uint32_t _reserved;
};

struct bus1_msg_channel_grant {
	uint64_t channel_id;
	uint64_t node;
};

struct bus1_msg_channel {
	uint64_t channel_id;
};

#define BUS1_DESTROY_MAX 32u
#define BUS1_ATTACH_MAX_HANDLES 16u

struct bus1_msg_node_destroy {
	uint32_t count;            /* 1...BUS1_DESTROY_MAX */
	uint32_t _reserved;
	uint64_t handles[BUS1_DESTROY_MAX]; /* the owner's handles of the nodes; the rest 0 */
};

struct bus1_msg_ticket {
	uint64_t ticket;
};

/* Attach handles and fds to the caller's next message to `destination`'s owner. */
struct bus1_msg_attach {
	uint64_t destination;      /* the caller's handle to the receiving node */
	uint32_t handle_count;     /* 0...BUS1_ATTACH_MAX_HANDLES */
	uint32_t fd_count;         /* 0...BUS1_MSG_MAX_FDS; the fds travel as SCM_RIGHTS */
	uint64_t handles[BUS1_ATTACH_MAX_HANDLES]; /* the caller's handles to pass; the rest 0 */
	uint64_t sequence;         /* the submission index (sub_tail) the attached message will take */
};

/* What the BUS1_DESC_ATTACHMENT descriptor at submission index `sequence` on `channel_id` carries. */
struct bus1_msg_attachment {
	uint64_t channel_id;       /* the inbound channel the message comes on */
	uint32_t handle_count;
	uint32_t fd_count;
	uint64_t handles[BUS1_ATTACH_MAX_HANDLES]; /* the receiver's new handle ids; BUS1_INVALID_ID: node already destroyed */
	uint64_t sequence;         /* as in the ATTACH: the descriptor at this submission index carries it; the
	                            * receiver drops (releasing handles, closing fds) one whose index passed
	                            * without it (the sender attached, then did not send) */
};

/* SEGMENT_OPEN and SEGMENT_GRANTED: segment `index` of `owner`, `size` bytes,
 * readable by peers of `uids`. A duplicate audience is allowed (the owner decides
 * how its payloads are laid out); an audience need not include the owner's uid. */
struct bus1_msg_segment {
	uint64_t owner;            /* SEGMENT_OPEN: 0 (the caller) */
	uint64_t size;             /* bytes, header included (SEGMENT_OPEN: asked for; 0: as the pool);
	                            * must equal fstat of the memfd */
	uint32_t index;            /* SEGMENT_OPEN: 0 (the coordinator numbers it) */
	uint32_t uid_count;        /* 1...BUS1_SEGMENT_AUDIENCE_MAX */
	uint32_t uids[BUS1_SEGMENT_AUDIENCE_MAX]; /* strictly ascending; the rest 0 */
};

/* Segment `index` of the sender of inbound channel `channel_id` (SEGMENT_GET), or
 * of the caller (SEGMENT_SEAL, channel_id 0). */
struct bus1_msg_segment_ref {
	uint64_t channel_id;
	uint32_t index;
	uint32_t _reserved;
};

struct bus1_msg_violation {
	uint64_t channel_id;
	uint32_t kind;             /* bus1_close_reason */
	uint32_t _reserved;
};

struct bus1_msg_channel_closed {
	uint64_t channel_id;
	uint64_t other_peer;
	uint32_t reason;           /* bus1_close_reason */
	uint32_t _reserved;
};

/* ------------------------------------------------------------------------ */
/* Introspection (shm-inspect): a snapshot of the coordinator's tables.      */
/* ------------------------------------------------------------------------ */

/*
 * A connection that sends BUS1_MSG_INTROSPECT instead of HELLO becomes an
 * inspector: it is no peer (it owns nothing and appears in no table) and may
 * only fetch objects. The coordinator writes its tables into a memfd, seals it
 * against every change, and sends it with BUS1_MSG_SNAPSHOT. The snapshot names
 * shared objects by index: object 0 is the clock page; peers and channels refer
 * to theirs (BUS1_NO_OBJECT: none). The inspector fetches them with
 * BUS1_MSG_GET_OBJECTS, BUS1_MSG_MAX_FDS per reply, as read-only open file
 * descriptions: it can map them but never write them. The memory behind them
 * is live; only the tables are a snapshot.
 *
 * Layout: [bus1_snapshot_header][peers][channels][handles][names][segments], each array
 * at the offset the header gives. Inspectors validate every count and offset
 * against the memfd's size.
 */
#define BUS1_MAGIC_SNAPSHOT 0x50414e53u /* "SNAP" */
#define BUS1_NO_OBJECT UINT32_MAX

struct bus1_msg_snapshot {
	uint64_t size;             /* bytes of the snapshot memfd */
	uint32_t object_count;
	uint32_t _reserved;
};

struct bus1_msg_objects {
	uint32_t first;            /* index of the first object */
	uint32_t count;            /* fds attached (reply); 0 in the request */
};

struct bus1_snapshot_header {
	uint32_t magic;            /* BUS1_MAGIC_SNAPSHOT */
	uint32_t version;
	uint64_t size;             /* bytes, this header included */
	uint64_t taken_ns;         /* CLOCK_MONOTONIC when the coordinator wrote it */
	int32_t  coordinator_pid;
	uint32_t flags;            /* BUS1_WELCOME_* of this bus */
	uint32_t object_count;
	uint32_t peer_count;
	uint32_t channel_count;
	uint32_t handle_count;
	uint32_t name_count;
	uint32_t _reserved0;
	uint64_t peers_offset;     /* bus1_snapshot_peer[peer_count] */
	uint64_t channels_offset;  /* bus1_snapshot_channel[channel_count] */
	uint64_t handles_offset;   /* bus1_snapshot_handle[handle_count] */
	uint64_t names_offset;     /* bus1_snapshot_name[name_count] */
	uint64_t protocol_errors;  /* coordinator counters since it started */
	uint64_t violations;
	uint64_t ordering_stalls;
	uint64_t segments_offset;  /* bus1_snapshot_segment[segment_count] */
	uint32_t segment_count;
	uint32_t _reserved1;
};

enum bus1_peer_state {
	BUS1_PEER_CONNECTED = 1,   /* no HELLO yet */
	BUS1_PEER_WELCOMED  = 2,   /* pool made, not yet mapped by its owner */
	BUS1_PEER_READY     = 3,
};

struct bus1_snapshot_peer {
	uint64_t peer_id;
	uint64_t pool_size;        /* bytes; 0 before WELCOME */
	int32_t  pid;              /* from SO_PEERCRED at connect */
	uint32_t uid;
	uint32_t state;            /* bus1_peer_state */
	uint32_t ring_capacity;    /* entries per inbound ring */
	uint32_t nodes;            /* nodes owned */
	uint32_t handles;          /* handles held to other peers' nodes */
	uint32_t pool_object;      /* object index or BUS1_NO_OBJECT */
	uint32_t wake_object;
	uint64_t next_handle;      /* every handle and node id below it was issued; a node
	                            * destroyed since may still be named by descriptors in
	                            * flight (its owner drops them) */
};

struct bus1_snapshot_channel {
	uint64_t channel_id;
	uint64_t sender;
	uint64_t receiver;
	uint32_t capacity;
	uint32_t object;           /* object index of the channel memfd */
	uint32_t allowed_nodes;    /* receiver's nodes the sender may address */
	uint32_t _reserved;
};

/* One handle; a node's owner holds the owner handle (holder == owner, handle == node). */
struct bus1_snapshot_handle {
	uint64_t holder;           /* peer id */
	uint64_t handle;           /* the holder's id for it */
	uint64_t owner;            /* the node's owner */
	uint64_t node;             /* the owner's id for the node */
	uint32_t references;
	uint32_t _reserved;
};

/* One pool segment (segment 0 is the peer's pool_object). */
struct bus1_snapshot_segment {
	uint64_t owner;
	uint64_t size;
	uint32_t index;
	uint32_t object;           /* object index of the segment memfd */
	uint32_t uid_count;
	uint32_t _reserved;
	uint32_t uids[BUS1_SEGMENT_AUDIENCE_MAX];
};

struct bus1_snapshot_name {
	uint64_t owner;
	uint64_t node;
	uint32_t length;
	uint8_t  name[BUS1_NAME_MAX + 1];
	uint32_t _reserved;
};

/* Largest datagram the coordinator or a peer accepts. */
#define BUS1_MSG_MAX 512u
/* Most fds one datagram carries. */
#define BUS1_MSG_MAX_FDS 4u

#ifndef __cplusplus
_Static_assert(sizeof(struct bus1_wake_page) == 128, "wake page layout");
_Static_assert(__builtin_offsetof(struct bus1_wake_page, doorbell) == 64, "doorbell on its own line");
_Static_assert(sizeof(struct bus1_clock_page) == 128, "clock page layout");
_Static_assert(__builtin_offsetof(struct bus1_clock_page, ticket) == 64, "ticket on its own line");
_Static_assert(sizeof(struct bus1_pool_header) == 64, "pool header layout");
_Static_assert(sizeof(struct bus1_slice_record) == 32, "slice record layout");
_Static_assert(BUS1_POOL_DATA_MIN / BUS1_POOL_UNIT * 32 % BUS1_PAGE_SIZE == 0, "ledger fills whole pages");
_Static_assert(sizeof(struct bus1_channel_header) == 192, "channel header layout");
_Static_assert(__builtin_offsetof(struct bus1_channel_header, sub_tail) == 64, "sender line");
_Static_assert(__builtin_offsetof(struct bus1_channel_header, sub_head) == 128, "receiver line");
_Static_assert(sizeof(struct bus1_descriptor) == 32, "descriptor layout");
_Static_assert(sizeof(struct bus1_completion) == 8, "completion layout");
_Static_assert(sizeof(struct bus1_msg_header) == 16, "message header layout");
_Static_assert(sizeof(struct bus1_msg_hello) == 16, "hello layout");
_Static_assert(sizeof(struct bus1_msg_welcome) == 40, "welcome layout");
_Static_assert(sizeof(struct bus1_msg_error) == 8, "error layout");
_Static_assert(sizeof(struct bus1_msg_name) == 272, "name layout");
_Static_assert(sizeof(struct bus1_msg_handle_granted) == 48, "handle granted layout");
_Static_assert(sizeof(struct bus1_msg_channel_opened) == 40, "channel opened layout");
_Static_assert(sizeof(struct bus1_msg_channel_closed) == 24, "channel closed layout");
_Static_assert(sizeof(struct bus1_msg_header) + sizeof(struct bus1_msg_name) <= BUS1_MSG_MAX, "max message");
_Static_assert(sizeof(struct bus1_msg_snapshot) == 16, "snapshot message layout");
_Static_assert(sizeof(struct bus1_msg_node_destroy) == 264, "node destroy layout");
_Static_assert(sizeof(struct bus1_msg_attach) == 152, "attach layout");
_Static_assert(sizeof(struct bus1_msg_attachment) == 152, "attachment layout");
_Static_assert(sizeof(struct bus1_msg_header) + sizeof(struct bus1_msg_node_destroy) <= BUS1_MSG_MAX, "max message");
_Static_assert(sizeof(struct bus1_msg_objects) == 8, "objects message layout");
_Static_assert(sizeof(struct bus1_snapshot_header) == 128, "snapshot header layout");
_Static_assert(sizeof(struct bus1_snapshot_peer) == 56, "snapshot peer layout");
_Static_assert(sizeof(struct bus1_snapshot_channel) == 40, "snapshot channel layout");
_Static_assert(sizeof(struct bus1_snapshot_handle) == 40, "snapshot handle layout");
_Static_assert(sizeof(struct bus1_snapshot_name) == 280, "snapshot name layout");
_Static_assert(sizeof(struct bus1_snapshot_segment) == 96, "snapshot segment layout");
_Static_assert(BUS1_SEGMENT_OFFSET_MASK == (1ull << BUS1_SEGMENT_SHIFT) - 1, "segment mask");
_Static_assert(sizeof(struct bus1_msg_segment) == 88, "segment message layout");
_Static_assert(sizeof(struct bus1_msg_segment_ref) == 16, "segment ref layout");
#endif

#endif /* BUS1_WIRE_H */
