/// Nearest-neighbour correspondences between the latent tokens of two source frames (TokenFlow's
/// nearest-neighbour field, computed at the latent level from the source video's own features).
///
/// Descriptor of token p: the 3x3 neighbourhood of the frame's source latents z0 around p (C * 9 values,
/// edge-replicated). For each token p of frame `a`, the token q of frame `b` within `radius` tokens (in
/// each direction) with the smallest squared descriptor distance; ties keep the smaller offset (same
/// position first). A match is kept when distance <= threshold * (mean squared descriptor value of `b`);
/// otherwise -1 (no correspondence: new or occluded content keeps its own denoising).
struct VideoTokenMatch {
    /// For each token of `a` (row-major h x w), the matched token index in `b`, or -1.
    let match: [Int]
    let height: Int
    let width: Int

    static let defaultThreshold: Float = 0.02

    /// a, b: [C, h, w] source latents (contiguous).
    init(a: UnsafePointer<Float>, b: UnsafePointer<Float>, channels c: Int, height h: Int, width w: Int,
         radius: Int, threshold: Float = VideoTokenMatch.defaultThreshold) {
        let plane = h * w
        let d = c * 9
        func descriptors(_ z: UnsafePointer<Float>) -> [Float] {
            var out = [Float](repeating: 0, count: plane * d)
            for y in 0..<h { for x in 0..<w {
                var k = (y * w + x) * d
                for ch in 0..<c {
                    for dy in -1...1 { for dx in -1...1 {
                        let yy = min(max(y + dy, 0), h - 1), xx = min(max(x + dx, 0), w - 1)
                        out[k] = z[ch * plane + yy * w + xx]; k += 1
                    } }
                }
            } }
            return out
        }
        let da = descriptors(a), db = descriptors(b)
        var energy: Float = 0
        for v in db { energy += v * v }
        let limit = threshold * energy / Float(plane)
        // candidate offsets sorted by length, so ties keep the nearest (same position first)
        var offsets: [(Int, Int)] = []
        for dy in -radius...radius { for dx in -radius...radius { offsets.append((dy, dx)) } }
        offsets.sort { ($0.0 * $0.0 + $0.1 * $0.1) < ($1.0 * $1.0 + $1.1 * $1.1) }
        var match = [Int](repeating: -1, count: plane)
        da.withUnsafeBufferPointer { pa in
            db.withUnsafeBufferPointer { pb in
                for y in 0..<h { for x in 0..<w {
                    let p = y * w + x
                    var best = Float.infinity, bestQ = -1
                    for (dy, dx) in offsets {
                        let yy = y + dy, xx = x + dx
                        guard yy >= 0, yy < h, xx >= 0, xx < w else { continue }
                        let q = yy * w + xx
                        var s: Float = 0
                        let ua = pa.baseAddress! + p * d, ub = pb.baseAddress! + q * d
                        for k in 0..<d { let t = ua[k] - ub[k]; s += t * t }
                        if s < best { best = s; bestQ = q }
                    }
                    if best <= limit { match[p] = bestQ }
                } }
            }
        }
        self.match = match; self.height = h; self.width = w
    }

    /// Fraction of tokens with a correspondence.
    var matchedFraction: Double { Double(match.filter { $0 >= 0 }.count) / Double(max(match.count, 1)) }

    /// x[p] <- ref[match[p]] for every matched token, all channels. x, ref: [C, h, w].
    func apply(to x: UnsafeMutablePointer<Float>, from ref: UnsafePointer<Float>, channels c: Int) {
        let plane = height * width
        for p in 0..<plane {
            let q = match[p]
            guard q >= 0 else { continue }
            for ch in 0..<c { x[ch * plane + p] = ref[ch * plane + q] }
        }
    }
}
