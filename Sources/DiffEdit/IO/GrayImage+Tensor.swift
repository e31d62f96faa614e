/// GrayImage (masks) <-> Tensor [1, 1, H, W] in [0, 1].
extension GrayImage {
    /// [1, 1, H, W] with p / 255.
    public func tensor() throws -> Tensor {
        let t = try Tensor.allocate([1, 1, height, width], what: "a \(width)x\(height) mask as a tensor")   // [1, 1, H, W]
        for i in 0..<(width * height) { t.data[i] = Float(pixels[i]) / 255 }
        return t
    }

    /// From [1, 1, H, W], [1, H, W] or [H, W] in [0, 1] (clamped, rounded).
    public init(tensor t: Tensor) throws {
        let s = t.shape
        guard s.count >= 2, s.dropLast(2).allSatisfy({ $0 == 1 }), s[s.count - 1] > 0, s[s.count - 2] > 0 else {
            throw DiffEditError.invalidArgument("mask tensor: shape \(s), expected [1, 1, H, W]")
        }
        let h = s[s.count - 2], w = s[s.count - 1]
        var px = [UInt8](repeating: 0, count: h * w)
        for i in 0..<(h * w) {
            let v = t.data[i]
            px[i] = UInt8(((v.isNaN ? 0 : min(max(v, 0), 1)) * 255).rounded())
        }
        self.init(width: w, height: h, pixels: px)
    }
}
