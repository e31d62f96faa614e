import Foundation
import XCTest
@testable import DiffEdit

/// ControlNet (issue 19): parity with diffusers' ControlNet pipelines on the tiny random ControlNets of
/// tools/make_controlnet_fixtures.py (Tests/Fixtures/controlnet: cn_a a diffusers folder, cn_b the original
/// control_model.* single file), the canny annotator against OpenCV, the hook on the other methods, bad input.
final class ControlNetTests: XCTestCase {
    static let dir = EditTestSupport.fixtures + "/controlnet"

    static func manifest() throws -> [String: Any] {
        let d = try Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json"))
        return try JSONSerialization.jsonObject(with: d) as! [String: Any]
    }

    nonisolated(unsafe) private static var nets: [String: ControlNetModel] = [:]
    private static let lock = NSLockLite()

    static func net(_ name: String) throws -> ControlNetModel {
        if let n = lock.withLock({ nets[name] }) { return n }
        let n = try EditTestSupport.sd1().loadControlNet(path: dir + "/" + name)
        lock.withLock { nets[name] = n }
        return n
    }

    /// The specs of a manifest case (control: a file name, or a preprocessor name).
    static func specs(_ c: [String: Any]) throws -> [ControlSpec] {
        let names = c["controlnets"] as! [String], controls = c["control"] as! [String]
        let scales = c["scales"] as! [Double], starts = c["starts"] as! [Double], ends = c["ends"] as! [Double]
        return try names.indices.map { i in
            let src: ControlSource = controls[i].hasSuffix(".png")
                ? .image(try ImageFile.read(path: dir + "/" + controls[i]))
                : try ControlSource.preprocessor(controls[i], field: "control")
            return ControlSpec(net: try net(names[i]), source: src, scale: Float(scales[i]), start: Float(starts[i]), end: Float(ends[i]))
        }
    }

    /// Runs a manifest case; returns (latents, reference, latents without ControlNet).
    func run(_ name: String, override: ((inout [ControlSpec]) throws -> Void)? = nil) throws -> (Tensor, Tensor, Tensor) {
        let m = try Self.manifest()
        let c = (m["cases"] as! [String: Any])[name] as! [String: Any]
        let steps = m["steps"] as! Int, g = Float(m["guidance"] as! Double), prompt = m["prompt"] as! String
        var specs = try Self.specs(c)
        try override?(&specs)
        let noise = try NPY.readTensor(path: Self.dir + "/\(name)/noise.npy")
        let got: Tensor
        if c["method"] as! String == "generate" {
            var o = GenerateOptions(prompt: prompt)
            o.negativePrompt = ""; o.steps = steps; o.guidance = g; o.scheduler = "ddim"; o.initNoise = noise
            o.controls = specs
            o.controlGuessMode = c["guess_mode"] as? Bool ?? false
            got = try EditTestSupport.sd1().generate(o).latents
        } else {
            var o = EditOptions()
            o.method = .sdedit; o.prompt = prompt; o.negativePrompt = ""; o.steps = steps; o.guidance = g
            o.strength = Float(c["strength"] as! Double); o.initNoise = noise
            o.controls = specs
            o.controlGuessMode = c["guess_mode"] as? Bool ?? false
            let input = try ImageFile.read(path: Self.dir + "/input.png")
            got = try EditTestSupport.editor().edit(input, options: o, progress: ProgressReporter()).latents!
        }
        return (got, try NPY.readTensor(path: Self.dir + "/\(name)/latents.npy"),
                try NPY.readTensor(path: Self.dir + "/\(name)/latents_plain.npy"))
    }

    func parity(_ name: String) throws {
        let (got, ref, plain) = try run(name)
        let err = EditTestSupport.relErr(got, ref), moved = EditTestSupport.relErr(plain, ref)
        XCTAssertLessThan(err, 1e-3, "\(name): final latents relative error")
        // the ControlNet must matter far more than the tolerance, or ignoring it would pass
        XCTAssertGreaterThan(moved, 0.1, "\(name): the ControlNet moves the reference latents by only \(moved)")
        print("controlnet parity \(name): rel err \(err); without ControlNet the latents are \(moved) away")
    }

    func testGenerateMatchesControlNetPipeline() throws { try parity("generate") }
    /// cn_b is the original single-file layout; control = the built-in canny of the input.
    func testSDEditMatchesControlNetImg2ImgPipeline() throws { try parity("img2img") }
    /// MultiControlNet: two nets with their own scales and start/end fractions.
    func testMultiControlNetWithStartEndMatches() throws { try parity("multi") }
    func testGuessModeMatches() throws { try parity("guess") }

