import Foundation
import XCTest
@testable import DiffEdit

/// p2p's direct inversion (EditOptions.directInversion): the source branch is pinned to the inverted
/// trajectory, so LocalBlend hands back the input's own latents outside its mask.
final class DirectInversionTests: XCTestCase {
    static let toySD = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models/toy-sd").path

    func testPinSourceSetsTheSourceAndShiftsTheTarget() {
        let lat = Tensor(shape: [2, 1, 1, 3], values: [1, 2, 3, 10, 20, 30])
        let ref = Tensor(shape: [1, 1, 1, 3], values: [1.5, 2, 2])
        ImageEditor.pinSource(lat, to: ref)
        XCTAssertEqual(Array(lat.buffer), [1.5, 2, 2, 10.5, 20, 29])
        ImageEditor.pinSource(lat, to: Tensor(shape: [1, 1, 1, 3], values: [0, 0, 0]))
        XCTAssertEqual(Array(lat.buffer), [0, 0, 0, 9, 18, 27])
    }

    /// Outside LocalBlend's mask the edit's final latents are the input's own latents with direct inversion
    /// (the source branch ends exactly at them); without it, the DDIM reconstruction error shows.
    func testLatentsOutsideTheBlendMaskAreTheInputs() throws {
        guard FileManager.default.fileExists(atPath: Self.toySD + "/model_index.json") else {
            throw XCTSkip("models/toy-sd not present")
        }
        let editor = ImageEditor(model: try EditTestSupport.model(Self.toySD))
        let root = URL(fileURLWithPath: Self.toySD).deletingLastPathComponent().deletingLastPathComponent().path
        let src = try ImageFile.read(path: root + "/examples/images/red_circle.png")   // 64x64: the native size
        let z0 = try editor.encode(src)                                                  // [1, C, h, w]
        var o = EditOptions()
        o.method = .p2p
        o.prompt = "a blue circle on a white background"
        o.sourcePrompt = "a red circle on a white background"
        o.steps = 20

        /// (max |latents - z0| outside the mask, inside it, latent pixels outside)
        func run(_ direct: Bool) throws -> (Float, Float, Int) {
            var e = o
            e.directInversion = direct
            let res = try editor.edit(src, options: e, progress: ProgressReporter())
            let lat = try XCTUnwrap(res.latents)
            let mask = try XCTUnwrap(res.mask)
            let (c, h, w) = (lat.shape[1], lat.shape[2], lat.shape[3])
            XCTAssertEqual(lat.shape, z0.shape)
            let f = mask.width / w
            var outside: Float = 0, inside: Float = 0, n = 0
            for y in 0..<h { for x in 0..<w {
                let inMask = mask.pixels[(y * f) * mask.width + x * f] > 127
                if !inMask { n += 1 }
                for ch in 0..<c {
                    let i = (ch * h + y) * w + x
                    let d = abs(lat.data[i] - z0.data[i])
                    if inMask { inside = max(inside, d) } else { outside = max(outside, d) }
                }
            } }
            return (outside, inside, n)
        }
        let (outDI, inDI, n) = try run(true)
        let (outPlain, _, _) = try run(false)
        print("max |latents - input latents| outside the blend mask (\(n) latent px): direct \(outDI), plain \(outPlain); inside (direct) \(inDI)")
        XCTAssertGreaterThan(n, 64, "the blend mask covers nearly everything")
        XCTAssertLessThan(outDI, 1e-4, "direct inversion should return the input's own latents outside the mask")
        XCTAssertGreaterThan(outPlain, 1e-2, "plain p2p's source branch drifts from the input (DDIM reconstruction error)")
        XCTAssertGreaterThan(inDI, 0.1, "the edit changed nothing inside the mask")
    }

    func testOptionsResolveFromTheModelAndValidate() throws {
        var o = EditOptions()
        o.method = .p2p; o.prompt = "b"; o.sourcePrompt = "a"
        let md = EditDefaults(blend_dilation: 0, direct_inversion: true, cross_replace_steps: 1, self_replace_steps: 0.8)
        var r = try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8, defaults: md)
        XCTAssertEqual(r.blendDilation, 0); XCTAssertTrue(r.directInversion)
        XCTAssertEqual(r.crossReplace, 1); XCTAssertEqual(r.selfReplace, 0.8)
        r = try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8)
        XCTAssertEqual(r.blendDilation, 1); XCTAssertFalse(r.directInversion)
        XCTAssertEqual(r.crossReplace, ResolvedEdit.defaultCrossReplace)
        o.directInversion = false; o.blendDilation = 2
        r = try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8, defaults: md)
        XCTAssertFalse(r.directInversion); XCTAssertEqual(r.blendDilation, 2)
        o.blendDilation = -1
        XCTAssertThrowsError(try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8)) {
            XCTAssertTrue("\($0)".contains("blendDilation"), "\($0)")
        }
        for bad in [#"{"blend_dilation": 9}"#, #"{"cross_replace_steps": 1.5}"#, #"{"self_replace_steps": -0.1}"#,
                    #"{"direct_inversion": "yes"}"#] {
            XCTAssertThrowsError(try EditDefaults.decode(Data(bad.utf8), origin: "m/diffedit.json"), bad) {
                XCTAssertTrue("\($0)".contains("m/diffedit.json"), "\($0)")
            }
        }
        XCTAssertEqual(try EditDefaults.decode(Data(#"{"blend_dilation": 0, "direct_inversion": true}"#.utf8), origin: "x"),
                       EditDefaults(blend_dilation: 0, direct_inversion: true))
    }

    /// LocalBlend's dilation: 0 keeps the thresholded map, 1 grows it by one map pixel (3x3 pool).
    func testBlendDilationGrowsTheMask() throws {
        func mask(_ d: Int) throws -> [Float] {
            // one site, 1 head, 4x4 map, 2 tokens; token 1 attends strongly at map pixel (1, 1) only
            let lb = LocalBlend(alphaSource: [0, 1], alphaTarget: [0, 1], height: 4, steps: 10, threshold: 0.5, dilation: d)
            var p = [Float](repeating: 0, count: 2 * 16 * 2)
            for item in 0..<2 { for q in 0..<16 { p[(item * 16 + q) * 2 + 1] = q == 5 ? 1 : 0.1 } }
            try lb.accumulate(site: AttentionSite(name: "down.0.cross", isCross: true, place: "down", heads: 1, height: 4, width: 4),
                              probs: Tensor(shape: [2, 1, 16, 2], values: p), first: 0, backend: .cpu)
            let t = try lb.mask(latentHeight: 4, latentWidth: 4)!
            return withExtendedLifetime(t) { (0..<t.count).map { t.data[$0] } }
        }
        XCTAssertEqual(try mask(0).reduce(0, +), 1)
        XCTAssertEqual(try mask(1).reduce(0, +), 9)
    }
}
