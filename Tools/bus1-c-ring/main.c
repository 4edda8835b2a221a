// bus1-c-ring: a plain C single-producer/single-consumer ring between two
// processes, the yardstick for bus1-bench's Swift ring baseline (the
// `throughput` rows of mechanism `shm-spin` and `futex`). Same design, same
// parameters, same bytes touched; `bus1-bench baseline --compare-c` runs the two
// alternately and reports the ratio.
//
// Design (keep in step with Tools/bus1-bench/Ring.swift):
// - One shared mapping (MAP_SHARED|MAP_ANONYMOUS, inherited across fork()):
//     offset    0  tail      (producer writes: messages published)
//     offset  128  head      (consumer writes: messages consumed)
//     offset  256  consumer's wake words: doorbell, sleeping   (park mode only)
//     offset  384  producer's wake words: doorbell, sleeping   (park mode only)
//     offset  512  ready (consumer: mapped and faulted in), sum (consumer's checksum)
//     offset 4096  `slots` slots of `size` bytes each, back to back
//   The two indices are 128 bytes apart (their own lines, and not a pair of lines
//   an adjacent-line prefetcher drags along together), away from the slots.
// - `slots` is a power of two (index & mask, no division): 256, or fewer when
//   256 slots would exceed 64 MiB (the largest power of two that fits, at least 1).
// - Producer (parent, first CPU): keeps its own tail and a cached copy of head;
//   re-reads head (acquire) only when the cached copy says the ring is full. Per
//   message it writes the first and last byte of the slot (the sequence number's
//   low byte). It publishes tail (release store) once per `batch` messages (at
//   most half the ring, so the other side always has work while this one
//   fills the rest), and before it waits for space.
// - Consumer (child, second CPU): keeps its own head and a cached copy of tail;
//   re-reads tail (acquire) only when the cached copy says the ring is empty. Per
//   message it reads the first and last byte of the slot into a checksum. It
//   publishes head (release store) once per `batch` messages (at most half the
//   ring), and before it waits.
// - Busy mode: a side that must wait spins on the other's index. Park mode (--park):
//   it parks at once on its own doorbell with Bus1's wake-page protocol (read
//   doorbell; set sleeping; seq_cst fence; re-check; FUTEX_WAIT(doorbell, value
//   read); clear sleeping), and every publication is followed by a seq_cst fence
//   and a look at the other side's sleeping word (increment its doorbell and
//   FUTEX_WAKE only if it is set).
// - Timing: from the consumer's ready flag (mapped, ring faulted in) until the
//   producer sees head == messages. The consumer's checksum is checked afterwards.
//
// Output: one JSON line {"mechanism":"c-ring","mode":...,"size":...,"batch":...,
// "publishEvery":... (the batch, at most half the ring),"slots":...,"messages":...,
// "seconds":...,"messagesPerSecond":...}.
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { TAIL = 0, HEAD = 128, CONSUMER_WAKE = 256, PRODUCER_WAKE = 384, READY = 512, SUM = 520, SLOTS = 4096 };

struct wake { _Atomic uint32_t doorbell; _Atomic uint32_t sleeping; };

struct ring {
    unsigned char *base;
    _Atomic uint64_t *tail, *head;
    struct wake *consumer, *producer;
    unsigned char *slots;
    uint64_t mask;
    size_t size;
    uint64_t batch;
    int park;
};

static void fail(const char *what) { perror(what); exit(1); }

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) fail("sched_setaffinity");
}

/// The ring's slot count for `size`-byte slots (the same rule as Ring.swift).
static uint64_t slots_for(size_t size) {
    uint64_t slots = 1;
    while (slots < 256 && (slots * 2) * size <= ((size_t)64 << 20)) slots *= 2;
    return slots;
}

/// Waits until *index differs from `seen` (returns the new value): spins, or
/// parks on `self` with the wake-page protocol.
static uint64_t await_change(const struct ring *r, _Atomic uint64_t *index, uint64_t seen, struct wake *self) {
    for (;;) {
        uint64_t v = atomic_load_explicit(index, memory_order_acquire);
        if (v != seen) return v;
        if (!r->park) continue;
        uint32_t bell = atomic_load_explicit(&self->doorbell, memory_order_acquire);
        atomic_store_explicit(&self->sleeping, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        v = atomic_load_explicit(index, memory_order_acquire);
        if (v == seen) syscall(SYS_futex, &self->doorbell, FUTEX_WAIT, bell, NULL, NULL, 0);
        atomic_store_explicit(&self->sleeping, 0, memory_order_relaxed);
    }
}

/// Publishes `value` to *index; in park mode wakes `other` if it sleeps.
static inline void publish(const struct ring *r, _Atomic uint64_t *index, uint64_t value, struct wake *other) {
    atomic_store_explicit(index, value, memory_order_release);
    if (!r->park) return;
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&other->sleeping, memory_order_relaxed) != 0) {
        atomic_fetch_add_explicit(&other->doorbell, 1, memory_order_release);
        syscall(SYS_futex, &other->doorbell, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    }
}

