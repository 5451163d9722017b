import Foundation
import GRDB

// MARK: Command sequence (§3.3)

extension SQLiteSignalStore {
    public func lastProcessedCSeq(user: String, device: String) async throws -> Int64 {
        try await read("reading last cseq of \(user).\(device)") { db in
            try Int64.fetchOne(
                db, sql: "SELECT last_cseq FROM device_sequence WHERE user = ? AND device = ?",
                arguments: [user, device]
            ) ?? 0
        }
    }

    public func recordProcessedCSeq(_ cseq: Int64, user: String, device: String) async throws -> CSeqOutcome {
        guard cseq >= 0 else { throw SignalStoreError.invalidMessage("negative cseq \(cseq)") }
        return try await write("recording cseq of \(user).\(device)") { db in
            let last = try Int64.fetchOne(
                db, sql: "SELECT last_cseq FROM device_sequence WHERE user = ? AND device = ?",
                arguments: [user, device]
            ) ?? 0
            guard cseq > last else { return .duplicate(last: last) }
            try Self.advanceCSeq(to: cseq, user: user, device: device, db)
            return .recorded
        }
    }

    /// What a login needs, for every device at once (read at start): last cseqs, and the
    /// devices with stored mail.
    public func loginState() throws -> (cseqs: [(String, String, Int64)], mail: [(String, String)])? {
        try pool.read { db in
            let c = try Row.fetchAll(db, sql: "SELECT user, device, last_cseq FROM device_sequence").map {
                ($0[0] as String, $0[1] as String, $0[2] as Int64)
            }
            let m = try Row.fetchAll(db, sql: "SELECT DISTINCT recipient_user, recipient_device FROM message_copy").map {
                ($0[0] as String, $0[1] as String)
            }
            return (c, m)
        }
    }

    /// Many devices' cseqs in one transaction (the hub flushes them together every 200 ms).
    public func recordProcessedCSeqs(_ items: [(Int64, String, String)]) async throws {
        try await write("recording cseqs") { db in
            for (cseq, user, device) in items { try Self.advanceCSeq(to: cseq, user: user, device: device, db) }
        }
    }

