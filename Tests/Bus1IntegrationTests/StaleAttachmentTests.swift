import Bus1
@_spi(HostileTesting) import Bus1
import Bus1IntegrationSupport
import Bus1Linux
import Glibc
import Testing

/// An attachment names the submission index of the message that carries it, so
/// one whose message never comes cannot ride on a later message, and is given
/// back as soon as the sender moves on.
@Suite("Stale attachments", .timeLimit(.minutes(10)))
struct StaleAttachmentTests {
    @Test("A sender that attaches and then sends something else: the stale attachment's fds close and its handles are released at once; the next attached message gets its own")
    func staleAttachmentIsDropped() throws {
        let bus = try BusFixture("stale")
        let receiver = try bus.connect(), sender = try bus.connect()
        try receiver.publish(try receiver.createNode(), as: "stale.r")
        let target = try sender.lookup("stale.r")
        let passed = try sender.createNode()
        // Close-on-exec from birth: a child another test spawns meanwhile must not
        // hold the stale read end open.
        let stale = try ChildDescriptors.pipe(), fresh = try ChildDescriptors.pipe()
        var stalePipe = [stale.read, stale.write]
        let freshPipe = [fresh.read, fresh.write]
        defer { for fd in stalePipe + freshPipe { close(fd) } }

        try sender.attachWithoutSending(to: target, attaching: [passed], fileDescriptors: [stalePipe[0]])
        close(stalePipe[0])  // from now on only the stale attachment holds the read end
        stalePipe[0] = -1
        var plain = try sender.loan(5)
        plain.write(Array("plain".utf8))
        try sender.send(plain, to: target)
        var second = try sender.loan(6)
        second.write(Array("second".utf8))
        try sender.send(second, to: target, attaching: [], fileDescriptors: [freshPipe[0]])

        let first = try receiver.receive(timeout: .seconds(5))
        let firstBytes = first.copyPayload(), firstAttachment = first.attachment  // (#expect takes no ~Copyable operands)
        #expect(firstBytes == Array("plain".utf8))
        #expect(firstAttachment == nil, "a plain message took the stale attachment")
        // The stale read end is closed: the write end now reports an error.
        var poll = pollfd(fd: stalePipe[1], events: Int16(POLLOUT), revents: 0)
        #expect(Glibc.poll(&poll, 1, 0) == 1 && poll.revents & Int16(POLLERR) != 0, "stale fd still open: \(poll.revents)")

        let next = try receiver.receive(timeout: .seconds(5))
        let nextBytes = next.copyPayload(), nextAttachment = next.attachment
        #expect(nextBytes == Array("second".utf8))
        let attachment = try #require(nextAttachment)
        let fds = attachment.takeFileDescriptors()
        #expect(fds.count == 1 && attachment.handles.isEmpty)
        #expect(write(freshPipe[1], "x", 1) == 1)
        var byte: UInt8 = 0
        #expect(read(fds[0], &byte, 1) == 1 && byte == UInt8(ascii: "x"), "the second message got someone else's fd")
        for fd in fds { close(fd) }

        // The handle the stale attachment carried was the only other one to `passed`:
        // giving it back tells its owner.
        let released = try receive(on: sender, until: .nodeReleased)
        #expect(released.sender == receiver.id)
    }
}
