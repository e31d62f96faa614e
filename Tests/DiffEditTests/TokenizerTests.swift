import Foundation
import XCTest
@testable import DiffEdit

/// CLIPTokenizer against transformers' CLIPTokenizer ids (Tests/Fixtures/tokenizer_cases.json, written by
/// tools/make_fixtures.py), both from the fixture's vocab.json/merges.txt and from the embedded merges.
final class TokenizerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Case: Decodable { let text: String; let pad: String; let ids: [Int32] }

    static func fixturePath(_ parts: String...) -> String {
        parts.reduce(fixtures) { $0.appendingPathComponent($1) }.path
    }

    func loadCases() throws -> [Case] {
        let path = Self.fixturePath("tokenizer_cases.json")
        guard let data = FileManager.default.contents(atPath: path) else {
            XCTFail("missing fixture \(path) (run tools/make_fixtures.py)")
            return []
        }
        return try JSONDecoder().decode([Case].self, from: data)
    }

    func fileTokenizer(pad: String?) throws -> CLIPTokenizer {
        try CLIPTokenizer(vocabPath: Self.fixturePath("sd1", "tokenizer", "vocab.json"),
                          mergesPath: Self.fixturePath("sd1", "tokenizer", "merges.txt"), padToken: pad)
    }

    func check(_ tokenizers: [String: CLIPTokenizer], cases: [Case], label: String) {
        var failures = 0
        for c in cases {
            guard let tok = tokenizers[c.pad] else { XCTFail("no tokenizer for pad \(c.pad)"); continue }
            let ids = tok.encode(c.text)
            if ids != c.ids {
                failures += 1
                if failures <= 10 {
                    XCTFail("\(label): \(c.text.debugDescription) (pad \(c.pad))\n got      \(ids)\n expected \(c.ids)")
                }
            }
        }
        XCTAssertEqual(failures, 0, "\(label): \(failures) of \(cases.count) strings differ")
    }

    func testFixtureCasesFromVocabFiles() throws {
        let cases = try loadCases()
        XCTAssertGreaterThan(cases.count, 300)
        XCTAssertTrue(cases.contains { $0.pad == "!" })
        let tokenizers = ["<|endoftext|>": try fileTokenizer(pad: nil), "!": try fileTokenizer(pad: "!")]
        check(tokenizers, cases: cases, label: "vocab files")
    }

    func testFixtureCasesFromEmbeddedVocabulary() throws {
        let cases = try loadCases()
        XCTAssertGreaterThan(cases.count, 300)
        let tokenizers = ["<|endoftext|>": try CLIPTokenizer.embedded(), "!": try CLIPTokenizer.embedded(padToken: "!")]
        check(tokenizers, cases: cases, label: "embedded")
    }

    func testKnownIdsAndSpecialTokens() throws {
        for tok in [try CLIPTokenizer.embedded(), try fileTokenizer(pad: nil)] {
            XCTAssertEqual(tok.vocabularySize, 49408)
            XCTAssertEqual(tok.bosTokenId, 49406)
            XCTAssertEqual(tok.eosTokenId, 49407)
            XCTAssertEqual(tok.padTokenId, 49407)
            let ids = tok.encode("a photo of a cat")
            XCTAssertEqual(ids.count, 77)
            XCTAssertEqual(Array(ids.prefix(7)), [49406, 320, 1125, 539, 320, 2368, 49407])
            XCTAssertTrue(ids.dropFirst(7).allSatisfy { $0 == 49407 })
            XCTAssertEqual(tok.encode(""), [49406] + [Int32](repeating: 49407, count: 76))
        }
    }

    func testPadTokenFromCheckpointFolders() throws {
        let sd1 = try CLIPTokenizer.load(folder: Self.fixturePath("sd1", "tokenizer"))
        XCTAssertEqual(sd1.padTokenId, 49407)
        XCTAssertEqual(CLIPTokenizer.padToken(inTokenizerFolder: Self.fixturePath("sd1", "tokenizer")), "<|endoftext|>")
        let sd2Folder = Self.fixturePath("sd2", "tokenizer")
        if FileManager.default.fileExists(atPath: sd2Folder) {
            XCTAssertEqual(CLIPTokenizer.padToken(inTokenizerFolder: sd2Folder), "!")
            let sd2 = try CLIPTokenizer.load(folder: sd2Folder)
            XCTAssertEqual(sd2.padTokenId, 0)
            let ids = sd2.encode("a photo of a cat")
            XCTAssertEqual(Array(ids.prefix(8)), [49406, 320, 1125, 539, 320, 2368, 49407, 0])
            XCTAssertTrue(ids.dropFirst(7).allSatisfy { $0 == 0 })
        }
        let bang = try CLIPTokenizer.embedded(padToken: "!")
        XCTAssertEqual(bang.padTokenId, 0)
        // transformers registers the pad token as a special token: with pad "!", a "!" in the text is id 0
        XCTAssertEqual(Array(bang.encode("wow!").prefix(4)), [49406, 2781, 0, 49407])
        XCTAssertEqual(Array(try CLIPTokenizer.embedded().encode("wow!").prefix(4)), [49406, 2781, 256, 49407])
        bang.padTokenId = 49407
        XCTAssertEqual(bang.encode("x").last, 49407)
    }

    func testTruncationKeepsEndToken() throws {
        let tok = try CLIPTokenizer.embedded()
        let ids = tok.encode(String(repeating: "cat ", count: 200))
        XCTAssertEqual(ids.count, 77)
        XCTAssertEqual(ids.first, 49406)
        XCTAssertEqual(ids.last, 49407)
        XCTAssertEqual(ids[75], 2368)
        let short = tok.encode("a photo of a cat", maxLength: 4)
        XCTAssertEqual(short, [49406, 320, 1125, 49407])
        XCTAssertEqual(tok.encode("a photo", maxLength: 0), [49406, 49407])
    }

    func testBadInputsThrowNamingTheFile() throws {
        let missing = "/nonexistent/dir/vocab.json"
        XCTAssertThrowsError(try CLIPTokenizer(vocabPath: missing, mergesPath: Self.fixturePath("sd1", "tokenizer", "merges.txt"))) { err in
            XCTAssertTrue("\(err)".contains(missing), "\(err)")
        }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(getpid())")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let badVocab = tmp.appendingPathComponent("vocab.json").path
        try "[1, 2, 3]".write(toFile: badVocab, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer(vocabPath: badVocab, mergesPath: Self.fixturePath("sd1", "tokenizer", "merges.txt"))) { err in
            XCTAssertTrue("\(err)".contains(badVocab), "\(err)")
        }
        let badMerges = tmp.appendingPathComponent("merges.txt").path
        try "#version: 0.2\ni n\nthis line has three\n".write(toFile: badMerges, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer(vocabPath: Self.fixturePath("sd1", "tokenizer", "vocab.json"), mergesPath: badMerges)) { err in
            XCTAssertTrue("\(err)".contains(badMerges) && "\(err)".contains("line 3"), "\(err)")
        }
        XCTAssertThrowsError(try CLIPTokenizer.embedded(padToken: "<|no-such-token|>")) { err in
            XCTAssertTrue("\(err)".contains("pad token"), "\(err)")
        }
    }
}
