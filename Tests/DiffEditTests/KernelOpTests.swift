import XCTest
import Foundation
import CDiffKernels
@testable import DiffEdit

/// Every CPU-provider op against a naive reference (Double accumulation) on random inputs.
/// Errors are reported as max |y - ref| / max |ref| ("relative error" below).
final class KernelOpTests: XCTestCase {
    let be = Backend.cpu

    // MARK: helpers

    /// Deterministic uniform values in [-scale, scale) + offset.
    struct LCG {
        var s: UInt64
        init(_ seed: UInt64) { s = seed &* 6364136223846793005 &+ 1442695040888963407 }
        mutating func next() -> Float {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Double(s >> 40) / Double(1 << 24)) * 2 - 1
        }
    }

    func rand(_ shape: [Int], seed: UInt64, scale: Float = 1, offset: Float = 0) -> Tensor {
        var g = LCG(seed)
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { _ in g.next() * scale + offset })
    }

    func relErr(_ y: [Float], _ ref: [Double]) -> Double {
        XCTAssertEqual(y.count, ref.count, "element count")
        var md = 0.0, mr = 0.0
        for i in 0..<min(y.count, ref.count) {
            md = max(md, abs(Double(y[i]) - ref[i]))
            mr = max(mr, abs(ref[i]))
        }
        return md / max(mr, 1e-30)
    }

    func assertClose(_ y: Tensor, _ ref: [Double], tol: Double = 1e-5, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        let e = relErr(y.toArray(), ref)
        print("KernelOpTests \(what): max relative error \(String(format: "%.3g", e))")
        XCTAssertLessThan(e, tol, "\(what): relative error \(e)", file: file, line: line)
        XCTAssertFalse(y.toArray().contains { !$0.isFinite }, "\(what): non-finite output", file: file, line: line)
    }

    // MARK: gemm

    func refGemm(batch: Int, m: Int, n: Int, k: Int, a: [Float], lda: Int, sa: Int, ta: Bool,
                 b: [Float], ldb: Int, sb: Int, tb: Bool, c0: [Float], ldc: Int, sc: Int,
                 alpha: Double, beta: Double, bias: [Float]?) -> [Double] {
        var c = c0.map(Double.init)
        for bi in 0..<batch {
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k {
                        let av = ta ? a[bi * sa + p * lda + i] : a[bi * sa + i * lda + p]
                        let bv = tb ? b[bi * sb + j * ldb + p] : b[bi * sb + p * ldb + j]
                        s += Double(av) * Double(bv)
                    }
                    let idx = bi * sc + i * ldc + j
                    c[idx] = alpha * s + (beta == 0 ? 0 : beta * Double(c0[idx])) + (bias.map { Double($0[j]) } ?? 0)
                }
            }
        }
        return c
    }

    func testGemmTransposesBatchBiasAlphaBeta() throws {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let batch = 3, m = 13, n = 17, k = 29
            let lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 3
            let sa = (ta ? k : m) * lda + 5, sb = (tb ? n : k) * ldb, sc = m * ldc + 2
            let a = rand([batch * sa], seed: 1), b = rand([batch * sb], seed: 2)
            let c = rand([batch * sc], seed: 3), bias = rand([n], seed: 4)
            let c0 = c.toArray()
            try be.gemm(batch: batch, m: m, n: n, k: k, a: a.data, lda: lda, strideA: sa, transA: ta,
                        b: b.data, ldb: ldb, strideB: sb, transB: tb, c: c.data, ldc: ldc, strideC: sc,
                        alpha: 0.7, beta: 0.3, bias: bias.data)
            var ref = refGemm(batch: batch, m: m, n: n, k: k, a: a.toArray(), lda: lda, sa: sa, ta: ta,
                              b: b.toArray(), ldb: ldb, sb: sb, tb: tb, c0: c0, ldc: ldc, sc: sc,
                              alpha: 0.7, beta: 0.3, bias: bias.toArray())
            // untouched padding elements keep their old values
            for i in 0..<ref.count where !isInsideC(i, m: m, n: n, ldc: ldc, sc: sc, batch: batch) { ref[i] = Double(c0[i]) }
            assertClose(c, ref, "gemm ta=\(ta) tb=\(tb) batch=\(batch)")
        }
    }

    func testLargeGemmSplitOverThreads() throws {
        // Big enough (> 4 MFLOP) to be split over the pool: by rows (m >= n) and by columns (n > m).
        for (m, n, k, tb) in [(300, 70, 100, false), (40, 500, 120, true)] {
            let a = rand([m * k], seed: 5), b = rand([k * n], seed: 6), bias = rand([n], seed: 7)
            let c = Tensor.full([m * n], .nan)   // beta = 0 must not read C
            try be.gemm(m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: tb ? k : n, transB: tb,
                        c: c.data, ldc: n, alpha: 1.25, beta: 0, bias: bias.data)
            let ref = refGemm(batch: 1, m: m, n: n, k: k, a: a.toArray(), lda: k, sa: 0, ta: false,
                              b: b.toArray(), ldb: tb ? k : n, sb: 0, tb: tb, c0: [Float](repeating: 0, count: m * n),
                              ldc: n, sc: 0, alpha: 1.25, beta: 0, bias: bias.toArray())
            assertClose(c, ref, "gemm \(m)x\(n)x\(k) split over threads")
        }
    }

    private func isInsideC(_ i: Int, m: Int, n: Int, ldc: Int, sc: Int, batch: Int) -> Bool {
        let bi = i / sc, r = i % sc
        return bi < batch && r / ldc < m && r % ldc < n
    }

    func testLinearBetaZeroIgnoresGarbage() throws {
        let x = rand([5, 7, 24], seed: 10), w = rand([33, 24], seed: 11), b = rand([33], seed: 12)
        let y = try be.linear(x, w, b)
        XCTAssertEqual(y.shape, [5, 7, 33])
        let xs = x.toArray(), ws = w.toArray(), bs = b.toArray()
        var ref = [Double](repeating: 0, count: 35 * 33)
        for r in 0..<35 { for o in 0..<33 {
            var s = Double(bs[o]); for i in 0..<24 { s += Double(xs[r * 24 + i]) * Double(ws[o * 24 + i]) }
            ref[r * 33 + o] = s
        } }
        assertClose(y, ref, "linear [35x24] @ [33x24]^T + b")
    }

    // MARK: conv2d

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

    func checkConv(n: Int, c: Int, h: Int, w: Int, co: Int, kh: Int, kw: Int, stride: Int,
                   pad: (Int, Int, Int, Int), bias: Bool, residual: Bool, seed: UInt64, _ what: String,
                   on backend: Backend? = nil) throws {
        let be = backend ?? self.be
        let x = rand([n, c, h, w], seed: seed), wt = rand([co, c, kh, kw], seed: seed + 1, scale: 0.5)
        let b = bias ? rand([co], seed: seed + 2) : nil
        let oh = (h + pad.0 + pad.2 - kh) / stride + 1, ow = (w + pad.1 + pad.3 - kw) / stride + 1
        let r = residual ? rand([n, co, oh, ow], seed: seed + 3) : nil
        let y = try be.conv2d(x, wt, b, stride: stride, padding: pad, residual: r)
        XCTAssertEqual(y.shape, [n, co, oh, ow], what)
        assertClose(y, refConv(x, wt, b, stride: stride, pad: pad, res: r), what)
    }

    func testConv1x1DirectWithBiasAndResidual() throws {
        try checkConv(n: 2, c: 12, h: 9, w: 7, co: 10, kh: 1, kw: 1, stride: 1, pad: (0, 0, 0, 0),
                      bias: true, residual: true, seed: 20, "conv 1x1 +bias +residual")
        try checkConv(n: 1, c: 5, h: 4, w: 6, co: 3, kh: 1, kw: 1, stride: 1, pad: (0, 0, 0, 0),
                      bias: false, residual: false, seed: 21, "conv 1x1 plain")
    }

    func testConv3x3SmallIm2col() throws {
        try checkConv(n: 2, c: 5, h: 9, w: 11, co: 7, kh: 3, kw: 3, stride: 1, pad: (1, 1, 1, 1),
                      bias: true, residual: false, seed: 30, "conv 3x3 pad 1 (im2col)")
        try checkConv(n: 1, c: 3, h: 6, w: 8, co: 4, kh: 1, kw: 3, stride: 1, pad: (0, 2, 0, 1),
                      bias: true, residual: true, seed: 31, "conv 1x3 asymmetric padding")
    }

    func testConvRowBlocksSpanningImages() throws {
        // Blocks of 2 output rows over a batch of 3 images with 5 rows each: some blocks go straight
        // into y, others span two images and are scattered.
        var o = BackendOptions()
        o.im2colRows = 2
        let small = try Backend(name: "cpu", options: o)
        try checkConv(n: 3, c: 4, h: 10, w: 9, co: 6, kh: 3, kw: 3, stride: 2, pad: (1, 1, 0, 0),
                      bias: true, residual: true, seed: 35, "conv 3x3 stride 2, row blocks spanning images", on: small)
        try checkConv(n: 3, c: 5, h: 5, w: 4, co: 7, kh: 1, kw: 1, stride: 1, pad: (0, 0, 0, 0),
                      bias: true, residual: false, seed: 36, "conv 1x1 small plane, row blocks spanning images", on: small)
    }

    func testConv3x3WinogradSizesWithResidual() throws {
        // n * oh * ow >= 512 takes the Winograd path; odd output sizes exercise partial tiles.
        try checkConv(n: 2, c: 6, h: 23, w: 17, co: 5, kh: 3, kw: 3, stride: 1, pad: (1, 1, 1, 1),
                      bias: true, residual: true, seed: 40, "conv 3x3 Winograd 23x17 +res")
        try checkConv(n: 1, c: 7, h: 25, w: 30, co: 9, kh: 3, kw: 3, stride: 1, pad: (0, 0, 1, 1),
                      bias: true, residual: false, seed: 41, "conv 3x3 Winograd pad (0,0,1,1)")
        // Force many small tile blocks so that block boundaries fall inside tile rows.
        var o = BackendOptions()
        o.winogradTiles = 7
        try checkConv(n: 2, c: 4, h: 21, w: 19, co: 6, kh: 3, kw: 3, stride: 1, pad: (1, 2, 1, 0),
                      bias: false, residual: true, seed: 42, "conv 3x3 Winograd in blocks of 7 tiles",
                      on: try Backend(name: "cpu", options: o))
    }

    func testConv3x3WinogradF4() throws {
        // Enough 4x4 tiles (n * ceil(oh/4) * ceil(ow/4) >= 96) for F(4x4, 3x3); error ~1e-6.
        try checkConv(n: 2, c: 6, h: 40, w: 36, co: 5, kh: 3, kw: 3, stride: 1, pad: (1, 1, 1, 1),
                      bias: true, residual: true, seed: 45, "conv 3x3 Winograd F(4x4) 40x36 +res")
        // Forced F(4x4) on partial tiles, asymmetric padding and tile blocks that split rows and images.
        var o = BackendOptions()
        o.winograd = .f4
        o.winogradTiles = 7
        let f4 = try Backend(name: "cpu", options: o)
        try checkConv(n: 2, c: 6, h: 23, w: 17, co: 5, kh: 3, kw: 3, stride: 1, pad: (1, 1, 1, 1),
                      bias: true, residual: true, seed: 46, "conv 3x3 Winograd F(4x4) 23x17 blocks of 7", on: f4)
        try checkConv(n: 1, c: 7, h: 25, w: 30, co: 9, kh: 3, kw: 3, stride: 1, pad: (0, 0, 1, 1),
                      bias: false, residual: false, seed: 47, "conv 3x3 Winograd F(4x4) pad (0,0,1,1)", on: f4)
        // the same convolutions with Winograd off and with F(2x2) forced: the option reaches the op
        o.winograd = .off
        try checkConv(n: 2, c: 6, h: 23, w: 17, co: 5, kh: 3, kw: 3, stride: 1, pad: (1, 1, 1, 1),
                      bias: true, residual: true, seed: 46, "conv 3x3 Winograd off (im2col)", on: try Backend(name: "cpu", options: o))
        o.winograd = .f2
        try checkConv(n: 2, c: 6, h: 23, w: 17, co: 5, kh: 3, kw: 3, stride: 1, pad: (1, 1, 1, 1),
                      bias: true, residual: true, seed: 46, "conv 3x3 Winograd F(2x2) forced", on: try Backend(name: "cpu", options: o))
    }

    /// The Winograd transforms on AVX-512 take 16 tiles of a tile row at once where their window lies inside the
    /// image (cpu_winograd4.c w4_input16 / w4_output16, cpu_winograd.c wino_input16): planes wide enough for it (76
    /// and 141 columns: 19 and 36 F(4x4) tiles per row, 38 and 71 F(2x2) ones, with interior runs and border tiles on
    /// both sides), tile blocks that cut runs of 16 (blocks of 21 and 50 tiles), two images, asymmetric padding; and
    /// the same with 256-bit kernels (the scalar transforms throughout).
    func testConv3x3WinogradF4WidePlanes() throws {
        for simd: Int32 in [0, 256] { for mode in [BackendOptions.Winograd.f4, .f2] {
            for tiles in [0, 21, 50] {
                var o = BackendOptions()
                o.winograd = mode
                o.winogradTiles = tiles
                o.cpuSIMD = simd
                let be = try Backend(name: "cpu", options: o)
                try checkConv(n: 2, c: 5, h: 13, w: 76, co: 6, kh: 3, kw: 3, stride: 1, pad: (1, 1, 1, 1),
                              bias: true, residual: true, seed: 49, "conv 3x3 \(mode) 13x76 simd \(simd) tiles \(tiles)", on: be)
                try checkConv(n: 1, c: 3, h: 9, w: 141, co: 4, kh: 3, kw: 3, stride: 1, pad: (0, 2, 1, 0),
                              bias: false, residual: false, seed: 52, "conv 3x3 \(mode) 9x141 simd \(simd) tiles \(tiles)", on: be)
            }
        } }
    }

    /// Output channels in blocks (the transformed weights of SD 1.5's 1280-channel convs would otherwise be 210 MB
    /// of scratch): blocks of 4 of 9 channels (a partial last block), with one tile block for the whole batch (V
    /// computed once and reused) and with several (V recomputed per channel block), in F(2x2) and F(4x4).
    func testConv3x3WinogradOutputChannelBlocks() throws {
        for (mode, name) in [(BackendOptions.Winograd.f2, "F(2x2)"), (.f4, "F(4x4)")] {
            for tiles in [0, 7] {
                var o = BackendOptions()
                o.winograd = mode
                o.winogradChannels = 4
                o.winogradTiles = tiles
                try checkConv(n: 2, c: 6, h: 23, w: 17, co: 9, kh: 3, kw: 3, stride: 1, pad: (1, 1, 1, 1),
                              bias: true, residual: true, seed: 48, "conv 3x3 Winograd \(name) channel blocks of 4, tiles \(tiles)",
                              on: try Backend(name: "cpu", options: o))
            }
        }
    }

    func testConvStride2Padding0011() throws {
        // The VAE encoder's downsampler: pad (top 0, left 0, bottom 1, right 1), stride 2.
        try checkConv(n: 2, c: 6, h: 16, w: 12, co: 8, kh: 3, kw: 3, stride: 2, pad: (0, 0, 1, 1),
                      bias: true, residual: false, seed: 50, "conv 3x3 stride 2 pad (0,0,1,1)")
        try checkConv(n: 1, c: 4, h: 15, w: 13, co: 5, kh: 3, kw: 3, stride: 2, pad: (1, 1, 1, 1),
                      bias: true, residual: true, seed: 51, "conv 3x3 stride 2 pad 1 odd size +res")
        // Large enough for the threaded sgemm split (im2col path, > 4 MFLOP per image).
        try checkConv(n: 1, c: 16, h: 40, w: 40, co: 48, kh: 3, kw: 3, stride: 2, pad: (0, 0, 1, 1),
                      bias: true, residual: true, seed: 52, "conv 3x3 stride 2 40x40 16->48 (threaded)")
    }

    // MARK: normalisation

    func refGroupNorm(_ x: Tensor, groups: Int, gamma: Tensor?, beta: Tensor?, eps: Double, silu: Bool) -> [Double] {
        let n = x.shape[0], c = x.shape[1], hw = x.count / (n * c), cpg = c / groups
        let xs = x.toArray(), gs = gamma?.toArray(), bs = beta?.toArray()
        var out = [Double](repeating: 0, count: xs.count)
        for ni in 0..<n { for g in 0..<groups {
            let base = (ni * c + g * cpg) * hw, len = cpg * hw
            var mean = 0.0; for i in 0..<len { mean += Double(xs[base + i]) }; mean /= Double(len)
            var v = 0.0; for i in 0..<len { let d = Double(xs[base + i]) - mean; v += d * d }; v /= Double(len)
            for i in 0..<len {
                let ch = g * cpg + i / hw
                var z = (Double(xs[base + i]) - mean) / (v + eps).squareRoot()
                z = z * (gs.map { Double($0[ch]) } ?? 1) + (bs.map { Double($0[ch]) } ?? 0)
                out[base + i] = silu ? z / (1 + exp(-z)) : z
            }
        } }
        return out
    }

    func testGroupNormWithAndWithoutSiLU() throws {
        // Large offset: a one-pass E[x^2] - E[x]^2 in float would lose most digits here.
        let x = rand([2, 12, 5, 7], seed: 60, scale: 3, offset: 100)
        let g = rand([12], seed: 61), b = rand([12], seed: 62)
        let y = try be.groupNorm(x, groups: 4, gamma: g, beta: b, eps: 1e-5, silu: true)
        assertClose(y, refGroupNorm(x, groups: 4, gamma: g, beta: b, eps: 1e-5, silu: true), tol: 5e-5, "group norm + silu (offset 100)")
        let y2 = try be.groupNorm(x, groups: 3, gamma: nil, beta: nil, eps: 1e-6, silu: false)
        assertClose(y2, refGroupNorm(x, groups: 3, gamma: nil, beta: nil, eps: 1e-6, silu: false), tol: 5e-5, "group norm no affine")
        // in place
        let x3 = rand([1, 32, 4, 4], seed: 63)
        let ref3 = refGroupNorm(x3, groups: 32, gamma: nil, beta: nil, eps: 1e-5, silu: true)
        let y3 = try be.groupNorm(x3, groups: 32, gamma: nil, beta: nil, eps: 1e-5, silu: true, inPlace: true)
        XCTAssertTrue(y3 === x3)
        assertClose(y3, ref3, tol: 5e-5, "group norm in place, 1 channel per group")
    }

    func testLayerNorm() throws {
        let x = rand([3, 5, 40], seed: 70, scale: 2, offset: 10)
        let g = rand([40], seed: 71), b = rand([40], seed: 72)
        let xs = x.toArray(), gs = g.toArray(), bs = b.toArray()
        var ref = [Double](repeating: 0, count: xs.count)
        for r in 0..<15 {
            var m = 0.0; for i in 0..<40 { m += Double(xs[r * 40 + i]) }; m /= 40
            var v = 0.0; for i in 0..<40 { let d = Double(xs[r * 40 + i]) - m; v += d * d }; v /= 40
            for i in 0..<40 { ref[r * 40 + i] = (Double(xs[r * 40 + i]) - m) / (v + 1e-5).squareRoot() * Double(gs[i]) + Double(bs[i]) }
        }
        assertClose(try be.layerNorm(x, gamma: g, beta: b, eps: 1e-5), ref, tol: 5e-5, "layer norm")
    }

    func testSoftmaxWithScale() throws {
        for scale: Float in [0.37, -1.5] {
            let x = rand([6, 77], seed: 80, scale: 8)
            let xs = x.toArray()
            var ref = [Double](repeating: 0, count: xs.count)
            for r in 0..<6 {
                let row = (0..<77).map { Double(scale) * Double(xs[r * 77 + $0]) }
                let mx = row.max()!
                let e = row.map { exp($0 - mx) }, s = e.reduce(0, +)
                for i in 0..<77 { ref[r * 77 + i] = e[i] / s }
            }
            assertClose(try be.softmax(x, scale: scale), ref, "softmax scale \(scale)")
        }
    }

    // MARK: attention

    /// Reference on [B, L, H*D] tensors.
    func refAttention(q: Tensor, k: Tensor, v: Tensor, heads: Int, scale: Double) -> [Double] {
        let b = q.shape[0], lq = q.shape[1], inner = q.shape[2], lk = k.shape[1], d = inner / heads
        let qs = q.toArray(), ks = k.toArray(), vs = v.toArray()
        var out = [Double](repeating: 0, count: qs.count)
        var s = [Double](repeating: 0, count: lk)
        for bi in 0..<b { for h in 0..<heads { for i in 0..<lq {
            var mx = -Double.infinity
            for j in 0..<lk {
                var a = 0.0
                for e in 0..<d { a += Double(qs[(bi * lq + i) * inner + h * d + e]) * Double(ks[(bi * lk + j) * inner + h * d + e]) }
                s[j] = a * scale; mx = max(mx, s[j])
            }
            var l = 0.0
            for j in 0..<lk { s[j] = exp(s[j] - mx); l += s[j] }
            for e in 0..<d {
                var a = 0.0
                for j in 0..<lk { a += s[j] * Double(vs[(bi * lk + j) * inner + h * d + e]) }
                out[(bi * lq + i) * inner + h * d + e] = a / l
            }
        } } }
        return out
    }

    /// The CPU provider's attention has two builds (cpu_attention.c): AVX-512 where the CPU has it (the default
    /// backend) and the portable one (cpuSIMD 256); every attention test runs both. On a CPU without AVX-512 the
    /// two backends run the same code.
    lazy var attentionBackends: [(String, Backend)] = {
        var o = BackendOptions()
        o.cpuSIMD = 256
        return [("widest SIMD", be), ("AVX2 only", try! Backend(name: "cpu", options: o))]
    }()

    func testAttentionCrossKV77() throws {
        let q = rand([2, 100, 3 * 40], seed: 90), k = rand([2, 77, 3 * 40], seed: 91), v = rand([2, 77, 3 * 40], seed: 92)
        let ref = refAttention(q: q, k: k, v: v, heads: 3, scale: 1 / 40.0.squareRoot())
        for (name, b) in attentionBackends {
            assertClose(try b.attention(q: q, k: k, v: v, heads: 3), ref, "attention q 100 kv 77, [B, L, H*D] strides (\(name))")
        }
    }

    func testAttentionOddLengthsAndLargeScores() throws {
        // q_len / kv_len not multiples of any tile size, several key blocks, large logits (online softmax rescaling).
        let q = rand([1, 131, 2 * 24], seed: 93, scale: 3), k = rand([1, 603, 2 * 24], seed: 94, scale: 3)
        let v = rand([1, 603, 2 * 24], seed: 95)
        let ref = refAttention(q: q, k: k, v: v, heads: 2, scale: 0.9)
        let q1 = rand([2, 1, 5], seed: 96), k1 = rand([2, 3, 5], seed: 97), v1 = rand([2, 3, 5], seed: 98)
        let ref1 = refAttention(q: q1, k: k1, v: v1, heads: 1, scale: 1 / 5.0.squareRoot())
        for (name, b) in attentionBackends {
            assertClose(try b.attention(q: q, k: k, v: v, heads: 2, scale: 0.9), ref, "attention q 131 kv 603 D 24, big logits (\(name))")
            assertClose(try b.attention(q: q1, k: k1, v: v1, heads: 1), ref1, "attention q 1 kv 3 D 5 (\(name))")
        }
    }

    func testAttentionSDSelfAttentionShapeBothBuilds() throws {
        // SD 1.5's head_dim 40 with several query and key blocks and a partial last block of each (q 300 = 2 x 128
        // + 44, kv 290), [B, L, H*D] strides with 5 heads: both builds against the reference and each other.
        let q = rand([1, 300, 5 * 40], seed: 120, scale: 2), k = rand([1, 290, 5 * 40], seed: 121, scale: 2)
        let v = rand([1, 290, 5 * 40], seed: 122)
        let ref = refAttention(q: q, k: k, v: v, heads: 5, scale: 1 / 40.0.squareRoot())
        var outs: [[Float]] = []
        for (name, b) in attentionBackends {
            let o = try b.attention(q: q, k: k, v: v, heads: 5)
            assertClose(o, ref, tol: 1e-5, "attention q 300 kv 290 D 40 (\(name))")
            outs.append(o.toArray())
        }
        let d = zip(outs[0], outs[1]).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(d, 1e-5, "the two builds agree to f32 rounding (max |diff| \(d))")
    }

    /// compute i16 (cpu_i16.c) on AVX512-VNNI CPUs: both attention GEMMs in 16-bit integer terms (K quantized over the
    /// head dimension in blocks of D up to 64 or of a divisor of it, the block's queries likewise, V^T and the
    /// probabilities per 64 keys). head_dim 40, 80 (blocks of 40), 24 and 130 (blocks of 64, zero padded); odd lengths,
    /// several key blocks with a partial last one, cross-attention's 77 keys, two batch items; against the double
    /// reference at 3e-3 and away from the f32 kernel (it ran). An odd head_dim stays on the f32 kernel bit for bit.
    func testAttentionComputeI16() throws {
        var o = BackendOptions()
        o.compute = .i16
        let b = try Backend(name: "cpu", options: o)
        guard b.computesInI16 else { throw XCTSkip("no AVX512-VNNI on this CPU: compute i16 stays f32") }
        var f32o = BackendOptions()
        f32o.compute = .f32
        let f32 = try Backend(name: "cpu", options: f32o)
        for (lq, lk, h, d, seed) in [(300, 290, 5, 40, 130), (131, 603, 2, 80, 131), (100, 77, 3, 24, 132), (70, 200, 1, 130, 133)] {
            let q = rand([2, lq, h * d], seed: UInt64(seed), scale: 2), k = rand([2, lk, h * d], seed: UInt64(seed + 10), scale: 2)
            let v = rand([2, lk, h * d], seed: UInt64(seed + 20))
            let ref = refAttention(q: q, k: k, v: v, heads: h, scale: 1 / Double(d).squareRoot())
            let y = try b.attention(q: q, k: k, v: v, heads: h)
            assertClose(y, ref, tol: 3e-3, "attention i16 q \(lq) kv \(lk) heads \(h) D \(d)")
            let yf = try f32.attention(q: q, k: k, v: v, heads: h).toArray()
            let moved = zip(y.toArray(), yf).map { abs($0 - $1) }.max()!
            XCTAssertGreaterThan(moved, 1e-6, "attention i16 D \(d): the output equals the f32 kernel's (did i16 run?)")
        }
        let q1 = rand([2, 7, 5], seed: 140), k1 = rand([2, 9, 5], seed: 141), v1 = rand([2, 9, 5], seed: 142)
        XCTAssertEqual(try b.attention(q: q1, k: k1, v: v1, heads: 1).toArray(), try f32.attention(q: q1, k: k1, v: v1, heads: 1).toArray(),
                       "odd head_dim: the f32 kernel")
    }

    func testAttentionHeadMajorStridesRawDescriptor() throws {
        // q/k/v/o as [B, H, L, D] (stride_b = H*L*D, stride_h = L*D, stride_t = D), odd head_dim 7.
        let b = 2, h = 3, lq = 19, lk = 45, d = 7
        let qh = rand([b, h, lq, d], seed: 100), kh = rand([b, h, lk, d], seed: 101), vh = rand([b, h, lk, d], seed: 102)
        let o = Tensor(shape: [b, h, lq, d])
        var op = de_attention_op()
        op.dtype = DE_F32; op.batch = Int32(b); op.heads = Int32(h); op.q_len = Int32(lq); op.kv_len = Int32(lk); op.head_dim = Int32(d)
        op.scale = 0.4
        op.q = UnsafeRawPointer(qh.data); op.q_sb = Int64(h * lq * d); op.q_sh = Int64(lq * d); op.q_st = Int64(d)
        op.k = UnsafeRawPointer(kh.data); op.k_sb = Int64(h * lk * d); op.k_sh = Int64(lk * d); op.k_st = Int64(d)
        op.v = UnsafeRawPointer(vh.data); op.v_sb = Int64(h * lk * d); op.v_sh = Int64(lk * d); op.v_st = Int64(d)
        op.o = UnsafeMutableRawPointer(o.data); op.o_sb = Int64(h * lq * d); op.o_sh = Int64(lq * d); op.o_st = Int64(d)
        try be.attention(&op)
        // Reference via the [B, L, H*D] reference on transposed copies.
        func toBLHD(_ t: Tensor, _ l: Int) -> Tensor {
            let s = t.toArray(); var r = [Float](repeating: 0, count: s.count)
            for bi in 0..<b { for hi in 0..<h { for li in 0..<l { for di in 0..<d {
                r[(bi * l + li) * h * d + hi * d + di] = s[((bi * h + hi) * l + li) * d + di]
            } } } }
            return Tensor(shape: [b, l, h * d], values: r)
        }
        let ref = refAttention(q: toBLHD(qh, lq), k: toBLHD(kh, lk), v: toBLHD(vh, lk), heads: h, scale: 0.4)
        let got = toBLHD(o, lq)
        assertClose(got, ref, "attention [B, H, L, D] strides, D 7")
    }

    // MARK: elementwise

    func testUnaryKinds() throws {
        let x = rand([4000], seed: 110, scale: 9)
        let xs = x.toArray().map(Double.init)
        let cases: [(de_unary_kind, String, (Double) -> Double)] = [
            (DE_UNARY_SILU, "silu", { $0 / (1 + exp(-$0)) }),
            (DE_UNARY_GELU, "gelu(erf)", { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }),
            (DE_UNARY_GELU_TANH, "gelu(tanh)", { 0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }),
            (DE_UNARY_QUICK_GELU, "quick_gelu", { $0 / (1 + exp(-1.702 * $0)) }),
            (DE_UNARY_SCALE, "scale", { 1.5 * $0 - 0.25 }),
        ]
        for (kind, name, f) in cases {
            let y = try be.unary(kind, x, alpha: 1.5, beta: -0.25)
            assertClose(y, xs.map(f), tol: 2e-6, "unary \(name)")
        }
        let y = try be.silu(x.copy(), inPlace: true)
        assertClose(y, xs.map { $0 / (1 + exp(-$0)) }, tol: 2e-6, "silu in place")
    }

    func testGEGLU() throws {
        let x = rand([3, 4, 2 * 10], seed: 120, scale: 4)
        let y = try be.geglu(x)
        XCTAssertEqual(y.shape, [3, 4, 10])
        let xs = x.toArray()
        var ref = [Double](repeating: 0, count: 120)
        for r in 0..<12 { for i in 0..<10 {
            let a = Double(xs[r * 20 + i]), g = Double(xs[r * 20 + 10 + i])
            ref[r * 10 + i] = a * 0.5 * g * (1 + erf(g / 2.0.squareRoot()))
        } }
        assertClose(y, ref, tol: 2e-6, "geglu")
    }

    func testBinaryBroadcastRule() throws {
        let a = rand([2, 3, 5, 4], seed: 130)
        let asArr = a.toArray().map(Double.init)
        // plain elementwise
        let b = rand([2, 3, 5, 4], seed: 131)
        let bs = b.toArray().map(Double.init)
        assertClose(try be.binary(DE_BINARY_SUB, a, b), zip(asArr, bs).map { $0 - $1 }, tol: 1e-7, "binary sub elementwise")
        // per-channel (b_len = C, b_inner = H*W): y[i] = a[i] * b[(i / 20) % 3]
        let bc = rand([3], seed: 132)
        let bcs = bc.toArray().map(Double.init)
        assertClose(try be.binary(DE_BINARY_MUL, a, bc, bInner: 20), asArr.indices.map { asArr[$0] * bcs[($0 / 20) % 3] }, tol: 1e-7, "binary mul per channel")
        // per (n, c) (time embedding): b_len = N*C
        let bnc = rand([2, 3], seed: 133)
        let bncs = bnc.toArray().map(Double.init)
        assertClose(try be.addPerChannel(a, bnc), asArr.indices.map { asArr[$0] + bncs[($0 / 20) % 6] }, tol: 1e-7, "binary add per (n, c)")
        // row broadcast (b_inner = 1, b_len = last dim)
        let br = rand([4], seed: 134)
        let brs = br.toArray().map(Double.init)
        let y = try be.binary(DE_BINARY_ADD, a, br, inPlace: true)
        XCTAssertTrue(y === a)
        assertClose(y, asArr.indices.map { asArr[$0] + brs[$0 % 4] }, tol: 1e-7, "binary add row broadcast in place")
    }

    func testUpsampleNearest() throws {
        for f in [2, 3] {
            let x = rand([2, 3, 4, 5], seed: 140)
            let y = try be.upsampleNearest(x, factor: f)
            XCTAssertEqual(y.shape, [2, 3, 4 * f, 5 * f])
            let xs = x.toArray()
            var ref = [Double](repeating: 0, count: y.count)
            for p in 0..<6 { for oy in 0..<(4 * f) { for ox in 0..<(5 * f) {
                ref[(p * 4 * f + oy) * 5 * f + ox] = Double(xs[(p * 4 + oy / f) * 5 + ox / f])
            } } }
            XCTAssertEqual(y.toArray().map(Double.init), ref, "upsample x\(f) exact")
        }
    }

    func testTransposeBatched() throws {
        let x = rand([3, 37, 70], seed: 150)
        let y = try be.transpose(x, batch: 3, rows: 37, cols: 70)
        XCTAssertEqual(y.shape, [3, 70, 37])
        let xs = x.toArray(), ys = y.toArray()
        var ok = true
        for b in 0..<3 { for r in 0..<37 { for c in 0..<70 where ys[(b * 70 + c) * 37 + r] != xs[(b * 37 + r) * 70 + c] { ok = false } } }
        XCTAssertTrue(ok, "transpose mismatch")
        let back = try be.fromTokens(try be.toTokens(rand([2, 5, 3, 4], seed: 151)), height: 3, width: 4)
        XCTAssertEqual(back.toArray(), rand([2, 5, 3, 4], seed: 151).toArray())
    }

    // MARK: conversions

    func testHalfAndBFloat16Conversion() {
        let h: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00, 0x3555, 0x0400]
        var out = [Float](repeating: -1, count: h.count)
        de_f16_to_f32(h, &out, Int64(h.count))
        XCTAssertEqual(out[0], 1); XCTAssertEqual(out[1], -2); XCTAssertEqual(out[2], 65504)
        XCTAssertEqual(out[3], 5.9604645e-8); XCTAssertEqual(out[4], 0); XCTAssertTrue(out[4].sign == .minus)
        XCTAssertEqual(out[5], .infinity); XCTAssertEqual(out[6], 0.33325195, accuracy: 1e-8); XCTAssertEqual(out[7], 6.1035156e-5)
        // Large input goes through the F16C / threaded path: compare with Swift's Float16.
        var g = LCG(7)
        let big = (0..<(1 << 20) + 5).map { _ in Float16(g.next() * 1000).bitPattern }
        var bigOut = [Float](repeating: 0, count: big.count)
        de_f16_to_f32(big, &bigOut, Int64(big.count))
        XCTAssertTrue(zip(big, bigOut).allSatisfy { Float(Float16(bitPattern: $0)) == $1 }, "f16 bulk conversion")
        let bf: [UInt16] = [0x3F80, 0xC040, 0x0000, 0x7F80, 0x3E20]
        var bout = [Float](repeating: -1, count: bf.count)
        de_bf16_to_f32(bf, &bout, Int64(bf.count))
        XCTAssertEqual(bout, [1, -3, 0, .infinity, 0.15625])
    }

    // MARK: lincomb

    /// Host reference with the op's exact evaluation order, in Float (FMA contraction may differ in the last bit).
    func refLincomb(_ terms: [(Float, [Float])]) -> [Double] {
        (0..<terms[0].1.count).map { i in
            var acc = terms[0].0 * terms[0].1[i]
            for t in terms.dropFirst() { acc = acc + t.0 * t.1[i] }
            return Double(acc)
        }
    }

    func testLincombOneToFourTermsAgainstHostLoop() throws {
        // big enough to be split over the pool (EW_GRAIN = 65536), odd so the tail is exercised
        let n = 3 * 65536 + 17
        let xs = (0..<4).map { rand([n], seed: 300 + UInt64($0), scale: 3) }
        let cs: [Float] = [0.7, -1.3, 2.5, 0.125]
        for terms in 1...4 {
            let t = (0..<terms).map { (cs[$0], xs[$0]) }
            let y = try be.lincomb(t)
            XCTAssertEqual(y.shape, [n])
            assertClose(y, refLincomb(t.map { ($0.0, $0.1.toArray()) }), tol: 1e-6, "lincomb \(terms) terms")
        }
        // a shaped first term gives the output shape; other terms only need the same element count
        let a = rand([2, 3, 4], seed: 310), b = rand([24], seed: 311)
        let y = try be.lincomb([(1, a), (-1, b)])
        XCTAssertEqual(y.shape, [2, 3, 4])
        assertClose(y, refLincomb([(1, a.toArray()), (-1, b.toArray())]), tol: 1e-6, "lincomb shapes")
        // the same tensor twice
        let twice = try be.lincomb([(2, a), (3, a)])
        assertClose(twice, a.toArray().map { Double(2 * $0 + 3 * $0) }, tol: 1e-6, "lincomb same tensor twice")
    }

    func testLincombIntoAliasesATerm() throws {
        let n = 1000
        for slot in 0..<3 {
            let xs = (0..<3).map { rand([n], seed: 320 + UInt64($0)) }
            let t: [(Float, Tensor)] = [(0.5, xs[0]), (2, xs[1]), (-0.25, xs[2])]
            let ref = refLincomb(t.map { ($0.0, $0.1.toArray()) })
            let y = try be.lincomb(t, into: xs[slot])
            XCTAssertTrue(y === xs[slot], "into returns the destination")
            assertClose(xs[slot], ref, tol: 1e-6, "lincomb into term \(slot)")
        }
        // into a separate tensor
        let a = rand([n], seed: 330), out = Tensor(shape: [n])
        _ = try be.lincomb([(3, a)], into: out)
        XCTAssertEqual(out.toArray(), a.toArray().map { 3 * $0 }, "lincomb into a new tensor")
        // empty tensors are fine
        XCTAssertEqual(try be.lincomb([(1, Tensor(shape: [0]))]).count, 0)
    }

    func testLincombOnStagedBackendMatchesPlain() throws {
        let staged = try Backend(name: "cpu", threads: 2, staged: true)
        let a = rand([4, 4, 8, 8], seed: 340), b = rand([4, 4, 8, 8], seed: 341)
        let plain = try be.lincomb([(0.9, a), (-0.1, b)])
        _ = try be.lincomb([(1, plain), (0.5, a), (-0.75, b), (2, plain)], into: plain)
        let da = try staged.onDevice(a), db = try staged.onDevice(b)
        let y = try staged.lincomb([(0.9, da), (-0.1, db)])
        XCTAssertTrue(y.isOnDevice, "a resident backend writes lincomb into backend memory")
        _ = try staged.lincomb([(1, y), (0.5, da), (-0.75, db), (2, y)], into: y)
        XCTAssertTrue(y.isOnDevice, "in place on the device")
        XCTAssertTrue(y.toArray() == plain.toArray(), "same code on the staged and the plain CPU backend")
    }

    func testLincombBadDescriptorRejected() throws {
        let raw = be.raw
        let x = Tensor(shape: [8]), y = Tensor(shape: [8])
        func op(terms: Int32 = 2, n: Int64 = 8) -> de_lincomb_op {
            var o = de_lincomb_op()
            o.dtype = DE_F32; o.n = n; o.terms = terms
            o.c = (1, 1, 1, 1)
            o.x = (UnsafeRawPointer(x.data), UnsafeRawPointer(x.data), nil, nil)
            o.y = UnsafeMutableRawPointer(y.data)
            return o
        }
        func expectInvalid(_ o: de_lincomb_op, _ field: String, file: StaticString = #filePath, line: UInt = #line) {
            var o = o
            XCTAssertEqual(de_lincomb(raw, &o), DE_ERR_INVALID, field, file: file, line: line)
            let msg = String(cString: de_backend_last_error(raw))
            XCTAssertTrue(msg.contains("lincomb") && msg.contains(field), "\(field): \(msg)", file: file, line: line)
        }
        expectInvalid(op(terms: 0), "terms")
        expectInvalid(op(terms: 5), "terms")
        expectInvalid(op(n: -1), "n")
        expectInvalid(op(terms: 3), "x[2]")
        var noY = op(); noY.y = nil
        expectInvalid(noY, "y")
        var noX0 = op(); noX0.x.0 = nil
        expectInvalid(noX0, "x[0]")
        var overlap = op(n: 4); overlap.y = UnsafeMutableRawPointer(x.data + 2)
        expectInvalid(overlap, "overlaps")
        XCTAssertEqual(de_lincomb(raw, nil), DE_ERR_INVALID)
        var f16 = op(); f16.dtype = DE_F16
        XCTAssertEqual(de_lincomb(raw, &f16), DE_ERR_UNSUPPORTED)
        // a later failure reports its own message, not the registry's stale one
        var u = de_unary_op()
        u.dtype = DE_F16; u.kind = DE_UNARY_SILU; u.n = 4
        expectInvalid(op(terms: 0), "terms")
        XCTAssertEqual(de_unary(raw, &u), DE_ERR_UNSUPPORTED)
        XCTAssertTrue(String(cString: de_backend_last_error(raw)).contains("unary"))
        var ok = op()
        XCTAssertEqual(de_lincomb(raw, &ok), DE_OK)
    }

    // MARK: invalid descriptors

    func testInvalidDescriptorsReturnErrorsNotCrashes() throws {
        let raw = be.raw
        var g = de_gemm_op()
        g.dtype = DE_F32; g.batch = 1; g.m = 0; g.n = 4; g.k = 4
        XCTAssertEqual(de_gemm(raw, &g), DE_ERR_INVALID)
        XCTAssertTrue(String(cString: de_backend_last_error(raw)).contains("gemm"), String(cString: de_backend_last_error(raw)))
        g.m = 4  // now a/b/c are NULL
        XCTAssertEqual(de_gemm(raw, &g), DE_ERR_INVALID)
        XCTAssertTrue(String(cString: de_backend_last_error(raw)).contains("a is NULL"))

        var c = de_conv2d_op()
        c.dtype = DE_F32; c.n = 1; c.c_in = 2; c.h = 4; c.w = 4; c.c_out = 2; c.kh = 3; c.kw = 3; c.stride_h = 0; c.stride_w = 1
        XCTAssertEqual(de_conv2d(raw, &c), DE_ERR_INVALID)
        let msg = String(cString: de_backend_last_error(raw))
        XCTAssertTrue(msg.contains("conv2d") && msg.contains("stride"), msg)

        var a = de_attention_op()
        a.dtype = DE_F32; a.batch = 1; a.heads = 1; a.q_len = 4; a.kv_len = 4; a.head_dim = -3
        XCTAssertEqual(de_attention(raw, &a), DE_ERR_INVALID)
        XCTAssertTrue(String(cString: de_backend_last_error(raw)).contains("head_dim"))

        var n = de_group_norm_op()
        n.dtype = DE_F32; n.n = 1; n.c = 10; n.hw = 4; n.groups = 3
        XCTAssertEqual(de_group_norm(raw, &n), DE_ERR_INVALID)
        XCTAssertTrue(String(cString: de_backend_last_error(raw)).contains("groups"))

        var u = de_unary_op()
        u.dtype = DE_F16; u.kind = DE_UNARY_SILU; u.n = 4
        XCTAssertEqual(de_unary(raw, &u), DE_ERR_UNSUPPORTED)
        XCTAssertTrue(String(cString: de_backend_last_error(raw)).contains("f16"))

        XCTAssertEqual(de_softmax(raw, nil), DE_ERR_INVALID)

        // Through the Swift wrapper: an error is thrown, not a trap.
        let x = Tensor(shape: [1, 1, 1, 1])
        XCTAssertThrowsError(try be.upsampleNearest(x, factor: 0))
    }

    func testConcurrentCallersOnOneBackendAreSerialisedSafely() throws {
        // Two contexts may share a model (and its backend): ops from several threads must not race
        // on the backend's pool or scratch buffers.
        let q = rand([2, 150, 64], seed: 170), k = rand([2, 77, 64], seed: 171), v = rand([2, 77, 64], seed: 172)
        let expected = try be.attention(q: q, k: k, v: v, heads: 2).toArray()
        let x = rand([2, 8, 20, 20], seed: 173), w = rand([8, 8, 3, 3], seed: 174)
        let expectedConv = try be.conv2d(x, w, nil, padding: 1).toArray()
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var ok = [Bool](repeating: false, count: 8)
        }
        let results = Results()
        let backend = be
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let ok: Bool
            if i % 2 == 0 { ok = (try? backend.attention(q: q, k: k, v: v, heads: 2).toArray()) == expected }
            else { ok = (try? backend.conv2d(x, w, nil, padding: 1).toArray()) == expectedConv }
            results.lock.lock(); results.ok[i] = ok; results.lock.unlock()
        }
        XCTAssertEqual(results.ok, [Bool](repeating: true, count: 8))
    }

    func testBackendSlotsAndName() {
        let raw = be.raw
        XCTAssertEqual(String(cString: de_backend_name(raw)), "cpu")
        XCTAssertEqual(raw.pointee.api_version, DE_BACKEND_API_VERSION)
        let i = raw.pointee.iface
        XCTAssertNotNil(i.gemm); XCTAssertNotNil(i.conv2d); XCTAssertNotNil(i.group_norm); XCTAssertNotNil(i.layer_norm)
        XCTAssertNotNil(i.softmax); XCTAssertNotNil(i.attention); XCTAssertNotNil(i.unary); XCTAssertNotNil(i.geglu)
        XCTAssertNotNil(i.binary); XCTAssertNotNil(i.upsample); XCTAssertNotNil(i.transpose); XCTAssertNotNil(i.alloc)
        XCTAssertNotNil(i.copy); XCTAssertNotNil(i.lincomb)
        // A second backend with a fixed thread count gives the same numbers as the shared one.
        guard let b1 = de_backend_cpu_init(1) else { return XCTFail("cpu init") }
        defer { de_backend_free(b1) }
        let x = rand([64], seed: 160, scale: 5)
        let y = Tensor(shape: [64])
        var op = de_unary_op()
        op.dtype = DE_F32; op.kind = DE_UNARY_GELU; op.n = 64; op.x = UnsafeRawPointer(x.data); op.y = UnsafeMutableRawPointer(y.data)
        XCTAssertEqual(de_unary(b1, &op), DE_OK)
        XCTAssertEqual(y.toArray(), try be.gelu(x).toArray())
    }
}
