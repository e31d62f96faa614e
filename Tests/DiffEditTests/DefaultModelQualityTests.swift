import Foundation
import XCTest
@testable import DiffEdit

/// Issue 5: the embedded default model (models/toy-instruct) really edits. Ten held-out toy-world recolour
/// edits (Tests/Fixtures/quality, written by tools/make_quality_fixtures.py with their known right answers)
/// go through the library with the default settings; at least 8 must land on the target colour and the
/// background must survive. A regression in any layer (kernels, loaders, schedulers, the instruct method,
/// the VAE) shows up here as a picture-level failure.
final class DefaultModelQualityTests: XCTestCase {
    static let fixtures = EditTestSupport.fixtures + "/quality"
    static let modelDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models/toy-instruct").path

    static let toySD = URL(fileURLWithPath: modelDir).deletingLastPathComponent().appendingPathComponent("toy-sd").path

    struct Case {
        var name: String; var instruction: String; var expected: [Float]; var source: String; var target: String
        /// The same edit phrased as a user might (tools/toyworld/phrasing.py held-out templates, never trained on).
        var heldout: String
        /// Its caption pair worded as a user might (phrasing.captions, held-out caption templates).
        var heldoutSource: String; var heldoutTarget: String
    }

    static func cases() throws -> [Case] {
        let d = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/cases.json"))
        let j = try JSONSerialization.jsonObject(with: d) as! [String: Any]
        return (j["cases"] as! [[String: Any]]).map {
            Case(name: $0["name"] as! String, instruction: $0["instruction"] as! String,
                 expected: ($0["expected_rgb"] as! [Double]).map { Float($0) },
                 source: $0["source_caption"] as! String, target: $0["target_caption"] as! String,
                 heldout: $0["heldout_instruction"] as! String,
                 heldoutSource: $0["heldout_source_caption"] as! String,
                 heldoutTarget: $0["heldout_target_caption"] as! String)
        }
    }

