import Foundation

/// Where a configuration value came from, for error messages: a file and line, or a command-line flag.
public enum ConfigOrigin: Sendable, Hashable, CustomStringConvertible {
    case file(path: String, line: Int)
    case flag(String)
    case defaultValue

    public var description: String {
        switch self {
        case .file(let path, let line): "\(path):\(line)"
        case .flag(let name): "flag --\(name)"
        case .defaultValue: "default"
        }
    }
}

/// A configuration problem, always naming where it is.
public struct ConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    public let origin: ConfigOrigin
    public let message: String

    public init(_ origin: ConfigOrigin, _ message: String) {
        self.origin = origin
        self.message = message
    }

    public var description: String { "\(origin): \(message)" }
}

/// One `key = value` line of a configuration file.
public struct ConfigEntry: Sendable, Equatable {
    public let key: String
    public let value: String
    public let origin: ConfigOrigin

    public init(key: String, value: String, origin: ConfigOrigin) {
        self.key = key
        self.value = value
        self.origin = origin
    }
}

/// The unix conf format: `key = value`, one per line; `#` starts a comment on its own line or after
/// a value (a `#` inside a value must be written `\#`); blank lines are ignored; a key may appear once.
public enum ConfigFile {
    public static func parse(_ text: String, path: String) throws(ConfigError) -> [ConfigEntry] {
        var entries: [ConfigEntry] = []
        var seen: [String: Int] = [:]
        var lineNumber = 0
        // Character-wise newline split: "\r\n" is a single Character in Swift, so CRLF files work too.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            let origin = ConfigOrigin.file(path: path, line: lineNumber)
            var line = ""
            var escaped = false
            for ch in rawLine {
                if escaped {
                    line.append(ch)
                    escaped = false
                } else if ch == "\\" {
                    escaped = true
                } else if ch == "#" {
                    break
                } else {
                    line.append(ch)
                }
            }
            if escaped { line.append("\\") }
            let trimmed = line.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw ConfigError(origin, "expected 'key = value', got '\(trimmed.prefix(60))'")
            }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { throw ConfigError(origin, "missing key before '='") }
            guard key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "_" }) else {
                throw ConfigError(origin, "invalid key '\(key)'")
            }
            if let first = seen[key] {
                throw ConfigError(origin, "duplicate key '\(key)' (first set on line \(first))")
            }
            seen[key] = lineNumber
            entries.append(ConfigEntry(key: key, value: value, origin: origin))
        }
        return entries
    }

    public static func load(path: String) throws(ConfigError) -> [ConfigEntry] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(.file(path: path, line: 0), "cannot read configuration file: \(error.localizedDescription)")
        }
        return try parse(text, path: path)
    }
}