static void produce(const struct ring *r, uint64_t messages) {
    uint64_t cached_head = 0, published = 0, capacity = r->mask + 1;
    for (uint64_t i = 0; i < messages; i++) {
        if (i - cached_head == capacity) {
            if (published != i) { publish(r, r->tail, i, r->consumer); published = i; }
            cached_head = await_change(r, r->head, cached_head, r->producer);
        }
        unsigned char *p = r->slots + (i & r->mask) * r->size;
        p[0] = (unsigned char)i;
        p[r->size - 1] = (unsigned char)i;
        if (i + 1 - published == r->batch) { publish(r, r->tail, i + 1, r->consumer); published = i + 1; }
    }
    if (published != messages) publish(r, r->tail, messages, r->consumer);
    while (cached_head != messages) cached_head = await_change(r, r->head, cached_head, r->producer);
}

static uint64_t consume(const struct ring *r, uint64_t messages) {
    uint64_t cached_tail = 0, released = 0, sum = 0;
    for (uint64_t i = 0; i < messages; i++) {
        if (i == cached_tail) {
            if (released != i) { publish(r, r->head, i, r->producer); released = i; }
            cached_tail = await_change(r, r->tail, cached_tail, r->consumer);
        }
        const unsigned char *p = r->slots + (i & r->mask) * r->size;
        sum += (uint64_t)p[0] + p[r->size - 1];
        if (i + 1 - released == r->batch) { publish(r, r->head, i + 1, r->producer); released = i + 1; }
    }
    if (released != messages) publish(r, r->head, messages, r->producer);
    return sum;
}

/* A decimal count in 1...max, digits only (strtoull alone takes "-1" as 2^64 - 1). */
static int parse_count(const char *v, uint64_t max, uint64_t *out) {
    if (!*v) return 0;
    for (const char *c = v; *c; c++) if (*c < '0' || *c > '9') return 0;
    errno = 0;
    unsigned long long n = strtoull(v, NULL, 10);
    if (errno || n < 1 || n > max) return 0;
    *out = n;
    return 1;
}

int main(int argc, char **argv) {
    uint64_t size = 64, messages = 10000000, batch = 1, slots = 0;
    int park = 0, cpu0 = -1, cpu1 = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--park")) { park = 1; continue; }
        if (!v) goto usage;
        if (!strcmp(a, "--size")) { if (!parse_count(v, 64u << 20, &size)) goto usage; }
        else if (!strcmp(a, "--messages")) { if (!parse_count(v, 1ull << 40, &messages)) goto usage; }
        else if (!strcmp(a, "--batch")) { if (!parse_count(v, 65536, &batch)) goto usage; }
        else if (!strcmp(a, "--slots")) { if (!parse_count(v, 65536, &slots)) goto usage; }
        else if (!strcmp(a, "--cpus")) { if (sscanf(v, "%d,%d", &cpu0, &cpu1) != 2) goto usage; }
        else goto usage;
        i++;
    }
    if (slots == 0) slots = slots_for(size);
    if (slots & (slots - 1) || slots * size > (64ull << 20)) goto usage;  /* a power of two; at most 64 MiB of slots */

    size_t bytes = SLOTS + slots * size;
    unsigned char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) fail("mmap");
    memset(base, 0, bytes);  // fault the ring in on the producer's side
    struct ring r = {
        .base = base, .tail = (_Atomic uint64_t *)(base + TAIL), .head = (_Atomic uint64_t *)(base + HEAD),
        .consumer = (struct wake *)(base + CONSUMER_WAKE), .producer = (struct wake *)(base + PRODUCER_WAKE),
        .slots = base + SLOTS, .mask = slots - 1, .size = size, .park = park,
        .batch = batch < slots / 2 ? batch : (slots / 2 > 0 ? slots / 2 : 1),
    };
    _Atomic uint32_t *ready = (_Atomic uint32_t *)(base + READY);
    _Atomic uint64_t *sum = (_Atomic uint64_t *)(base + SUM);

    pid_t child = fork();
    if (child < 0) fail("fork");
    if (child == 0) {
        pin(cpu1);
        volatile unsigned char touch = 0;
        for (size_t o = 0; o < bytes; o += 4096) touch += base[o];
        atomic_store_explicit(ready, 1, memory_order_release);
        atomic_store_explicit(sum, consume(&r, messages), memory_order_release);
        _exit(0);
    }
    pin(cpu0);
    while (atomic_load_explicit(ready, memory_order_acquire) == 0) sched_yield();
    uint64_t start = now_ns();
    produce(&r, messages);
    double seconds = (double)(now_ns() - start) / 1e9;
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "bus1-c-ring: consumer failed\n"); return 1; }
    uint64_t expected = 0;
    for (uint64_t i = 0; i < messages; i++) expected += 2 * (uint64_t)(unsigned char)i;
    if (atomic_load(sum) != expected) { fprintf(stderr, "bus1-c-ring: checksum mismatch\n"); return 1; }
    printf("{\"mechanism\":\"c-ring\",\"mode\":\"%s\",\"size\":%zu,\"batch\":%llu,\"publishEvery\":%llu,\"slots\":%llu,"
           "\"messages\":%llu,\"seconds\":%.9f,\"messagesPerSecond\":%.0f}\n",
           park ? "park" : "spin", size, (unsigned long long)batch, (unsigned long long)r.batch, (unsigned long long)slots,
           (unsigned long long)messages, seconds, (double)messages / seconds);
    return 0;
usage:
    fprintf(stderr, "usage: bus1-c-ring [--size BYTES] [--messages N] [--batch N] [--slots POW2] [--cpus A,B] [--park]\n");
    return 2;
}
