/// The ControlNet canny annotator: OpenCV's `cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), low, high)`
/// (apertureSize 3, L2gradient false), integer for integer:
///   gray = (4899 R + 9617 G + 1868 B + 2^13) >> 14                       (cvtColor's fixed-point BT.601)
///   dx, dy = 3x3 Sobel of gray, borders replicated (no Gaussian blur)
///   m = |dx| + |dy|                                                     (L1 gradient)
///   non-maximum suppression along the gradient direction quantised by tan(22.5 deg) = 13573 / 2^15, with
///   OpenCV's tie rules (m > one neighbour, >= the other; magnitudes outside the image are 0);
///   candidates m > low after suppression, edges m > high, then hysteresis through 8-connected candidates.
/// Output: 255 on edges, 0 elsewhere.
public enum CannyEdgeDetector {
    /// OpenCV's RGB -> gray for 8-bit images.
    public static func gray(_ image: RGBImage) -> [UInt8] {
        let n = image.width * image.height
        var g = [UInt8](repeating: 0, count: n)
        image.pixels.withUnsafeBufferPointer { p in
            for i in 0..<n {
                let v = 4899 * Int(p[3 * i]) + 9617 * Int(p[3 * i + 1]) + 1868 * Int(p[3 * i + 2])
                g[i] = UInt8((v + (1 << 13)) >> 14)
            }
        }
        return g
    }

    public static func edges(_ image: RGBImage, low: Double = 100, high: Double = 200) -> GrayImage {
        edges(gray: gray(image), width: image.width, height: image.height, low: low, high: high)
    }

    public static func edges(gray g: [UInt8], width w: Int, height h: Int, low lowT: Double = 100, high highT: Double = 200) -> GrayImage {
        precondition(g.count == w * h, "CannyEdgeDetector: \(g.count) pixels for \(w)x\(h)")
        var (lo, hi) = (lowT, highT)
        if lo > hi { swap(&lo, &hi) }
        let low = Int32(lo.rounded(.down)), high = Int32(hi.rounded(.down))
        // Sobel with replicated borders; magnitudes in a zero-padded (w + 2) x (h + 2) grid
        let mw = w + 2
        var dx = [Int32](repeating: 0, count: w * h), dy = dx
        var mag = [Int32](repeating: 0, count: mw * (h + 2))
        func px(_ x: Int, _ y: Int) -> Int32 { Int32(g[min(max(y, 0), h - 1) * w + min(max(x, 0), w - 1)]) }
        for y in 0..<h {
            for x in 0..<w {
                let gx = (px(x + 1, y - 1) + 2 * px(x + 1, y) + px(x + 1, y + 1)) - (px(x - 1, y - 1) + 2 * px(x - 1, y) + px(x - 1, y + 1))
                let gy = (px(x - 1, y + 1) + 2 * px(x, y + 1) + px(x + 1, y + 1)) - (px(x - 1, y - 1) + 2 * px(x, y - 1) + px(x + 1, y - 1))
                dx[y * w + x] = gx; dy[y * w + x] = gy
                mag[(y + 1) * mw + x + 1] = abs(gx) + abs(gy)
            }
        }
        // map: 0 = candidate, 1 = not an edge, 2 = edge; a border of 1s around the image
        var map = [UInt8](repeating: 1, count: mw * (h + 2))
        var stack: [Int] = []
        let tg22: Int64 = 13573, shift: Int64 = 15
        for y in 0..<h {
            for x in 0..<w {
                let k = (y + 1) * mw + x + 1
                let m = mag[k]
                guard m > low else { continue }
                let xs = dx[y * w + x], ys = dy[y * w + x]
                let ax = Int64(abs(xs)), ay = Int64(abs(ys)) << shift
                let tg22x = ax * tg22
                let isMax: Bool
                if ay < tg22x {
                    isMax = m > mag[k - 1] && m >= mag[k + 1]
                } else if ay > tg22x + (ax << (shift + 1)) {
                    isMax = m > mag[k - mw] && m >= mag[k + mw]
                } else {
                    let s = (xs ^ ys) < 0 ? -1 : 1
                    isMax = m > mag[k - mw - s] && m > mag[k + mw + s]
                }
                guard isMax else { continue }
                if m > high { map[k] = 2; stack.append(k) } else { map[k] = 0 }
            }
        }
        while let k = stack.popLast() {
            for o in [-mw - 1, -mw, -mw + 1, -1, 1, mw - 1, mw, mw + 1] where map[k + o] == 0 {
                map[k + o] = 2
                stack.append(k + o)
            }
        }
        var out = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h { for x in 0..<w where map[(y + 1) * mw + x + 1] == 2 { out[y * w + x] = 255 } }
        return GrayImage(width: w, height: h, pixels: out)
    }
}
