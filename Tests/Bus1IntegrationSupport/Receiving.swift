import Bus1

/// Receives on `peer` until a message of `kind` arrives, and returns its sender
/// and ticket, with the kind and sender of every message that came before it.
/// Throws (`.timedOut`) when nothing arrives for `seconds`.
package func receive(on peer: Peer, until kind: Message.Kind, seconds: UInt64 = 30) throws -> (sender: UInt64, ticket: UInt64, before: [(Message.Kind, UInt64)]) {
    var before: [(Message.Kind, UInt64)] = []
    while true {
        let message = try peer.receive(timeout: .seconds(seconds))
        if message.kind == kind { return (message.sender, message.ticket, before) }
        before.append((message.kind, message.sender))
    }
}
