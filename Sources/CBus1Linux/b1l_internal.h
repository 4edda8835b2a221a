/*
 * Shared by the shim's .c files (never by a header Swift imports): _GNU_SOURCE
 * comes first, then the errno conventions of bus1_linux.h.
 */
#ifndef B1L_INTERNAL_H
#define B1L_INTERNAL_H

#define _GNU_SOURCE
#include <errno.h>

#include "bus1_linux.h"

#define NEG_ERRNO() (-(errno ? errno : EIO))

/*
 * KEEP_ERRNO() opens every function that may make a system call: the
 * caller's errno is put back when the function returns (after its return value,
 * which may read errno through NEG_ERRNO, is computed).
 */
static inline void restore_errno(const int *saved) { errno = *saved; }
#define KEEP_ERRNO() int saved_errno_ __attribute__((cleanup(restore_errno))) = errno

#endif /* B1L_INTERNAL_H */
