/*
 * Bus1 wire format: version, ids, sizes and magics every object shares.
 * Part of the Bus1 wire format: include "bus1_wire.h", which owns the rules.
 */
#ifndef BUS1_WIRE_BASE_H
#define BUS1_WIRE_BASE_H

#include <stddef.h> /* offsetof, for the layout asserts */
#include <stdint.h>

#define BUS1_WIRE_VERSION 5u /* 4: credentials in WELCOME, CHANNEL_OPENED, HANDLE_GRANTED; NAME_LIST. 5: channel staging on its own line, descriptors published by their ticket */
#define BUS1_INVALID_ID 0xffffffffffffffffull /* UINT64_MAX, spelled so Swift imports it */
#define BUS1_CACHE_LINE 64u
#define BUS1_PAGE_SIZE 4096u

#define BUS1_MAGIC_WAKE    0x454b4157u /* "WAKE" */
#define BUS1_MAGIC_CLOCK   0x4b434c43u /* "CLCK" */
#define BUS1_MAGIC_POOL    0x4c4f4f50u /* "POOL" */
#define BUS1_MAGIC_CHANNEL 0x4e414843u /* "CHAN" */
#define BUS1_MAGIC_MESSAGE 0x31535542u /* "BUS1" */

#endif /* BUS1_WIRE_BASE_H */
