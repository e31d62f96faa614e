import Foundation
import XCTest
@testable import DiffEdit

/// Helpers for the IO/loader tests: temp directories and hand-made safetensors bytes.
enum IOTestSupport {
    static func tempDir(_ tag: String) throws -> String {
        let p = (NSTemporaryDirectory() as NSString).appendingPathComponent("diffedit-io-\(tag)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    /// A safetensors file from a raw JSON header and data bytes (no validation: for bad inputs).
    static func rawSafetensors(header: String, data: [UInt8], headerLength: UInt64? = nil) -> [UInt8] {
        let h = [UInt8](header.utf8)
        var out = [UInt8]()
        withUnsafeBytes(of: (headerLength ?? UInt64(h.count)).littleEndian) { out += $0 }
        return out + h + data
    }

    static func write(_ bytes: [UInt8], _ path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw DiffEditError.io("\(path): test could not write")
        }
    }

    /// Asserts `body` throws a DiffEditError of the given kind whose message contains every `needle`.
    static func assertThrows(_ kind: String, _ needles: [String], file: StaticString = #filePath, line: UInt = #line,
                             _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected a \(kind) error", file: file, line: line)
        } catch let e as DiffEditError {
            let k: String
            switch e {
            case .io: k = "io"
            case .model: k = "model"
            case .unsupported: k = "unsupported"
            case .invalidArgument: k = "invalidArgument"
            case .outOfMemory: k = "outOfMemory"
            default: k = "other"
            }
            XCTAssertEqual(k, kind, "wrong error kind: \(e.message)", file: file, line: line)
            for n in needles { XCTAssertTrue(e.message.contains(n), "message \"\(e.message)\" does not name \"\(n)\"", file: file, line: line) }
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
        }
    }

    /// Fixture folder: Tests/Fixtures (or $DIFFEDIT_IO_FIXTURES while developing).
    static var fixtures: String {
        if let p = ProcessInfo.processInfo.environment["DIFFEDIT_IO_FIXTURES"] { return p }
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return here.appendingPathComponent("Fixtures").path
    }
}
