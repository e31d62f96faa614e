/// diffusers Downsample2D with a conv: 3x3 stride 2. padding 0 means the asymmetric (0, 1, 0, 1)
/// zero pad of the VAE encoder (and UNets with downsample_padding 0).
final class Downsample2D {
    let conv: Conv2dLayer

    init(_ w: WeightScope, channels: Int, padding: Int) throws {
        let pad = padding == 0 ? (0, 0, 1, 1) : (padding, padding, padding, padding)
        conv = try Conv2dLayer(w.sub("conv"), inChannels: channels, outChannels: channels, kernel: 3, stride: 2, padding: pad)
    }

    /// x [B, C, H, W] -> [B, C, ~H/2, ~W/2]
    func callAsFunction(_ be: Backend, _ x: Tensor) throws -> Tensor { try conv(be, x) }
}
