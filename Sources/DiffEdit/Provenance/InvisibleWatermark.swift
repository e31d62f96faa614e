/// The invisible watermark: a 48-bit message in the chroma of an image, written so that the decoder people
/// already run reads it — the `invisible-watermark` Python package (PyPI invisible-watermark, module
/// `imwatermark`) with its `dwtDctSvd` method:
///
///     imwatermark.WatermarkDecoder('bits', 48).decode(bgr, 'dwtDctSvd')
///
/// and the message is the 48 bits diffusers' SDXL pipelines embed (`WATERMARK_MESSAGE` in
/// diffusers/pipelines/stable_diffusion_xl/watermark.py). That decoder:
///   1. converts the uint8 BGR image to YUV (OpenCV's 8-bit BT.601 YUV, fixed point with 14 fraction bits);
///   2. takes the U plane over the top-left rows//4*4 x cols//4*4 pixels and its one-level 2-D Haar
///      approximation cA (pywt.dwt2 'haar': cA[i, j] = the 2x2 pixel sum / 2), [rows//2', cols//2'];
///   3. cuts cA into 4x4 blocks in row-major order; block n carries bit n % 48;
///   4. per block: the largest singular value s0 of the block's orthonormal 2-D DCT; the block votes 1 when
///      s0 mod 36 > 18;
///   5. a bit is 1 when the mean vote of its blocks is > 127/255.
/// The encoder here moves each block's s0 to the middle of its bit's half of the 36-wide cell s0 is in
/// (s0' = (floor(s0 / 36) + 0.25 + 0.5 * bit) * 36, the package's own rule) by adding (s0' - s0) * u0 v0^T
/// to the cA block (u0, v0: the top singular vectors), which changes that singular value alone; where the
/// picture's colours cannot move that way (pure saturated colours), to the same bit in the neighbouring cell. The orthonormal DCT leaves singular values unchanged (DCT(B) = C B C^T with C orthogonal) and maps
/// u0 v0^T to C u0 (C v0)^T, so editing s0 in the DCT domain and transforming back is exactly this edit in the
/// cA domain: the DCT is not computed. The package's own encoder also swaps the horizontal and vertical detail
/// bands when it transforms back (pywt.idwt2((ca, (v, h, d)))), which costs picture quality and no
/// decoder reads; here only cA changes: each pixel of a 2x2 cell changes U by dcA / 2.
/// A change of U alone (Y and V kept) is dB = dU / 0.492, dG = -0.114 / 0.587 * dB, dR = 0 (OpenCV's
/// U2B = 2.032, U2G = -0.395). Where B would leave [0, 255] the rest of dU is taken from R and G (lowering or
/// raising Y: U = 0.492 (B - Y)). After rounding to 8 bits the blocks are measured again and corrected
/// (at most 3 passes), so rounding and clipping do not move a block off its target.
///
/// Images under 256 pixels in either side are not marked (as diffusers, whose encoder needs 256x256).
/// Every picture measured carries the mark, flat pure colours included (docs/provenance.md, measured with
/// tools/watermark_check.py); a picture where U can move in neither direction (none among 8-bit RGB colours
/// over a whole 8x8 block with room in B or in R and G) could not.
public enum InvisibleWatermark {
    /// diffusers' SDXL watermark message, 0b101100111110110010010000011110111011000110011110, first bit first.
    public static let message: [UInt8] = {
        let v: UInt64 = 0b101100111110110010010000011110111011000110011110
        return (0..<48).map { UInt8((v >> UInt64(47 - $0)) & 1) }
    }()
    /// Smallest side that is marked.
    public static let minSide = 256
    /// The package's dwtDctSvd quantisation step for the U channel (scales = [0, 36, 0]).
    static let scale = 36.0

    /// Whether an image of this size is marked.
    public static func canMark(width: Int, height: Int) -> Bool { width >= minSide && height >= minSide }

    /// The image with `bits` embedded (diffusers' message by default); images under `minSide` unchanged.
    public static func embed(_ image: RGBImage, bits: [UInt8] = message) -> RGBImage {
        guard canMark(width: image.width, height: image.height), !bits.isEmpty else { return image }
        var out = image
        let grid = BlockGrid(width: image.width, height: image.height)
        var u = uPlane(out)
        // Per block, the package's target (the bit's half of the cell s0 is in), fixed from the original picture;
        // where the colours cannot move that way (a channel at 0 or 255), the same bit in the next cell the other
        // way. (The nearest of the two would move less, but measured here it loses flat pictures to JPEG q90:
        // with the package's rule all blocks of a flat area move into one cell, whose middle JPEG's chroma
        // smoothing pulls them towards without crossing a cell edge.)
        var near = [Double](repeating: 0, count: grid.blocks), far = near
        for b in 0..<grid.blocks {
            let s0 = topSingular(grid.block(b, of: u)).s
            near[b] = ((s0 / scale).rounded(.down) + 0.25 + 0.5 * Double(bits[b % bits.count] & 1)) * scale
            far[b] = near[b] > s0 ? near[b] - scale : near[b] + scale
        }
        var targets = near
        var active = [Bool](repeating: true, count: grid.blocks)
        passes(&out, &u, grid: grid, targets: targets, active: &active)
        // blocks still read as the wrong bit: aim at the other side
        var retry = false
        for b in 0..<grid.blocks {
            let s0 = topSingular(grid.block(b, of: u)).s
            let reads = s0.truncatingRemainder(dividingBy: scale) > scale * 0.5 ? 1 : 0
            active[b] = false
            if reads != Int(bits[b % bits.count] & 1) && far[b] >= 0 { targets[b] = far[b]; active[b] = true; retry = true }
        }
        if retry { passes(&out, &u, grid: grid, targets: targets, active: &active) }
        return out
    }

