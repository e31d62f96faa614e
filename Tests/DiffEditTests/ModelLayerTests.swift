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

    /// Upsample2D.banded (the VAE decoder's last upsampler above 64 MiB) equals the whole-image path for any
    /// band height: halo rows, zero padding only at the image's top and bottom, rows copied to their place.
    /// Wide enough (32 channels, 20x24) for the CPU provider's Winograd path, whose tiles start at each band;
    /// also on the staged (resident) CPU backend, where the band copies run between device buffers.
    func testBandedUpsampleEqualsWholeImage() throws {
        for (be, (c, h, w)) in [(Backend.cpu, (5, 7, 6)), (Backend.cpu, (8, 12, 9)), (Backend.cpu, (32, 20, 24)),
                                (ResidentBackendTests.staged, (8, 12, 9))] {
            let src = DictionaryWeightSource(tensors: [
                "conv.weight": ModelAttentionControlTests.random([c, c, 3, 3], seed: UInt64(c + 7)),
                "conv.bias": ModelAttentionControlTests.random([c], seed: UInt64(c + 107)),
            ])
            let up = try Upsample2D(WeightScope(src), channels: c)
            let x = ModelAttentionControlTests.random([2, c, h, w], seed: UInt64(h))
            let whole = try up(be, x)                                   // under the threshold: one piece
            XCTAssertEqual(whole.shape, [2, c, 2 * h, 2 * w])
            for rows in [1, 2, 3, 5, h - 1, h] {
                let y = try up.banded(be, x, rows: rows)
                XCTAssertEqual(y.shape, whole.shape)
                XCTAssertLessThan(ModelAttentionControlTests.maxRel(y, whole), 1e-5,
                                  "\(be.resident ? "staged" : "cpu") c \(c) \(h)x\(w), \(rows) rows per band")
            }
        }
    }

    /// ResnetBlock2D taking its input (the VAE decoder's memory-saving call) computes exactly what the plain
    /// call does, with a 1x1 shortcut (norm1 in place on the input) and without (the input is the residual),
    /// and leaves the caller's reference empty.
    func testResnetTakingInputEqualsPlainCall() throws {
        let be = Backend.cpu
        for (cin, cout) in [(6, 10), (8, 8)] {
            var t: [String: Tensor] = [:]
            var seed: UInt64 = 300
            func add(_ name: String, _ shape: [Int]) { seed += 1; t[name] = ModelAttentionControlTests.random(shape, seed: seed) }
            add("norm1.weight", [cin]); add("norm1.bias", [cin])
            add("conv1.weight", [cout, cin, 3, 3]); add("conv1.bias", [cout])
            add("norm2.weight", [cout]); add("norm2.bias", [cout])
            add("conv2.weight", [cout, cout, 3, 3]); add("conv2.bias", [cout])
            if cin != cout { add("conv_shortcut.weight", [cout, cin, 1, 1]); add("conv_shortcut.bias", [cout]) }
            let r = try ResnetBlock2D(WeightScope(DictionaryWeightSource(tensors: t)), inChannels: cin, outChannels: cout,
                                      tembChannels: nil, groups: 2, eps: 1e-6)
            let x = ModelAttentionControlTests.random([1, cin, 9, 7], seed: 5)
            let plain = try r(be, x, tembAct: nil)
            var taken: Tensor? = try be.copy(x)
            let y = try r(be, taking: &taken, tembAct: nil)
            XCTAssertNil(taken)
            XCTAssertEqual(y.shape, [1, cout, 9, 7])
            XCTAssertEqual(y.toArray(), plain.toArray(), "\(cin) -> \(cout)")
        }
    }
}
