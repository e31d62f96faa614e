import Foundation
import XCTest
@testable import DiffEdit
import DiffEditC
import CDiffEditABI

/// POSIX paths are bytes: a model folder whose name is not valid UTF-8 loads through the C ABI, and
/// messages show such a path escaped (issue 21).
final class HardeningPathTests: XCTestCase {
    var base = ""
    override func setUpWithError() throws { base = try IOTestSupport.tempDir("bytes") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: base) }

    /// `base` + "/" + `name` + the bytes 0xFF 0xFE (not UTF-8), NUL-terminated.
    func bytePath(_ name: String) -> [CChar] {
        (Array((base + "/" + name).utf8) + [0xFF, 0xFE, 0]).map { CChar(bitPattern: $0) }
    }

    /// Copies the sd1 fixture to `base`/`name`, then renames it to the non-UTF-8 name.
    func fixtureAtBytePath(_ name: String, patch: ((String) throws -> Void)? = nil) throws -> [CChar] {
        let plain = base + "/" + name
        try FileManager.default.copyItem(atPath: IOTestSupport.fixtures + "/sd1", toPath: plain)
        try patch?(plain)
        let target = bytePath(name)
        XCTAssertEqual(rename(plain, target), 0, "rename: \(String(cString: strerror(errno)))")
        return target
    }

    func load(_ path: [CChar]) -> (diff_edit_status, OpaquePointer?, String) {
        var mp = diff_edit_model_params()
        diffEditModelParamsDefault(&mp)
        var model: OpaquePointer? = nil
        let st = path.withUnsafeBufferPointer { p -> diff_edit_status in
            "cpu".withCString { be in
                mp.path = p.baseAddress; mp.backend = be
                return diffEditModelLoad(&mp, &model)
            }
        }
        return (st, model, String(cString: diffEditLastError(nil)))
    }

    static func openDescriptors() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }

    func testNonUTF8ModelFolderLoadsThroughTheCABI() throws {
        let path = try fixtureAtBytePath("sd1-")
        XCTAssertNil(String(validatingCString: path))
        let fds = Self.openDescriptors()
        let (st, model, msg) = load(path)
        XCTAssertEqual(st, DIFF_EDIT_OK, msg)
        guard let m = model else { return }
        var ctx: OpaquePointer? = nil
        XCTAssertEqual(diffEditCtxCreate(m, &ctx), DIFF_EDIT_OK)
        if let c = ctx { diffEditCtxFree(c) }
        diffEditModelFree(m)
        XCTAssertEqual(Self.openDescriptors(), fds, "the descriptor the load opened is closed")
    }

    func testNonUTF8PathsAreShownEscaped() throws {
        // missing: IO, the path escaped (was INVALID_ARGUMENT "params->path is not valid UTF-8")
        let (st, model, msg) = load(bytePath("missing-"))
        XCTAssertEqual(st, DIFF_EDIT_ERR_IO)
        XCTAssertNil(model)
        XCTAssertTrue(msg.contains(base + "/missing-\\xFF\\xFE"), msg)
        // a bad config inside such a folder: MODEL, naming the file under the escaped path
        let bad = try fixtureAtBytePath("bad-") { dir in
            let f = dir + "/unet/config.json"
            let s = try String(contentsOfFile: f, encoding: .utf8).replacingOccurrences(of: "\"layers_per_block\": 2", with: "\"layers_per_block\": 1000000000")
            try s.write(toFile: f, atomically: true, encoding: .utf8)
        }
        let (st2, model2, msg2) = load(bad)
        XCTAssertEqual(st2, DIFF_EDIT_ERR_MODEL, msg2)
        XCTAssertNil(model2)
        XCTAssertTrue(msg2.contains(base + "/bad-\\xFF\\xFE/unet/config.json"), msg2)
        XCTAssertTrue(msg2.contains("layers_per_block"), msg2)
        XCTAssertFalse(msg2.contains("/proc/self/fd"), msg2)
    }

    func testEscaping() {
        XCTAssertEqual(PathName.escaped(Array("/a/é/b".utf8)), "/a/é/b")
        XCTAssertEqual(PathName.escaped([0x2F, 0xFF, 0x41, 0xC3]), "/\\xFFA\\xC3")
        XCTAssertEqual(PathName.escaped([0x61, 0x0A, 0x5C]), "a\\x0A\\\\")
        XCTAssertEqual(PathName.escaped([0xED, 0xA0, 0x80]), "\\xED\\xA0\\x80")   // a UTF-16 surrogate is not UTF-8
    }

    /// The CLI takes its arguments as bytes: a non-UTF-8 input, model folder and output are read and written
    /// under exactly those names, and a missing one is named escaped in the message (not as U+FFFD, not as the
    /// link the CLI reaches it by).
    func testCLITakesNonUTF8PathArguments() throws {
        guard let exe = PipelineCLITests.binary else { throw XCTSkip("diffedit executable not built next to the test bundle") }
        let script = """
            set -u
            cp "$FIX/edit/sdedit/input.png" "$D/$(printf 'in\\377.png')"
            cp -R "$FIX/sd1" "$D/$(printf 'model\\376')"
            "$EXE" edit --input "$D/$(printf 'in\\377.png')" --output "$D/$(printf 'out\\375.png')" \\
                --model "$D/$(printf 'model\\376')" --method sdedit --prompt "a cat" --steps 1 --quiet || exit 10
            [ -s "$D/$(printf 'out\\375.png')" ] || exit 11
            "$EXE" edit --input "$D/$(printf 'missing\\377.png')" --output "$D/o.png" --model "$FIX/sd1" \\
                --method sdedit --prompt "a cat" --steps 1 2>"$D/err.txt" && exit 12
            ls "$D"/diffedit-args-* >/dev/null 2>&1 && exit 13   # the links' folder is removed at exit
            cat "$D/err.txt"
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        p.environment = ["EXE": exe.path, "FIX": IOTestSupport.fixtures, "D": base, "TMPDIR": base,
                         "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "step \(p.terminationStatus) failed; stderr of the missing-input run: \(text)")
        XCTAssertTrue(text.contains(base + "/missing\\xFF.png"), text)
        XCTAssertFalse(text.contains("diffedit-args-") || text.contains("\u{FFFD}"), text)
    }
}
