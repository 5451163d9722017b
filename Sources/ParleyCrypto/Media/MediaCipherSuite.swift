import Foundation

/// The AEADs media packets may be sealed with (docs/PROTOCOL.md §5.2). Both use 256-bit keys, 96-bit nonces
/// and 128-bit tags.
public enum MediaCipherSuite: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// ChaCha20-Poly1305 (RFC 8439): fast everywhere, constant time in software.
    case chaCha20Poly1305 = 1
    /// AES-256-GCM: faster where the CPU has AES instructions, and only offered there.
    case aes256GCM = 2

    /// Name for logs and the CLI.
    public var description: String {
        switch self {
        case .chaCha20Poly1305: "ChaCha20-Poly1305"
        case .aes256GCM: "AES-256-GCM"
        }
    }

    /// This machine's preference: AES-GCM first when the CPU has AES instructions, otherwise ChaCha20-Poly1305
    /// only (software AES is slower and not constant time, so it is not offered at all).
    public static let localPreference: [MediaCipherSuite] =
        hasHardwareAES ? [.aes256GCM, .chaCha20Poly1305] : [.chaCha20Poly1305]

    /// Whether the CPU advertises AES instructions (`aes` in /proc/cpuinfo's x86 flags or ARM features).
    public static let hasHardwareAES: Bool = {
        #if os(Linux)
            guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
            for line in info.split(separator: "\n") where line.hasPrefix("flags") || line.hasPrefix("Features") {
                if line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }).contains("aes") { return true }
            }
            return false
        #else
            return true
        #endif
    }()

    /// The suite a callee picks: the first of the caller's list (its preference order) that the callee
    /// also supports; nil when they share none.
    public static func choose(offered: [MediaCipherSuite], supported: [MediaCipherSuite]) -> MediaCipherSuite? {
        offered.first(where: supported.contains)
    }
}
