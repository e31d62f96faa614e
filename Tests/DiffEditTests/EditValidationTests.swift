import XCTest
@testable import DiffEdit

/// Bad edit requests give errors that name the field at fault (no model run needed for most).
final class EditValidationTests: XCTestCase {
    func expect(_ field: String, inChannels: Int = 4, w: Int = 64, h: Int = 64, _ change: (inout EditOptions) -> Void,
                file: StaticString = #filePath, line: UInt = #line) {
        var o = EditOptions()
        o.prompt = "a blue circle"
        change(&o)
        do {
            _ = try ResolvedEdit(options: o, unetInChannels: inChannels, imageWidth: w, imageHeight: h)
            XCTFail("expected an error naming \(field)", file: file, line: line)
        } catch let e as DiffEditError {
            XCTAssertTrue(e.message.hasPrefix(field), "message \"\(e.message)\" should name \(field)", file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    func testMethodResolution() {
        XCTAssertEqual(ResolvedEdit.resolveMethod(.auto, unetInChannels: 8, sourcePrompt: "x"), .instruct)
        XCTAssertEqual(ResolvedEdit.resolveMethod(.auto, unetInChannels: 4, sourcePrompt: "a cat"), .p2p)
        XCTAssertEqual(ResolvedEdit.resolveMethod(.auto, unetInChannels: 4, sourcePrompt: nil), .sdedit)
        XCTAssertEqual(ResolvedEdit.resolveMethod(.auto, unetInChannels: 4, sourcePrompt: "  "), .sdedit)
        XCTAssertEqual(ResolvedEdit.resolveMethod(.ddim, unetInChannels: 4, sourcePrompt: nil), .ddim)
    }

    func testBadRequestsNameTheField() {
        expect("mask") { $0.mask = GrayImage(width: 32, height: 64, pixels: [UInt8](repeating: 0, count: 32 * 64)) }
        expect("prompt", inChannels: 8) { $0.method = .instruct; $0.prompt = "  " }
        expect("sourcePrompt") { $0.method = .p2p }
        expect("sourcePrompt") { $0.method = .ddim; $0.sourcePrompt = "" }
        expect("strength") { $0.strength = 0 }
        expect("strength") { $0.strength = 1.5 }
        expect("strength") { $0.strength = .nan }
        expect("blendThreshold") { $0.blendThreshold = 1 }
        expect("blendThreshold") { $0.blendThreshold = -0.1 }
        expect("method", inChannels: 4) { $0.method = .instruct }
        expect("method", inChannels: 8) { $0.method = .sdedit }
        expect("method", inChannels: 8) { $0.method = .p2p; $0.sourcePrompt = "a cat" }
        expect("method", inChannels: 9) { $0.method = .sdedit }
        expect("steps") { $0.steps = 0 }
        expect("steps") { $0.steps = 100_000 }
        expect("guidance") { $0.guidance = .nan }
        expect("guidance") { $0.guidance = .infinity }
        expect("imageGuidance", inChannels: 8) { $0.imageGuidance = .nan }
        expect("crossReplaceSteps") { $0.crossReplaceSteps = 2 }
        expect("selfReplaceSteps") { $0.selfReplaceSteps = -0.1 }
        expect("reweight") { $0.reweight = ["blue": .nan] }
        expect("image", w: 0) { _ in }
    }

    func testEditorRejectsBadInputBeforeRunning() throws {
        let editor = try EditTestSupport.editor()
        let img = RGBImage(width: 64, height: 64, fill: 128)
        var o = EditOptions()
        o.prompt = "a blue circle"
        o.method = .p2p
        o.sourcePrompt = "a red circle"
        o.reweight = ["green": 2]
        XCTAssertThrowsError(try editor.edit(img, options: o, progress: ProgressReporter())) { e in
            XCTAssertTrue((e as? DiffEditError)?.message.hasPrefix("reweight") ?? false, "\(e)")
        }
        o.method = .sdedit
        o.reweight = [:]
        o.initNoise = Tensor.zeros([1, 4, 3, 3])
        XCTAssertThrowsError(try editor.edit(img, options: o, progress: ProgressReporter())) { e in
            XCTAssertTrue((e as? DiffEditError)?.message.hasPrefix("initNoise") ?? false, "\(e)")
        }
        o.initNoise = nil
        o.method = .instruct
        XCTAssertThrowsError(try editor.edit(img, options: o, progress: ProgressReporter())) { e in
            XCTAssertTrue((e as? DiffEditError)?.message.contains("8 input channels") ?? false, "\(e)")
        }
    }
}
