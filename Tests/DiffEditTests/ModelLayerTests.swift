import Foundation
import XCTest
@testable import DiffEdit

/// Layer rewrites that must equal their plain definition.
final class ModelLayerTests: XCTestCase {
    /// The phase-decomposed x2 upsample+conv equals nearest-x2 followed by the 3x3 conv.
    func testUpsamplePhaseConvEqualsUpsampleThenConv() throws {
        let be = Backend.cpu
        for (c, h, w) in [(3, 1, 1), (5, 4, 7), (8, 6, 5)] {
            let src = DictionaryWeightSource(tensors: [
                "conv.weight": ModelAttentionControlTests.random([c, c, 3, 3], seed: UInt64(c)),
                "conv.bias": ModelAttentionControlTests.random([c], seed: UInt64(c + 100)),
            ])
            let up = try Upsample2D(WeightScope(src), channels: c)
            let x = ModelAttentionControlTests.random([2, c, h, w], seed: 9)
            let fast = try up(be, x)
            let plain = try up.conv(be, try be.upsampleNearest(x, factor: 2))
            XCTAssertEqual(fast.shape, [2, c, 2 * h, 2 * w])
            XCTAssertLessThan(ModelAttentionControlTests.maxRel(fast, plain), 1e-5, "c \(c) h \(h) w \(w)")
            // an exact non-x2 size (odd skip sizes in the UNet) takes the resize path
            let odd = try up(be, x, size: (2 * h + 1, 2 * w - 1 + 2))
            XCTAssertEqual(odd.shape, [2, c, 2 * h + 1, 2 * w + 1])
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
