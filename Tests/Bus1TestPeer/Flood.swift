import Bus1
import Bus1Linux
import Bus1TestSupport
import Glibc

/// The `flood` role: what a hostile local user with a shell can do to the
/// coordinator's accept path, for `seconds`, as fast as it goes:
/// - open and close at once;
/// - connect and say nothing (held until the coordinator's handshake deadline);
/// - connect and shut the write side (half-open);
/// - connect and send a few bytes of nothing;
/// - finish the handshake (a real peer, 4 KiB pool) and hold it, up to the uid's
///   connection limit and the coordinator's fd limit.
/// It keeps at most `hold` connections (dropping random ones past that), prints
/// "FLOODING" after the first round and at the end "DONE opened=O refused=R
/// peers=P held=H timedOut=T", then closes everything and exits 0. Any outcome
/// other than a typed refusal, a timeout or a closed connection is a failure.
///
/// Driven by AdmissionTests "Another uid floods bus1d" (as uid 65534).
@MainActor
func runFlood() {
    let address = setting("address")
    let seconds = intSetting("seconds", 4)
    let holdLimit = intSetting("hold", 2000)
    var random = SplitMix64(state: UInt64(intSetting("seed", 1)))
    var held: [Int32] = []  // raw: closed below (an Array cannot hold ~Copyable descriptors)
    var peers: [Peer] = []
    var opened = 0, refused = 0, timedOut = 0, backlogFull = 0
    var peerOptions = PeerOptions(address: address)
    peerOptions.poolSize = 4096
    peerOptions.waitMode = .park
    peerOptions.parkBackend = .futex
    peerOptions.connectTimeout = .milliseconds(200)

    let deadline = monotonicNanoseconds() + UInt64(seconds) * 1_000_000_000
    var announced = false
    while monotonicNanoseconds() < deadline {
        for _ in 0..<64 {
            let kind = random.next() % 8
            if kind == 7 {
                do {
                    peers.append(try Peer.connect(options: peerOptions))
                    opened += 1
                } catch .refused(.quotaExceeded) {
                    refused += 1
                } catch .timedOut {
                    timedOut += 1
                } catch .refused(.internalError(let code)) where code == EMFILE || code == ENFILE {
                    refused += 1  // the coordinator is at its fd limit: told so, with the errno
                } catch {
                    fail("a real connect during the flood: \(error)")
                }
                continue
            }
            let socket: Int32
            do {
                socket = try SeqPacket.connect(path: address, timeoutNanoseconds: 50_000_000).release()
            } catch where error.code == EAGAIN {
                backlogFull += 1  // the coordinator paused accepting; its backlog is full
                continue
            } catch {
                fail("connect: \(error)")
            }
            opened += 1
            switch kind {
            case 0, 1, 2:
                close(socket)  // open and close at once
                continue
            case 3: shutdown(socket, Int32(SHUT_WR))
            case 4: _ = write(socket, "bus", 3)
            default: break  // silent
            }
            held.append(socket)
        }
        while held.count > holdLimit { close(held.remove(at: Int(random.next() % UInt64(held.count)))) }
        while peers.count > holdLimit { peers.removeFirst() }
        if !announced {
            announced = true
            say("FLOODING")
        }
    }
    say("DONE opened=\(opened) refused=\(refused) peers=\(peers.count) held=\(held.count) timedOut=\(timedOut) backlogFull=\(backlogFull)")
    for socket in held { close(socket) }
    peers.removeAll()
}
