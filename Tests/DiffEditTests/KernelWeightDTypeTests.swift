import XCTest
import Foundation
import CDiffKernels
@testable import DiffEdit

/// The CPU provider's gemm and conv2d with reduced-precision weight operands (f16, bf16, q8_0; de_backend.h
/// API 5) against a Double reference computed from the values the stored weight represents (the widened
/// f16/bf16 values, the dequantized q8_0 blocks), on every conv path (1x1, im2col, Winograd F2/F4) and both
/// gemm weight positions (a untransposed: conv / tokens-to-NCHW; b transposed: linear), in the small
/// (converted whole) and panelled (> 1M elements) regimes. Plus the converters against Swift's Float16 and
/// the q8_0 error bound, and the descriptor checks.
///
/// f32 compute throughout (Backend.cpuF32): the bounds (1e-5 / 2e-5) are those of f32 products of the values the
/// weight holds; compute auto's bf16 terms on the same weights are checked by Tests/OpCheck/bf16_check.c.
final class KernelWeightDTypeTests: XCTestCase {
    let be = Backend.cpuF32
    let types: [ElementType] = [.f16, .bf16, .q8_0]

    func rand(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var g = KernelOpTests.LCG(seed)
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { _ in g.next() * scale })
    }

    func check(_ y: Tensor, _ ref: [Double], tol: Double = 2e-5, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let ys = y.toArray()
        var md = 0.0, mr = 0.0
        for i in 0..<ref.count { md = max(md, abs(Double(ys[i]) - ref[i])); mr = max(mr, abs(ref[i])) }
        let e = md / max(mr, 1e-30)
        print("KernelWeightDTypeTests \(what): max relative error \(String(format: "%.3g", e))")
        XCTAssertLessThan(e, tol, what, file: file, line: line)
        XCTAssertFalse(ys.contains { !$0.isFinite }, what, file: file, line: line)
    }

    /// y = x @ w^T + b in Double, w as the values it holds.
    func refLinear(_ x: [Float], rows: Int, _ w: [Float], out: Int, inF: Int, _ b: [Float]?) -> [Double] {
        var r = [Double](repeating: 0, count: rows * out)
        for i in 0..<rows { for o in 0..<out {
            var s = b.map { Double($0[o]) } ?? 0
            for k in 0..<inF { s += Double(x[i * inF + k]) * Double(w[o * inF + k]) }
            r[i * out + o] = s
        } }
        return r
    }

    func refConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride: Int, pad: (Int, Int, Int, Int), res: Tensor?) -> [Double] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (co, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let oh = (h + pad.0 + pad.2 - kh) / stride + 1, ow = (wd + pad.1 + pad.3 - kw) / stride + 1
        let xs = x.toArray(), ws = w.toArray(), bs = b?.toArray(), rs = res?.toArray()
        var out = [Double](repeating: 0, count: n * co * oh * ow)
        for ni in 0..<n { for o in 0..<co { for oy in 0..<oh { for ox in 0..<ow {
            var s = bs.map { Double($0[o]) } ?? 0
            for ci in 0..<c { for ky in 0..<kh { for kx in 0..<kw {
                let iy = oy * stride - pad.0 + ky, ix = ox * stride - pad.1 + kx
                if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                s += Double(xs[((ni * c + ci) * h + iy) * wd + ix]) * Double(ws[((o * c + ci) * kh + ky) * kw + kx])
            } } }
            let idx = ((ni * co + o) * oh + oy) * ow + ox
            out[idx] = s + (rs.map { Double($0[idx]) } ?? 0)
        } } } }
        return out
    }

    func testConvertersMatchFloat16AndBFloat16Rounding() {
        var g = KernelOpTests.LCG(3)
        var xs = (0..<4099).map { _ in g.next() * 70000 }   // includes overflow to inf
        xs += [0, -0, 1e-8, -3e-6, 6.1e-5, 65504, 65520, 65519.99, 1e-7, 5.96e-8, 2.98e-8, 2.99e-8, .infinity, -.infinity]
        for e in -30...20 { xs.append(Float(sign: .plus, exponent: e, significand: 1.337)) }
        var h = [UInt16](repeating: 0, count: xs.count)
        de_f32_to_f16(xs, &h, Int64(xs.count))
        for (i, x) in xs.enumerated() {
            XCTAssertEqual(h[i], Float16(x).bitPattern, "f16 of \(x)")
        }
        var nanOut = [UInt16](repeating: 0, count: 1)
        de_f32_to_f16([Float.nan], &nanOut, 1)
        XCTAssertTrue(Float16(bitPattern: nanOut[0]).isNaN)
        // bf16: round to nearest even on the top 16 bits
        var b = [UInt16](repeating: 0, count: 4)
        de_f32_to_bf16([1.0, Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3F80_8001)], &b, 4)
        XCTAssertEqual(b, [0x3F80, 0x3F80, 0x3F82, 0x3F81])
    }

    func testQ8_0BlocksRoundTripWithinHalfAStep() throws {
        let x = rand([4, 64], seed: 9, scale: 3)
        let q = try x.converted(to: .q8_0)
        XCTAssertEqual(q.elementType, .q8_0)
        XCTAssertEqual(q.storedBytes, 8 * 34)
        let back = q.widened().toArray(), xs = x.toArray()
        for blk in 0..<8 {
            let vals = xs[(blk * 32)..<(blk * 32 + 32)]
            let d = Float(Float16(vals.map { abs($0) }.max()! / 127))
            for i in (blk * 32)..<(blk * 32 + 32) {
                // half a step, plus the fp16 rounding of the scale (GGUF computes q with the f32 scale)
                XCTAssertLessThanOrEqual(abs(back[i] - xs[i]), d * (0.5 + 127.0 / 2048), "element \(i)")
            }
        }
        // a block of zeros stays zero (no division by zero)
        let z = try Tensor(shape: [32], zeroed: true).converted(to: .q8_0)
        XCTAssertEqual(z.widened().toArray(), [Float](repeating: 0, count: 32))
    }

    func testLinearWithReducedWeightsSmallAndPanelled() throws {
        // (rows, in, out): small weights are converted whole; 1152 x 1024 > 1M elements goes by panels
        for (rows, inF, out) in [(37, 64, 45), (5, 96, 3), (6, 1024, 1152)] {
            let x = rand([rows, inF], seed: UInt64(rows), scale: 1)
            let w32 = rand([out, inF], seed: UInt64(out), scale: 0.3), b = rand([out], seed: 77)
            for t in types {
                let w = try w32.converted(to: t)
                XCTAssertEqual(w.elementType, t)
                let y = try be.linear(x, w, b)
                check(y, refLinear(x.toArray(), rows: rows, w.widened().toArray(), out: out, inF: inF, b.toArray()),
                      "linear \(rows)x\(inF) -> \(out), \(t.name) weights")
                // the widened values really are the reduced ones (not the f32 originals)
                if t != .f16 || out < 100 {
                    XCTAssertNotEqual(w.widened().toArray(), w32.toArray(), "\(t.name) conversion changed nothing")
                }
            }
        }
        XCTAssertEqual(TensorStorage.transferStats.widenedWeights, 0, "an op asked for a reduced weight's f32 data")
    }

    func testLinearAccumulateAndTokenMapsWithReducedWeights() throws {
        // b transposed with beta = 1 (LinearLayer.accumulate), batched with stride 0 (linearNCHWToTokens),
        // and the weight as untransposed a (linearTokensToNCHW)
        let n = 2, c = 64, h = 5, wd = 7, out = 32
        let x = rand([n, c, h, wd], seed: 5)
        let w32 = rand([out, c], seed: 6, scale: 0.2), b = rand([out], seed: 7)
        for t in types {
            let w = try w32.converted(to: t)
            let wv = w.widened()
            let tok = try be.linearNCHWToTokens(x, w, b)                       // [n, hw, out]
            let ref = try be.linearNCHWToTokens(x, wv, b)
            check(tok, ref.toArray().map(Double.init), tol: 1e-5, "linearNCHWToTokens \(t.name)")
            let w2 = try rand([c, out], seed: 8, scale: 0.2).converted(to: t)    // [C, inner]
            let res = rand([n, c, h, wd], seed: 9)
            let back = try be.linearTokensToNCHW(tok, w2, nil, residual: res)
            let backRef = try be.linearTokensToNCHW(tok, w2.widened(), nil, residual: res)
            check(back, backRef.toArray().map(Double.init), tol: 1e-5, "linearTokensToNCHW \(t.name)")
            let layer = LinearLayer(weight: w, bias: b)
            let acc = rand([n * h * wd, out], seed: 10)
            let acc0 = acc.toArray()
            let xt = rand([n * h * wd, c], seed: 11)
            try layer.accumulate(be, xt, into: acc)
            var r = refLinear(xt.toArray(), rows: n * h * wd, wv.toArray(), out: out, inF: c, b.toArray())
            for i in 0..<r.count { r[i] += Double(acc0[i]) }
            check(acc, r, "LinearLayer.accumulate \(t.name)")
        }
    }

    func testConvPathsWithReducedWeights() throws {
        var f2 = BackendOptions.f32Compute(); f2.winograd = .f2
        var f4 = BackendOptions.f32Compute(); f4.winograd = .f4
        var off = BackendOptions.f32Compute(); off.winograd = .off
        let bf2 = try Backend(name: "cpu", options: f2), bf4 = try Backend(name: "cpu", options: f4)
        let boff = try Backend(name: "cpu", options: off)
        // (backend, n, c, h, w, co, k, stride, what): c * k * k is a multiple of 32 for q8_0
        let cases: [(Backend, Int, Int, Int, Int, Int, Int, Int, String)] = [
            (be, 2, 64, 33, 35, 24, 1, 1, "1x1 direct"),
            (be, 2, 32, 6, 5, 20, 3, 1, "3x3 im2col (small)"),
            (boff, 1, 32, 12, 10, 40, 3, 1, "3x3 im2col (Winograd off)"),
            (be, 1, 32, 21, 19, 12, 3, 2, "3x3 stride 2"),
            (bf2, 2, 32, 23, 17, 20, 3, 1, "3x3 Winograd F(2x2)"),
            (bf4, 2, 32, 22, 21, 20, 3, 1, "3x3 Winograd F(4x4)"),
            (be, 1, 128, 2, 3, 1100, 3, 1, "3x3 1100 outputs x 1152 (panelled)"),
        ]
        for (backend, n, c, h, w, co, k, s, what) in cases {
            let x = rand([n, c, h, w], seed: UInt64(c + h))
            let w32 = rand([co, c, k, k], seed: UInt64(co), scale: 0.2), b = rand([co], seed: 3)
            let p = k / 2
            let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
            let r = rand([n, co, oh, ow], seed: 4)
            for t in types {
                let wt = try w32.converted(to: t)
                let y = try backend.conv2d(x, wt, b, stride: s, padding: p, residual: r)
                let tol = what.contains("F(4x4)") ? 1e-5 : 2e-5
                check(y, refConv(x, wt.widened(), b, stride: s, pad: (p, p, p, p), res: r), tol: tol, "conv \(what), \(t.name)")
            }
        }
    }

    func testBadReducedDescriptorsAreErrors() throws {
        let raw = be.raw
        let a = rand([4, 40], seed: 1), c = Tensor(shape: [4, 4])
        let w = try Tensor(shape: [4, 40], zeroed: true).converted(to: .f16)
        var g = de_gemm_op()
        g.dtype = DE_F32; g.batch = 1; g.m = 4; g.n = 4; g.k = 40
        g.a = UnsafeRawPointer(a.data); g.lda = 40
        g.b = w.weightOperand.pointer; g.ldb = 40; g.trans_b = true; g.b_dtype = DE_Q8_0
        g.c = UnsafeMutableRawPointer(c.data); g.ldc = 4
        XCTAssertEqual(de_gemm(raw, &g), DE_ERR_INVALID)   // k = 40 is not a multiple of 32
        var msg = String(cString: de_backend_last_error(raw))
        XCTAssertTrue(msg.contains("q8_0") && msg.contains("32"), msg)
        g.b_dtype = DE_F16; g.trans_b = false
        XCTAssertEqual(de_gemm(raw, &g), DE_ERR_INVALID)   // a reduced b must be transposed
        msg = String(cString: de_backend_last_error(raw))
        XCTAssertTrue(msg.contains("b_dtype f16") && msg.contains("transposed"), msg)
        g.trans_b = true; g.b_dtype = de_dtype(rawValue: 9)
        XCTAssertEqual(de_gemm(raw, &g), DE_ERR_INVALID)
        g.b_dtype = DE_F16; g.a_dtype = DE_BF16
        XCTAssertEqual(de_gemm(raw, &g), DE_ERR_INVALID)   // both reduced
        g.a_dtype = DE_F32
        XCTAssertEqual(de_gemm(raw, &g), DE_OK)

        var cv = de_conv2d_op()
        let x = rand([1, 4, 5, 5], seed: 2), y = Tensor(shape: [1, 2, 5, 5])
        let cw = try Tensor(shape: [2, 4, 3, 3], zeroed: true).converted(to: .f16)
        cv.dtype = DE_F32; cv.n = 1; cv.c_in = 4; cv.h = 5; cv.w = 5; cv.c_out = 2; cv.kh = 3; cv.kw = 3
        cv.stride_h = 1; cv.stride_w = 1; cv.pad_t = 1; cv.pad_l = 1; cv.pad_b = 1; cv.pad_r = 1
        cv.x = UnsafeRawPointer(x.data); cv.weight = cw.weightOperand.pointer; cv.y = UnsafeMutableRawPointer(y.data)
        cv.weight_dtype = DE_Q8_0                          // 4 * 3 * 3 = 36 is not a multiple of 32
        XCTAssertEqual(de_conv2d(raw, &cv), DE_ERR_INVALID)
        msg = String(cString: de_backend_last_error(raw))
        XCTAssertTrue(msg.contains("conv2d") && msg.contains("q8_0"), msg)
        cv.weight_dtype = DE_F16
        XCTAssertEqual(de_conv2d(raw, &cv), DE_OK)
        XCTAssertTrue(de_backend_caps(raw) & UInt32(DE_CAP_WEIGHT_DTYPES) != 0)
    }

    func testWeightsDTypeNamesAndErrors() throws {
        XCTAssertEqual(try WeightsDType.parse(""), .auto)
        XCTAssertEqual(try WeightsDType.parse("Q8_0"), .q8_0)
        XCTAssertThrowsError(try WeightsDType.parse("fp8")) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("--weights-dtype") && m.contains("auto, f32, f16, bf16, q8_0"), m)
        }
    }
}

/// The CPU provider's scratch (im2col / Winograd / weight panel buffers) grows to the largest request and
/// is freed by trim (de_backend API 5), which `Backend.shrinkScratch` calls above Backend.scratchKeepBytes.
final class BackendScratchTrimTests: XCTestCase {
    func testTrimFreesScratchAndOpsStillWork() throws {
        let be = try Backend(name: "cpu", options: BackendOptions())
        XCTAssertEqual(be.scratchBytes, 0)
        let x = Tensor.full([1, 64, 48, 48], 0.5), w = Tensor.full([64, 64, 3, 3], 0.01)
        let y0 = try be.conv2d(x, w, padding: 1).toArray()
        let grown = be.scratchBytes
        XCTAssertGreaterThan(grown, 1 << 20, "a 64-channel 48x48 conv uses Winograd buffers")
        be.shrinkScratch()   // below the keep threshold: kept
        XCTAssertEqual(be.scratchBytes, grown)
        de_backend_trim(be.raw)
        XCTAssertEqual(be.scratchBytes, 0)
        XCTAssertEqual(try be.conv2d(x, w, padding: 1).toArray(), y0, "same result after the buffers were freed")
        XCTAssertEqual(be.scratchBytes, grown)
    }
}
