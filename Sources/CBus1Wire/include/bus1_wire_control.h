/*
 * Bus1 wire format: the control socket (SOCK_SEQPACKET): one datagram = header + one body.
 * Part of the Bus1 wire format: include "bus1_wire.h", which owns the rules.
 */
#ifndef BUS1_WIRE_CONTROL_H
#define BUS1_WIRE_CONTROL_H

#include "bus1_wire_channel.h"

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
	BUS1_MSG_NAME_LIST      = 18, /* bus1_msg_name_list -> NAMES; any ready peer (not policy-restricted like INTROSPECT) */

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
	BUS1_MSG_NAMES          = 73, /* bus1_msg_names: one page of the published names */

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
	uint32_t peer_uid;         /* the peer's own uid, as the coordinator saw it connect (SO_PEERCRED) */
	int32_t  peer_pid;         /* the peer's own pid, in the coordinator's pid namespace (SO_PEERCRED) */
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
	int32_t  owner_pid;        /* the owner's pid (SO_PEERCRED at its connect, the coordinator's pid
	                            * namespace): stamped by the coordinator, so no peer can forge it */
};

struct bus1_msg_channel_opened {
	uint64_t channel_id;
	uint64_t sender_peer;
	uint64_t node;             /* first node the sender may address */
	uint32_t sender_uid;       /* the sender's uid and pid (SO_PEERCRED at its connect, pid in the */
	int32_t  sender_pid;       /* coordinator's pid namespace): stamped by the coordinator, not the sender */
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

/*
 * NAME_LIST -> NAMES: the published names, sorted by name, paged by name so that
 * a list that changes between pages neither repeats nor skips a name that stays.
 * A peer asks for the names after `after` (none: from the first), and asks again
 * after the last one it got while `remaining` is not 0. Each entry carries its
 * owner's credentials as the coordinator saw them when the owner connected.
 */
#define BUS1_NAME_LIST_MAX 8u      /* entries in one NAMES */
#define BUS1_COMMAND_MAX 16u       /* TASK_COMM_LEN: /proc/<pid>/comm, NUL included */

struct bus1_msg_name_list {
	uint32_t after_length;     /* 0: from the first name; else bytes of `after` used, 1...BUS1_NAME_MAX */
	uint8_t  after[BUS1_NAME_MAX + 1]; /* the last name of the previous page; the rest 0 */
	uint32_t _reserved;        /* 0 */
};

struct bus1_name_entry {
	uint64_t owner_peer;
	uint32_t owner_uid;
	int32_t  owner_pid;        /* in the coordinator's pid namespace */
	uint8_t  command[BUS1_COMMAND_MAX]; /* the owner's /proc/<pid>/comm when it connected, no newline,
	                                     * NUL-padded; empty if it could not be read */
	uint32_t length;           /* bytes of name used, 1...BUS1_NAME_MAX */
	uint8_t  name[BUS1_NAME_MAX + 1];
	uint32_t _reserved;
};

struct bus1_msg_names {
	uint32_t total;            /* names published now */
	uint32_t remaining;        /* names sorted after the last entry, not in this reply */
	uint32_t count;            /* entries used, 0...BUS1_NAME_LIST_MAX; the rest 0 */
	uint32_t _reserved;
	struct bus1_name_entry entries[BUS1_NAME_LIST_MAX]; /* ascending by name */
};

/* Largest datagram the coordinator or a peer accepts (one page: a NAMES reply is the largest). */
#define BUS1_MSG_MAX 4096u
/* Most fds one datagram carries. */
#define BUS1_MSG_MAX_FDS 4u

#ifndef __cplusplus
_Static_assert(sizeof(struct bus1_msg_header) == 16, "message header layout");
_Static_assert(sizeof(struct bus1_msg_hello) == 16, "hello layout");
_Static_assert(sizeof(struct bus1_msg_welcome) == 48, "welcome layout");
_Static_assert(offsetof(struct bus1_msg_welcome, peer_uid) == 36, "welcome peer_uid");
_Static_assert(offsetof(struct bus1_msg_welcome, peer_pid) == 40, "welcome peer_pid");
_Static_assert(sizeof(struct bus1_msg_error) == 8, "error layout");
_Static_assert(sizeof(struct bus1_msg_name) == 272, "name layout");
_Static_assert(sizeof(struct bus1_msg_handle_granted) == 48, "handle granted layout");
_Static_assert(offsetof(struct bus1_msg_handle_granted, owner_uid) == 40, "handle granted owner_uid");
_Static_assert(offsetof(struct bus1_msg_handle_granted, owner_pid) == 44, "handle granted owner_pid");
_Static_assert(sizeof(struct bus1_msg_channel_opened) == 40, "channel opened layout");
_Static_assert(offsetof(struct bus1_msg_channel_opened, sender_uid) == 24, "channel opened sender_uid");
_Static_assert(offsetof(struct bus1_msg_channel_opened, sender_pid) == 28, "channel opened sender_pid");
_Static_assert(sizeof(struct bus1_msg_name_list) == 264, "name list layout");
_Static_assert(sizeof(struct bus1_name_entry) == 296, "name entry layout");
_Static_assert(offsetof(struct bus1_name_entry, command) == 16, "name entry command");
_Static_assert(offsetof(struct bus1_name_entry, name) == 36, "name entry name");
_Static_assert(sizeof(struct bus1_msg_names) == 16 + 8 * 296, "names layout");
_Static_assert(sizeof(struct bus1_msg_header) + sizeof(struct bus1_msg_names) <= BUS1_MSG_MAX, "max message");
_Static_assert(sizeof(struct bus1_msg_channel_closed) == 24, "channel closed layout");
_Static_assert(sizeof(struct bus1_msg_header) + sizeof(struct bus1_msg_name) <= BUS1_MSG_MAX, "max message");
_Static_assert(sizeof(struct bus1_msg_node_destroy) == 264, "node destroy layout");
_Static_assert(sizeof(struct bus1_msg_attach) == 152, "attach layout");
_Static_assert(sizeof(struct bus1_msg_attachment) == 152, "attachment layout");
_Static_assert(sizeof(struct bus1_msg_header) + sizeof(struct bus1_msg_node_destroy) <= BUS1_MSG_MAX, "max message");
_Static_assert(sizeof(struct bus1_msg_segment) == 88, "segment message layout");
_Static_assert(sizeof(struct bus1_msg_segment_ref) == 16, "segment ref layout");
#endif

#endif /* BUS1_WIRE_CONTROL_H */
