import XCTest
@testable import DiffEdit

/// The pieces of the consistent video method without a model: window layout and key sources, the
/// attention controller's batch mapping, latent token matching, pixel fusion.
final class VideoPartsTests: XCTestCase {
    func testWindowSlotsAndSources() {
        let w0 = VideoWindow(start: 0, count: 4, interval: 4)
        XCTAssertEqual(w0.frames, [0, 1, 2, 3])
        XCTAssertEqual(w0.emit, [true, true, true, true])
        XCTAssertEqual(w0.sources, [[0], [0, 1], [0, 1, 2], [0, 2, 3]])
        XCTAssertEqual(w0.propagate, [false, true, true, true])
        XCTAssertEqual(w0.reference, [nil, 0, 0, 0])
        let w1 = VideoWindow(start: 8, count: 3, interval: 4)   // anchor as context, keyframe 8, frames 9, 10
        XCTAssertEqual(w1.frames, [0, 8, 9, 10])
        XCTAssertEqual(w1.emit, [false, true, true, true])
        XCTAssertEqual(w1.sources, [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3]])
        XCTAssertEqual(w1.reference, [nil, 0, 1, 1])
        let w2 = VideoWindow(start: 5, count: 1, interval: 1)   // lookahead 0: every frame a keyframe
        XCTAssertEqual(w2.frames, [0, 5])
        XCTAssertEqual(w2.sources, [[0], [0, 1]])
    }

    func testControllerMapsSlotsToBatchItems() {
        let w = VideoWindow(start: 4, count: 2, interval: 4)    // slots: anchor 0, key 4, frame 5
        let site = AttentionSite(name: "x.attn1", isCross: false, place: "down", heads: 1, height: 4, width: 4)
        let c = VideoAttentionController(group: 4, window: w, sourceBranch: [1: 0, 3: 2], propagationEnd: 2,
                                         crossFrame: true, p2p: nil)
        let ks = c.selfAttentionKeySources(site: site, batch: 12)!
        XCTAssertEqual(ks[0], [0])                              // anchor, uncond src
        XCTAssertEqual(ks[4 + 3], [3, 7])                       // keyframe cond tgt: anchor and itself, same branch
        XCTAssertEqual(ks[8 + 1], [1, 5, 9])                    // frame 5 uncond tgt: anchor, key (= previous), itself
        XCTAssertNil(c.selfAttentionKeySources(site: site, batch: 4), "another batch size: no redirection")
        let ms = c.selfAttentionMapSource(site: site, batch: 12)!
        XCTAssertEqual(Array(ms[0..<4]), [0, 1, 2, 3], "the anchor keeps its own maps")
        XCTAssertEqual(Array(ms[4..<8]), [4, 4, 6, 6], "target branches take the source branch's maps")
        c.step = 2
        XCTAssertNil(c.selfAttentionMapSource(site: site, batch: 12), "after the propagation steps: own maps")
    }

    func testTokenMatchFindsShiftedContentAndRejectsNewContent() {
        let (c, h, w) = (2, 8, 8)
        var a = [Float](repeating: 0, count: c * h * w), b = a
        // b: a bright 2x2 blob at (2,2) on a ramp; a: the same blob moved to (2,4), plus an odd spot at (6,6)
        for ch in 0..<c { for y in 0..<h { for x in 0..<w {
            let ramp = Float(y) * 0.1 + Float(ch)
            b[(ch * h + y) * w + x] = ramp + ((2...3).contains(y) && (2...3).contains(x) ? 3 : 0)
            a[(ch * h + y) * w + x] = ramp + ((2...3).contains(y) && (4...5).contains(x) ? 3 : 0) + (y == 6 && x == 6 ? -9 : 0)
        } } }
        let m = a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
            VideoTokenMatch(a: pa.baseAddress!, b: pb.baseAddress!, channels: c, height: h, width: w, radius: 2)
        } }
        XCTAssertEqual(m.match[2 * w + 4], 2 * w + 2, "the blob's corner follows the motion")
        XCTAssertEqual(m.match[3 * w + 5], 3 * w + 3)
        XCTAssertEqual(m.match[6 * w + 6], -1, "new content has no correspondence")
        XCTAssertEqual(m.match[0], 0, "static content matches itself")
        var x = a, ref = b.map { $0 + 100 }
        x.withUnsafeMutableBufferPointer { px in ref.withUnsafeMutableBufferPointer { pr in
            m.apply(to: px.baseAddress!, from: pr.baseAddress!, channels: c)
        } }
        XCTAssertEqual(x[2 * w + 4], b[2 * w + 2] + 100)
        XCTAssertEqual(x[6 * w + 6], a[6 * w + 6], "unmatched tokens keep their own value")
    }

    func testPixelFusionKeepsStaticPixelsAndLeavesMovingOnes() {
        let (w, h) = (32, 16)
        func img(_ f: (Int, Int) -> UInt8) -> RGBImage {
            var px = [UInt8](repeating: 0, count: w * h * 3)
            for y in 0..<h { for x in 0..<w { for c in 0..<3 { px[(y * w + x) * 3 + c] = f(x, y) } } }
            return RGBImage(width: w, height: h, pixels: px)
        }
        let prevSrc = img { x, _ in x < 4 ? 200 : 50 }       // something at the left edge moves away
        let src = img { _, _ in 50 }
        let prevOut = img { _, _ in 10 }
        let out = img { _, _ in 90 }
        let f = VideoPixelFusion.fuse(source: src, previousSource: prevSrc, edited: out, previousEdited: prevOut, radius: 2)
        XCTAssertEqual(f.pixels[(8 * w + 30) * 3], 10, "far from any change: the previous edited pixel")
        XCTAssertEqual(f.pixels[(8 * w + 2) * 3], 90, "where the source changed: this frame's edit")
    }
}