    /// SDXL: a ControlNet made by from_unet of the SDXL fixture UNet (its add_embedding takes the pooled text +
    /// time ids, as the UNet's) = diffusers' StableDiffusionXLControlNetPipeline.
    func testSDXLGenerateMatchesControlNetPipeline() throws {
        let c = (try Self.manifest()["cases"] as! [String: Any])["xl_generate"] as! [String: Any]
        let m = try EditTestSupport.model(EditTestSupport.fixtures + "/sdxl/model")
        var o = GenerateOptions(prompt: "a blue circle on a white background")
        o.steps = c["steps"] as! Int; o.guidance = Float(c["guidance"] as! Double); o.scheduler = "euler"
        o.initNoise = try NPY.readTensor(path: Self.dir + "/xl_generate/noise.npy")
        o.controls = [ControlSpec(net: try m.loadControlNet(path: Self.dir + "/cn_xl"),
                                  source: .image(try ImageFile.read(path: Self.dir + "/control_xl.png")))]
        let got = try m.generate(o).latents
        let ref = try NPY.readTensor(path: Self.dir + "/xl_generate/latents.npy")
        let plain = try NPY.readTensor(path: Self.dir + "/xl_generate/latents_plain.npy")
        let err = EditTestSupport.relErr(got, ref), moved = EditTestSupport.relErr(plain, ref)
        XCTAssertLessThan(err, 1e-3)
        XCTAssertGreaterThan(moved, 0.1)
        print("controlnet parity xl_generate: rel err \(err); without ControlNet the latents are \(moved) away")
        // an SD 1.x ControlNet on the SDXL model: refused naming the tensor
        IOTestSupport.assertThrows("model", ["cn_a", "attn2.to_k.weight", "another base"]) {
            _ = try m.loadControlNet(path: Self.dir + "/cn_a")
        }
    }

    /// Ignoring the start/end fractions fails the multi case.
    func testStartEndFractionsMatter() throws {
        let (got, ref, _) = try run("multi") { specs in for i in specs.indices { specs[i].start = 0; specs[i].end = 1 } }
        XCTAssertGreaterThan(EditTestSupport.relErr(got, ref), 1e-2)
    }

    func testSingleFileLayoutTranslatesToTheDiffusersNames() throws {
        let (cfgB, wB) = try ControlNetCheckpoint.open(path: Self.dir + "/cn_b.safetensors", base: try EditTestSupport.sd1().unetConfig)
        let (cfgA, wA) = try ControlNetCheckpoint.open(path: Self.dir + "/cn_a", base: nil)
        XCTAssertEqual(Set(wB.names), Set(wA.names), "the single file maps onto exactly the diffusers tensor names")
        XCTAssertEqual(cfgB.conditioning_embedding_out_channels, cfgA.conditioning_embedding_out_channels)
        XCTAssertEqual(cfgB.unet.block_out_channels, cfgA.unet.block_out_channels)
        XCTAssertEqual(wB.refs["controlnet_cond_embedding.blocks.1.weight"]?.name, "control_model.input_hint_block.4.weight")
        XCTAssertEqual(wB.refs["controlnet_down_blocks.3.bias"]?.name, "control_model.zero_convs.3.0.bias")
        XCTAssertEqual(wB.refs["controlnet_mid_block.weight"]?.name, "control_model.middle_block_out.0.weight")
    }

    // MARK: canny

    /// The built-in canny against cv2.Canny(gray, 100, 200) on natural-looking images: >= 99% of pixels equal,
    /// the rest next to an edge of the reference.
    func testCannyMatchesOpenCV() throws {
        for name in ["scene", "texture", "landscape"] {
            let img = try ImageFile.read(path: Self.dir + "/canny/\(name).png")
            let ref = try ImageFile.readGray(path: Self.dir + "/canny/\(name)_canny.png")
            let got = CannyEdgeDetector.edges(img)
            let (w, h) = (img.width, img.height)
            var differ = 0, offEdge = 0, edges = 0
            for y in 0..<h { for x in 0..<w {
                let i = y * w + x
                if ref.pixels[i] > 0 { edges += 1 }
                guard got.pixels[i] != ref.pixels[i] else { continue }
                differ += 1
                var near = false
                for dy in -1...1 { for dx in -1...1 {
                    let yy = y + dy, xx = x + dx
                    if yy >= 0, yy < h, xx >= 0, xx < w, ref.pixels[yy * w + xx] > 0 { near = true }
                } }
                if !near { offEdge += 1 }
            } }
            XCTAssertGreaterThan(edges, 100, "\(name): the reference has edges")
            XCTAssertLessThanOrEqual(Double(differ), 0.01 * Double(w * h), "\(name): \(differ) pixels differ")
            XCTAssertEqual(offEdge, 0, "\(name): differences away from the reference's edges")
            print("canny \(name): \(differ) of \(w * h) pixels differ from OpenCV (\(edges) edge pixels)")
        }
    }

