import XCTest
@testable import DiffEdit

/// The RGB resize works channel by channel through one row buffer (no image-size float copies); it must give
/// exactly the bytes of the float-plane path it replaced, shrinking and enlarging, odd sizes included.
final class ImageResamplerTests: XCTestCase {
    func testRGBResizeEqualsThePlanePath() {
        var state: UInt32 = 12345
        func next() -> UInt8 { state = state &* 1664525 &+ 1013904223; return UInt8(truncatingIfNeeded: state >> 24) }
        for (w, h, nw, nh) in [(97, 61, 32, 24), (40, 30, 131, 77), (64, 64, 64, 48), (5, 300, 17, 3)] {
            let img = RGBImage(width: w, height: h, pixels: (0..<(w * h * 3)).map { _ in next() })
            let want = ImageResampler.image(ImageResampler.resize(ImageResampler.planes(img), channels: 3, width: w, height: h,
                                                                  toWidth: nw, height: nh), width: nw, height: nh)
            XCTAssertEqual(ImageResampler.resize(img, toWidth: nw, height: nh), want, "\(w)x\(h) -> \(nw)x\(nh)")
        }
    }
}
