/// Separable resampling of float planes with a triangle (bilinear) filter whose support widens when
/// shrinking (antialiased, like PIL's BILINEAR resize). Used by the native-resolution path.
public enum ImageResampler {
    /// planes: `channels` planes of w*h floats, concatenated (CHW). Returns CHW at nw x nh.
    public static func resize(_ planes: [Float], channels: Int, width w: Int, height h: Int,
                              toWidth nw: Int, height nh: Int) -> [Float] {
        if w == nw && h == nh { return planes }
        let wx = weights(inSize: w, outSize: nw)
        let wy = weights(inSize: h, outSize: nh)
        var out = [Float](repeating: 0, count: channels * nw * nh)
        var tmp = [Float](repeating: 0, count: h * nw)
        for c in 0..<channels {
            let src = c * w * h
            // horizontal: [h, w] -> [h, nw]
            for y in 0..<h {
                for x in 0..<nw {
                    var s: Float = 0
                    let (start, ws) = wx[x]
                    for k in 0..<ws.count { s += planes[src + y * w + start + k] * ws[k] }
                    tmp[y * nw + x] = s
                }
            }
            // vertical: [h, nw] -> [nh, nw]
            let dst = c * nw * nh
            for y in 0..<nh {
                let (start, ws) = wy[y]
                for x in 0..<nw {
                    var s: Float = 0
                    for k in 0..<ws.count { s += tmp[(start + k) * nw + x] * ws[k] }
                    out[dst + y * nw + x] = s
                }
            }
        }
        return out
    }

    /// For each output index: first input index and normalised weights.
    static func weights(inSize: Int, outSize: Int) -> [(Int, [Float])] {
        let scale = Double(inSize) / Double(outSize)
        let support = max(scale, 1.0)               // triangle radius in input pixels
        var res: [(Int, [Float])] = []
        res.reserveCapacity(outSize)
        for o in 0..<outSize {
            let center = (Double(o) + 0.5) * scale
            let lo = max(Int((center - support).rounded(.down)), 0)
            let hi = min(Int((center + support).rounded(.up)), inSize)
            var ws: [Float] = []
            var total = 0.0
            for i in lo..<max(hi, lo + 1) {
                let d = abs((Double(i) + 0.5 - center) / support)
                let v = max(0, 1 - d)
                ws.append(Float(v)); total += v
            }
            if total <= 0 {
                let i = min(max(Int(center), 0), inSize - 1)
                res.append((i, [1]))
            } else {
                res.append((lo, ws.map { $0 / Float(total) }))
            }
        }
        return res
    }

    /// RGB8 -> CHW floats in [0, 255].
    public static func planes(_ image: RGBImage) -> [Float] {
        let hw = image.width * image.height
        var p = [Float](repeating: 0, count: 3 * hw)
        for i in 0..<hw { for c in 0..<3 { p[c * hw + i] = Float(image.pixels[3 * i + c]) } }
        return p
    }

    /// CHW floats in [0, 255] -> RGB8 (rounded, clamped).
    public static func image(_ p: [Float], width: Int, height: Int) -> RGBImage {
        let hw = width * height
        var px = [UInt8](repeating: 0, count: 3 * hw)
        for i in 0..<hw { for c in 0..<3 { px[3 * i + c] = UInt8(min(max(p[c * hw + i], 0), 255).rounded()) } }
        return RGBImage(width: width, height: height, pixels: px)
    }

    /// The horizontal pass of one channel of interleaved RGB bytes: [h, w] -> [h, weights.count] floats at `t`.
    private static func horizontalPass(_ src: UnsafeBufferPointer<UInt8>, channel c: Int, width w: Int, height h: Int,
                                       weights wx: [(Int, [Float])], into t: UnsafeMutablePointer<Float>) {
        let nw = wx.count
        for y in 0..<h {
            for x in 0..<nw {
                var s: Float = 0
                let (start, ws) = wx[x]
                for k in 0..<ws.count { s += Float(src[3 * (y * w + start + k) + c]) * ws[k] }
                t[y * nw + x] = s
            }
        }
    }

