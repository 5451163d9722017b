import Foundation
import GRDB
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// ``SignalStore`` in one SQLite file, through GRDB.
///
/// Opening creates the file with mode 0600 (SQLite gives the `-wal` and `-shm` files the same mode),
/// puts it in WAL mode (a `DatabasePool`: one writer, concurrent readers), sets a busy timeout so the
/// `parley user` command and a running server can share the file, and applies the migrations of
/// ``StoreSchema``. A file written by a newer parley is refused (`schemaTooNew`).
///
/// Durability: every write is one IMMEDIATE transaction that has committed when the method returns,
/// and commits run with `PRAGMA synchronous = FULL`, so the WAL is fsynced at each commit. The
/// requirement is surviving kill -9 of the server after an `ack`, which WAL with `synchronous =
/// NORMAL` would already meet (a committed transaction sits in the OS page cache, which outlives the
/// process). FULL also survives power loss and kernel crashes, and that matters here beyond lost mail:
/// if a power cut rolled back `device_sequence.last_sseq`, event numbers a client has already seen
/// would be handed out again and the client would drop those events as duplicates. The cost is one
/// fsync per command; at signaling rates that is cheap, and the writer is a single connection anyway.
public final class SQLiteSignalStore: SignalStore {
    /// The default per-user mailbox quota, 64 MiB (`signal.mailbox_quota`, §3.6).
    public static let defaultMailboxQuota: Int64 = 64 << 20

    /// The database file.
    public let path: String
    /// Most bytes of undelivered ciphertext (as stored, base64url text) one user's devices may have
    /// queued together.
    public let mailboxQuota: Int64
    let pool: DatabasePool
    let logger: Logger

    /// Opens (creating if needed, mode 0600) the store at `path`, which must be in an existing directory.
    ///
    /// - Parameters:
    ///   - mailboxQuota: bytes of undelivered ciphertext per recipient user (``defaultMailboxQuota``).
    ///   - busyTimeout: how long to wait for another process holding the write lock.
    /// - Throws: ``SignalStoreError`` `storageFailed` or `schemaTooNew`.
    public init(
        path: String,
        mailboxQuota: Int64 = SQLiteSignalStore.defaultMailboxQuota,
        busyTimeout: Duration = .seconds(5),
        logger: Logger = Logger(label: "parley.store")
    ) throws {
        self.path = path
        self.mailboxQuota = mailboxQuota
        self.logger = logger
        try Self.createPrivateFile(at: path, logger: logger)

        var configuration = Configuration()
        configuration.label = "parley.store"
        configuration.busyMode = .timeout(Self.seconds(busyTimeout))
        configuration.foreignKeysEnabled = true
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // See the type's documentation: commits that precede an ack must reach the disk. Set here on
            // the pool's one writer connection, because the pool's WAL setup, which runs after
            // `Configuration.prepareDatabase`, sets NORMAL.
            try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        } catch {
            throw SignalStoreError.storageFailed("opening \(path)", error)
        }

        let migrator = StoreSchema.migrator
        do {
            if try pool.read({ try migrator.hasBeenSuperseded($0) }) {
                throw SignalStoreError.schemaTooNew(path: path)
            }
            let wasCurrent = try pool.read { try migrator.hasCompletedMigrations($0) }
            try migrator.migrate(pool)
            if !wasCurrent {
                let version = migrator.migrations.last ?? ""
                logger.info("store schema migrated", metadata: ["path": "\(path)", "to": "\(version)"])
            }
        } catch let error as SignalStoreError {
            throw error
        } catch {
            throw SignalStoreError.storageFailed("migrating \(path)", error)
        }
    }

    /// Closes the database connections. Further calls fail with `storageFailed`. Optional: the
    /// connections also close when the store is released.
    public func close() throws {
        do { try pool.close() } catch { throw SignalStoreError.storageFailed("closing \(path)", error) }
    }

    // MARK: Helpers for the operations

    /// Runs `body` in one write transaction, committed before returning; maps database errors.
    func write<T: Sendable>(_ operation: String, _ body: @Sendable (Database) throws -> T) async throws -> T {
        try await mappingErrors(operation) { try await pool.write(body) }
    }

    /// Runs `body` in one read transaction (a consistent snapshot); maps database errors.
    func read<T: Sendable>(_ operation: String, _ body: @Sendable (Database) throws -> T) async throws -> T {
        try await mappingErrors(operation) { try await pool.read(body) }
    }

    /// Our own errors and cancellation pass through; anything else becomes `storageFailed(operation)`.
    private func mappingErrors<T: Sendable>(_ operation: String, _ run: () async throws -> T) async throws -> T {
        do {
            return try await run()
        } catch let error as SignalStoreError {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            throw SignalStoreError.storageFailed(operation, error)
        }
    }

    /// Milliseconds since the Unix epoch, the stored form of a time.
    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

    /// The time stored as `millis`.
    static func date(_ millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }

    /// A duration in (fractional) seconds.
    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Creates an empty file with mode 0600 unless one exists (an empty file is an empty SQLite
    /// database). An existing file keeps its mode; a warning is logged when group or others may read it.
    private static func createPrivateFile(at path: String, logger: Logger) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            closeDescriptor(fd)
            return
        }
        let error = errno
        guard error == EEXIST else {
            let code = POSIXErrorCode(rawValue: error) ?? .EIO
            throw SignalStoreError.storageFailed("creating \(path)", POSIXError(code))
        }
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & 0o077 != 0 {
            logger.warning(
                "store file is accessible by group or others",
                metadata: ["path": "\(path)", "mode": "\(String(info.st_mode & 0o7777, radix: 8))"]
            )
        }
    }
}

/// `close(2)`, named apart from ``SQLiteSignalStore/close()``.
private func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}
