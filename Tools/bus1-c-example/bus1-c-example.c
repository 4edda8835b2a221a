/*
 * bus1-c-example: a producer and a consumer in C, over libbus1 (bus1.h).
 *
 *   cc -I Sources/CBus1API/include Tools/bus1-c-example/bus1-c-example.c \
 *      -L .build/release -lbus1 -Wl,-rpath,$PWD/.build/release -o bus1-c-example
 *   ./bus1-c-example consumer demo.c 1000 &      # publishes demo.c, receives 1000 messages
 *   ./bus1-c-example producer demo.c 1000        # looks demo.c up, sends 1000 messages
 *
 * Message i is 64 bytes: i as a little-endian uint64, then bytes (i + k) & 0xff.
 * Either side may be a Swift peer doing the same (the tests do). The bus is
 * $BUS1_ADDRESS (or the default). Exit status 0 when every message checked out.
 */
#include <bus1.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE 64

static int fail(const char *what, int error) {
    fprintf(stderr, "bus1-c-example: %s: %s\n", what, bus1_strerror(error));
    return 1;
}

static void fill(uint8_t *bytes, uint64_t i) {
    memcpy(bytes, &i, sizeof i);
    for (size_t k = sizeof i; k < SIZE; k++) bytes[k] = (uint8_t)(i + k);
}

static int produce(bus1_peer *peer, const char *name, uint64_t count) {
    uint64_t target;
    int r = bus1_name_lookup(peer, name, 20LL * 1000000000, &target);
    if (r < 0) return fail("lookup", r);
    for (uint64_t i = 0; i < count; i++) {
        bus1_loan *loan;
        if ((r = bus1_loan_create(peer, SIZE, target, BUS1_FOREVER, &loan)) < 0) return fail("loan", r);
        fill(bus1_loan_data(loan), i); /* written once, in place, in this peer's pool */
        if ((r = bus1_send(peer, loan, target, BUS1_FOREVER)) < 0) return fail("send", r);
    }
    /* Leaving would take what the consumer has not read yet: wait until it released everything. */
    bus1_statistics s;
    do {
        if ((r = bus1_peer_statistics(peer, &s)) < 0) return fail("statistics", r);
    } while (s.slices_in_use > 0);
    printf("OK sent=%" PRIu64 "\n", count);
    return 0;
}

static int consume(bus1_peer *peer, const char *name, uint64_t count) {
    uint64_t node;
    int r;
    if ((r = bus1_node_create(peer, &node)) < 0) return fail("node", r);
    if ((r = bus1_name_publish(peer, node, name)) < 0) return fail("publish", r);
    printf("READY\n");
    fflush(stdout);
    uint8_t expected[SIZE];
    for (uint64_t i = 0; i < count;) {
        bus1_message *message;
        if ((r = bus1_receive(peer, BUS1_WAIT_DEFAULT, 60LL * 1000000000, &message)) < 0) return fail("receive", r);
        if (bus1_message_kind(message) == BUS1_MESSAGE_DATA) {
            fill(expected, i);
            if (bus1_message_size(message) != SIZE || memcmp(bus1_message_data(message), expected, SIZE) != 0) {
                fprintf(stderr, "bus1-c-example: message %" PRIu64 " is wrong\n", i);
                return 1;
            }
            i++;
        }
        bus1_message_release(message); /* the slice goes back to the sender */
    }
    printf("OK received=%" PRIu64 "\n", count);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "producer") != 0 && strcmp(argv[1], "consumer") != 0)) {
        fprintf(stderr, "usage: bus1-c-example producer|consumer NAME COUNT\n");
        return 2;
    }
    printf("libbus1 %s\n", bus1_version());
    bus1_peer *peer;
    int r = bus1_connect(NULL, &peer);
    if (r < 0) return fail("connect", r);
    uint64_t count = strtoull(argv[3], NULL, 10);
    int status = strcmp(argv[1], "producer") == 0 ? produce(peer, argv[2], count) : consume(peer, argv[2], count);
    bus1_peer_free(peer);
    return status;
}