    /// The same numbers as `image(resize(planes(image), ...))`, without the two input- or output-size float
    /// copies (a 16384x16384 picture is 3 GB of floats): each channel goes through one [h, nw] row buffer.
    public static func resize(_ image: RGBImage, toWidth nw: Int, height nh: Int) -> RGBImage {
        if image.width == nw && image.height == nh { return image }
        let (w, h) = (image.width, image.height)
        let wx = weights(inSize: w, outSize: nw)
        let wy = weights(inSize: h, outSize: nh)
        var px = [UInt8](repeating: 0, count: 3 * nw * nh)
        var tmp = [Float](repeating: 0, count: h * nw)
        image.pixels.withUnsafeBufferPointer { src in
            px.withUnsafeMutableBufferPointer { dst in
                for c in 0..<3 {
                    // horizontal: [h, w] -> [h, nw]
                    tmp.withUnsafeMutableBufferPointer { t in
                        horizontalPass(src, channel: c, width: w, height: h, weights: wx, into: t.baseAddress!)
                    }
                    // vertical: [h, nw] -> [nh, nw], rounded and clamped into the interleaved output
                    for y in 0..<nh {
                        let (start, ws) = wy[y]
                        for x in 0..<nw {
                            var s: Float = 0
                            for k in 0..<ws.count { s += tmp[(start + k) * nw + x] * ws[k] }
                            dst[3 * (y * nw + x) + c] = UInt8(min(max(s, 0), 255).rounded())
                        }
                    }
                }
            }
        }
        return RGBImage(width: nw, height: nh, pixels: px)
    }

    /// The rows of a [0, 1] plane resized w x h -> nw x nh and clamped into [0, 1]: the numbers of
    /// `resize(p, channels: 1, ...)` clamped (the same operations in the same order), one output row at a time. The
    /// horizontal pass is made once ([h, nw] floats); each row costs its vertical pass.
    struct ResizedRows {
        let p: [Float], w: Int, h: Int, nw: Int, nh: Int
        private let wy: [(Int, [Float])]
        private var tmp: [Float]
        private var row: [Float]

        init(_ p: [Float], _ w: Int, _ h: Int, _ nw: Int, _ nh: Int) {
            precondition(p.count == w * h, "ImageResampler.ResizedRows: \(p.count) values for \(w)x\(h)")
            self.p = p; self.w = w; self.h = h; self.nw = nw; self.nh = nh
            row = [Float](repeating: 0, count: nw)
            if w == nw && h == nh { wy = []; tmp = []; return }   // resize returns the plane itself
            let wx = ImageResampler.weights(inSize: w, outSize: nw)
            wy = ImageResampler.weights(inSize: h, outSize: nh)
            var t = [Float](repeating: 0, count: h * nw)
            p.withUnsafeBufferPointer { src in
                for y in 0..<h {
                    for x in 0..<nw {
                        var s: Float = 0
                        let (start, ws) = wx[x]
                        for k in 0..<ws.count { s += src[y * w + start + k] * ws[k] }
                        t[y * nw + x] = s
                    }
                }
            }
            tmp = t
        }

        /// Output row y (clamped), handed to `body`.
        mutating func row<R>(_ y: Int, _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
            let (nw, w) = (self.nw, self.w)
            if wy.isEmpty {
                return p.withUnsafeBufferPointer { src in
                    row.withUnsafeMutableBufferPointer { r in
                        for x in 0..<nw { r[x] = min(max(src[y * w + x], 0), 1) }
                    }
                    return row.withUnsafeBufferPointer(body)
                }
            }
            let (start, ws) = wy[y]
            tmp.withUnsafeBufferPointer { t in
                row.withUnsafeMutableBufferPointer { r in
                    for x in 0..<nw {
                        var s: Float = 0
                        for k in 0..<ws.count { s += t[(start + k) * nw + x] * ws[k] }
                        r[x] = min(max(s, 0), 1)
                    }
                }
            }
            return row.withUnsafeBufferPointer(body)
        }
    }

    /// Each row of `resize(p, ...)` clamped into [0, 1] (see ResizedRows), in order.
    static func forEachResizedRow(_ p: [Float], _ w: Int, _ h: Int, _ nw: Int, _ nh: Int,
                                  _ body: (Int, UnsafeBufferPointer<Float>) -> Void) {
        var rows = ResizedRows(p, w, h, nw, nh)
        for y in 0..<nh { rows.row(y) { body(y, $0) } }
    }

