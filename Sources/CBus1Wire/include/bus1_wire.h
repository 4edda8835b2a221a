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
 *
 * The format is split by object, one header each, all included here:
 *  - bus1_wire_base.h:     version, ids, sizes, magics;
 *  - bus1_wire_memory.h:   wake page, clock page, pool and its segments;
 *  - bus1_wire_channel.h:  channel rings, descriptors, the coordinator ring;
 *  - bus1_wire_control.h:  control socket messages;
 *  - bus1_wire_snapshot.h: the introspection snapshot.
 */
#ifndef BUS1_WIRE_H
#define BUS1_WIRE_H

#include "bus1_wire_base.h"
#include "bus1_wire_memory.h"
#include "bus1_wire_channel.h"
#include "bus1_wire_control.h"
#include "bus1_wire_snapshot.h"

#endif /* BUS1_WIRE_H */