    // MARK: the other methods

    /// ddim: residuals go to the edited branch; scale 0 is exactly no ControlNet, scale 1 changes the edit.
    func testDDIMTakesResidualsOnTheEditedBranch() throws {
        let editor = try EditTestSupport.editor()
        let input = try ImageFile.read(path: Self.dir + "/input.png")
        var o = EditOptions()
        o.method = .ddim; o.prompt = "a blue circle on a white background"; o.sourcePrompt = "a red circle on a white background"
        o.steps = 4; o.guidance = 7.5
        let plain = try editor.edit(input, options: o, progress: ProgressReporter()).latents!
        o.controls = [ControlSpec(net: try Self.net("cn_a"), source: .canny, scale: 0)]
        let zero = try editor.edit(input, options: o, progress: ProgressReporter()).latents!
        XCTAssertLessThan(EditTestSupport.relErr(zero, plain), 1e-6)
        o.controls[0].scale = 1
        let res = try editor.edit(input, options: o, progress: ProgressReporter())
        XCTAssertGreaterThan(EditTestSupport.relErr(res.latents!, plain), 0.05)
        XCTAssertEqual(res.controlMaps.count, 1)
        XCTAssertEqual(res.controlMaps[0].width, input.width)
    }

    func testControlItems() {
        XCTAssertEqual(ControlPlan.items(layout: .cfg(7.5), guessMode: false), [0, 1])
        XCTAssertEqual(ControlPlan.items(layout: .cfg(7.5), guessMode: true), [1])
        XCTAssertEqual(ControlPlan.items(layout: .twoBranchNPI(7.5), guessMode: false), [0, 2])
        XCTAssertEqual(ControlPlan.items(layout: .twoBranchFull(7.5), guessMode: false), [1, 3])
        XCTAssertEqual(ControlPlan.items(layout: .twoBranchFull(7.5), guessMode: true), [3])
        XCTAssertEqual(ControlPlan.items(layout: .instruct(7.5, image: 1.5), guessMode: true), [0])
    }

    /// The inpaint map: masked pixels -1, the rest the input in [0, 1].
    func testInpaintAndTileMaps() throws {
        let img = RGBImage(width: 2, height: 1, pixels: [255, 0, 0, 0, 255, 0])
        let t = try ControlPreprocessor.map(.inpaint, work: img, mask: [1, 0], field: "c")
        XCTAssertEqual(Array(t.buffer), [-1, 0, -1, 1, -1, 0])
        let tile = try ControlPreprocessor.map(.tile, work: img, mask: nil, field: "c")
        XCTAssertEqual(Array(tile.buffer), [1, 0, 0, 1, 0, 0])
    }

    // MARK: bad input

    func testBadInputNamesTheFieldOrTensor() throws {
        let model = try EditTestSupport.sd1()
        IOTestSupport.assertThrows("invalidArgument", ["--control", "sobel"]) { _ = try ControlSource.preprocessor("sobel", field: "--control") }
        let net = try Self.net("cn_a")
        IOTestSupport.assertThrows("invalidArgument", ["controls[0] scale", "nan"]) {
            var o = GenerateOptions(prompt: "x")
            o.steps = 1
            o.controls = [ControlSpec(net: net, source: .image(RGBImage(width: 64, height: 64)), scale: .nan)]
            _ = try model.generate(o)
        }
        IOTestSupport.assertThrows("invalidArgument", ["controls[0]", "only a control image"]) {
            var o = GenerateOptions(prompt: "x")
            o.steps = 1
            o.controls = [ControlSpec(net: net, source: .canny)]
            _ = try model.generate(o)
        }
        let input = try ImageFile.read(path: Self.dir + "/input.png")
        IOTestSupport.assertThrows("invalidArgument", ["controls[0]", "32x32", "64x64"]) {
            var o = EditOptions()
            o.method = .sdedit; o.prompt = "x"; o.steps = 2
            o.controls = [ControlSpec(net: net, source: .image(RGBImage(width: 32, height: 32)))]
            _ = try EditTestSupport.editor().edit(input, options: o, progress: ProgressReporter())
        }
        IOTestSupport.assertThrows("invalidArgument", ["controls[0]", "mask"]) {
            var o = EditOptions()
            o.method = .sdedit; o.prompt = "x"; o.steps = 2
            o.controls = [ControlSpec(net: net, source: .inpaint)]
            _ = try EditTestSupport.editor().edit(input, options: o, progress: ProgressReporter())
        }
        IOTestSupport.assertThrows("invalidArgument", ["controls[0] start"]) {
            var o = EditOptions()
            o.method = .sdedit; o.prompt = "x"; o.steps = 2
            o.controls = [ControlSpec(net: net, source: .tile, start: 0.8, end: 0.2)]
            _ = try EditTestSupport.editor().edit(input, options: o, progress: ProgressReporter())
        }
    }

