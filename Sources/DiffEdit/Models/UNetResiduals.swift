/// ControlNet residuals for one UNet call (diffusers' down_block_additional_residuals and
/// mid_block_additional_residual): one tensor per skip the down blocks emit, [K, C_j, h_j, w_j], and one
/// for the mid block's output, [K, C_last, h/f, w/f]. `items`: the UNet batch item each of the K residual
/// items belongs to (nil: K is the whole batch, in order); items not listed get nothing.
public struct UNetResiduals {
    public var down: [Tensor]
    public var mid: Tensor
    public var items: [Int]?

    public init(down: [Tensor], mid: Tensor, items: [Int]? = nil) { self.down = down; self.mid = mid; self.items = items }

    /// skips[j] += down[j] and mid += self.mid, item by item, in place.
    func add(to skips: [Tensor], mid h: Tensor, backend be: Backend) throws {
        guard down.count == skips.count else {
            throw DiffEditError.invalidArgument("ControlNet residuals: \(down.count) down-block residuals for a UNet with \(skips.count) skips")
        }
        for (j, (s, r)) in zip(skips, down).enumerated() {
            try addItems(s, r, "down_block_additional_residuals[\(j)]", be)
        }
        try addItems(h, mid, "mid_block_additional_residual", be)
    }

    private func addItems(_ x: Tensor, _ r: Tensor, _ what: String, _ be: Backend) throws {
        let k = items?.count ?? x.shape[0]
        guard r.rank == 4, x.rank == 4, r.shape[0] == k, Array(r.shape.dropFirst()) == Array(x.shape.dropFirst()) else {
            throw DiffEditError.invalidArgument("ControlNet residuals: \(what) has shape \(r.shape), the UNet's tensor is \(x.shape) (\(k) controlled items)")
        }
        guard let items else { _ = try be.add(x, r, inPlace: true); return }                 // [B, C, h, w]
        for (n, b) in items.enumerated() { _ = try be.add(x.slice0(b, 1), r.slice0(n, 1), inPlace: true) }
    }
}
