import Bus1
import Glibc

/// The `fdsink` role: `name=`. Publishes a node as `name`, prints "READY peer=P",
/// receives one message with fds attached, writes "fd <i>" into each, and prints
/// "WROTE fds=N cloexec=C" (C: how many arrived close-on-exec); lingers.
///
/// Driven by LifecycleTests "Fds travel in messages and work".
@MainActor
func runFdSink() {
    let peer = connect()
    let message = receiveFirstMessage(peer)
    guard let attachment = message.attachment else { fail("no attachment") }
    let fds = attachment.takeFileDescriptors()
    var closeOnExec = 0
    for (i, fd) in fds.enumerated() {
        if fcntl(fd, F_GETFD) & FD_CLOEXEC != 0 { closeOnExec += 1 }
        let text = Array("fd \(i)".utf8)
        guard write(fd, text, text.count) == text.count else { fail("write to fd \(i): errno \(errno)") }
        close(fd)
    }
    say("WROTE fds=\(fds.count) cloexec=\(closeOnExec)")
    while true { pause() }
}
