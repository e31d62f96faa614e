/// diffusers ResnetBlock2D (time_embedding_norm "default"): GroupNorm+SiLU, conv3x3, + time projection,
/// GroupNorm+SiLU, conv3x3 (dropout is a no-op at inference), shortcut (1x1 conv when channels change),
/// output = (shortcut + h) / outputScaleFactor.
final class ResnetBlock2D {
    let norm1: GroupNormLayer
    let conv1: Conv2dLayer
    let timeEmbProj: LinearLayer?
    let norm2: GroupNormLayer
    let conv2: Conv2dLayer
    let convShortcut: Conv2dLayer?
    let outputScaleFactor: Float
    let outChannels: Int

    init(_ w: WeightScope, inChannels: Int, outChannels: Int, tembChannels: Int?, groups: Int, eps: Float,
         outputScaleFactor: Float = 1) throws {
        norm1 = try GroupNormLayer(w.sub("norm1"), channels: inChannels, groups: groups, eps: eps)
        conv1 = try Conv2dLayer(w.sub("conv1"), inChannels: inChannels, outChannels: outChannels, kernel: 3)
        timeEmbProj = try tembChannels.map { try LinearLayer(w.sub("time_emb_proj"), inFeatures: $0, outFeatures: outChannels) }
        norm2 = try GroupNormLayer(w.sub("norm2"), channels: outChannels, groups: groups, eps: eps)
        conv2 = try Conv2dLayer(w.sub("conv2"), inChannels: outChannels, outChannels: outChannels, kernel: 3)
        convShortcut = inChannels != outChannels
            ? try Conv2dLayer(w.sub("conv_shortcut"), inChannels: inChannels, outChannels: outChannels, kernel: 1)
            : nil
        self.outputScaleFactor = outputScaleFactor
        self.outChannels = outChannels
    }

    /// x [B, Cin, H, W], tembAct = SiLU(temb) [B, T] (shared by all blocks) -> [B, Cout, H, W]
    func callAsFunction(_ be: Backend, _ x: Tensor, tembAct: Tensor?) throws -> Tensor {
        let h = try conv1(be, try norm1(be, x, silu: true))          // [B, Cout, H, W]
        return try finish(be, h, tembAct: tembAct, shortcut: try convShortcut.map { try $0(be, x) } ?? x)
    }

    /// The same block taking x out of `input` (left nil), for a caller that holds x nowhere else (the VAE
    /// decoder). With a 1x1 shortcut, the shortcut is computed first, norm1 then runs in place on x and x is
    /// freed after conv1: neither a normalized copy of x nor x itself is held beside conv2's tensors (the
    /// decoder's first resnet at 512 px peaks at 512 MB instead of 768 MB of activations). Same results.
    func callAsFunction(_ be: Backend, taking input: inout Tensor?, tembAct: Tensor?) throws -> Tensor {
        guard let x = input.take() else { preconditionFailure("ResnetBlock2D: no input") }
        guard let sc = convShortcut else { return try self(be, x, tembAct: tembAct) }  // x is the residual
        let shortcut = try sc(be, x)                                   // [B, Cout, H, W]
        let h = try conv1(be, try norm1(be, x, silu: true, inPlace: true))   // [B, Cout, H, W]
        _ = consume x
        return try finish(be, h, tembAct: tembAct, shortcut: shortcut)
    }

    /// conv1's output h -> + time projection, GroupNorm+SiLU (in place), conv2 + shortcut, output scale.
    private func finish(_ be: Backend, _ h: Tensor, tembAct: Tensor?, shortcut: Tensor) throws -> Tensor {
        if let proj = timeEmbProj, let t = tembAct {
            let tp = try proj(be, t)                                   // [B, Cout]
            _ = try be.addPerChannel(h, tp, inPlace: true)             // [B, Cout, H, W]
        }
        _ = try norm2(be, h, silu: true, inPlace: true)                // [B, Cout, H, W]
        let y = try conv2(be, h, residual: shortcut)                   // [B, Cout, H, W]
        if outputScaleFactor != 1 { _ = try be.scale(y, 1 / outputScaleFactor, inPlace: true) }
        return y
    }
}
