import Foundation
import XCTest
@testable import DiffEdit

/// Layer rewrites that must equal their plain definition.
final class ModelLayerTests: XCTestCase {
    /// Upsample2D: x2 is nearest x2 then the 3x3 conv; an exact non-x2 size (odd skip sizes in the UNet) takes
    /// the resize path; both equal the conv over torch's nearest resize computed here by hand.
    func testUpsampleIsNearestThenConv() throws {
        let be = Backend.cpu
        for (c, h, w) in [(3, 1, 1), (5, 4, 7), (8, 6, 5)] {
            let src = DictionaryWeightSource(tensors: [
                "conv.weight": ModelAttentionControlTests.random([c, c, 3, 3], seed: UInt64(c)),
                "conv.bias": ModelAttentionControlTests.random([c], seed: UInt64(c + 100)),
            ])
            let up = try Upsample2D(WeightScope(src), channels: c)
            let x = ModelAttentionControlTests.random([2, c, h, w], seed: 9)
            for (oh, ow) in [(2 * h, 2 * w), (2 * h + 1, 2 * w + 1)] {
                let y = try up(be, x, size: (oh, ow))
                XCTAssertEqual(y.shape, [2, c, oh, ow])
                // nearest: source row floor(i * h / oh), column floor(j * w / ow)
                let r = Tensor(shape: [2, c, oh, ow])
                for b in 0..<2 { for ch in 0..<c { for i in 0..<oh { for j in 0..<ow {
                    r.data[((b * c + ch) * oh + i) * ow + j] = x.data[((b * c + ch) * h + i * h / oh) * w + j * w / ow]
                } } } }
                XCTAssertLessThan(ModelAttentionControlTests.maxRel(y, try up.conv(be, r)), 1e-6, "c \(c) h \(h) w \(w) -> \(oh)x\(ow)")
            }
        }
    }

    /// resizeNearest to an exact size follows torch's floor(dst * in / out).
    func testResizeNearestExactSize() throws {
        let x = Tensor(shape: [1, 1, 2, 3], values: [1, 2, 3, 4, 5, 6])
        let y = try Backend.cpu.resizeNearest(x, height: 3, width: 4)
        // rows: floor(i * 2/3) = 0, 0, 1; cols: floor(j * 3/4) = 0, 0, 1, 2
        XCTAssertEqual(y.toArray(), [1, 1, 2, 3, 1, 1, 2, 3, 4, 4, 5, 6])
    }
}
