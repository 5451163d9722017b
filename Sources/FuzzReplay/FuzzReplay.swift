import Foundation

/// The corpus replayer every Fuzz* executable runs when built without `-DFUZZING`: each named file, and
/// each file of each named directory (sorted, dot-files skipped), goes through the fuzz entry point once.
/// scripts/test.sh uses it to replay the seeds and every crash input ever kept (a regression check).
public enum FuzzReplay {
    /// Exits with status 2 (and `usage`) when there is nothing to replay or a path does not exist.
    public static func run(_ arguments: [String], usage: String, body: (UnsafeBufferPointer<UInt8>) -> Void) throws {
        guard !arguments.isEmpty else {
            print(usage)
            exit(2)
        }
        var files: [String] = []
        for path in arguments {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                print("no such file: \(path)")
                exit(2)
            }
            if isDirectory.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
                files += names.filter { !$0.hasPrefix(".") }.map { path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        for file in files {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            // A buffer whose base address is valid even for an empty file (libFuzzer never passes nil).
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(bytes.count, 1)) { scratch in
                _ = scratch.initialize(fromContentsOf: bytes)
                body(UnsafeBufferPointer(start: scratch.baseAddress!, count: bytes.count))
            }
            print("ok \(file) (\(bytes.count) bytes)")
        }
        print("replayed \(files.count) input(s)")
    }
}
