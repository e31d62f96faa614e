import Foundation
import XCTest
@testable import DiffEdit

/// p2p's unconditional mix (EditOptions.uncondMix) and new-word re-weighting (EditOptions.newWordWeight).
final class P2PGuidanceTests: XCTestCase {
    static let toySD = DirectInversionTests.toySD

    /// toy-sd's editor, examples/images/red_circle.png (64x64: the native size) and p2p options for
    /// "a red circle ..." -> "a blue circle ..."; skips when models/toy-sd is absent.
    static func redToBlue() throws -> (ImageEditor, RGBImage, EditOptions) {
        guard FileManager.default.fileExists(atPath: toySD + "/model_index.json") else {
            throw XCTSkip("models/toy-sd not present")
        }
        let editor = ImageEditor(model: try EditTestSupport.model(toySD))
        let root = URL(fileURLWithPath: toySD).deletingLastPathComponent().deletingLastPathComponent().path
        let img = try ImageFile.read(path: root + "/examples/images/red_circle.png")
        var o = EditOptions()
        o.method = .p2p
        o.sourcePrompt = "a red circle on a white background"
        o.prompt = "a blue circle on a white background"
        return (editor, img, o)
    }

    func testOptionsResolveFromTheModelAndValidate() throws {
        var o = EditOptions()
        o.method = .p2p; o.prompt = "a blue circle"; o.sourcePrompt = "a red circle"
        var r = try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8)
        XCTAssertEqual(r.uncondMix, 0); XCTAssertEqual(r.newWordWeight, 1)
        let md = EditDefaults(uncond_mix: 0.6, new_word_weight: 2)
        r = try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8, defaults: md)
        XCTAssertEqual(r.uncondMix, 0.6); XCTAssertEqual(r.newWordWeight, 2)
        o.uncondMix = 0; o.newWordWeight = 1
        r = try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8, defaults: md)
        XCTAssertEqual(r.uncondMix, 0); XCTAssertEqual(r.newWordWeight, 1)
        for (mix, w, field) in [(Float(1.5), Float(1), "uncondMix"), (-0.1, 1, "uncondMix"), (.nan, 1, "uncondMix"),
                                (0, -1, "newWordWeight"), (0, .infinity, "newWordWeight"), (0, 101, "newWordWeight")] {
            o.uncondMix = mix; o.newWordWeight = w
            XCTAssertThrowsError(try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8)) {
                XCTAssertTrue("\($0)".contains(field), "\($0)")
            }
        }
        for (bad, field) in [(#"{"uncond_mix": 1.5}"#, "uncond_mix"), (#"{"uncond_mix": -1}"#, "uncond_mix"),
                             (#"{"new_word_weight": -2}"#, "new_word_weight"), (#"{"new_word_weight": 1000}"#, "new_word_weight"),
                             (#"{"uncond_mix": "half"}"#, "uncond_mix")] {
            XCTAssertThrowsError(try EditDefaults.decode(Data(bad.utf8), origin: "m/diffedit.json"), bad) {
                XCTAssertTrue("\($0)".contains("m/diffedit.json") && "\($0)".contains(field), "\($0)")
            }
        }
        XCTAssertEqual(try EditDefaults.decode(Data(#"{"uncond_mix": 0.6, "new_word_weight": 2}"#.utf8), origin: "x"), md)
        // blend_next_word: off unless the model or the caller turns it on
        o.uncondMix = nil; o.newWordWeight = nil
        XCTAssertFalse(try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8).blendNextWord)
        let mdn = try EditDefaults.decode(Data(#"{"blend_next_word": true}"#.utf8), origin: "x")
        XCTAssertEqual(mdn, EditDefaults(blend_next_word: true))
        XCTAssertTrue(try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8, defaults: mdn).blendNextWord)
        o.blendNextWord = false
        XCTAssertFalse(try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8, defaults: mdn).blendNextWord)
        XCTAssertThrowsError(try EditDefaults.decode(Data(#"{"blend_next_word": 1}"#.utf8), origin: "m/diffedit.json")) {
            XCTAssertTrue("\($0)".contains("m/diffedit.json") && "\($0)".contains("blend_next_word"), "\($0)")
        }
    }

    /// newWordWeight re-weights exactly the edited words; the user's own factors win.
    func testNewWordWeightPicksTheEditedWords() throws {
        var o = EditOptions()
        o.method = .p2p
        o.sourcePrompt = "a red circle and a green square on a white background"
        o.prompt = "a red circle and a blue square on a white background"
        o.newWordWeight = 2
        let r = try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8)
        XCTAssertEqual(r.reweight(user: [:]), ["blue": 2])
        XCTAssertEqual(r.reweight(user: ["blue": 3]), ["blue": 3])
        XCTAssertEqual(r.reweight(user: ["circle": 0.5]), ["circle": 0.5, "blue": 2])
        var refine = o
        refine.prompt = "a red circle and a big blue square on a white background"
        XCTAssertEqual(try ResolvedEdit(options: refine, unetInChannels: 4, imageWidth: 8, imageHeight: 8).reweight(user: [:]),
                       ["big": 2, "blue": 2])
        var swap = o
        swap.prompt = "a blue circle and a green square on a white background"   // blue is not new, but edited
        XCTAssertEqual(try ResolvedEdit(options: swap, unetInChannels: 4, imageWidth: 8, imageHeight: 8).reweight(user: [:]),
                       ["blue": 2])
        swap.sourcePrompt = "a red circle and a blue square on a white background"
        XCTAssertEqual(try ResolvedEdit(options: swap, unetInChannels: 4, imageWidth: 8, imageHeight: 8).reweight(user: [:]),
                       ["blue": 2, "green": 2])
        swap.sourcePrompt = "an orange circle and a green square on a white background"   // articles never
        XCTAssertEqual(try ResolvedEdit(options: swap, unetInChannels: 4, imageWidth: 8, imageHeight: 8).reweight(user: [:]),
                       ["blue": 2])
        o.newWordWeight = nil
        XCTAssertEqual(try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8).reweight(user: ["a": 2]),
                       ["a": 2])
    }

    func testTargetUncondMixesTheEmbeddings() throws {
        var o = EditOptions()
        o.method = .p2p; o.prompt = "b"; o.sourcePrompt = "a"
        let src = Tensor(shape: [1, 2, 2], values: [1, 2, 3, 4])
        let empty = Tensor(shape: [1, 2, 2], values: [5, 6, 7, 8])
        var r = try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8)
        XCTAssertTrue(r.targetUncond(source: src, empty: { XCTFail("mix 0 needs no empty prompt"); return empty }) === src)
        r.uncondMix = 0.25
        XCTAssertEqual(r.targetUncond(source: src, empty: { empty }).toArray(), [2, 3, 4, 5])
        r.uncondMix = 1
        XCTAssertEqual(r.targetUncond(source: src, empty: { empty }).toArray(), [5, 6, 7, 8])
    }

    /// The mix enters one place only, the target branch's unconditional item, with weight (1 - g) in the
    /// guided noise: with one step and no LocalBlend, final latents(mix) - latents(0) must be the DDIM
    /// step of (1 - g) * (UNet(x_T, mixed embedding) - UNet(x_T, source embedding)) from zero.
    func testUncondMixIsTheTargetsUnconditionalBranch() throws {
        let (editor, img, base) = try Self.redToBlue()
        var o = base
        let parts = editor.parts
        o.steps = 1
        o.guidance = 3
        o.localBlend = false
        o.directInversion = true
        o.uncondMix = 0
        let lat0 = try XCTUnwrap(try editor.edit(img, options: o, progress: ProgressReporter()).latents)
        o.uncondMix = 0.6
        let latM = try XCTUnwrap(try editor.edit(img, options: o, progress: ProgressReporter()).latents)

        let r = try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 64, imageHeight: 64)
        let z0 = try editor.encode(img)
        let src = try parts.encodePrompt(o.sourcePrompt!)
        let traj = try editor.invert(img, z0: z0, sourcePrompt: o.sourcePrompt!, cond: src, steps: 1,
                                     progress: ProgressReporter(), total: 2)
        let sched = try DDIMScheduler(config: parts.schedulerConfig)
        try sched.setTimesteps(1)
        let t = sched.timesteps[0]
        let xT = traj[traj.count - 1]
        let uMix = try parts.unet.forward(xT, timesteps: [t], encoderHiddenStates:
                                            r.targetUncond(source: src, empty: { try parts.encodePrompt("") }))
        let uSrc = try parts.unet.forward(xT, timesteps: [t], encoderHiddenStates: src)
        let d = Tensor(shape: uMix.shape, zeroed: false)
        for k in 0..<d.count { d.data[k] = (1 - 3) * (uMix.data[k] - uSrc.data[k]) }
        let expected = try sched.step(modelOutput: d, timestep: t, sample: Tensor(shape: d.shape))
        var maxErr: Float = 0, maxDiff: Float = 0
        for k in 0..<d.count {
            let got = latM.data[k] - lat0.data[k]
            maxErr = max(maxErr, abs(got - expected.data[k]))
            maxDiff = max(maxDiff, abs(expected.data[k]))
        }
        print("uncond mix 0.6: max |latent change| \(maxDiff), max error against the one-step prediction \(maxErr)")
        XCTAssertGreaterThan(maxDiff, 1e-2, "the mix changed nothing")
        XCTAssertLessThan(maxErr, 1e-3 * max(1, maxDiff))
    }

    /// newWordWeight is the same edit as naming the new word in `reweight`, and it changes the edit.
    func testNewWordWeightEqualsReweightingTheNewWord() throws {
        let (editor, img, base) = try Self.redToBlue()
        var o = base
        o.steps = 4
        o.newWordWeight = 1
        func latents(_ o: EditOptions) throws -> [Float] {
            try XCTUnwrap(try editor.edit(img, options: o, progress: ProgressReporter()).latents).toArray()
        }
        let plain = try latents(o)
        var a = o; a.newWordWeight = 2
        var b = o; b.reweight = ["blue": 2]
        let la = try latents(a), lb = try latents(b)
        XCTAssertEqual(la, lb)
        XCTAssertGreaterThan(zip(la, plain).map { abs($0 - $1) }.max() ?? 0, 1e-3, "re-weighting changed nothing")
    }
}
