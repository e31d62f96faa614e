import Foundation
import XCTest
@testable import DiffEdit

/// `edit --method inpaint` (issue 18): parity with diffusers' StableDiffusionInpaintPipeline on a tiny random
/// 9-channel UNet (tools/make_inpaint_fixtures.py), both file layouts; the pixel policy; method resolution and
/// bad input; a small selection in a large image.
final class InpaintTests: XCTestCase {
    static var manifest: [String: Any] {
        let d = try! Data(contentsOf: URL(fileURLWithPath: EditTestSupport.editFixtures + "/inpaint_manifest.json"))
        return try! JSONSerialization.jsonObject(with: d) as! [String: Any]
    }
    static var folder: String { EditTestSupport.editFixtures + "/" + (manifest["model"] as! String) }
    /// The inpainting model in the original single-file layout, made here (not committed: the fixture budget):
    /// Tests/Fixtures/sd1.safetensors (real LDM names) with every UNet tensor replaced by the inpainting UNet's
    /// tensor of the same clean name (conv_in now takes 9 channels), configs in the metadata.
    static let singleFile: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("diffedit-inpaint-\(getpid()).safetensors").path
        let base = try! SafetensorsFile(path: EditTestSupport.fixtures + "/sd1.safetensors")
        let unetRefs = try! SingleFileCheckpoint.unetRefs(base)                  // clean name -> stored LDM name
        let (unet, _) = try! CheckpointLoader.componentWeights(folder + "/unet", rename: { $0 })
        var tensors: [String: Tensor] = [:]
        for n in base.names where base.dtype(of: n) == "F16" || base.dtype(of: n) == "F32" {
            tensors[n] = try! base.tensor(n, expectedShape: nil)
        }
        for (clean, ref) in unetRefs { tensors[ref.name] = try! unet.tensor(clean, expectedShape: nil) }
        func cfg(_ rel: String) -> String { try! String(contentsOfFile: folder + "/" + rel, encoding: .utf8) }
        try! SafetensorsWriter.write(tensors, dtype: "F16", metadata: [
            "diffedit.unet_config": cfg("unet/config.json"), "diffedit.vae_config": cfg("vae/config.json"),
            "diffedit.text_config": cfg("text_encoder/config.json"),
            "diffedit.scheduler_config": cfg("scheduler/scheduler_config.json")], path: path)
        return path
    }()

    func options(_ name: String) throws -> (EditOptions, RGBImage, String) {
        let m = Self.manifest
        let c = (m["cases"] as! [String: Any])[name] as! [String: Any]
        let dir = EditTestSupport.editFixtures + "/" + name
        var o = EditTestSupport.options(c, steps: m["steps"] as! Int, guidance: Float(m["guidance"] as! Double))
        o.initNoise = try NPY.readTensor(path: dir + "/noise.npy")
        o.mask = try ImageFile.readGray(path: dir + "/mask.png")
        return (o, try ImageFile.read(path: dir + "/input.png"), dir)
    }

    /// Final latents within 1e-3 of diffusers and the decoded image >= 40 dB inside the mask; outside it the
    /// output is the input's bytes.
    func parity(_ name: String, model path: String) throws {
        let (o, input, dir) = try options(name)
        let editor = ImageEditor(model: try EditTestSupport.model(path))
        let res = try editor.edit(input, options: o, progress: ProgressReporter())
        let err = EditTestSupport.relErr(res.latents!, try NPY.readTensor(path: dir + "/latents.npy"))
        XCTAssertLessThan(err, 1e-3, "\(name): final latents relative error")
        let ref = try NPY.readTensor(path: dir + "/image.npy")                        // [1, 3, H, W] in [0, 1]
        let decoded = try editor.decode(res.latents!)
        let mask = o.mask!
        var mse = 0.0, n = 0
        let hw = input.width * input.height
        for i in 0..<hw where mask.pixels[i] > 127 {
            for c in 0..<3 { let d = Double(decoded.pixels[3 * i + c]) / 255 - Double(ref.data[c * hw + i]); mse += d * d }
            n += 3
        }
        let psnr = 10 * log10(1 / max(mse / Double(n), 1e-20))
        XCTAssertGreaterThan(psnr, 40, "\(name): image PSNR inside the mask")
        var changedOutside = 0, changedInside = 0
        for i in 0..<hw {
            let diff = (0..<3).contains { res.image.pixels[3 * i + $0] != input.pixels[3 * i + $0] }
            if mask.pixels[i] == 0 { if diff { changedOutside += 1 } } else if diff { changedInside += 1 }
        }
        XCTAssertEqual(changedOutside, 0, "\(name): pixels outside the mask must be the input's bytes")
        XCTAssertGreaterThan(changedInside, 100, "\(name): the masked region was repainted")
        XCTAssertEqual(res.mask, mask, "\(name): the mask reported is the repaint region")
        print("inpaint parity \(name) (\(path.hasSuffix(".safetensors") ? "single file" : "folder")): latents rel err \(err), PSNR in mask \(psnr) dB")
    }

    func testStrength1MatchesDiffusersFolder() throws { try parity("inpaint", model: Self.folder) }
    func testStrengthBelow1MatchesDiffusersFolder() throws { try parity("inpaint_half", model: Self.folder) }
    func testSingleFileMatchesDiffusers() throws {
        try parity("inpaint", model: Self.singleFile)
        try parity("inpaint_half", model: Self.singleFile)
    }

    /// The conditioning matters: another mask moves the latents by far more than the tolerance (the fixture
    /// script records diffusers' own change, ~0.2), so an engine that ignored the extra channels would fail.
    func testMaskConditioningMovesTheResult() throws {
        let (o, input, dir) = try options("inpaint")
        var o2 = o
        var m = o.mask!
        for j in 0..<m.height { for i in 0..<(3 * m.width / 10) { m.pixels[j * m.width + i] = 0 } }
        o2.mask = m
        let editor = ImageEditor(model: try EditTestSupport.model(Self.folder))
        let a = try editor.edit(input, options: o2, progress: ProgressReporter())
        let ref = try NPY.readTensor(path: dir + "/latents.npy")
        let change = EditTestSupport.relErr(a.latents!, ref)
        let c = (Self.manifest["cases"] as! [String: Any])["inpaint"] as! [String: Any]
        XCTAssertGreaterThan(change, 0.05, "another mask must move the latents far beyond the 1e-3 tolerance")
        XCTAssertEqual(Double(change), c["other_mask_rel_change"] as! Double, accuracy: 2e-3,
                       "the change matches diffusers' own change for the same other mask")
    }

    func testAutoPicksInpaintAndNeedsAMask() throws {
        XCTAssertEqual(ResolvedEdit.resolveMethod(.auto, unetInChannels: 9, sourcePrompt: "x"), .inpaint)
        var (o, input, _) = try options("inpaint")
        o.method = .auto
        o.mask = nil
        let editor = ImageEditor(model: try EditTestSupport.model(Self.folder))
        XCTAssertThrowsError(try editor.edit(input, options: o, progress: ProgressReporter())) { e in
            XCTAssertTrue("\(e)".contains("mask: method inpaint needs a mask"), "\(e)")
        }
        for m in [EditMethod.sdedit, .p2p, .instruct] {
            var o2 = o
            o2.method = m; o2.sourcePrompt = "a red circle"; o2.mask = try options("inpaint").0.mask
            XCTAssertThrowsError(try editor.edit(input, options: o2, progress: ProgressReporter())) { e in
                guard case DiffEditError.unsupported(let msg) = e else { return XCTFail("\(m): \(e)") }
                XCTAssertTrue(msg.contains("inpaint") && msg.hasPrefix("method:"), msg)
            }
        }
        // inpaint on a text-to-image checkpoint
        var o3 = try options("inpaint").0
        o3.method = .inpaint
        XCTAssertThrowsError(try EditTestSupport.editor().edit(input, options: o3, progress: ProgressReporter())) { e in
            guard case DiffEditError.unsupported(let msg) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(msg.contains("9 input channels"), msg)
        }
        // a mask of the wrong size
        var o4 = try options("inpaint").0
        o4.mask = GrayImage(width: 8, height: 8, pixels: [UInt8](repeating: 255, count: 64))
        XCTAssertThrowsError(try editor.edit(input, options: o4, progress: ProgressReporter())) { e in
            XCTAssertTrue("\(e)".contains("mask: 8x8 does not match"), "\(e)")
        }
    }

    /// A small selection in a large image: repainted at the model's size around the selection (SelectionCrop),
    /// every pixel outside the selection the input's.
    func testSmallSelectionInALargeImageIsCroppedAndCompositedBack() throws {
        let (W, H) = (400, 300)
        var px = [UInt8](repeating: 0, count: W * H * 3)
        for j in 0..<H { for i in 0..<W { px[3 * (j * W + i)] = UInt8(i % 256); px[3 * (j * W + i) + 1] = UInt8(j % 256); px[3 * (j * W + i) + 2] = 90 } }
        let input = RGBImage(width: W, height: H, pixels: px)
        var m = GrayImage(width: W, height: H, pixels: [UInt8](repeating: 0, count: W * H))
        for j in 150..<170 { for i in 300..<330 { m.pixels[j * W + i] = 255 } }
        let crop = try XCTUnwrap(SelectionCrop(mask: m, native: 64))
        XCTAssertEqual(crop, SelectionCrop(mask: m, native: 64))
        XCTAssertTrue(crop.x <= 300 - 8 && crop.x + crop.width >= 330 + 8 && crop.y <= 150 - 8 && crop.y + crop.height >= 170 + 8, "\(crop)")
        XCTAssertLessThanOrEqual(crop.width * crop.height, W * H / 10, "\(crop)")
        var o = EditOptions()
        o.method = .inpaint; o.prompt = "a blue circle"; o.steps = 2; o.mask = m
        let editor = ImageEditor(model: try EditTestSupport.model(Self.folder))
        let res = try editor.edit(input, options: o, progress: ProgressReporter())
        var outside = 0, inside = 0
        for i in 0..<(W * H) {
            let diff = (0..<3).contains { res.image.pixels[3 * i + $0] != input.pixels[3 * i + $0] }
            if m.pixels[i] == 0 { if diff { outside += 1 } } else if diff { inside += 1 }
        }
        XCTAssertEqual(outside, 0)
        XCTAssertGreaterThan(inside, 300, "the selection (600 pixels) was repainted")
        XCTAssertEqual(res.mask, m)
        XCTAssertEqual(res.latents?.shape, [1, 4, crop.height / 8, crop.width / 8], "the crop ran at its own size (near native: padded)")
    }

    /// Video: the consistent mode takes one mask for every frame for inpaint (and only for inpaint).
    func testConsistentVideoInpaintKeepsEveryFrameOutsideTheMask() throws {
        let (o, input, _) = try options("inpaint")
        var frames: [RGBImage] = []
        for k in 0..<3 {                                                            // the scene shifting right
            var f = input
            for j in 0..<input.height { for i in 0..<input.width {
                let src = 3 * (j * input.width + max(i - 2 * k, 0))
                for c in 0..<3 { f.pixels[3 * (j * input.width + i) + c] = input.pixels[src + c] }
            } }
            frames.append(f)
        }
        var v = VideoOptions(edit: o)
        v.edit.initNoise = nil
        v.edit.steps = 3
        v.keyframeInterval = 2
        let editor = VideoEditor(model: try EditTestSupport.model(Self.folder))
        let outs = try editor.edit(frames, options: v, progress: ProgressReporter())
        XCTAssertEqual(outs.count, 3)
        let m = o.mask!
        for (k, (f, out)) in zip(frames, outs).enumerated() {
            var outside = 0, inside = 0
            for i in 0..<(f.width * f.height) {
                let diff = (0..<3).contains { out.pixels[3 * i + $0] != f.pixels[3 * i + $0] }
                if m.pixels[i] == 0 { if diff { outside += 1 } } else if diff { inside += 1 }
            }
            XCTAssertEqual(outside, 0, "frame \(k): outside the mask")
            XCTAssertGreaterThan(inside, 100, "frame \(k): repainted")
        }
        var sd = VideoOptions(edit: o)
        sd.edit.method = .sdedit
        sd.edit.initNoise = nil
        XCTAssertThrowsError(try VideoEditor(model: try EditTestSupport.sd1()).edit(frames, options: sd, progress: ProgressReporter())) { e in
            guard case DiffEditError.unsupported(let msg) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(msg.hasPrefix("mask:") && msg.contains("inpaint"), msg)
        }
    }
}
