import Foundation
import XCTest
@testable import DiffEdit

/// The library links only FoundationEssentials (no ICU); these check its replacements for the full
/// Foundation calls it used against those calls themselves (the test target links full Foundation).
final class SupportParityTests: XCTestCase {
    func testPathNameMatchesNSString() {
        let paths = ["", "/", "a", "a/", "/a", "/a/", "/a/b", "/a/b/", "a/b", "//a//b//", "/a/b.c", "a.tar.gz",
                     "/x/.hidden", "/x/y.", "../a/b", "./a", "/a/./b/../c", "models/toy-sd"]
        for p in paths {
            let ns = p as NSString
            // swift-corelibs-foundation traps on "a".deletingLastPathComponent (one relative component)
            if p.dropLast().contains("/") {
                XCTAssertEqual(PathName.deletingLastComponent(p), ns.deletingLastPathComponent, "deletingLastPathComponent of \(p)")
            }
            XCTAssertEqual(PathName.lastComponent(p), ns.lastPathComponent, "lastPathComponent of \(p)")
            XCTAssertEqual(PathName.pathExtension(p), ns.pathExtension, "pathExtension of \(p)")
            for c in ["", "b", "b/c", "unet/config.json", "../share/x"] {
                XCTAssertEqual(PathName.join(p, c), ns.appendingPathComponent(c), "\(p) + \(c)")
            }
        }
        XCTAssertEqual(PathName.deletingLastComponent("a"), "")
        XCTAssertEqual(PathName.deletingLastComponent("a/"), "")
        for p in ["/a/./b/../c", "/a//b/", "/usr/lib/../bin", "/", "/..", "a/./b", "./a", "a/../b", "../a/b", "a//b/",
                  "/a/b/../../..", "/a/b/", "", "."] {
            XCTAssertEqual(PathName.standardizing(p), (p as NSString).standardizingPath, "standardizingPath of \(p)")
        }
        XCTAssertEqual(PathName.standardizing("~/x", home: "/home/u"), "/home/u/x")
    }

    func testTextUtilMatchesFoundation() {
        let texts = ["", "   ", " a b ", "\t x\u{00A0}\u{3000}", "\n a \r\n", "\u{2028}b\u{85}", "é ", " <|endoftext|> "]
        for t in texts {
            XCTAssertEqual(TextUtil.trimmingWhitespace(t), t.trimmingCharacters(in: .whitespaces), t.debugDescription)
            XCTAssertEqual(TextUtil.trimmingWhitespaceAndNewlines(t), t.trimmingCharacters(in: .whitespacesAndNewlines),
                           t.debugDescription)
        }
        for t in ["e\u{301}", "Å", "ﬁ", "한", "a\u{323}\u{307}"] {
            XCTAssertEqual(Array(TextUtil.nfc(t).unicodeScalars), Array(t.precomposedStringWithCanonicalMapping.unicodeScalars))
        }
        let hay = "a photo<|endoftext|>of <|startoftext|>x"
        for needle in ["<|endoftext|>", "<|startoftext|>", "zz", "a", "x"] {
            XCTAssertEqual(TextUtil.literalRange(of: needle, in: hay), hay.range(of: needle, options: .literal), needle)
        }
        XCTAssertEqual(TextUtil.format("size=%d steps=%d seconds=%.3f", 64, 10, 1.23456),
                       String(format: "size=%d steps=%d seconds=%.3f", 64, 10, 1.23456))
        XCTAssertEqual(TextUtil.format("%g|%.1f|%05d", 0.5, 1e6 / 3, 42), String(format: "%g|%.1f|%05d", 0.5, 1e6 / 3, 42))
        let long = String(repeating: "x", count: 300)
        XCTAssertEqual(TextUtil.format("%d", 7) + long, TextUtil.format("%d" + long, 7))
        XCTAssertEqual(TextUtil.padded("edit", to: 10), "edit".padding(toLength: 10, withPad: " ", startingAt: 0))
    }

    func testJSONAnyParsesLikeJSONSerialization() throws {
        let text = #"{"a": [1, -2, 3.5, 1e2, true, false, null], "s": "x\"\\\/\n\u00e9\ud83d\ude00", "o": {"k": {}}, "e": []}"#
        let mine = try XCTUnwrap(JSONAny.parse(Array(text.utf8)) as? [String: Any])
        let ref = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(mine["s"] as? String, ref["s"] as? String)
        let a = try XCTUnwrap(mine["a"] as? [Any])
        XCTAssertEqual(a.count, 7)
        XCTAssertEqual(a[0] as? Int, 1)
        XCTAssertEqual(a[1] as? Int, -2)
        XCTAssertEqual(a[2] as? Double, 3.5)
        XCTAssertEqual(a[3] as? Double, 100)
        XCTAssertEqual(a[4] as? Bool, true)
        XCTAssertEqual(a[5] as? Bool, false)
        XCTAssertTrue(a[6] is JSONNull)
        XCTAssertEqual((mine["o"] as? [String: Any])?.keys.sorted(), ["k"])
        XCTAssertEqual((mine["e"] as? [Any])?.count, 0)
        for bad in ["", "{", "{\"a\" 1}", "01", "1.", "\"\\ud800\"", "[1] x", "\"a\u{01}\"", "tru", "-"] {
            XCTAssertThrowsError(try JSONAny.parse(Array(bad.utf8)), bad)
            XCTAssertThrowsError(try JSONSerialization.jsonObject(with: Data(bad.utf8), options: [.fragmentsAllowed]), bad)
        }
        XCTAssertThrowsError(try JSONAny.parse(Array((String(repeating: "[", count: 100_000)).utf8)))
        // Foundation's reader accepts a trailing comma; so does ours.
        for lenient in ["[1,]", "{\"a\":1,}"] {
            XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(lenient.utf8)), lenient)
            XCTAssertNotNil(try? JSONAny.parse(Array(lenient.utf8)), lenient)
        }
    }

    func testJSONAnyWritesLikeJSONSerialization() throws {
        let header: [String: Any] = [
            "__metadata__": ["format": "pt", "path": "a/b \"q\"\n"],
            "w.bias": ["dtype": "F16", "shape": [4], "data_offsets": [0, 8]] as [String: Any],
            "conv.weight": ["dtype": "F32", "shape": [2, 1, 3, 3], "data_offsets": [8, 80]] as [String: Any],
        ]
        let mine = try JSONAny.serialize(header)
        let ref = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        XCTAssertEqual(String(decoding: mine, as: UTF8.self), String(decoding: ref, as: UTF8.self))
        let back = try XCTUnwrap(JSONAny.parse(mine) as? [String: Any])
        XCTAssertEqual((back["conv.weight"] as? [String: Any])?["shape"] as? [Int], [2, 1, 3, 3])
    }
}
