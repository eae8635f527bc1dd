import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The device and inode of a file: what tells a replaced file (same path, another inode) from a changed one.
///
/// A `mv backup.sqlite ficus.sqlite` leaves every open connection on the old inode, where `PRAGMA data_version`
/// never moves again; only comparing the path's inode with the one opened notices the swap.
struct FileIdentity: Sendable, Equatable, CustomStringConvertible {
    var device: UInt64
    var inode: UInt64

    /// The identity of the file at `path` now, or nil when there is none (or it cannot be examined).
    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return nil
        }
        self.device = UInt64(info.st_dev)
        self.inode = UInt64(info.st_ino)
    }

    var description: String {
        "inode \(self.inode)"
    }

    /// Opens something at `path` with `open` and returns it with the identity of the file it opened.
    ///
    /// The path is examined before and after opening: when both agree, the connection is on that file, since a file
    /// replaced in between would have shown another inode afterwards. A few attempts cover a replacement that races
    /// the open.
    static func opening<Value>(
        _ path: String,
        _ open: () throws -> Value
    ) throws -> (value: Value, identity: FileIdentity?) {
        var attempt = 0
        while true {
            attempt += 1
            let before = FileIdentity(path: path)
            let value = try open()
            let after = FileIdentity(path: path)
            if before == after || attempt >= 3 {
                return (value, after)
            }
        }
    }
}

extension SQLiteConfigurationStore {
    /// Creates an empty file at `path` that only its owner may read and write, unless something is there already.
    ///
    /// SQLite creates a database with mode 0644 (less the umask), and its `-wal` and `-shm` files take the mode of the
    /// database file. The rule store holds upstream addresses and the audit log, the telemetry file request and
    /// response bodies, so both are created 0600 first and SQLite opens the empty file (an empty file is an empty
    /// database). An existing file keeps the mode its operator gave it.
    static func createPrivately(path: String) throws {
        let descriptor = systemOpen(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        if descriptor >= 0 {
            systemClose(descriptor)
            return
        }
        let code = errno
        if code == EEXIST {
            return
        }
        throw StoreError.unreadable(
            path: path,
            detail: "cannot open the file (\(String(cString: strerror(code)))); "
                + "check that its directory exists and is writable"
        )
    }
}

/// The C library's `open`, which methods named `open` hide inside the store's extensions.
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
    #if canImport(Glibc)
        Glibc.open(path, flags, mode)
    #else
        Darwin.open(path, flags, mode)
    #endif
}

/// The C library's `close`.
private func systemClose(_ descriptor: Int32) {
    #if canImport(Glibc)
        _ = Glibc.close(descriptor)
    #else
        _ = Darwin.close(descriptor)
    #endif
}
