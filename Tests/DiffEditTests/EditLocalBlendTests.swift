import XCTest
@testable import DiffEdit

/// LocalBlend on hand-made attention maps: max-pool, resize, normalise, threshold, union, blend.
final class EditLocalBlendTests: XCTestCase {
    func probs(height h: Int, width w: Int, peaks: [(item: Int, token: Int, y: Int, x: Int)]) -> Tensor {
        let t = Tensor.zeros([4, 1, h * w, 77])                        // [B, heads, Lq, Lk]
        for p in peaks { t.data[((p.item * h * w) + p.y * w + p.x) * 77 + p.token] = 1 }
        return t
    }

    func testMaskIsPooledThresholdedUnion() throws {
        var a = [Float](repeating: 0, count: 77); a[2] = 1
        var b = [Float](repeating: 0, count: 77); b[3] = 1
        let lb = LocalBlend(alphaSource: a, alphaTarget: b, height: 8, steps: 10, startFraction: 0)
        let site = AttentionSite(name: "down_blocks.0.attentions.0.transformer_blocks.0.attn2", isCross: true, place: "down",
                                 heads: 1, height: 8, width: 8)
        XCTAssertTrue(lb.wants(site))
        XCTAssertFalse(lb.wants(AttentionSite(name: "mid", isCross: true, place: "mid", heads: 1, height: 8, width: 8)))
        try lb.accumulate(site: site, probs: probs(height: 8, width: 8, peaks: [(2, 2, 2, 2), (3, 3, 5, 6), (3, 2, 0, 7)]), first: 2, backend: .cpu)
        let lat = Tensor.cat0([Tensor.zeros([1, 4, 8, 8]), Tensor.full([1, 4, 8, 8], 1)])
        try lb.apply(lat)
        let m = try XCTUnwrap(lb.lastMask)
        for y in 0..<8 { for x in 0..<8 {
            let inA = abs(y - 2) <= 1 && abs(x - 2) <= 1, inB = abs(y - 5) <= 1 && abs(x - 6) <= 1
            let want: Float = (inA || inB) ? 1 : 0
            XCTAssertEqual(m.data[y * 8 + x], want, "mask at \(y),\(x)")
            for c in 0..<4 {
                XCTAssertEqual(lat.data[(4 + c) * 64 + y * 8 + x], want, "target latent at \(c),\(y),\(x)")
                XCTAssertEqual(lat.data[c * 64 + y * 8 + x], 0, "source latent untouched")
            }
        } }
    }

    func testLowResolutionMapsAreResizedAndWeakPeaksDropped() throws {
        var a = [Float](repeating: 0, count: 77); a[4] = 1
        let lb = LocalBlend(alphaSource: a, alphaTarget: [Float](repeating: 0, count: 77), height: 4, steps: 10, startFraction: 0.2)
        let site = AttentionSite(name: "up_blocks.1.attentions.0.transformer_blocks.0.attn2", isCross: true, place: "up",
                                 heads: 1, height: 4, width: 4)
        let p = probs(height: 4, width: 4, peaks: [(2, 4, 0, 0)])
        p.data[(2 * 16 + 3 * 4 + 3) * 77 + 4] = 0.2                   // a weak peak: 0.2 < 0.3 of the max
        try lb.accumulate(site: site, probs: p, first: 2, backend: .cpu)
        let lat = Tensor.cat0([Tensor.zeros([1, 1, 8, 8]), Tensor.full([1, 1, 8, 8], 1)])
        try lb.apply(lat); try lb.apply(lat)                                   // startAfter = int(0.2 * 10) = 2 calls skipped
        XCTAssertNil(lb.lastMask)
        try lb.apply(lat)
        let m = try XCTUnwrap(lb.lastMask)
        for y in 0..<8 { for x in 0..<8 {
            XCTAssertEqual(m.data[y * 8 + x], (y < 4 && x < 4) ? 1 : 0, "mask at \(y),\(x)")   // 2x2 pooled cells, x2 nearest
        } }
    }

    /// A model whose word maps sit at 60% of their peak everywhere (the toy model's do) still gets a local
    /// mask: the threshold is relative to the map's range, not its max (which would select everything).
    /// A higher threshold gives a tighter mask.
    func testHighFloorMapsStillLocaliseAndThresholdTightens() throws {
        var a = [Float](repeating: 0, count: 77); a[2] = 1
        func mask(threshold: Float) throws -> [Float] {
            let lb = LocalBlend(alphaSource: a, alphaTarget: [Float](repeating: 0, count: 77), height: 8, steps: 10,
                                threshold: threshold, startFraction: 0)
            let site = AttentionSite(name: "down_blocks.0.attentions.0.transformer_blocks.0.attn2", isCross: true,
                                     place: "down", heads: 1, height: 8, width: 8)
            let p = Tensor.zeros([4, 1, 64, 77])
            for y in 0..<8 { for x in 0..<8 {
                // floor 0.6, a peak of 1 at (5, 5) falling to 0.8 next to it
                let d = max(abs(y - 5), abs(x - 5))
                p.data[((2 * 64) + y * 8 + x) * 77 + 2] = d == 0 ? 1 : (d == 1 ? 0.8 : 0.6)
            } }
            try lb.accumulate(site: site, probs: p, first: 2, backend: .cpu)
            try lb.apply(Tensor.zeros([2, 1, 8, 8]))
            return try XCTUnwrap(lb.lastMask).toArray()
        }
        let m3 = try mask(threshold: 0.3), m6 = try mask(threshold: 0.6)
        // pooled: 1 within distance 1 of the peak, 0.8 at distance 2, 0.6 beyond; scaled: 1 / 0.5 / 0
        XCTAssertEqual(m3.reduce(0, +), 25, "threshold 0.3 keeps the peak's 5x5 neighbourhood, not all 64")
        XCTAssertEqual(m6.reduce(0, +), 9, "threshold 0.6 keeps the 3x3 core")
        for i in 0..<64 where m6[i] == 1 { XCTAssertEqual(m3[i], 1) }
    }
}
