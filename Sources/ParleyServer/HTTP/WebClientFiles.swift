import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The browser client's static files (docs/OPERATIONS.md "The web client"), served at `/` from
/// `http.web_root` when it is set, with strict headers: a CSP that allows scripts, styles and connections
/// only from this origin and no framing, no sniffing, no referrer. Deny by default: only plain file names
/// (`[A-Za-z0-9_-]` segments, one extension) of regular files inside the root are served; anything else is 404.
struct WebClientFiles: Sendable {
    /// The root, absolute and with symbolic links resolved.
    let root: String

    /// Files larger than this are not served (the client is a few hundred KB).
    static let maximumFileBytes = 8 << 20

    /// The headers of every response for the web client (docs/OPERATIONS.md).
    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy:
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
            + "connect-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        HTTPField.Name("Cross-Origin-Opener-Policy")!: "same-origin",
        HTTPField.Name("Cross-Origin-Resource-Policy")!: "same-origin",
        HTTPField.Name("Permissions-Policy")!: "camera=(self), microphone=(self), geolocation=(), payment=()",
        .cacheControl: "no-cache",
    ]

    static let contentTypes = [
        "html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "mjs": "text/javascript; charset=utf-8",
        "css": "text/css; charset=utf-8", "json": "application/json", "svg": "image/svg+xml", "png": "image/png",
        "ico": "image/x-icon", "webmanifest": "application/manifest+json", "wav": "audio/wav", "txt": "text/plain; charset=utf-8",
    ]

    /// nil when `root` is not a directory.
    init?(root: String) {
        guard let resolved = Self.realPath(root) else { return nil }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
        self.root = resolved
    }

    /// The response for a request path (without the query): the file, or 404.
    func response(for requestPath: String) -> Response {
        guard let relative = Self.relativePath(requestPath), let type = Self.contentTypes[relative.extensionPart],
            let resolved = Self.realPath(root + "/" + relative.path), resolved.hasPrefix(root + "/"),
            let attributes = try? FileManager.default.attributesOfItem(atPath: resolved),
            attributes[.type] as? FileAttributeType == .typeRegular,
            let size = attributes[.size] as? Int, size <= Self.maximumFileBytes,
            let data = FileManager.default.contents(atPath: resolved)
        else { return Self.notFound }
        var headers = Self.securityHeaders
        headers[.contentType] = type
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static var notFound: Response {
        var headers = securityHeaders
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: .notFound, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: "not found\n")))
    }

    /// `/` → `index.html`; `/a/b.js` → `a/b.js`; nil for anything that is not plain segments of
    /// `[A-Za-z0-9_-]` ending in one `name.extension`.
    static func relativePath(_ path: String) -> (path: String, extensionPart: String)? {
        let path = path == "/" ? "/index.html" : path
        guard path.hasPrefix("/"), path.utf8.count <= 256 else { return nil }
        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard let last = segments.last else { return nil }
        func plain(_ text: Substring) -> Bool {
            !text.isEmpty && text.utf8.allSatisfy { c in
                (65...90).contains(c) || (97...122).contains(c) || (48...57).contains(c) || c == 45 || c == 95
            }
        }
        guard segments.dropLast().allSatisfy(plain) else { return nil }
        let parts = last.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, plain(parts[0]), plain(parts[1]) else { return nil }
        return (segments.joined(separator: "/"), String(parts[1]))
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
