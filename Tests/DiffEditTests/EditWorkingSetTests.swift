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
                              checkWorkingSet: { w, h, items in try model.checkWorkingSet(width: w, height: h, unetItems: items, limit: limit) })
    }

    func testEditAndStreamAreRefusedAboveTheLimit() throws {
        let model = try EditTestSupport.model(EditTestSupport.fixtures + "/sd1")
        let (w, h) = (1024, 768)   // full resolution: the work size is the input's
        var o = EditOptions()
        o.prompt = "a blue circle"; o.steps = 1; o.strength = 1; o.fullResolution = true
        let need = model.estimatedWorkingSet(width: w, height: h, unetItems: 4)
        let tight = ImageEditor(parts: Self.parts(model, limit: need - 1))
        XCTAssertThrowsError(try tight.edit(RGBImage(width: w, height: h, fill: 128), options: o, progress: ProgressReporter())) { e in
            guard case .outOfMemory(let m)? = e as? DiffEditError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("\(w)x\(h)") && m.contains(String(need)), m)
        }
        // exactly enough: the edit runs
        let enough = ImageEditor(parts: Self.parts(model, limit: need))
        o.fullResolution = true
        let small = RGBImage(width: 64, height: 48, fill: 128)
        XCTAssertNoThrow(try enough.edit(small, options: o, progress: ProgressReporter()))
        // a stream: a window of keyframeInterval frames plus the anchor, 4 UNet items each
        var v = VideoOptions(edit: o)
        v.keyframeInterval = 2
        let streamNeed = model.estimatedWorkingSet(width: w, height: h, unetItems: 4 * 3)
        let video = VideoEditor(imageEditor: ImageEditor(parts: Self.parts(model, limit: streamNeed - 1)))
        XCTAssertThrowsError(try VideoStream(editor: video, options: v, width: w, height: h)) { e in
            guard case .outOfMemory? = e as? DiffEditError else { return XCTFail("\(e)") }
        }
        XCTAssertNoThrow(try VideoStream(editor: VideoEditor(imageEditor: ImageEditor(parts: Self.parts(model, limit: streamNeed))),
                                         options: v, width: w, height: h))
    }
}