    /// Raises the device's last processed cseq to `cseq` (never lowers it).
    static func advanceCSeq(to cseq: Int64, user: String, device: String, _ db: Database) throws {
        // A cached statement: the hub writes thousands of these per second under call load, and parsing
        // the SQL each time was most of their cost.
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO device_sequence (user, device, last_cseq) VALUES (?, ?, ?)
                ON CONFLICT (user, device) DO UPDATE SET last_cseq = MAX(last_cseq, excluded.last_cseq)
                """)
        try statement.execute(arguments: [user, device, cseq])
    }
}

// MARK: Events and offline mail (§3.4, §3.6)

extension SQLiteSignalStore {
    public func nextEventSeq(user: String, device: String) async throws -> Int64 {
        try await write("reserving an event number for \(user).\(device)") { db in
            try Self.reserveEventSeq(user: user, device: device, db)
        }
    }

    /// Hands out the device's next event number; the row is created at the first one.
    static func reserveEventSeq(user: String, device: String, _ db: Database) throws -> Int64 {
        let sseq = try Int64.fetchOne(
            db,
            sql: """
                INSERT INTO device_sequence (user, device, last_sseq) VALUES (?, ?, 1)
                ON CONFLICT (user, device) DO UPDATE SET last_sseq = last_sseq + 1
                RETURNING last_sseq
                """,
            arguments: [user, device]
        )
        guard let sseq else { throw SignalStoreError.invalidMessage("no event number for \(user).\(device)") }
        return sseq
    }

    public func enqueueMessage(_ message: OutgoingMessage, at now: Date) async throws -> MessageReceipt {
        guard !message.copies.isEmpty else { throw SignalStoreError.invalidMessage("a message needs a copy") }
        var seen = Set<String>()
        for copy in message.copies where !seen.insert(copy.device).inserted {
            throw SignalStoreError.invalidMessage("two copies for device '\(copy.device)'")
        }
        if let cseq = message.cseq, cseq < 0 { throw SignalStoreError.invalidMessage("negative cseq \(cseq)") }
        let adding = message.copies.reduce(Int64(0)) { $0 + Int64($1.ciphertext.utf8.count) }
        let quota = mailboxQuota
        let storedAt = Self.millis(now)

        return try await write("storing message \(message.id)") { db in
            // An id this sender device already used: the client resent it; answer as the first time.
            if let first = try Row.fetchOne(
                db,
                sql: """
                    SELECT stored_at, deliveries FROM message
                    WHERE sender_user = ? AND sender_device = ? AND message_id = ?
                    """,
                arguments: [message.senderUser, message.senderDevice, message.id]
            ) {
                if let cseq = message.cseq {
                    try Self.advanceCSeq(to: cseq, user: message.senderUser, device: message.senderDevice, db)
                }
                return MessageReceipt(
                    deliveries: Self.decodeDeliveries(first["deliveries"]), isDuplicate: true,
                    storedAt: Self.date(first["stored_at"])
                )
            }

            let used = try Self.usage(of: message.recipient, db)
            guard used + adding <= quota else {
                throw SignalStoreError.quotaExceeded(user: message.recipient, used: used, adding: adding, quota: quota)
            }
            var deliveries: [MessageDelivery] = []
            for copy in message.copies {
                let sseq = try Self.reserveEventSeq(user: message.recipient, device: copy.device, db)
                deliveries.append(MessageDelivery(device: copy.device, sseq: sseq))
            }
            try db.execute(
                sql: """
                    INSERT INTO message (sender_user, sender_device, message_id, recipient, stored_at, deliveries)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    message.senderUser, message.senderDevice, message.id, message.recipient, storedAt,
                    Self.encodeDeliveries(deliveries),
                ]
            )
            let row = db.lastInsertedRowID
            for (copy, delivery) in zip(message.copies, deliveries) {
                try db.execute(
                    sql: """
                        INSERT INTO message_copy (recipient_user, recipient_device, sseq, message, size, ciphertext)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        message.recipient, copy.device, delivery.sseq, row, copy.ciphertext.utf8.count,
                        copy.ciphertext,
                    ]
                )
            }
            if let cseq = message.cseq {
                try Self.advanceCSeq(to: cseq, user: message.senderUser, device: message.senderDevice, db)
            }
            return MessageReceipt(deliveries: deliveries, isDuplicate: false, storedAt: Self.date(storedAt))
        }
    }

    public func pendingMessages(user: String, device: String, after sseq: Int64, limit: Int) async throws
        -> [PendingMessage]
    {
        guard limit > 0 else { return [] }
        return try await read("reading mail of \(user).\(device)") { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT c.sseq, c.ciphertext, m.message_id, m.sender_user, m.sender_device, m.stored_at
                    FROM message_copy c JOIN message m ON m.id = c.message
                    WHERE c.recipient_user = ? AND c.recipient_device = ? AND c.sseq > ?
                    ORDER BY c.sseq LIMIT ?
                    """,
                arguments: [user, device, sseq, limit]
            ).map { row in
                PendingMessage(
                    sseq: row["sseq"], id: row["message_id"], senderUser: row["sender_user"],
                    senderDevice: row["sender_device"], storedAt: Self.date(row["stored_at"]),
                    ciphertext: row["ciphertext"]
                )
            }
        }
    }

    public func acknowledge(user: String, device: String, upTo sseq: Int64) async throws -> Int {
        try await write("acknowledging mail of \(user).\(device)") { db in
            try db.execute(
                sql: "DELETE FROM message_copy WHERE recipient_user = ? AND recipient_device = ? AND sseq <= ?",
                arguments: [user, device, sseq]
            )
            return db.changesCount
        }
    }

    public func acknowledge(user: String, device: String, sseqs: [Int64]) async throws -> Int {
        guard !sseqs.isEmpty else { return 0 }
        return try await write("acknowledging mail of \(user).\(device)") { db in
            var deleted = 0
            for chunk in stride(from: 0, to: sseqs.count, by: 500).map({ Array(sseqs[$0..<min($0 + 500, sseqs.count)]) }) {
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                try db.execute(
                    sql: "DELETE FROM message_copy WHERE recipient_user = ? AND recipient_device = ? AND sseq IN (\(marks))",
                    arguments: StatementArguments([user, device]) + StatementArguments(chunk))
                deleted += db.changesCount
            }
            return deleted
        }
    }

    public func purgeExpired(now: Date, ttl: Duration) async throws -> Int {
        guard ttl >= .zero else { throw SignalStoreError.invalidMessage("negative message ttl \(ttl)") }
        let cutoff = Self.millis(now) - Int64((Self.seconds(ttl) * 1000).rounded(.down))
        let purged = try await write("purging expired mail") { db in
            let copies = try Int.fetchOne(
                db,
                sql: "SELECT COUNT(*) FROM message_copy c JOIN message m ON m.id = c.message WHERE m.stored_at <= ?",
                arguments: [cutoff]
            ) ?? 0
            try db.execute(sql: "DELETE FROM message WHERE stored_at <= ?", arguments: [cutoff])  // copies cascade
            return (copies: copies, messages: db.changesCount)
        }
        if purged.messages > 0 {
            logger.info("expired mail purged", metadata: [
                "messages": "\(purged.messages)", "undelivered_copies": "\(purged.copies)",
            ])
        }
        return purged.copies
    }

    /// Bytes of undelivered ciphertext queued for all devices of `user` (what the quota limits).
    public func mailboxUsage(of user: String) async throws -> Int64 {
        try await read("reading mailbox usage of \(user)") { db in try Self.usage(of: user, db) }
    }

    private static func usage(of user: String, _ db: Database) throws -> Int64 {
        try Int64.fetchOne(
            db, sql: "SELECT COALESCE(SUM(size), 0) FROM message_copy WHERE recipient_user = ?", arguments: [user]
        ) ?? 0
    }

    /// `device:sseq,…`; neither a name nor a number contains `:` or `,`.
    private static func encodeDeliveries(_ deliveries: [MessageDelivery]) -> String {
        deliveries.map { "\($0.device):\($0.sseq)" }.joined(separator: ",")
    }

    private static func decodeDeliveries(_ text: String) -> [MessageDelivery] {
        text.split(separator: ",").compactMap { item in
            guard let colon = item.lastIndex(of: ":"), let sseq = Int64(item[item.index(after: colon)...]) else {
                return nil
            }
            return MessageDelivery(device: String(item[..<colon]), sseq: sseq)
        }
    }
}
