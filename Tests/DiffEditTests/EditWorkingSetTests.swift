import XCTest
@testable import DiffEdit

/// An edit or a video stream whose working set is above the limit is refused with `.outOfMemory` before the
/// engine allocates anything (issue 21; generate has its own test in HardeningConfigTests). The limit is the
/// machine's memory in the library (`StableDiffusionModel.editParts`); here it is set just below the estimate of
/// the request, so the test holds on any machine and shows the engine asks with the work size it will use.
final class EditWorkingSetTests: XCTestCase {
    static func parts(_ model: StableDiffusionModel, limit: Int) -> EditModelParts {
        let p = model.editParts
        return EditModelParts(unet: p.unet, vae: p.vae, schedulerConfig: p.schedulerConfig, tokenizer: p.tokenizer,
                              encodePrompt: p.encodePrompt, randomNormal: p.randomNormal, backend: p.backend,
                              editDefaults: p.editDefaults,
                              checkWorkingSet: { w, h, items, planes, advice in
                                  try model.checkWorkingSet(width: w, height: h, unetItems: items, limit: limit, sizeAdvice: advice,
                                                            inputPlanes: planes)
                              })
    }

    func testEditAndStreamAreRefusedAboveTheLimit() throws {
        let model = try EditTestSupport.model(EditTestSupport.fixtures + "/sd1")
        let (w, h) = (1024, 768)   // full resolution: the work size is the input's
        var o = EditOptions()
        o.prompt = "a blue circle"; o.steps = 1; o.strength = 1; o.fullResolution = true
        let need = model.estimatedWorkingSet(width: w, height: h, unetItems: 4)
        let planes = PixelPolicy.inputPlaneBytes(width: w, height: h, masked: false, alpha: false)
        XCTAssertEqual(planes, w * h * 6, "the input as RGB and the output image")
        let tight = ImageEditor(parts: Self.parts(model, limit: need - 1))
        XCTAssertThrowsError(try tight.edit(RGBImage(width: w, height: h, fill: 128), options: o, progress: ProgressReporter())) { e in
            guard case .outOfMemory(let m)? = e as? DiffEditError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("\(w)x\(h)") && m.contains(String(need)), m)
        }
        // the pictures at the input's size count: one byte short of both is refused, both fit
        XCTAssertThrowsError(try ImageEditor(parts: Self.parts(model, limit: need + planes - 1))
            .checkRequest(width: w, height: h, options: o, masked: false, alpha: false))
        XCTAssertNoThrow(try ImageEditor(parts: Self.parts(model, limit: need + planes))
            .checkRequest(width: w, height: h, options: o, masked: false, alpha: false))
        // exactly enough: the edit runs
        let enough = ImageEditor(parts: Self.parts(model, limit: need + planes))
        o.fullResolution = true
        let small = RGBImage(width: 64, height: 48, fill: 128)
        XCTAssertNoThrow(try enough.edit(small, options: o, progress: ProgressReporter()))
        // a stream: a window of keyframeInterval frames plus the anchor, 4 UNet items each
        var v = VideoOptions(edit: o)
        v.keyframeInterval = 2
        let streamNeed = model.estimatedWorkingSet(width: w, height: h, unetItems: 4 * 3) + 3 * planes
        let video = VideoEditor(imageEditor: ImageEditor(parts: Self.parts(model, limit: streamNeed - 1)))
        XCTAssertThrowsError(try VideoStream(editor: video, options: v, width: w, height: h)) { e in
            guard case .outOfMemory? = e as? DiffEditError else { return XCTFail("\(e)") }
        }
        XCTAssertNoThrow(try VideoStream(editor: VideoEditor(imageEditor: ImageEditor(parts: Self.parts(model, limit: streamNeed))),
                                         options: v, width: w, height: h))
    }

    /// The refusal says what the caller can change (issue 21). An edit at the model's size (all the C ABI does) has
    /// no size to change: the message gives the max_memory that would fit and no width/height; at full resolution
    /// (the input's size) it says so; generate keeps its width/height advice.
    func testRefusalAdviceFitsWhatTheCallerCanChange() throws {
        let weights = try EditTestSupport.sd1().estimatedWeightBytes
        let m = try StableDiffusionModel.load(path: EditTestSupport.fixtures + "/sd1", backend: .cpu, maxMemory: weights + 1024)
        var o = EditOptions()
        o.prompt = "a blue circle"; o.steps = 1
        let need = m.estimatedWorkingSet(width: 64, height: 64, unetItems: 4)
        let total = weights + need + PixelPolicy.inputPlaneBytes(width: 64, height: 64, masked: false, alpha: false)
        func message(_ body: () throws -> Void) -> String {
            do { try body() } catch DiffEditError.outOfMemory(let msg) { return msg } catch { XCTFail("\(error)") }
            XCTFail("not refused")
            return ""
        }
        let atModelSize = message { _ = try ImageEditor(model: m).edit(RGBImage(width: 64, height: 64, fill: 9), options: o, progress: ProgressReporter()) }
        XCTAssertTrue(atModelSize.contains("64x64: this request needs about \(need) bytes"), atModelSize)
        XCTAssertTrue(atModelSize.hasSuffix("; raise max_memory to at least \(total) bytes (\(StableDiffusionModel.gib(total)))"), atModelSize)
        XCTAssertFalse(atModelSize.contains("width/height"), atModelSize)
        o.fullResolution = true
        let full = message { _ = try ImageEditor(model: m).edit(RGBImage(width: 256, height: 128, fill: 9), options: o, progress: ProgressReporter()) }
        XCTAssertTrue(full.contains("256x128") && full.contains("edit without full resolution (--full-resolution) or use a smaller input or raise max_memory to at least"), full)
        var g = GenerateOptions(prompt: "a cat")
        g.width = 64; g.height = 64; g.steps = 1
        let gen = message { _ = try m.generate(g) }
        XCTAssertTrue(gen.contains("use a smaller width/height or raise max_memory to at least"), gen)
    }

    /// A huge input under a small max_memory is refused from its size alone (issue 21): the pictures an edit holds at
    /// the input's size (PixelPolicy.inputPlaneBytes) count, not only the diffusion at the model's size, and the
    /// check comes before anything is converted (the C ABI asks ImageEditor.checkRequest before reading the
    /// caller's buffer). Measured before this: a 16384x16384 GRAY8 edit under max_memory 30 MB ran, 2.06 GB peak.
    func testHugeInputIsRefusedFromItsSizeUnderMaxMemory() throws {
        let weights = try EditTestSupport.sd1().estimatedWeightBytes
        var o = EditOptions()
        o.prompt = "a blue circle"; o.steps = 1
        let sd1 = try EditTestSupport.sd1()
        let plan = NativeResolutionPlan(width: 1024, height: 1024, native: sd1.editParts.nativeSize,
                                        multiple: sd1.editParts.sizeMultiple, fullResolution: false)   // square: any size's plan
        let work = sd1.estimatedWorkingSet(width: plan.workWidth, height: plan.workHeight, unetItems: 4)
        // room for the weights, the diffusion at the model's size and a 1024x1024 picture, not for 16384x16384
        let m = try StableDiffusionModel.load(path: EditTestSupport.fixtures + "/sd1", backend: .cpu,
                                              maxMemory: weights + work + (16 << 20))
        let editor = ImageEditor(model: m)
        XCTAssertNoThrow(try editor.checkRequest(width: 1024, height: 1024, options: o, masked: false, alpha: false))
        let planes = PixelPolicy.inputPlaneBytes(width: 16384, height: 16384, masked: true, alpha: true)
        XCTAssertEqual(planes, 16384 * 16384 * 12)
        XCTAssertThrowsError(try editor.checkRequest(width: 16384, height: 16384, options: o, masked: true, alpha: true)) { e in
            guard case .outOfMemory(let msg)? = e as? DiffEditError else { return XCTFail("\(e)") }
            XCTAssertTrue(msg.contains("plus \(planes) bytes"), msg)
            XCTAssertTrue(msg.contains("use a smaller input or raise max_memory to at least"), msg)
        }
        // the same through edit, on a picture that exists: 2048x2048 needs 24 MB more than the limit leaves
        XCTAssertThrowsError(try editor.edit(RGBImage(width: 2048, height: 2048, fill: 7), options: o, progress: ProgressReporter())) { e in
            guard case .outOfMemory? = e as? DiffEditError else { return XCTFail("\(e)") }
        }
        // the model and a fitting request still work
        XCTAssertNoThrow(try editor.edit(RGBImage(width: 64, height: 64, fill: 7), options: o, progress: ProgressReporter()))
    }
}
