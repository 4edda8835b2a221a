import Bus1Linux
import Glibc

/// The socket a coordinator accepts peers on, and whether the coordinator owns
/// its path.
///
/// Either the coordinator binds it (``bind(path:)``): it creates the path, lets
/// anyone connect (policy is decided by `SO_PEERCRED`, not the file mode) and
/// removes the path when it stops. Or it is handed over (``adopt(_:)``, systemd
/// socket activation): then whoever bound it owns the path, and the coordinator
/// serves on it as it is: it neither replaces, chmods nor removes it.
public struct BusListener: ~Copyable {
    /// Listening, non-blocking, close-on-exec.
    let socket: FileDescriptor
    /// The bound path (`@name` for the abstract namespace).
    public let address: String
    /// Whether the coordinator made the path and so removes it at shutdown.
    public let ownsAddress: Bool

    /// Binds a new socket at `path`. A path that exists is left alone unless it is
    /// a socket nobody listens on any more (a coordinator that died): a live bus
    /// is ``CoordinatorError/addressInUse(_:)``, anything that is not a socket
    /// (checked with `lstat`, so a symlink counts as not a socket) is
    /// ``CoordinatorError/addressNotASocket(_:)``; neither is touched.
    public static func bind(path: String) throws(CoordinatorError) -> BusListener {
        do {
            _ = try UnixSocketAddress(path)
            try makeParentDirectory(of: path)
            var status = stat()
            if lstat(path, &status) == 0 {
                guard status.st_mode & S_IFMT == S_IFSOCK else { throw CoordinatorError.addressNotASocket(path) }
                if Self.isServed(path) { throw CoordinatorError.addressInUse(path) }
                unlink(path)  // a socket file left behind by a dead coordinator
            } else if errno != ENOENT {
                throw LinuxError("lstat \(path)", code: errno)
            }
            return BusListener(socket: try listenAtomically(at: path), address: path, ownsAddress: true)
        } catch let error as CoordinatorError {
            throw error
        } catch let error as LinuxError {
            throw error.code == EEXIST ? .addressInUse(path) : .system(error)  // another coordinator linked it first
        } catch {
            throw .system(LinuxError("bind \(path): \(error)", code: EIO))
        }
    }

    /// Serves on a listening socket someone else bound (systemd passes it as fd 3).
    /// Refuses (``CoordinatorError/unusableListener(_:)``) anything but a listening
    /// `AF_UNIX` `SOCK_SEQPACKET` socket bound to a name; makes it close-on-exec and
    /// non-blocking (the loop accepts until `EAGAIN`).
    public static func adopt(_ socket: consuming FileDescriptor) throws(CoordinatorError) -> BusListener {
        let fd = socket.rawValue
        do {
            let properties = try SocketProperties(of: fd)
            guard properties.isSeqPacketListener else {
                throw CoordinatorError.unusableListener(
                    "fd \(fd) is not a listening AF_UNIX SOCK_SEQPACKET socket (domain \(properties.domain), type \(properties.type), listening \(properties.isListening))")
            }
            guard let address = try UnixSocketAddress.bound(to: fd) else {
                throw CoordinatorError.unusableListener("fd \(fd) is not bound to a socket path")
            }
            try retryingLibcOnInterrupt("fcntl(F_SETFD)") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
            try socket.setNonBlocking(true)
            return BusListener(socket: socket, address: address.description, ownsAddress: false)
        } catch let error as CoordinatorError {
            throw error
        } catch let error as LinuxError {
            throw error.code == ENOTSOCK ? .unusableListener("fd \(fd) is not a socket") : .system(error)
        } catch {
            throw .system(LinuxError("adopt fd \(fd): \(error)", code: EIO))
        }
    }

    /// A listening socket at `path` that nobody can find half made: bound and
    /// listening under a temporary name in the same directory, then linked into
    /// place, so a peer that connects while the coordinator starts either finds no
    /// path or a listening socket, never a bound one that refuses it (bind and
    /// listen are two calls). An abstract name (`@name`, no file to rename) or a
    /// path too long for a sibling name is bound directly.
    private static func listenAtomically(at path: String) throws(LinuxError) -> FileDescriptor {
        let directory = path.lastIndex(of: "/").map { String(path[...$0]) } ?? "./"
        let temporary = directory + ".bus1d-\(getpid()).listen"
        guard !path.hasPrefix("@"), (try? UnixSocketAddress(temporary)) != nil else {
            let socket = try SeqPacket.listen(path: path)
            chmod(path, 0o666)  // access is decided by SO_PEERCRED and policy, not file mode
            return socket
        }
        unlink(temporary)  // left by a bus1d of the same pid that died here
        let socket = try SeqPacket.listen(path: temporary)
        chmod(temporary, 0o666)
        // link, not rename: it fails if a coordinator that started at the same time
        // got there first, instead of silently taking its path.
        let linked = link(temporary, path) == 0 ? 0 : errno
        unlink(temporary)
        guard linked == 0 else { throw LinuxError("link \(temporary) to \(path)", code: linked) }
        return socket
    }

    /// Whether something listens at the socket `path`: only a refused connection
    /// (`ECONNREFUSED`) or a vanished path means nobody does.
    private static func isServed(_ path: String) -> Bool {
        do {
            _ = try SeqPacket.connect(path: path)
            return true
        } catch {
            return error.code != ECONNREFUSED && error.code != ENOENT
        }
    }

    /// Makes the socket's directory (mode 0700) if it is missing.
    /// Makes the socket's directory (mode 0700) if missing, and refuses one another
    /// user could change: with `$XDG_RUNTIME_DIR` unset the default is
    /// `/tmp/bus1-<uid>/`, which anyone can create first, world-writable or as a
    /// symlink, to swap the socket for a fake coordinator or to turn the `chmod`
    /// below onto a file of their choosing. It must be a real directory owned by
    /// this user or root, writable by nobody else unless sticky (like `/tmp`).
    private static func makeParentDirectory(of path: String) throws(CoordinatorError) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let parent = String(path[..<slash])
        if mkdir(parent, 0o700) != 0 && errno != EEXIST {
            throw .system(LinuxError("mkdir \(parent)", code: errno))
        }
        var status = stat()
        guard lstat(parent, &status) == 0 else { throw .system(LinuxError("lstat \(parent)", code: errno)) }
        guard status.st_mode & S_IFMT == S_IFDIR else { throw .unsafeDirectory(parent, reason: "not a directory (a symlink?)") }
        guard status.st_uid == geteuid() || status.st_uid == 0 else {
            throw .unsafeDirectory(parent, reason: "owned by uid \(status.st_uid), not by this user or root")
        }
        guard status.st_mode & (S_IWGRP | S_IWOTH) == 0 || status.st_mode & S_ISVTX != 0 else {
            throw .unsafeDirectory(parent, reason: "writable by other users (mode \(String(status.st_mode & 0o7777, radix: 8)))")
        }
    }
}
