import Bus1Linux

/// A descriptor in a class box, so optional ones can be borrowed from tables.
final class OwnedDescriptor {
    let descriptor: FileDescriptor
    init(_ descriptor: consuming FileDescriptor) { self.descriptor = descriptor }
    var rawValue: Int32 { descriptor.rawValue }
}
