/*
 * Bus1 wire format: the wake page, the clock page and the pool (segments, ledger).
 * Part of the Bus1 wire format: include "bus1_wire.h", which owns the rules.
 */
#ifndef BUS1_WIRE_MEMORY_H
#define BUS1_WIRE_MEMORY_H

#include "bus1_wire_base.h"

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

#ifndef __cplusplus
_Static_assert(sizeof(struct bus1_wake_page) == 128, "wake page layout");
_Static_assert(__builtin_offsetof(struct bus1_wake_page, doorbell) == 64, "doorbell on its own line");
_Static_assert(sizeof(struct bus1_clock_page) == 128, "clock page layout");
_Static_assert(__builtin_offsetof(struct bus1_clock_page, ticket) == 64, "ticket on its own line");
_Static_assert(sizeof(struct bus1_pool_header) == 64, "pool header layout");
_Static_assert(sizeof(struct bus1_slice_record) == 32, "slice record layout");
_Static_assert(BUS1_POOL_DATA_MIN / BUS1_POOL_UNIT * 32 % BUS1_PAGE_SIZE == 0, "ledger fills whole pages");
_Static_assert(BUS1_SEGMENT_OFFSET_MASK == (1ull << BUS1_SEGMENT_SHIFT) - 1, "segment mask");
#endif

#endif /* BUS1_WIRE_MEMORY_H */