    /// 4-neighbour erosion (grow = false) or dilation (grow = true), as tools/quality.py does it.
    static func morph(_ m: [Bool], _ w: Int, _ h: Int, grow: Bool, times: Int) -> [Bool] {
        var m = m
        for _ in 0..<times {
            var o = m
            for y in 0..<h { for x in 0..<w {
                let nb = [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)].map { (px, py) -> Bool in
                    (px < 0 || py < 0 || px >= w || py >= h) ? false : m[py * w + px]
                }
                o[y * w + x] = grow ? (m[y * w + x] || nb.contains(true)) : (m[y * w + x] && !nb.contains(false))
            } }
            m = o
        }
        return m
    }

    /// (success, background PSNR in dB) of one output, scored like tools/quality.py.
    static func score(out: RGBImage, source: RGBImage, region: [Bool], expected: [Float]) -> (Bool, Double) {
        let (w, h) = (source.width, source.height)
        let keep = morph(region, w, h, grow: true, times: 2).map { !$0 }
        var se = 0.0, n = 0
        for i in 0..<(w * h) where keep[i] {
            for c in 0..<3 {
                let d = Double(out.pixels[i * 3 + c]) - Double(source.pixels[i * 3 + c]); se += d * d
            }
            n += 3
        }
        let psnr = n == 0 ? .nan : (se / Double(n) < 1e-10 ? 99 : 10 * log10(255 * 255 / (se / Double(n))))
        var core = morph(region, w, h, grow: false, times: 1)
        if !core.contains(true) { core = region }
        var mean = [Double](repeating: 0, count: 3), k = 0
        for i in 0..<(w * h) where core[i] {
            for c in 0..<3 { mean[c] += Double(out.pixels[i * 3 + c]) }
            k += 1
        }
        let dist = (0..<3).map { mean[$0] / Double(max(k, 1)) - Double(expected[$0]) }.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return (dist < 60, psnr)
    }

    /// Runs the ten fixture edits with `model`; returns (successes, median bg PSNR, report).
    func runCases(model dir: String, options: (Case) -> EditOptions) throws -> (Int, Double, String) {
        guard FileManager.default.fileExists(atPath: dir + "/model_index.json") else {
            throw XCTSkip("\(dir) not present")
        }
        let editor = ImageEditor(model: try EditTestSupport.model(dir))
        var ok = 0
        var psnrs: [Double] = []
        var report: [String] = []
        for c in try Self.cases() {
            let src = try ImageFile.read(path: "\(Self.fixtures)/\(c.name).png")
            let reg = try ImageFile.readGray(path: "\(Self.fixtures)/\(c.name)_region.png")
            let o = options(c)
            let out = try editor.edit(src, options: o, progress: ProgressReporter()).image
            XCTAssertEqual(out.width, src.width)
            let (good, psnr) = Self.score(out: out, source: src, region: reg.pixels.map { $0 > 127 }, expected: c.expected)
            if good { ok += 1 }
            psnrs.append(psnr)
            report.append("\(c.name) \"\(o.prompt)\": \(good ? "ok" : "MISSED") bg PSNR \(String(format: "%.1f", psnr)) dB")
        }
        let median = psnrs.sorted()[psnrs.count / 2]
        let text = report.joined(separator: "\n")
        print(text + "\nsucceeded \(ok)/\(psnrs.count), median bg PSNR \(median) dB")
        return (ok, median, text)
    }

    /// The ten edits with the default model (instruct, its default settings), the instruction from `prompt`:
    /// at least 8 must reach the target colour, with a median background PSNR of at least 25 dB.
    func checkInstructEdits(_ what: String, prompt: (Case) -> String) throws {
        let (ok, median, report) = try runCases(model: Self.modelDir) { c in
            var o = EditOptions()
            o.method = .instruct
            o.prompt = prompt(c)
            return o
        }
        XCTAssertGreaterThanOrEqual(ok, 8, "\(what) that reached the target colour:\n" + report)
        XCTAssertGreaterThanOrEqual(median, 25, "background not preserved:\n" + report)
    }

    func testTenRecolourEditsWithTheDefaultModel() throws {
        try checkInstructEdits("recolour edits") { $0.instruction }
    }

    /// Issue 23: the same ten edits phrased freely ("i would like the disk to be crimson"): synonyms, word
    /// orders and politeness from tools/toyworld/phrasing.py's held-out templates, which training never saw.
    /// The phase-4 model reached 3/10 here (30% on the 200-case held-out table); phase 6: see docs/quality.md.
    func testTenRecolourEditsPhrasedFreely() throws {
        try checkInstructEdits("freely phrased recolour edits") { $0.heldout }
    }

    /// p2p + LocalBlend with models/toy-sd at the model's settings, `captions` giving (source, target).
    func runP2PCases(captions: @escaping (Case) -> (String, String)) throws -> (Int, Double, String) {
        try runCases(model: Self.toySD) { c in
            var o = EditOptions()
            o.method = .p2p
            (o.sourcePrompt, o.prompt) = captions(c)
            return o
        }
    }

    /// The same ten edits with models/toy-sd and p2p + LocalBlend at the model's settings (captions as
    /// prompts; direct inversion, from its diffedit.json).
    func testTenRecolourEditsWithP2PAndLocalBlend() throws {
        let (ok, median, report) = try runP2PCases { ($0.source, $0.target) }
        // measured 9/10 at 30.4 dB median (2026-11-29, diffedit.json with uncond_mix 0.6, new_word_weight 2,
        // blend_next_word; 81.0% / 29.6 dB on the 200-case table): one miss of slack. The settings before
        // (2026-11-28: plain negative-prompt inversion, swapped words only) gave 7/10 at 28.9 dB, and without
        // direct inversion 7/10 at 27.9 dB: both bounds catch those.
        XCTAssertGreaterThanOrEqual(ok, 8, "recolour edits that reached the target colour:\n" + report)
        XCTAssertGreaterThanOrEqual(median, 29.8, "background not preserved:\n" + report)
    }

    /// Issue 23: the same p2p + LocalBlend edits with the captions worded as a user might ("a photo of a
    /// yellow block placed over a green background" -> "... a blue block ..."): tools/toyworld/phrasing.py's
    /// held-out caption templates and joiners, which the text encoder's caption training never saw, with
    /// colour and shape synonyms.
    func testTenRecolourEditsWithP2PCaptionsPhrasedFreely() throws {
        let (ok, median, report) = try runP2PCases { ($0.heldoutSource, $0.heldoutTarget) }
        // measured 7/10 at 33.2 dB median with toy-sd phase 3 (its text encoder trained on worded captions,
        // 2026-12-05; 72.0% on the 200-case held-out table), 1/10 at 31.5 dB with phase 2's encoder (this test
        // fails on it): one miss of slack.
        XCTAssertGreaterThanOrEqual(ok, 6, "freely worded caption edits that reached the target colour:\n" + report)
        XCTAssertGreaterThanOrEqual(median, 28, "background not preserved:\n" + report)
    }
}
