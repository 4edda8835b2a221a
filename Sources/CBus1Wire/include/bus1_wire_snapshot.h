/*
 * Bus1 wire format: introspection (shm-inspect): a snapshot of the coordinator's tables.
 * Part of the Bus1 wire format: include "bus1_wire.h", which owns the rules.
 */
#ifndef BUS1_WIRE_SNAPSHOT_H
#define BUS1_WIRE_SNAPSHOT_H

#include "bus1_wire_control.h"

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

#ifndef __cplusplus
_Static_assert(sizeof(struct bus1_msg_snapshot) == 16, "snapshot message layout");
_Static_assert(sizeof(struct bus1_msg_objects) == 8, "objects message layout");
_Static_assert(sizeof(struct bus1_snapshot_header) == 128, "snapshot header layout");
_Static_assert(sizeof(struct bus1_snapshot_peer) == 56, "snapshot peer layout");
_Static_assert(sizeof(struct bus1_snapshot_channel) == 40, "snapshot channel layout");
_Static_assert(sizeof(struct bus1_snapshot_handle) == 40, "snapshot handle layout");
_Static_assert(sizeof(struct bus1_snapshot_name) == 280, "snapshot name layout");
_Static_assert(sizeof(struct bus1_snapshot_segment) == 96, "snapshot segment layout");
#endif

#endif /* BUS1_WIRE_SNAPSHOT_H */
