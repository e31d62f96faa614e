import Foundation
import Glibc
import XCTest
@testable import DiffEdit

/// glibc's mallopt (malloc.h is not in the Glibc module).
@_silgen_name("mallopt") private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32

/// Issue 21: the pixel policy on a large input resized to the model's size keeps no input-size float plane. The
/// alpha a resized edit is composited through is resized from the work size one output row at a time
/// (`NativeResolutionPlan.toInput(edited:original:workAlpha:)`), LocalBlend's mask likewise (`grayToInput`); the
/// bytes are those of the whole-plane computation.
final class PixelPolicyMemoryTests: XCTestCase {
    /// Deterministic bytes / floats.
    struct LCG {
        var s: UInt64
        mutating func next() -> UInt64 { s = s &* 6364136223846793005 &+ 1442695040888963407; return s >> 33 }
        mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
        mutating func unit() -> Float { Float(next() % 10_000) / 10_000 }
    }

    static func image(_ w: Int, _ h: Int, _ g: inout LCG) -> RGBImage {
        var px = [UInt8](repeating: 0, count: w * h * 3)
        let seed = g.next()
        px.withUnsafeMutableBufferPointer { b in
            for i in 0..<b.count { b[i] = UInt8(truncatingIfNeeded: (UInt64(i) &* 2654435761 &+ seed) >> 7) }
        }
        return RGBImage(width: w, height: h, pixels: px)
    }

    /// The whole-plane computation the row-wise one replaces: the edit resized to the input size, the alpha plane
    /// resized and clamped, then out = round(clamp(o + a * (e - o))) where a > 0, else o.
    static func reference(_ plan: NativeResolutionPlan, edited: RGBImage, original: RGBImage, workAlpha: [Float]) -> [UInt8] {
        let up = ImageResampler.resize(edited, toWidth: plan.inputWidth, height: plan.inputHeight)
        let a = plan.planeToInput(workAlpha)
        var out = original.pixels
        for i in 0..<(plan.inputWidth * plan.inputHeight) where a[i] > 0 {
            for c in 0..<3 {
                let o = Float(original.pixels[3 * i + c]), e = Float(up.pixels[3 * i + c])
                out[3 * i + c] = UInt8(min(max(o + a[i] * (e - o), 0), 255).rounded())
            }
        }
        return out
    }

    func testRowWiseCompositeAndMaskAreTheWholePlaneBytes() {
        var g = LCG(s: 11)
        // up (200x100 from 96x48), down (20x30 from 48x64), odd sizes
        for (w, h) in [(200, 100), (20, 30), (333, 97), (61, 250)] {
            let plan = NativeResolutionPlan(width: w, height: h, native: 64, multiple: 16, fullResolution: false)
            XCTAssertTrue(plan.resized, "\(w)x\(h)")
            let edited = Self.image(plan.workWidth, plan.workHeight, &g), original = Self.image(w, h, &g)
            // alpha with zeros (kept bytes), values outside [0, 1] (clamped) and a soft middle
            let alpha = (0..<(plan.workWidth * plan.workHeight)).map { i -> Float in
                let x = i % plan.workWidth
                return x < plan.workWidth / 3 ? 0 : x < plan.workWidth / 2 ? g.unit() * 1.4 - 0.2 : 1
            }
            let rows = plan.toInput(edited: edited, original: original, workAlpha: alpha)
            XCTAssertEqual(rows.pixels, Self.reference(plan, edited: edited, original: original, workAlpha: alpha), "\(w)x\(h)")
            XCTAssertEqual(plan.toInput(edited: edited, original: original, alpha: plan.planeToInput(alpha)).pixels, rows.pixels,
                           "\(w)x\(h): input-size alpha")
            XCTAssertEqual(plan.grayToInput(alpha), EditMask.gray(plan.planeToInput(alpha), width: w, height: h), "\(w)x\(h) mask")
        }
    }

