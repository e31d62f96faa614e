/// Small tensor helpers of the editing methods (host f32, NCHW).
enum EditTensorOps {
    /// Concatenation along channels: a [B, C1, h, w], b [B, C2, h, w] -> [B, C1 + C2, h, w].
    static func catChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == 4 && b.rank == 4 && a.shape[0] == b.shape[0] && a.shape[2...] == b.shape[2...],
                     "catChannels: \(a.shape) + \(b.shape)")
        let (n, c1, c2, hw) = (a.shape[0], a.shape[1], b.shape[1], a.shape[2] * a.shape[3])
        let y = Tensor(shape: [n, c1 + c2, a.shape[2], a.shape[3]], zeroed: false)
        for i in 0..<n {
            (y.data + i * (c1 + c2) * hw).update(from: a.data + i * c1 * hw, count: c1 * hw)
            (y.data + (i * (c1 + c2) + c1) * hw).update(from: b.data + i * c2 * hw, count: c2 * hw)
        }
        return y
    }

    /// `n` copies of x along dimension 0.
    static func repeat0(_ x: Tensor, _ n: Int) -> Tensor { Tensor.cat0(Array(repeating: x, count: n)) }
}
