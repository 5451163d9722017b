import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParleyServer
import XCTest

@testable import ParleyServer

/// The browser client's files at `/` (http.web_root): only plain file names inside the root, strict headers.
final class WebClientFilesTests: XCTestCase {
    func testOnlyPlainNamesAreFiles() {
        XCTAssertEqual(WebClientFiles.relativePath("/")?.path, "index.html")
        XCTAssertEqual(WebClientFiles.relativePath("/app.js")?.path, "app.js")
        XCTAssertEqual(WebClientFiles.relativePath("/lib/sdp-parse.js")?.extensionPart, "js")
        for bad in ["", "app.js", "/../etc/passwd", "/a/../b.js", "/.hidden.js", "/a//b.js", "/a.b.js", "/noext", "/a/", "/%2e%2e/x.js",
                    "/a b.js", "/a\u{0}.js", "/" + String(repeating: "a", count: 300) + ".js"] {
            XCTAssertNil(WebClientFiles.relativePath(bad), bad)
        }
    }

    func testServedWithStrictHeadersAndNothingOutsideTheRoot() async throws {
        let dir = NSTemporaryDirectory() + "parley-web-\(UUID().uuidString)"
        let web = dir + "/web"
        try FileManager.default.createDirectory(atPath: web + "/lib", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "<!doctype html><title>Parley</title>".write(toFile: web + "/index.html", atomically: true, encoding: .utf8)
        try "export const x = 1;".write(toFile: web + "/lib/mod.js", atomically: true, encoding: .utf8)
        try "secret".write(toFile: dir + "/outside.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: web + "/link.txt", withDestinationPath: dir + "/outside.txt")
        try FileManager.default.createDirectory(atPath: web + "/dir.js", withIntermediateDirectories: true)
        let server = try await TestServer.start(in: dir, accounts: []) { $0.httpWebRoot = web }
        defer { Task { try? await server.shutdown() } }
        func get(_ path: String) async throws -> (Int, HTTPURLResponse, String) {
            let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(server.httpPort)\(path)")!)
            let http = response as! HTTPURLResponse
            return (http.statusCode, http, String(decoding: data, as: UTF8.self))
        }
        let (status, response, body) = try await get("/")
        XCTAssertEqual(status, 200)
        XCTAssertTrue(body.hasPrefix("<!doctype html>"))
        XCTAssertEqual(response.value(forHTTPHeaderField: "Content-Type"), "text/html; charset=utf-8")
        let csp = try XCTUnwrap(response.value(forHTTPHeaderField: "Content-Security-Policy"))
        XCTAssertTrue(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), csp)
        XCTAssertFalse(csp.contains("unsafe"), csp)
        XCTAssertEqual(response.value(forHTTPHeaderField: "X-Content-Type-Options"), "nosniff")
        XCTAssertEqual(response.value(forHTTPHeaderField: "Referrer-Policy"), "no-referrer")
        let (jsStatus, js, _) = try await get("/lib/mod.js")
        XCTAssertEqual(jsStatus, 200)
        XCTAssertEqual(js.value(forHTTPHeaderField: "Content-Type"), "text/javascript; charset=utf-8")
        for path in ["/link.txt", "/dir.js", "/outside.txt", "/missing.js", "/lib/../../outside.txt", "/index.exe"] {
            let (code, notFound, text) = try await get(path)
            XCTAssertEqual(code, 404, path)
            XCTAssertFalse(text.contains("secret"), path)
            XCTAssertNotNil(notFound.value(forHTTPHeaderField: "Content-Security-Policy"), path)
        }
        let (health, _, ok) = try await get("/healthz")
        XCTAssertEqual(health, 200)
        XCTAssertEqual(ok, "ok\n")
    }

    func testNothingIsServedAtTheRootByDefault() async throws {
        let dir = NSTemporaryDirectory() + "parley-web-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await TestServer.start(in: dir, accounts: [])
        defer { Task { try? await server.shutdown() } }
        let (_, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(server.httpPort)/")!)
        XCTAssertEqual((response as! HTTPURLResponse).statusCode, 404)
    }
}