    /// Up to 3 passes moving the active blocks' s0 to their targets, re-measuring after rounding to 8 bits;
    /// a block within 1.5 of its target is left alone.
    static func passes(_ out: inout RGBImage, _ u: inout [Double], grid: BlockGrid, targets: [Double], active: inout [Bool]) {
        for pass in 0..<3 {
            var dU = [Double](repeating: 0, count: out.width * out.height)   // [H, W]
            var any = false
            for b in 0..<grid.blocks where active[b] {
                let (s0, uv, vv) = topSingular(grid.block(b, of: u))            // of the [4, 4] cA block
                let delta = targets[b] - s0
                if pass > 0 && abs(delta) < 1.5 { active[b] = false; continue }
                any = true
                grid.addToPixels(b, delta: delta, u: uv, v: vv, into: &dU)
            }
            if !any { break }
            applyU(&out, dU)
            u = uPlane(out)
        }
    }

    /// What imwatermark's `WatermarkDecoder('bits', n).decode(bgr, 'dwtDctSvd')` returns for this image, and the
    /// fraction of blocks that agree with each decoded bit (1 = unanimous). nil when the image is under
    /// `minSide` in either side.
    public static func decode(_ image: RGBImage, bitCount: Int = 48) -> (bits: [UInt8], agreement: [Double])? {
        guard canMark(width: image.width, height: image.height), bitCount > 0 else { return nil }
        let grid = BlockGrid(width: image.width, height: image.height)
        let u = uPlane(image)
        var votes = [Int](repeating: 0, count: bitCount), counts = [Int](repeating: 0, count: bitCount)
        for b in 0..<grid.blocks {
            let s0 = topSingular(grid.block(b, of: u)).s
            let score = s0.truncatingRemainder(dividingBy: scale) > scale * 0.5 ? 1 : 0
            votes[b % bitCount] += score
            counts[b % bitCount] += 1
        }
        var bits = [UInt8](repeating: 0, count: bitCount), agree = [Double](repeating: 0, count: bitCount)
        for i in 0..<bitCount {
            let mean = counts[i] > 0 ? Double(votes[i]) / Double(counts[i]) : 0
            bits[i] = mean * 255 > 127 ? 1 : 0
            agree[i] = bits[i] == 1 ? mean : 1 - mean
        }
        return (bits, agree)
    }

    /// How many of `bits` (diffusers' message by default) an image carries (nil: too small to be marked).
    public static func matchingBits(_ image: RGBImage, bits: [UInt8] = message) -> Int? {
        guard let d = decode(image, bitCount: bits.count) else { return nil }
        return zip(d.bits, bits).filter { $0 == $1 }.count
    }

    // MARK: - colour

    /// OpenCV's cvtColor(BGR2YUV) U for 8-bit pixels, exactly: Y = descale(R 4899 + G 9617 + B 1868, 14),
    /// U = saturate(descale((B - Y) 8061 + 128 << 14, 14)). [H, W] as Double.
    static func uPlane(_ img: RGBImage) -> [Double] {
        let n = img.width * img.height
        var u = [Double](repeating: 0, count: n)
        img.pixels.withUnsafeBufferPointer { p in
            for i in 0..<n {
                let r = Int(p[3 * i]), g = Int(p[3 * i + 1]), b = Int(p[3 * i + 2])
                let y = (r * 4899 + g * 9617 + b * 1868 + (1 << 13)) >> 14
                let v = ((b - y) * 8061 + (128 << 14) + (1 << 13)) >> 14
                u[i] = Double(min(255, max(0, v)))
            }
        }
        return u
    }

