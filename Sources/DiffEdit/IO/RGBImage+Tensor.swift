/// RGBImage <-> Tensor [1, 3, H, W] (NCHW, f32) in [-1, 1] (`.signed`) or [0, 1] (`.unit`).
extension RGBImage {
    /// [1, 3, H, W]: `.signed` gives p / 255 * 2 - 1, `.unit` gives p / 255 (diffusers' VaeImageProcessor).
    public func tensor(range: PixelRange = .signed) throws -> Tensor {
        let hw = width * height
        let t = try Tensor.allocate([1, 3, height, width], what: "a \(width)x\(height) image as a tensor")   // [1, 3, H, W]
        let d = t.data
        pixels.withUnsafeBufferPointer { px in
            for i in 0..<hw {
                for c in 0..<3 {
                    let u = Float(px[3 * i + c]) / 255
                    d[c * hw + i] = range == .signed ? u * 2 - 1 : u
                }
            }
        }
        return t
    }

    /// From a [1, 3, H, W] or [3, H, W] tensor (item `batch` of a batch): values are clamped to the
    /// range, mapped to [0, 1] and rounded to nearest (round(x * 255), as diffusers' numpy_to_pil).
    public init(tensor t: Tensor, range: PixelRange = .signed, batch: Int = 0) throws {
        let s = t.shape
        let (b, c, h, w): (Int, Int, Int, Int)
        if s.count == 4 { (b, c, h, w) = (s[0], s[1], s[2], s[3]) }
        else if s.count == 3 { (b, c, h, w) = (1, s[0], s[1], s[2]) }
        else { throw DiffEditError.invalidArgument("image tensor: shape \(s), expected [B, 3, H, W]") }
        guard c == 3 || c == 1, h > 0, w > 0, batch >= 0, batch < b else {
            throw DiffEditError.invalidArgument("image tensor: shape \(s) (item \(batch)), expected [B, 3, H, W] or [B, 1, H, W]")
        }
        let hw = h * w
        let base = t.data + batch * c * hw
        var px = [UInt8](repeating: 0, count: hw * 3)
        for i in 0..<hw {
            for k in 0..<3 {
                var v = base[(c == 1 ? 0 : k) * hw + i]                     // NCHW
                if range == .signed { v = v / 2 + 0.5 }
                v = v.isNaN ? 0 : min(max(v, 0), 1)
                px[3 * i + k] = UInt8((v * 255).rounded())
            }
        }
        self.init(width: w, height: h, pixels: px)
    }
}
