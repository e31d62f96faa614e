import XCTest
@testable import DiffEdit

/// Mask feathering, blurring and resampling used by masks and the native-resolution path.
final class EditMaskTests: XCTestCase {
    func naiveBlur(_ p: [Float], _ w: Int, _ h: Int, _ r: Int) -> [Float] {
        var out = [Float](repeating: 0, count: p.count)
        for y in 0..<h { for x in 0..<w {
            var s: Float = 0
            for dy in -r...r { for dx in -r...r { s += p[min(max(y + dy, 0), h - 1) * w + min(max(x + dx, 0), w - 1)] } }
            out[y * w + x] = s / Float((2 * r + 1) * (2 * r + 1))
        } }
        return out
    }

    func testBoxBlurMatchesNaive() {
        var rng = RNG(seed: 3)
        let (w, h) = (23, 17)
        let p = (0..<(w * h)).map { _ in rng.uniformFloat() }
        for r in [1, 2, 5, 30] {
            let a = EditMask.boxBlur(p, width: w, height: h, radius: r), b = naiveBlur(p, w, h, r)
            for i in 0..<p.count { XCTAssertEqual(a[i], b[i], accuracy: 1e-4, "r \(r) at \(i)") }
        }
    }

    func testFeatherIsInward() {
        let (w, h) = (64, 48)
        var px = [UInt8](repeating: 0, count: w * h)
        for y in 10..<40 { for x in 8..<50 { px[y * w + x] = 255 } }
        let f = EditMask.feathered(GrayImage(width: w, height: h, pixels: px), radius: 4)
        for i in 0..<(w * h) where px[i] == 0 { XCTAssertEqual(f[i], 0, "outside the mask at \(i)") }
        XCTAssertEqual(f[25 * w + 30], 1, "deep inside")
        XCTAssertGreaterThan(f[10 * w + 30], 0); XCTAssertLessThan(f[10 * w + 30], 1, "edge is soft")
        let full = EditMask.feathered(GrayImage(width: w, height: h, pixels: [UInt8](repeating: 255, count: w * h)), radius: 4)
        XCTAssertTrue(full.allSatisfy { $0 == 1 })
    }

    func testResamplerKeepsConstantsAndSizes() {
        let img = RGBImage(width: 37, height: 21, pixels: [UInt8](repeating: 77, count: 37 * 21 * 3))
        for (w, h) in [(10, 6), (100, 57), (37, 21)] {
            let r = ImageResampler.resize(img, toWidth: w, height: h)
            XCTAssertEqual(r.width, w); XCTAssertEqual(r.height, h)
            XCTAssertTrue(r.pixels.allSatisfy { $0 == 77 })
        }
        let padded = ImageResampler.pad(img, toWidth: 48, height: 32)
        XCTAssertEqual(ImageResampler.crop(padded, width: 37, height: 21), img)
    }

    func testCompositeKeepsPixelsWhereAlphaIsZero() {
        let plan = NativeResolutionPlan(width: 200, height: 100, native: 64, multiple: 16, fullResolution: false)
        XCTAssertTrue(plan.resized)
        var orig = [UInt8](repeating: 0, count: 200 * 100 * 3)
        for i in 0..<orig.count { orig[i] = UInt8(i % 251) }
        let original = RGBImage(width: 200, height: 100, pixels: orig)
        let edited = RGBImage(width: plan.workWidth, height: plan.workHeight, fill: 255)
        var alpha = [Float](repeating: 0, count: 200 * 100)
        for y in 0..<50 { for x in 0..<100 { alpha[y * 200 + x] = 1 } }
        let out = plan.toInput(edited: edited, original: original, alpha: alpha)
        for y in 0..<100 { for x in 0..<200 { for c in 0..<3 {
            let i = (y * 200 + x) * 3 + c
            XCTAssertEqual(out.pixels[i], (y < 50 && x < 100) ? 255 : orig[i])
        } } }
    }
}
