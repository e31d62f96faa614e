import XCTest
@testable import DiffEdit

/// Properties of the editing methods on the sd1 fixture model (64 px native, 8x8 latents).
final class EditPropertyTests: XCTestCase {
    /// White background, red disc, green square (like tools/make_edit_fixtures.py's input).
    static func scene(_ w: Int, _ h: Int) -> RGBImage {
        var px = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w {
            var c: (UInt8, UInt8, UInt8) = (245, 245, UInt8(200 + 40 * y / max(h - 1, 1)))
            let dx = Float(x) - 0.32 * Float(w), dy = Float(y) - 0.5 * Float(h), r = 0.2 * Float(min(w, h))
            if dx * dx + dy * dy <= r * r { c = (220, 30, 40) }
            if abs(Float(x) - 0.72 * Float(w)) <= 0.13 * Float(w) && abs(Float(y) - 0.45 * Float(h)) <= 0.13 * Float(h) { c = (40, 170, 60) }
            px[(y * w + x) * 3] = c.0; px[(y * w + x) * 3 + 1] = c.1; px[(y * w + x) * 3 + 2] = c.2
        } }
        return RGBImage(width: w, height: h, pixels: px)
    }

    static let source = "a red circle on a white background"

    func options(_ m: EditMethod, prompt: String, steps: Int = 6, guidance: Float = 7.5) -> EditOptions {
        var o = EditOptions()
        o.method = m
        o.prompt = prompt
        o.sourcePrompt = EditPropertyTests.source
        o.steps = steps
        o.guidance = guidance
        o.seed = 7
        return o
    }

    func testP2PWithTargetEqualSourceReproducesDDIMReconstruction() throws {
        let img = EditPropertyTests.scene(64, 64)
        let p2p = try EditTestSupport.editor().edit(img, options: options(.p2p, prompt: EditPropertyTests.source),
                                                    progress: ProgressReporter())
        let rec = try EditTestSupport.editor().edit(img, options: options(.ddim, prompt: EditPropertyTests.source, guidance: 1),
                                                    progress: ProgressReporter())
        let err = EditTestSupport.relErr(p2p.latents!, rec.latents!)
        print("p2p(target == source) vs ddim reconstruction: rel err \(err)")
        XCTAssertLessThan(err, 1e-4)
    }

    func testZeroMaskKeepsTheReconstruction() throws {
        let img = EditPropertyTests.scene(64, 64)
        let editor = try EditTestSupport.editor()
        let recon = try editor.decode(try editor.encode(img))
        for m in [EditMethod.sdedit, .ddim, .p2p] {
            var o = options(m, prompt: "a blue circle on a white background")
            o.mask = GrayImage(width: 64, height: 64, pixels: [UInt8](repeating: 0, count: 64 * 64))
            let r = try editor.edit(img, options: o, progress: ProgressReporter())
            XCTAssertEqual(r.image, recon, "\(m): an all-zero mask must give the VAE reconstruction")
            XCTAssertTrue(r.mask!.pixels.allSatisfy { $0 == 0 }, "\(m): mask out")
        }
        // and a half mask changes only latents under it
        var o = options(.sdedit, prompt: "a blue circle on a white background")
        var mp = [UInt8](repeating: 0, count: 64 * 64)
        for y in 0..<64 { for x in 32..<64 { mp[y * 64 + x] = 255 } }
        o.mask = GrayImage(width: 64, height: 64, pixels: mp)
        let r = try editor.edit(img, options: o, progress: ProgressReporter())
        let z0 = try editor.encode(img)
        var changedLeft = 0, changedRight = 0
        for c in 0..<4 { for y in 0..<8 { for x in 0..<8 {
            let i = (c * 8 + y) * 8 + x
            if r.latents!.data[i] != z0.data[i] { if x < 4 { changedLeft += 1 } else { changedRight += 1 } }
        } } }
        XCTAssertEqual(changedLeft, 0, "latents outside the mask come from the source")
        XCTAssertGreaterThan(changedRight, 0, "latents inside the mask are edited")
    }

    func testInversionThenRegenerationReturnsTheEncodedLatents() throws {
        let img = EditPropertyTests.scene(64, 64)
        let editor = try EditTestSupport.editor()
        let z0 = try editor.encode(img)
        let r = try editor.edit(img, options: options(.ddim, prompt: EditPropertyTests.source, steps: 50, guidance: 1),
                                progress: ProgressReporter())
        let err = EditTestSupport.relErr(r.latents!, z0)
        print("DDIM inversion + regeneration (50 steps, guidance 1): rel err \(err)")
        XCTAssertLessThan(err, 1e-2)
    }

    func testLargeInputKeepsItsSizeAndUntouchedPixels() throws {
        let (w, h) = (1024, 768)
        let img = EditPropertyTests.scene(w, h)
        var mp = [UInt8](repeating: 0, count: w * h)
        for y in 200..<520 { for x in 150..<500 { mp[y * w + x] = 255 } }
        var o = options(.sdedit, prompt: "a blue circle on a white background", steps: 4)
        o.strength = 0.75
        o.mask = GrayImage(width: w, height: h, pixels: mp)
        let r = try EditTestSupport.editor().edit(img, options: o, progress: ProgressReporter())
        XCTAssertEqual(r.image.width, w)
        XCTAssertEqual(r.image.height, h)
        var outsideChanged = 0, insideChanged = 0
        for i in 0..<(w * h) {
            let same = r.image.pixels[3 * i] == img.pixels[3 * i] && r.image.pixels[3 * i + 1] == img.pixels[3 * i + 1]
                && r.image.pixels[3 * i + 2] == img.pixels[3 * i + 2]
            if mp[i] == 0 && !same { outsideChanged += 1 }
            if mp[i] != 0 && !same { insideChanged += 1 }
        }
        XCTAssertEqual(outsideChanged, 0, "pixels outside the mask must be bit-identical")
        XCTAssertGreaterThan(insideChanged, 1000, "the masked region is edited")
    }

    func testOtherSizesComeBackAtTheirSize() throws {
        let editor = try EditTestSupport.editor()
        for (w, h, full) in [(40, 30, false), (70, 50, true), (333, 517, false)] {
            var o = options(.sdedit, prompt: "a blue circle", steps: 2)
            o.fullResolution = full
            let r = try editor.edit(EditPropertyTests.scene(w, h), options: o, progress: ProgressReporter())
            XCTAssertEqual(r.image.width, w)
            XCTAssertEqual(r.image.height, h)
            XCTAssertEqual(r.mask?.width, w)
        }
        let plan = NativeResolutionPlan(width: 4000, height: 3000, native: 512, multiple: 64, fullResolution: false)
        XCTAssertTrue(plan.resized)
        XCTAssertEqual(plan.workWidth % 64, 0)
        XCTAssertEqual(plan.workHeight % 64, 0)
        XCTAssertEqual(Double(plan.workWidth * plan.workHeight), 512.0 * 512.0, accuracy: 512.0 * 512.0 * 0.2)
        let near = NativeResolutionPlan(width: 500, height: 520, native: 512, multiple: 64, fullResolution: false)
        XCTAssertFalse(near.resized)
        XCTAssertEqual(near.workWidth, 512)
        XCTAssertEqual(near.workHeight, 576)
    }

    func testInversionCacheIsReusedForANewPrompt() throws {
        let img = EditPropertyTests.scene(64, 64)
        let editor = try EditTestSupport.editor()
        _ = try editor.edit(img, options: options(.p2p, prompt: "a blue circle on a white background"), progress: ProgressReporter())
        XCTAssertEqual(editor.inversionCache.count, 1)
        var steps = 0
        let r2 = try editor.edit(img, options: options(.p2p, prompt: "a green circle on a white background"),
                                 progress: ProgressReporter { s, n, _, _ in steps = max(steps, s); return true })
        XCTAssertEqual(editor.inversionCache.hits, 1)
        XCTAssertEqual(editor.inversionCache.count, 1)
        let fresh = try EditTestSupport.editor().edit(img, options: options(.p2p, prompt: "a green circle on a white background"),
                                                      progress: ProgressReporter())
        XCTAssertEqual(r2.image, fresh.image, "a cached inversion gives the same edit")
        // bounded: oldest evicted
        let cache = InversionCache(maxEntries: 2)
        for k in 0..<3 {
            cache.put(.init(imageHash: UInt64(k), width: 1, height: 1, steps: 1, sourcePrompt: "", scheduler: ""), [Tensor.zeros([1])])
        }
        XCTAssertEqual(cache.count, 2)
        XCTAssertNil(cache.get(.init(imageHash: 0, width: 1, height: 1, steps: 1, sourcePrompt: "", scheduler: "")))
        XCTAssertNotNil(cache.get(.init(imageHash: 2, width: 1, height: 1, steps: 1, sourcePrompt: "", scheduler: "")))
    }

    func testCancelFromProgressStopsTheEdit() throws {
        let img = EditPropertyTests.scene(64, 64)
        let progress = ProgressReporter { s, _, _, _ in s < 2 }
        XCTAssertThrowsError(try EditTestSupport.editor().edit(img, options: options(.ddim, prompt: "a blue circle"), progress: progress)) { e in
            XCTAssertEqual(e as? DiffEditError, .cancelled)
        }
    }
}
