import Foundation
import XCTest
@testable import DiffEdit

/// Prompt-to-Prompt token alignment against tools/p2p_reference.py (Tests/Fixtures/edit/alignment.json).
final class EditAlignmentTests: XCTestCase {
    func testAlignmentMatchesReference() throws {
        let tok = try EditTestSupport.sd1().tokenizer
        let d = try Data(contentsOf: URL(fileURLWithPath: EditTestSupport.editFixtures + "/alignment.json"))
        let cases = try JSONSerialization.jsonObject(with: d) as! [[String: Any]]
        XCTAssertGreaterThanOrEqual(cases.count, 5)
        for c in cases {
            let src = c["source"] as! String, tgt = c["target"] as! String
            let rw = (c["reweight"] as! [String: Double]).mapValues { Float($0) }
            let a = try PromptAlignment(source: src, target: tgt, reweight: rw, tokenize: { tok.tokenize($0).flatMap { $0 } })
            let tag = "\(src) -> \(tgt)"
            XCTAssertEqual(a.isReplace, c["is_replace"] as! Bool, tag)
            if a.isReplace {
                var ref = [Float](repeating: 0, count: 77 * 77)
                for e in c["replace_nonzero"] as! [[Double]] { ref[Int(e[0]) * 77 + Int(e[1])] = Float(e[2]) }
                XCTAssertEqual(a.replaceMapper, ref, tag)
            } else {
                XCTAssertEqual(a.refineMapper, c["refine_mapper"] as! [Int], tag)
                XCTAssertEqual(a.refineAlphas, (c["refine_alphas"] as! [Double]).map { Float($0) }, tag)
            }
            let bs = (0..<77).filter { a.blendSource[$0] != 0 }, bt = (0..<77).filter { a.blendTarget[$0] != 0 }
            XCTAssertEqual(bs, c["blend_source"] as! [Int], tag)
            XCTAssertEqual(bt, c["blend_target"] as! [Int], tag)
            if let eq = c["equalizer"] as? [Double] {
                XCTAssertEqual(a.equalizer, eq.map { Float($0) }, tag)
            } else {
                XCTAssertNil(a.equalizer, tag)
            }
        }
    }

    /// blendNextWord adds the word after each swapped word, by position, in both prompts; never for a
    /// refinement; off, the blend words are the swapped words only.
    func testBlendNextWordTakesTheFollowingWordByPosition() throws {
        let tok = try EditTestSupport.sd1().tokenizer
        let tz: (String) -> [Int32] = { tok.tokenize($0).flatMap { $0 } }
        let s = "a red circle and a green circle on a white background"
        let t = "a red circle and a blue circle on a white background"
        let ws = PromptAlignment.words(s)
        func tokens(_ words: [String], _ i: [Int]) -> [Int] { i.flatMap { PromptAlignment.wordIndices(words, $0, tokenize: tz) }.sorted() }
        let plain = try PromptAlignment(source: s, target: t, tokenize: tz)
        XCTAssertEqual((0..<77).filter { plain.blendSource[$0] != 0 }, tokens(ws, [5]))   // green
        XCTAssertEqual((0..<77).filter { plain.blendTarget[$0] != 0 }, tokens(ws, [5]))   // blue (same length)
        let next = try PromptAlignment(source: s, target: t, blendNextWord: true, tokenize: tz)
        XCTAssertEqual((0..<77).filter { next.blendSource[$0] != 0 }, tokens(ws, [5, 6]))  // green, the 2nd circle
        XCTAssertEqual((0..<77).filter { next.blendTarget[$0] != 0 }, tokens(ws, [5, 6]))  // not the 1st circle
        // the swapped word is last, or the next word differs too: nothing added
        let last = try PromptAlignment(source: "a red circle", target: "a red square", blendNextWord: true, tokenize: tz)
        XCTAssertEqual((0..<77).filter { last.blendTarget[$0] != 0 }, tokens(["a", "red", "square"], [2]))
        let both = try PromptAlignment(source: "a red circle", target: "a blue square", blendNextWord: true, tokenize: tz)
        XCTAssertEqual((0..<77).filter { both.blendTarget[$0] != 0 }, tokens(["a", "blue", "square"], [1, 2]))
        // refinement (different word counts): unchanged
        let r0 = try PromptAlignment(source: "a red circle", target: "a big red circle", tokenize: tz)
        let r1 = try PromptAlignment(source: "a red circle", target: "a big red circle", blendNextWord: true, tokenize: tz)
        XCTAssertEqual(r0.blendTarget, r1.blendTarget); XCTAssertEqual(r0.blendSource, r1.blendSource)
    }

    func testWordSwapMapperIsIdentityForEqualPrompts() throws {
        let tok = try EditTestSupport.sd1().tokenizer
        let a = try PromptAlignment(source: "a red circle", target: "a red circle", tokenize: { tok.tokenize($0).flatMap { $0 } })
        for i in 0..<77 { for j in 0..<77 { XCTAssertEqual(a.replaceMapper[i * 77 + j], i == j ? 1 : 0) } }
        XCTAssertFalse(a.hasBlendWords)
    }

    func testOverlongAndOddPromptsStayInRange() throws {
        let tok = try EditTestSupport.sd1().tokenizer
        let long = Array(repeating: "a very red circle,", count: 40).joined(separator: " ")
        let pairs = [(long, long.replacingOccurrences(of: "red", with: "blue")),
                     (long, long + " with extra words"),
                     ("  a\tcat \n", "a 🐱 cat!!"),
                     ("", "a cat"),
                     ("a cat", "")]
        for (s, t) in pairs {
            let a = try PromptAlignment(source: s, target: t, tokenize: { tok.tokenize($0).flatMap { $0 } })
            XCTAssertTrue(a.refineMapper.allSatisfy { $0 >= 0 && $0 < 77 })
            XCTAssertEqual(a.refineAlphas.count, 77)
            if a.isReplace { XCTAssertEqual(a.replaceMapper.count, 77 * 77) }
            XCTAssertEqual(a.blendSource.count, 77)
        }
    }

    func testLocalBlendHeightIsTheQuarterResolution() {
        var c = UNetConfig()   // SD 1.5: cross-attention at 64, 32, 16 for 64x64 latents
        XCTAssertEqual(P2PController.blendHeight(unet: c, latentHeight: 64), 16)
        c.down_block_types = ["CrossAttnDownBlock2D", "DownBlock2D"]
        XCTAssertEqual(P2PController.blendHeight(unet: c, latentHeight: 8), 8)
        // a small latent (the toy model's 16x16, cross-attention at 16, 8, 4) keeps 16x16 maps, not 4x4
        c.down_block_types = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
        XCTAssertEqual(P2PController.blendHeight(unet: c, latentHeight: 16), 16)
        XCTAssertEqual(P2PController.blendHeight(unet: c, latentHeight: 96), 24)
    }
}