    /// A ControlNet made for another base (the sd2 fixture: another text-encoder width) is refused naming the tensor.
    func testControlNetForAnotherBaseNamesTheTensor() throws {
        let sd2 = try EditTestSupport.model(EditTestSupport.fixtures + "/sd2")
        IOTestSupport.assertThrows("model", ["cn_b.safetensors", "control_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight", "another base"]) {
            _ = try sd2.loadControlNet(path: Self.dir + "/cn_b.safetensors")
        }
        IOTestSupport.assertThrows("model", ["cn_a", "attn2.to_k.weight", "another base"]) {
            _ = try sd2.loadControlNet(path: Self.dir + "/cn_a")
        }
        IOTestSupport.assertThrows("model", ["not a ControlNet"]) {
            _ = try ControlNetCheckpoint.load(path: EditTestSupport.fixtures + "/sd1.safetensors", base: nil, backend: .cpu)
        }
    }

    // MARK: CLI

    /// The CLI's img2img case (--controlnet single file, --control canny, --control-scale, --init-noise) gives
    /// diffusers' latents; --control-out writes the canny map; bad flags are errors naming the flag.
    func testCLIMatchesTheImg2ImgReference() throws {
        let m = try Self.manifest()
        let tmp = try IOTestSupport.tempDir("cn-cli")
        let d = Self.dir, sd1 = EditTestSupport.fixtures + "/sd1"
        let r = try PipelineCLITests.run(["edit", "--model", sd1, "--input", d + "/input.png", "--method", "sdedit",
                                          "--prompt", m["prompt"] as! String, "--negative-prompt", "", "--steps", "\(m["steps"] as! Int)",
                                          "--guidance", "7.5", "--strength", "0.75", "--init-noise", d + "/img2img/noise.npy",
                                          "--controlnet", d + "/cn_b.safetensors", "--control", "canny", "--control-scale", "0.8",
                                          "--control-out", tmp + "/map.png", "--save-latents", tmp + "/lat.npy",
                                          "--output", tmp + "/out.png", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let err = EditTestSupport.relErr(try NPY.readTensor(path: tmp + "/lat.npy"), try NPY.readTensor(path: d + "/img2img/latents.npy"))
        XCTAssertLessThan(err, 1e-3)
        XCTAssertEqual(try ImageFile.read(path: tmp + "/map.png"), try ImageFile.read(path: d + "/input_canny.png"))
        let bad = try PipelineCLITests.run(["edit", "--model", sd1, "--input", d + "/input.png", "--prompt", "x",
                                            "--controlnet", d + "/cn_a", "--control", "sobel", "--output", tmp + "/o.png"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--control") && bad.stderr.contains("sobel"), bad.stderr)
        let nan = try PipelineCLITests.run(["edit", "--model", sd1, "--input", d + "/input.png", "--prompt", "x",
                                            "--controlnet", d + "/cn_a", "--control", "tile", "--control-scale", "nan",
                                            "--output", tmp + "/o.png"])
        XCTAssertEqual(nan.status, 2)
        XCTAssertTrue(nan.stderr.contains("--control-scale"), nan.stderr)
        let count = try PipelineCLITests.run(["generate", "--model", sd1, "--prompt", "x", "--controlnet", d + "/cn_a",
                                              "--output", tmp + "/g.png"])
        XCTAssertEqual(count.status, 2)
        XCTAssertTrue(count.stderr.contains("control inputs"), count.stderr)
    }
}
