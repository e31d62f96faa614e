/// Mask helpers for editing: masks are float planes in [0, 1] (1 = edit), row-major h x w.
public enum EditMask {
    /// Feather radius used for a mask of this size (about 1/32 of the short side, at least 1 pixel).
    public static func featherRadius(width: Int, height: Int) -> Int { max(1, min(width, height) / 32) }

    /// Inward feathering: 0 wherever the mask is 0, ramping to the mask's value over `radius` pixels inside
    /// its edge (clamp(2 * boxblur(m) - 1, 0, 1) * m). An all-255 mask stays all 1, an all-0 mask all 0.
    /// Two input-size float planes at most (the blur's passes; the result is made in the second), no float copy
    /// of the mask: the same numbers as blurring `mask.pixels.map { Float($0) / 255 }`.
    public static func feathered(_ mask: GrayImage, radius: Int) -> [Float] {
        let (w, h) = (mask.width, mask.height)
        var out = mask.pixels.withUnsafeBufferPointer { px in
            boxBlur(count: px.count, width: w, height: h, radius: radius) { Float(px[$0]) / 255 }
        }
        mask.pixels.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<o.count {
                    let m = Float(px[i]) / 255
                    o[i] = m > 0 ? min(max(2 * o[i] - 1, 0), 1) * m : 0
                }
            }
        }
        return out
    }

    /// Box blur with edge replication (separable, window 2r+1), O(1) per pixel with running sums.
    public static func boxBlur(_ p: [Float], width w: Int, height h: Int, radius r: Int) -> [Float] {
        guard r > 0, w > 0, h > 0 else { return p }
        return p.withUnsafeBufferPointer { src in boxBlur(count: p.count, width: w, height: h, radius: r) { src[$0] } }
    }

    /// `boxBlur` of the plane whose value i is `value(i)` (inlined: a plane made on the fly, e.g. from bytes).
    @inline(__always)
    static func boxBlur(count: Int, width w: Int, height h: Int, radius r: Int, _ src: (Int) -> Float) -> [Float] {
        guard r > 0, w > 0, h > 0 else { return (0..<count).map(src) }
        let inv = 1 / Float(2 * r + 1)
        var tmp = [Float](repeating: 0, count: count)
        tmp.withUnsafeMutableBufferPointer { t in
            for y in 0..<h {
                let row = y * w
                var s: Double = 0
                for d in -r...r { s += Double(src(row + min(max(d, 0), w - 1))) }
                for x in 0..<w {
                    t[row + x] = Float(s) * inv
                    s += Double(src(row + min(x + r + 1, w - 1))) - Double(src(row + max(x - r, 0)))
                }
            }
        }
        var out = [Float](repeating: 0, count: count)
        tmp.withUnsafeBufferPointer { src in
            for x in 0..<w {
                var s: Double = 0
                for d in -r...r { s += Double(src[min(max(d, 0), h - 1) * w + x]) }
                for y in 0..<h {
                    out[y * w + x] = Float(s) * inv
                    s += Double(src[min(y + r + 1, h - 1) * w + x]) - Double(src[max(y - r, 0) * w + x])
                }
            }
        }
        return out
    }

    /// Max filter (dilation) with window 2r+1.
    public static func dilate(_ p: [Float], width w: Int, height h: Int, radius r: Int) -> [Float] {
        guard r > 0 else { return p }
        var tmp = [Float](repeating: 0, count: p.count)
        for y in 0..<h {
            for x in 0..<w {
                var v = -Float.infinity
                for d in -r...r { let xx = x + d; if xx >= 0 && xx < w { v = max(v, p[y * w + xx]) } }
                tmp[y * w + x] = v
            }
        }
        var out = [Float](repeating: 0, count: p.count)
        for y in 0..<h {
            for x in 0..<w {
                var v = -Float.infinity
                for d in -r...r { let yy = y + d; if yy >= 0 && yy < h { v = max(v, tmp[yy * w + x]) } }
                out[y * w + x] = v
            }
        }
        return out
    }

    /// Mean over factor x factor blocks: [h, w] -> [h/f, w/f] (h, w multiples of f).
    public static func areaDownsample(_ p: [Float], width w: Int, height h: Int, factor f: Int) -> [Float] {
        let ow = w / f, oh = h / f
        var out = [Float](repeating: 0, count: ow * oh)
        let inv = 1 / Float(f * f)
        for y in 0..<oh {
            for x in 0..<ow {
                var s: Float = 0
                for dy in 0..<f { for dx in 0..<f { s += p[(y * f + dy) * w + x * f + dx] } }
                out[y * ow + x] = s * inv
            }
        }
        return out
    }

    /// Nearest upsampling by an integer factor.
    public static func upsampleNearest(_ p: [Float], width w: Int, height h: Int, factor f: Int) -> [Float] {
        var out = [Float](repeating: 0, count: w * h * f * f)
        let ow = w * f
        for y in 0..<(h * f) { for x in 0..<ow { out[y * ow + x] = p[(y / f) * w + x / f] } }
        return out
    }

    /// Zero-pads (or crops) a plane to nw x nh, content at the top left.
    public static func padOrCrop(_ p: [Float], width w: Int, height h: Int, toWidth nw: Int, height nh: Int) -> [Float] {
        if w == nw && h == nh { return p }
        var out = [Float](repeating: 0, count: nw * nh)
        for y in 0..<min(h, nh) { for x in 0..<min(w, nw) { out[y * nw + x] = p[y * w + x] } }
        return out
    }

    public static func gray(_ p: [Float], width: Int, height: Int) -> GrayImage {
        GrayImage(width: width, height: height, pixels: p.map { UInt8(min(max($0, 0), 1) * 255 + 0.5) })
    }

    /// Blends latents in place: x <- src + m * (x - src); m is [h * w], broadcast over channels and batch.
    public static func blend(_ x: Tensor, source: Tensor, mask m: [Float]) {
        let plane = x.shape[2] * x.shape[3]
        precondition(m.count == plane && x.count % source.count == 0,
                     "EditMask.blend: shapes \(x.shape) \(source.shape) mask \(m.count)")
        let sPer = source.count
        for item in 0..<(x.count / plane) {
            let xp = x.data + item * plane
            let sp = source.data + (item * plane) % sPer
            for i in 0..<plane { xp[i] = sp[i] + m[i] * (xp[i] - sp[i]) }
        }
    }
}
