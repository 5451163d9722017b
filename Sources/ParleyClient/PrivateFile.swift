#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Small owner-only files for client state: whole-file atomic replacement (temporary file created `0600`
/// with `O_EXCL`, fsynced, renamed over the old one, directory fsynced), reads with a size cap, and an
/// advisory lock so two processes do not share one device's command sequence.
public enum PrivateFile {
    /// Reads `path`; nil when it does not exist. Refuses files larger than `limit` and files group or others
    /// may access.
    public static func read(_ path: String, limit: Int = 16 << 20) throws(ClientError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw failure(path, "open")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw failure(path, "fstat") }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .stateFile(path, "not a regular file") }
        guard status.st_mode & 0o077 == 0 else {
            throw .stateFile(path, "permissions are too open; it must not be accessible by group or others (chmod 600)")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw failure(path, "read") }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
            guard bytes.count <= limit else { throw .stateFile(path, "larger than \(limit) bytes") }
        }
    }

    /// Replaces `path` with `bytes`, atomically, mode `0600`.
    public static func write(_ bytes: [UInt8], to path: String) throws(ClientError) {
        let temporary = "\(path).tmp-\(String(UInt64.random(in: .min ... .max), radix: 16))"
        let fd = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure(temporary, "open") }
        var done = false
        defer { if !done { unlink(temporary) } }
        do {
            defer { close(fd) }
            guard fchmod(fd, 0o600) == 0 else { throw failure(temporary, "fchmod") }
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { systemWrite(fd, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { throw failure(temporary, "write") }
                offset += n
            }
            guard fsync(fd) == 0 else { throw failure(temporary, "fsync") }
        }
        guard rename(temporary, path) == 0 else { throw failure(path, "rename") }
        done = true
        let directory = path.lastIndex(of: "/").map { String(path[...$0]) } ?? "."
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Takes an exclusive advisory lock on `path` (created `0600`), without waiting. Returns the descriptor
    /// that holds the lock; closing it releases the lock (so does the process exiting).
    static func lock(_ path: String) throws(ClientError) -> Int32 {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure(path, "open") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let error = errno
            close(fd)
            if error == EWOULDBLOCK { throw .deviceInUse(path) }
            throw .stateFile(path, "flock failed: \(String(cString: strerror(error)))")
        }
        return fd
    }

    /// Takes an exclusive lock on `path` (created 0600), waiting for another holder to let go.
    static func waitForLock(_ path: String) throws(ClientError) -> Int32 {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure(path, "open") }
        guard flock(fd, LOCK_EX) == 0 else {
            let error = failure(path, "flock")
            close(fd)
            throw error
        }
        return fd
    }

    /// Releases a lock taken with ``lock(_:)``.
    static func unlock(_ fd: Int32) {
        close(fd)
    }

    private static func failure(_ path: String, _ call: String) -> ClientError {
        .stateFile(path, "\(call) failed: \(String(cString: strerror(errno)))")
    }
}

private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.write(fd, buffer, count)
    #elseif canImport(Musl)
    Musl.write(fd, buffer, count)
    #else
    Darwin.write(fd, buffer, count)
    #endif
}

private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.read(fd, buffer, count)
    #elseif canImport(Musl)
    Musl.read(fd, buffer, count)
    #else
    Darwin.read(fd, buffer, count)
    #endif
}
