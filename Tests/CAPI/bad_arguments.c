/*
 * Every function of bus1.h, given what a C caller can get wrong: NULL, a peer
 * that was disconnected, an unknown handle, a size out of range. Each must
 * return its documented error and change nothing; none may crash. Run by
 * CAPITests against a live bus ($BUS1_ADDRESS); prints "OK checks=N" and exits
 * 0, or prints each failed check ("FAIL line L: ...") and exits 1.
 */
#include <bus1.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int checks, failures;

#define EXPECT(expression, expected)                                                                     \
    do {                                                                                                 \
        long long got_ = (long long)(expression), want_ = (long long)(expected);                         \
        checks++;                                                                                        \
        if (got_ != want_) {                                                                             \
            failures++;                                                                                  \
            printf("FAIL line %d: %s is %lld, expected %lld\n", __LINE__, #expression, got_, want_);     \
        }                                                                                                \
    } while (0)

#define UNKNOWN ((uint64_t)987654321)

/* Every function that takes a peer, with a given (NULL or disconnected) peer. */
static void every_peer_function(bus1_peer *peer, int expected) {
    uint64_t handle = 0, nodes[1] = {1};
    bus1_loan *loan = NULL;
    bus1_message *message = NULL;
    bus1_statistics statistics;
    EXPECT(bus1_node_create(peer, &handle), expected);
    EXPECT(bus1_name_publish(peer, 1, "x"), expected);
    EXPECT(bus1_name_lookup(peer, "x", 0, &handle), expected);
    EXPECT(bus1_handle_release(peer, 1), expected);
    EXPECT(bus1_node_destroy(peer, nodes, 1), expected);
    EXPECT(bus1_loan_create(peer, 8, 0, 0, &loan), expected);
    EXPECT(loan == NULL, 1);
    EXPECT(bus1_receive(peer, BUS1_WAIT_DEFAULT, 0, &message), expected);
    EXPECT(message == NULL, 1);
    EXPECT(bus1_readiness_fd(peer), expected);
    EXPECT(bus1_readiness_arm(peer), expected);
    EXPECT(bus1_peer_statistics(peer, &statistics), expected);
    EXPECT(bus1_peer_id(peer), 0);
}

/* The sends, each with a fresh loan from `owner` (a send takes its loan whatever it returns). */
static void every_send(bus1_peer *owner, bus1_peer *peer, uint64_t to, int expected) {
    bus1_loan *loan;
    uint64_t targets[2] = {to, to};
    EXPECT(bus1_loan_create(owner, 8, 0, 0, &loan), 0);
    EXPECT(bus1_send(peer, loan, to, 0), expected);
    EXPECT(bus1_loan_create(owner, 8, 0, 0, &loan), 0);
    EXPECT(bus1_try_send(peer, loan, to), expected);
    EXPECT(bus1_loan_create(owner, 8, 0, 0, &loan), 0);
    EXPECT(bus1_send_multicast(peer, loan, targets, 2, 0), expected);
    EXPECT(bus1_loan_create(owner, 8, 0, 0, &loan), 0);
    EXPECT(bus1_send_attached(peer, loan, to, NULL, 0, NULL, 0, 0), expected);
}

int main(void) {
    char long_name[300];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;

    /* Version and errors. */
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", BUS1_VERSION_MAJOR, BUS1_VERSION_MINOR, BUS1_VERSION_PATCH);
    EXPECT(strcmp(bus1_version(), version), 0);
    EXPECT(bus1_strerror(-EINVAL) != NULL && strlen(bus1_strerror(-EINVAL)) > 0, 1);
    EXPECT(bus1_strerror(0) != NULL && bus1_strerror(7) != NULL && bus1_strerror(-2147483647 - 1) != NULL, 1);

    /* Connecting. */
    bus1_peer *peer = (bus1_peer *)1;
    EXPECT(bus1_connect(NULL, NULL), -EINVAL);
    EXPECT(bus1_connect("/nonexistent/bus1/socket", &peer), -ENOENT);
    EXPECT(peer == NULL, 1);
    EXPECT(bus1_disconnect(NULL), -EINVAL);
    bus1_peer_free(NULL);

    /* A NULL peer. */
    every_peer_function(NULL, -EINVAL);

    bus1_peer *a, *b;
    EXPECT(bus1_connect(NULL, &a), 0);
    EXPECT(bus1_connect(NULL, &b), 0);
    uint64_t node, to_b;
    EXPECT(bus1_node_create(b, &node), 0);
    EXPECT(bus1_name_publish(b, node, "bad.arguments.b"), 0);
    EXPECT(bus1_name_lookup(a, "bad.arguments.b", 0, &to_b), 0);
    every_send(a, NULL, to_b, -EINVAL);

    /* NULL and out-of-range arguments with a good peer. */
    uint64_t handle, nodes[33] = {0};
    bus1_loan *loan;
    bus1_message *message;
    EXPECT(bus1_node_create(a, NULL), -EINVAL);
    EXPECT(bus1_name_publish(a, node, NULL), -EINVAL);
    EXPECT(bus1_name_publish(a, node, ""), -EINVAL);
    EXPECT(bus1_name_publish(a, node, long_name), -EINVAL);
    EXPECT(bus1_name_lookup(a, NULL, 0, &handle), -EINVAL);
    EXPECT(bus1_name_lookup(a, "x", 0, NULL), -EINVAL);
    EXPECT(bus1_name_lookup(a, "", 0, &handle), -EINVAL);
    EXPECT(bus1_name_lookup(a, "bad.arguments.nobody", 0, &handle), -ENOENT);
    EXPECT(bus1_name_lookup(a, "bad.arguments.nobody", 20 * 1000000LL, &handle), -ENOENT);
    EXPECT(bus1_node_destroy(a, NULL, 1), -EINVAL);
    EXPECT(bus1_node_destroy(a, nodes, 0), -EINVAL);
    EXPECT(bus1_node_destroy(a, nodes, 33), -E2BIG);
    EXPECT(bus1_node_destroy(a, nodes, (size_t)1 << 40), -E2BIG);  /* a lying count: nothing past the 33 is read */
    EXPECT(bus1_loan_create(a, 8, 0, 0, NULL), -EINVAL);
    EXPECT(bus1_loan_create(a, SIZE_MAX / 2, 0, 0, &loan), -EMSGSIZE);
    EXPECT(bus1_loan_create(a, (size_t)1 << 40, 0, 0, &loan), -EMSGSIZE);
    EXPECT(bus1_receive(a, BUS1_WAIT_DEFAULT, 0, NULL), -EINVAL);
    EXPECT(bus1_receive(a, 99, 0, &message), -EINVAL);
    EXPECT(bus1_receive(a, BUS1_WAIT_DEFAULT, 0, &message), -EAGAIN);
    EXPECT(bus1_receive(a, BUS1_WAIT_PARK, 1000000, &message), -ETIMEDOUT);
    EXPECT(bus1_peer_statistics(a, NULL), -EINVAL);

    /* Unknown handles. */
    EXPECT(bus1_handle_release(a, UNKNOWN), -EBADF);
    nodes[0] = UNKNOWN;
    EXPECT(bus1_node_destroy(a, nodes, 1) < 0, 1);
    EXPECT(bus1_loan_create(a, 8, UNKNOWN, 0, &loan), -EBADF);
    every_send(a, a, UNKNOWN, -EBADF);
    EXPECT(bus1_loan_create(a, 8, 0, 0, &loan), 0);
    uint64_t attached[17] = {UNKNOWN};
    EXPECT(bus1_send_attached(a, loan, to_b, attached, 1, NULL, 0, 0), -EBADF);
    EXPECT(bus1_loan_create(a, 8, 0, 0, &loan), 0);
    EXPECT(bus1_send_attached(a, loan, to_b, attached, 17, NULL, 0, 0), -E2BIG);
    EXPECT(bus1_loan_create(a, 8, 0, 0, &loan), 0);
    EXPECT(bus1_send_attached(a, loan, to_b, NULL, 1, NULL, 0, 0), -EINVAL);
    EXPECT(bus1_loan_create(a, 8, 0, 0, &loan), 0);
    EXPECT(bus1_send_multicast(a, loan, NULL, 2, 0), -EINVAL);
    EXPECT(bus1_loan_create(a, 8, 0, 0, &loan), 0);
    EXPECT(bus1_send_multicast(a, loan, nodes, (size_t)1 << 40, 0), -EINVAL);  /* a lying count */
    /* A loan sent through a peer it did not come from. */
    EXPECT(bus1_loan_create(b, 8, 0, 0, &loan), 0);
    EXPECT(bus1_try_send(a, loan, to_b), -EINVAL);  /* still the caller's */
    EXPECT(bus1_send(a, loan, to_b, 0), -EINVAL);   /* taken (freed) */
    EXPECT(bus1_send(a, NULL, to_b, 0), -EINVAL);
    EXPECT(bus1_try_send(a, NULL, to_b), -EINVAL);

    /* Loans. */
    EXPECT(bus1_loan_data(NULL) == NULL, 1);
    EXPECT(bus1_loan_capacity(NULL), 0);
    EXPECT(bus1_loan_set_size(NULL, 1), -EINVAL);
    bus1_loan_free(NULL);
    EXPECT(bus1_loan_create(a, 100, to_b, 0, &loan), 0);
    EXPECT(bus1_loan_capacity(loan) >= 100, 1);
    EXPECT(bus1_loan_set_size(loan, bus1_loan_capacity(loan) + 1), -EMSGSIZE);
    EXPECT(bus1_loan_set_size(loan, 3), 0);
    memcpy(bus1_loan_data(loan), "abc", 3);
    EXPECT(bus1_try_send(a, loan, to_b), 0);

    /* Messages: the one good message, then NULL everywhere. */
    EXPECT(bus1_receive(b, BUS1_WAIT_DEFAULT, 5000000000LL, &message), 0);
    EXPECT(bus1_message_kind(message), BUS1_MESSAGE_DATA);
    EXPECT(bus1_message_size(message), 3);
    EXPECT(memcmp(bus1_message_data(message), "abc", 3), 0);
    EXPECT(bus1_message_node(message), node);
    EXPECT(bus1_message_sender(message), bus1_peer_id(a));
    EXPECT(bus1_message_ticket(message) > 0, 1);
    uint32_t uid;
    int32_t pid;
    EXPECT(bus1_message_credentials(message, &uid, &pid), 0);
    EXPECT(bus1_message_credentials(message, NULL, &pid), -EINVAL);
    EXPECT(bus1_message_handle_count(message), 0);
    EXPECT(bus1_message_handle(message, 5), 0);
    int fds[4];
    EXPECT(bus1_message_take_fds(message, fds, 4), 0);
    EXPECT(bus1_message_take_fds(message, NULL, 4), -EINVAL);
    bus1_message_release(message);
    EXPECT(bus1_message_data(NULL) == NULL, 1);
    EXPECT(bus1_message_size(NULL), 0);
    EXPECT(bus1_message_kind(NULL), -EINVAL);
    EXPECT(bus1_message_ticket(NULL), 0);
    EXPECT(bus1_message_node(NULL), 0);
    EXPECT(bus1_message_sender(NULL), 0);
    EXPECT(bus1_message_credentials(NULL, &uid, &pid), -EINVAL);
    EXPECT(bus1_message_handle_count(NULL), 0);
    EXPECT(bus1_message_handle(NULL, 0), 0);
    EXPECT(bus1_message_take_fds(NULL, fds, 4), -EINVAL);
    bus1_message_release(NULL);

    /* Patterns: NULL objects and out-parameters, values out of range, names nobody serves. */
    bus1_topic *topic = (bus1_topic *)1;
    bus1_subscription *subscription = (bus1_subscription *)1;
    bus1_service *service = (bus1_service *)1;
    bus1_client *client = (bus1_client *)1;
    uint64_t sequence = 0, missed = 0;
    void *reply = NULL;
    size_t reply_size = 0;
    EXPECT(bus1_topic_host(NULL, NULL, BUS1_WHEN_FULL_BLOCK, 0, &topic), -EINVAL);
    EXPECT(bus1_topic_host(NULL, "bad.topic", BUS1_WHEN_FULL_BLOCK, 0, NULL), -EINVAL);
    EXPECT(bus1_topic_host(NULL, "bad.topic", 7, 0, &topic), -EINVAL);
    EXPECT(bus1_topic_host(NULL, "bad.topic", BUS1_WHEN_FULL_SKIP, 1025, &topic), -EINVAL);
    EXPECT(topic == NULL, 1);
    EXPECT(bus1_topic_host("/nonexistent/bus1/socket", "bad.topic", BUS1_WHEN_FULL_BLOCK, 0, &topic), -ENOENT);
    EXPECT(bus1_topic_host(NULL, "bad.arguments.b", BUS1_WHEN_FULL_BLOCK, 0, &topic), -EEXIST);  /* b publishes it */
    EXPECT(bus1_topic_publish(NULL, "x", 1, 0, &sequence), -EINVAL);
    EXPECT(bus1_topic_serve(NULL), -EINVAL);
    EXPECT(bus1_topic_wait_for_subscribers(NULL, 1, 0), -EINVAL);
    EXPECT(bus1_topic_flush(NULL, 0), -EINVAL);
    bus1_topic_free(NULL);
    EXPECT(bus1_topic_host(NULL, "bad.topic", BUS1_WHEN_FULL_SKIP, 2, &topic), 0);
    EXPECT(bus1_topic_publish(topic, NULL, 1, 0, &sequence), -EINVAL);
    EXPECT(bus1_topic_publish(topic, "x", 1, 0, &sequence), 0);
    EXPECT(sequence, 1);
    EXPECT(bus1_topic_publish(topic, NULL, 0, 0, NULL), 0);
    EXPECT(bus1_topic_publish(topic, "x", (size_t)1 << 40, 0, &sequence), -EMSGSIZE);
    EXPECT(bus1_topic_serve(topic), 0);
    EXPECT(bus1_topic_wait_for_subscribers(topic, 1, 1000000), -ETIMEDOUT);
    EXPECT(bus1_topic_flush(topic, 1000000000), 0);
    EXPECT(bus1_subscribe(NULL, NULL, 0, &subscription), -EINVAL);
    EXPECT(bus1_subscribe(NULL, "bad.topic", 0, NULL), -EINVAL);
    EXPECT(bus1_subscribe(NULL, "bad.nobody", 0, &subscription), -ENOENT);
    EXPECT(subscription == NULL, 1);
    EXPECT(bus1_subscription_receive(NULL, 0, &message, &sequence, &missed), -EINVAL);
    EXPECT(bus1_subscription_missed(NULL), 0);
    bus1_subscription_free(NULL);
    EXPECT(bus1_service_create(NULL, NULL, &service), -EINVAL);
    EXPECT(bus1_service_create(NULL, "bad.service", NULL), -EINVAL);
    EXPECT(bus1_service_create(NULL, "bad.topic", &service), -EEXIST);
    EXPECT(service == NULL, 1);
    EXPECT(bus1_service_next(NULL, 0, &message), -EINVAL);
    EXPECT(bus1_service_reply(NULL, NULL, "x", 1), -EINVAL);
    EXPECT(bus1_service_fail(NULL, NULL, "why"), -EINVAL);
    bus1_service_free(NULL);
    EXPECT(bus1_service_create(NULL, "bad.service", &service), 0);
    EXPECT(bus1_service_next(service, 0, NULL), -EINVAL);
    EXPECT(bus1_service_next(service, 1000000, &message), -ETIMEDOUT);
    EXPECT(bus1_service_reply(service, NULL, "x", 1), -EINVAL);
    EXPECT(bus1_service_fail(service, NULL, "why"), -EINVAL);
    EXPECT(bus1_client_create(NULL, NULL, 0, &client), -EINVAL);
    EXPECT(bus1_client_create(NULL, "bad.service", 0, NULL), -EINVAL);
    EXPECT(bus1_client_create(NULL, "bad.nobody", 0, &client), -ENOENT);
    EXPECT(client == NULL, 1);
    EXPECT(bus1_client_call(NULL, "x", 1, 0, &reply, &reply_size), -EINVAL);
    bus1_client_free(NULL);
    EXPECT(bus1_client_create(NULL, "bad.service", 5000000000LL, &client), 0);
    EXPECT(bus1_client_call(client, NULL, 1, 0, &reply, &reply_size), -EINVAL);
    EXPECT(bus1_client_call(client, "x", 1, 0, NULL, &reply_size), -EINVAL);
    EXPECT(bus1_client_call(client, "x", 1, 50000000, &reply, &reply_size), -ETIMEDOUT);  /* nobody serves it here */
    EXPECT(reply == NULL && reply_size == 0, 1);
    bus1_client_free(client);
    bus1_service_free(service);
    bus1_topic_free(topic);

    /* A disconnected peer: every call is -ENOTCONN, and disconnecting again too. */
    EXPECT(bus1_disconnect(a), 0);
    every_peer_function(a, -ENOTCONN);
    every_send(b, a, to_b, -ENOTCONN);
    EXPECT(bus1_disconnect(a), -ENOTCONN);
    bus1_peer_free(a);
    bus1_peer_free(b);

    if (failures) return 1;
    printf("OK checks=%d\n", checks);
    return 0;
}
