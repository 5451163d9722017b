import GRDB

/// The SQLite schema, as GRDB migrations. GRDB records the applied ones in `grdb_migrations`; that list
/// is the schema version. Never edit a registered migration: append a new one.
///
/// Times are milliseconds since the Unix epoch (INTEGER). Tables are STRICT, so a wrongly typed value
/// is an error instead of a silent conversion.
enum StoreSchema {
    /// Every migration, in order.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: accounts, sequences, mailbox") { db in
            try db.execute(sql: v1)
        }
        migrator.registerMigration("v2: device lists") { db in
            try db.execute(sql: v2)
        }
        migrator.registerMigration("v3: invites") { db in
            try db.execute(sql: v3)
        }
        return migrator
    }

    /// The first schema.
    ///
    /// - `account_user`, `account_device`: accounts managed by `parley user`. Rows are never deleted:
    ///   revoking sets `revoked_at`, and a revoked name is never given out again (its sequences below
    ///   would otherwise carry over to a different device).
    /// - `device_sequence`: per device, the last processed command (§3.3) and the last event number
    ///   handed out (§3.4). Keyed by name only, with no foreign key, because devices from the accounts
    ///   file have no `account_device` row. `last_sseq` only grows: it counts stored mail and
    ///   reserved call events alike and is never lowered when mail is deleted.
    /// - `message`: one row per stored `msg`, kept after its copies are delivered (until it expires) so
    ///   that a resent message id is recognised; `deliveries` is the first receipt, `device:sseq,…`.
    /// - `message_copy`: one row per recipient device, deleted when that device acknowledges it.
    static let v1 = """
        CREATE TABLE account_user (
            name       TEXT NOT NULL PRIMARY KEY,
            added_at   INTEGER NOT NULL,
            revoked_at INTEGER
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE account_device (
            user       TEXT NOT NULL REFERENCES account_user(name),
            name       TEXT NOT NULL,
            bundle     TEXT NOT NULL,
            added_at   INTEGER NOT NULL,
            revoked_at INTEGER,
            PRIMARY KEY (user, name)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE device_sequence (
            user      TEXT NOT NULL,
            device    TEXT NOT NULL,
            last_cseq INTEGER NOT NULL DEFAULT 0 CHECK (last_cseq >= 0),
            last_sseq INTEGER NOT NULL DEFAULT 0 CHECK (last_sseq >= 0),
            PRIMARY KEY (user, device)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE message (
            id            INTEGER PRIMARY KEY,
            sender_user   TEXT NOT NULL,
            sender_device TEXT NOT NULL,
            message_id    TEXT NOT NULL,
            recipient     TEXT NOT NULL,
            stored_at     INTEGER NOT NULL,
            deliveries    TEXT NOT NULL,
            UNIQUE (sender_user, sender_device, message_id)
        ) STRICT;
        CREATE INDEX message_by_stored_at ON message(stored_at);

        CREATE TABLE message_copy (
            recipient_user   TEXT NOT NULL,
            recipient_device TEXT NOT NULL,
            sseq             INTEGER NOT NULL,
            message          INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
            size             INTEGER NOT NULL,
            ciphertext       TEXT NOT NULL,
            PRIMARY KEY (recipient_user, recipient_device, sseq)
        ) STRICT;
        -- Covers the mailbox quota sum without reading ciphertexts.
        CREATE INDEX message_copy_usage ON message_copy(recipient_user, size);
        CREATE INDEX message_copy_by_message ON message_copy(message);
        """

    /// Device lists (docs/PROTOCOL.md §3.8): every version each user published, signed by the user's own
    /// key, kept so a client that pinned an older version can be given the chain up to the newest. The
    /// server never makes a list; it only checks that each one continues the last before storing it.
    static let v2 = """
        CREATE TABLE device_list (
            user         TEXT NOT NULL,
            version      INTEGER NOT NULL CHECK (version >= 1),
            list         TEXT NOT NULL,
            published_at INTEGER NOT NULL,
            PRIMARY KEY (user, version)
        ) STRICT, WITHOUT ROWID;
        """

    /// Invitations (docs/PROTOCOL.md §3.8): single use, expiring, optionally for one user name. Only the
    /// token's SHA-256 is stored, so a copy of the store cannot be used to register.
    static let v3 = """
        CREATE TABLE invite (
            token_hash TEXT NOT NULL PRIMARY KEY,
            user       TEXT,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            used_at    INTEGER,
            used_by    TEXT
        ) STRICT, WITHOUT ROWID;
        """
}