    /// Adds dU (per pixel) to the image's U, keeping Y and V where the blue channel allows it.
    static func applyU(_ img: inout RGBImage, _ dU: [Double]) {
        let n = img.width * img.height
        img.pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<n where dU[i] != 0 {
                var r = Double(p[3 * i]), g = Double(p[3 * i + 1]), b = Double(p[3 * i + 2])
                let want = dU[i]
                // pure-U direction, B clipped to its range
                let dB = min(255 - b, max(-b, want / 0.492))
                let dG = -0.114 / 0.587 * dB
                b += dB; g += dG
                // U = 0.492 (B - Y): what B could not give, from Y (R and G together)
                let got = 0.492 * (dB - (0.587 * dG + 0.114 * dB))
                let rest = want - got
                if abs(rest) > 0.25 {
                    let dY = -rest / 0.492
                    r += dY; g += dY
                }
                p[3 * i] = UInt8(min(255, max(0, r.rounded())))
                p[3 * i + 1] = UInt8(min(255, max(0, g.rounded())))
                p[3 * i + 2] = UInt8(min(255, max(0, b.rounded())))
            }
        }
    }

    // MARK: - blocks

    /// The cA grid the decoder reads: Haar approximation of the top-left rows//4*4 x cols//4*4 pixels, in 4x4
    /// blocks (each 8x8 pixels), row-major.
    struct BlockGrid {
        let width: Int, caRows: Int, caCols: Int, blockRows: Int, blockCols: Int
        var blocks: Int { blockRows * blockCols }
        init(width: Int, height: Int) {
            self.width = width
            caRows = height / 4 * 2; caCols = width / 4 * 2
            blockRows = caRows / 4; blockCols = caCols / 4
        }

        /// Block b's cA values [4, 4] from the U plane [H, W] (cA = 2x2 pixel sum / 2).
        func block(_ b: Int, of u: [Double]) -> [Double] {
            let bi = b / blockCols, bj = b % blockCols
            var m = [Double](repeating: 0, count: 16)
            for i in 0..<4 {
                for j in 0..<4 {
                    let y = (bi * 4 + i) * 2, x = (bj * 4 + j) * 2
                    m[i * 4 + j] = (u[y * width + x] + u[y * width + x + 1] + u[(y + 1) * width + x] + u[(y + 1) * width + x + 1]) / 2
                }
            }
            return m
        }

        /// Adds delta * u v^T (a cA change) to block b's pixels as dU = dcA / 2 (the inverse Haar with no detail).
        func addToPixels(_ b: Int, delta: Double, u: [Double], v: [Double], into dU: inout [Double]) {
            let bi = b / blockCols, bj = b % blockCols
            for i in 0..<4 {
                for j in 0..<4 {
                    let d = delta * u[i] * v[j] / 2
                    let y = (bi * 4 + i) * 2, x = (bj * 4 + j) * 2
                    dU[y * width + x] += d; dU[y * width + x + 1] += d
                    dU[(y + 1) * width + x] += d; dU[(y + 1) * width + x + 1] += d
                }
            }
        }
    }

    // MARK: - 4x4 SVD

    /// Largest singular value of a 4x4 matrix (row-major) and its singular vectors: the top eigenpair of
    /// M^T M by cyclic Jacobi rotations, u = M v / s.
    static func topSingular(_ m: [Double]) -> (s: Double, u: [Double], v: [Double]) {
        var a = [Double](repeating: 0, count: 16)                 // M^T M [4, 4]
        for i in 0..<4 { for j in i..<4 {
            var s = 0.0
            for k in 0..<4 { s += m[k * 4 + i] * m[k * 4 + j] }
            a[i * 4 + j] = s; a[j * 4 + i] = s
        } }
        var e = [Double](repeating: 0, count: 16)                 // eigenvectors in columns
        for i in 0..<4 { e[i * 4 + i] = 1 }
        for _ in 0..<12 {
            var off = 0.0
            for p in 0..<4 { for q in (p + 1)..<4 { off += a[p * 4 + q] * a[p * 4 + q] } }
            if off < 1e-22 * max(1e-300, a[0] * a[0] + a[5] * a[5] + a[10] * a[10] + a[15] * a[15]) { break }
            for p in 0..<3 { for q in (p + 1)..<4 {
                let apq = a[p * 4 + q]
                if abs(apq) < 1e-300 { continue }
                let theta = (a[q * 4 + q] - a[p * 4 + p]) / (2 * apq)
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<4 {                                  // A = J^T A J
                    let akp = a[k * 4 + p], akq = a[k * 4 + q]
                    a[k * 4 + p] = c * akp - s * akq; a[k * 4 + q] = s * akp + c * akq
                }
                for k in 0..<4 {
                    let apk = a[p * 4 + k], aqk = a[q * 4 + k]
                    a[p * 4 + k] = c * apk - s * aqk; a[q * 4 + k] = s * apk + c * aqk
                }
                for k in 0..<4 {
                    let ekp = e[k * 4 + p], ekq = e[k * 4 + q]
                    e[k * 4 + p] = c * ekp - s * ekq; e[k * 4 + q] = s * ekp + c * ekq
                }
            } }
        }
        var top = 0
        for i in 1..<4 where a[i * 4 + i] > a[top * 4 + top] { top = i }
        let s = max(0, a[top * 4 + top]).squareRoot()
        var v = (0..<4).map { e[$0 * 4 + top] }
        var u = [Double](repeating: 0, count: 4)
        if s > 1e-9 {
            for i in 0..<4 { u[i] = (0..<4).reduce(0) { $0 + m[i * 4 + $1] * v[$1] } / s }
        } else {
            u = [0.5, 0.5, 0.5, 0.5]; v = [0.5, 0.5, 0.5, 0.5]   // a zero block: grow it evenly
        }
        return (s, u, v)
    }
}
