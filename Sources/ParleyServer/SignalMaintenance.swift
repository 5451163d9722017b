import Foundation
import Logging
import ParleyCrypto
import ParleySignal
import ParleyStore
import ServiceLifecycle
import UnixSignals

/// Background duties of the signaling side: reload accounts on SIGHUP, purge expired messages hourly.
struct SignalMaintenance: Service {
    let hub: SignalHub
    let store: any SignalStore
    let accountsFile: String?
    let ttl: Duration
    let logger: Logger

    /// Store accounts ∪ accounts file; a user with a device list (docs/PROTOCOL.md §3.8) has exactly the
    /// devices the list certifies, whatever the file says. A conflict or a bad file line throws (at start)
    /// or keeps the old table (on reload).
    static func loadAccounts(store: any SignalStore, file: String?, logger: Logger) async throws -> AccountTable {
        let snapshot = try file.map { path throws in try AccountsFile.load(path: path) }
        var table = try AccountTable.merge(store: try await store.accounts(), file: snapshot)
        for (user, text) in try await store.newestDeviceLists() {
            guard let list = try? DeviceList(text: text) else { continue }
            // Devices the operator revoked stay revoked: the list certifies, the operator may still refuse service.
            let active = table.users[user] ?? [:]
            table = table.replacing(user: user, devices: list.certifiedBundles.filter { active[$0.key] == $0.value })
        }
        for line in table.ignored { logger.notice("accounts file entry ignored", metadata: ["entry": "\(line)"]) }
        logger.info("accounts loaded", metadata: ["users": "\(table.users.count)"])
        return table
    }

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in signals {
                    do {
                        hub.reload(accounts: try await Self.loadAccounts(store: store, file: accountsFile, logger: logger))
                    } catch {
                        logger.error("accounts reload failed; keeping the previous accounts", metadata: ["error": "\(error)"])
                    }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    if let n = try? await store.purgeExpired(now: Date(), ttl: ttl), n > 0 {
                        logger.info("expired messages purged", metadata: ["count": "\(n)"])
                    }
                    try await Task.sleep(for: .seconds(3600))
                }
            }
            try await gracefulShutdown()
            group.cancelAll()
        }
    }
}
