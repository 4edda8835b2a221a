import Bus1Core

/// A reply and the fds it carries, borrowed from the tables (sendmsg duplicates
/// them). `owners` keeps the objects that own those fds alive until the reply is
/// sent: serving a request can remove a peer (a notification to it failed), and
/// its fds must not close under a reply still to go out.
struct Response {
    var message: ControlMessage
    var fds: [Int32] = []
    var owners: [AnyObject] = []
    /// The reply may go out only once each `peer`'s socket holds its message number
    /// `position` (an event the reply depends on, such as the grant of the node a
    /// new handle names): see ``ControlOutbox/dispatch(_:to:requestID:)``.
    var after: [(peer: UInt64, position: UInt64)] = []
    /// Undoes the request's effect if the reply can never go out as it is (the
    /// peer in `after` went away first); the requester then gets `nameUnknown`.
    var rollback: (() -> Void)?

    static var ok: Response { Response(message: .ok) }
}
