/// A node, named by its owner and the owner's handle id for it.
struct NodeKey: Hashable {
    let owner: UInt64
    let node: UInt64
}

/// A peer's reference-counted handle to a node.
struct HandleRecord {
    let node: NodeKey
    var references: Int
    /// The uid this handle counts against (``UIDAccounts/Resource/handles``): the
    /// holder's for a lookup, the attaching sender's for a handle that arrived in
    /// a message; nil for an owner's handle to its own node (the node is charged).
    var chargedTo: UInt32?
}