    /// The feather made from the mask's bytes (no float copy; the result in the blur's plane) is the formula on the
    /// float plane: clamp(2 * boxBlur(m) - 1, 0, 1) * m where m > 0; the in-place user-mask composite is the copying one.
    func testFeatherAndInPlaceCompositeAreTheSameNumbers() {
        var g = LCG(s: 9)
        for (w, h, r) in [(64, 48, 4), (37, 90, 1), (200, 30, 6), (5, 5, 0)] {
            let px = (0..<(w * h)).map { i -> UInt8 in i % 7 == 0 ? 0 : (i % 5 == 0 ? 255 : g.byte()) }
            let m = px.map { Float($0) / 255 }
            let b = EditMask.boxBlur(m, width: w, height: h, radius: r)
            let want = (0..<m.count).map { i -> Float in m[i] > 0 ? min(max(2 * b[i] - 1, 0), 1) * m[i] : 0 }
            XCTAssertEqual(EditMask.feathered(GrayImage(width: w, height: h, pixels: px), radius: r), want, "\(w)x\(h) r \(r)")
            let edited = Self.image(w, h, &g), input = Self.image(w, h, &g)
            var inPlace = edited
            PixelPolicy.composite(&inPlace, input: input, mask: GrayImage(width: w, height: h, pixels: px))
            var want2 = edited.pixels
            for i in 0..<(w * h) where px[i] != 255 {
                for c in 0..<3 {
                    let a = Int(input.pixels[3 * i + c]), e = Int(edited.pixels[3 * i + c]), k = Int(px[i])
                    want2[3 * i + c] = UInt8(clamping: a + ((e - a) * k + (e >= a ? 127 : -127)) / 255)
                }
            }
            XCTAssertEqual(inPlace.pixels, want2, "\(w)x\(h) composite")
        }
    }

    static func kib(_ field: String) -> Int {
        let s = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        for line in s.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ").dropFirst().first { Int($0) != nil } ?? "0") ?? 0
        }
        return 0
    }

    /// Peak RSS growth (bytes) while `body` runs: VmHWM reset through /proc/self/clear_refs (Linux >= 4.0).
    static func peakGrowth(_ body: () throws -> Void) throws -> Int? {
        guard let f = fopen("/proc/self/clear_refs", "w") else { return nil }
        fputs("5", f); fclose(f)
        let base = kib("VmRSS")
        try body()
        return (kib("VmHWM") - base) * 1024
    }

    /// compose on a 2048x2048 input edited at 64x64 (the region from the reconstruction): the output image (3 bytes a
    /// pixel) and the reported mask (1; none when the caller does not want it) are the input-size buffers; the former
    /// alpha plane (4 bytes of float a pixel) took the peak to 8 bytes a pixel.
    func testComposeKeepsNoInputSizeFloatPlane() throws {
        // big blocks from mmap, returned when freed: the peak counts each buffer (glibc would otherwise reuse freed heap)
        _ = glibcMallopt(-3 /* M_MMAP_THRESHOLD (malloc.h) */, 256 << 10)
        var g = LCG(s: 5)
        let (W, H) = (2048, 2048)
        let plan = NativeResolutionPlan(width: W, height: H, native: 64, multiple: 16, fullResolution: false)
        let original = Self.image(W, H, &g)
        let decoded = Self.image(plan.workWidth, plan.workHeight, &g), recon = Self.image(plan.workWidth, plan.workHeight, &g)
        // the measurement sees a 16 MB buffer
        guard let probe = try Self.peakGrowth({
            var a = [Float](repeating: 1, count: W * H)
            a[W * H - 1] = 2
            XCTAssertEqual(a[W * H - 1], 2)
        }) else { throw XCTSkip("/proc/self/clear_refs not writable") }
        XCTAssertGreaterThanOrEqual(probe, W * H * 4 - (1 << 20), "the peak measurement sees a \(W)x\(H) float plane")
        var result: (RGBImage, GrayImage?)? = nil
        let peak = try XCTUnwrap(try Self.peakGrowth {
            result = try PixelPolicy.compose(decoded: decoded, original: original, plan: plan, userMask: nil, blendMask: nil,
                                             factor: 8, reconstruction: { recon })
        })
        XCTAssertEqual(result?.0.width, W)
        XCTAssertEqual(result?.1?.width, W)
        print("PixelPolicy.compose on \(W)x\(H): peak RSS growth \(peak) bytes (\(Double(peak) / Double(W * H)) a pixel)")
        // the output (3 bytes a pixel), the mask (1), the horizontal passes (~2 MB here)
        XCTAssertLessThan(peak, W * H * 4 + (5 << 20), "compose's peak: \(peak) bytes for a \(W)x\(H) input")
        // without reportMask no mask is made; the image is the same
        let small = NativeResolutionPlan(width: 200, height: 100, native: 64, multiple: 16, fullResolution: false)
        let so = Self.image(200, 100, &g)
        let sd = Self.image(small.workWidth, small.workHeight, &g), sr = Self.image(small.workWidth, small.workHeight, &g)
        let with = try PixelPolicy.compose(decoded: sd, original: so, plan: small, userMask: nil, blendMask: nil, factor: 8,
                                           reconstruction: { sr })
        let without = try PixelPolicy.compose(decoded: sd, original: so, plan: small, userMask: nil, blendMask: nil, factor: 8,
                                              reportMask: false, reconstruction: { sr })
        XCTAssertEqual(with.0, without.0)
        XCTAssertNotNil(with.1)
        XCTAssertNil(without.1)
    }
}