    /// `resize(edited, toWidth: original.width, height: original.height)` composited over `original` through an
    /// alpha in [0, 1] that `alphaRow(y, body)` hands to `body` one output row at a time: where alpha > 0,
    /// round(clamp(o + alpha * (e - o))), else the original byte. One output-size byte image and [h, nw] floats a
    /// channel for the horizontal pass; the resized edit is made row by row (the same numbers as `resize`).
    static func resizeComposite(_ edited: RGBImage, over original: RGBImage,
                                alphaRow: (Int, (UnsafeBufferPointer<Float>) -> Void) -> Void) -> RGBImage {
        let (w, h, nw, nh) = (edited.width, edited.height, original.width, original.height)
        let same = w == nw && h == nh
        let wx = same ? [] : weights(inSize: w, outSize: nw)
        let wy = same ? [] : weights(inSize: h, outSize: nh)
        // horizontal passes of the three channels: [3][h, nw]
        var tmp = [Float](repeating: 0, count: same ? 0 : 3 * h * nw)
        if !same {
            edited.pixels.withUnsafeBufferPointer { src in
                tmp.withUnsafeMutableBufferPointer { t in
                    for c in 0..<3 {
                        horizontalPass(src, channel: c, width: w, height: h, weights: wx, into: t.baseAddress! + c * h * nw)
                    }
                }
            }
        }
        var out = [UInt8](repeating: 0, count: 3 * nw * nh)
        var e = [UInt8](repeating: 0, count: 3 * nw)          // one row of the resized edit
        out.withUnsafeMutableBufferPointer { dst in
            original.pixels.withUnsafeBufferPointer { o in
                edited.pixels.withUnsafeBufferPointer { src in
                    for y in 0..<nh {
                        e.withUnsafeMutableBufferPointer { er in
                            if same {
                                for k in 0..<(3 * nw) { er[k] = src[3 * y * nw + k] }
                                return
                            }
                            let (start, ws) = wy[y]
                            tmp.withUnsafeBufferPointer { t in
                                for c in 0..<3 {
                                    for x in 0..<nw {
                                        var s: Float = 0
                                        for k in 0..<ws.count { s += t[(c * h + start + k) * nw + x] * ws[k] }
                                        er[3 * x + c] = UInt8(min(max(s, 0), 255).rounded())
                                    }
                                }
                            }
                        }
                        alphaRow(y) { a in
                            e.withUnsafeBufferPointer { er in
                                let base = 3 * y * nw
                                for x in 0..<nw {
                                    let ai = a[x]
                                    for c in 0..<3 {
                                        let k = base + 3 * x + c
                                        if ai > 0 {
                                            let ov = Float(o[k]), ev = Float(er[3 * x + c])
                                            dst[k] = UInt8(min(max(ov + ai * (ev - ov), 0), 255).rounded())
                                        } else {
                                            dst[k] = o[k]
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return RGBImage(width: nw, height: nh, pixels: out)
    }

    /// Pads with edge replication to nw x nh (nw >= w, nh >= h), image at the top left.
    public static func pad(_ image: RGBImage, toWidth nw: Int, height nh: Int) -> RGBImage {
        if image.width == nw && image.height == nh { return image }
        var px = [UInt8](repeating: 0, count: nw * nh * 3)
        for y in 0..<nh {
            let sy = min(y, image.height - 1)
            for x in 0..<nw {
                let sx = min(x, image.width - 1)
                for c in 0..<3 { px[(y * nw + x) * 3 + c] = image.pixels[(sy * image.width + sx) * 3 + c] }
            }
        }
        return RGBImage(width: nw, height: nh, pixels: px)
    }

    /// The top-left w x h of an image.
    public static func crop(_ image: RGBImage, width w: Int, height h: Int) -> RGBImage {
        if image.width == w && image.height == h { return image }
        var px = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w { for c in 0..<3 { px[(y * w + x) * 3 + c] = image.pixels[(y * image.width + x) * 3 + c] } }
        }
        return RGBImage(width: w, height: h, pixels: px)
    }
}
