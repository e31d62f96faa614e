/// diffusers UNetMidBlock2D as the VAE uses it: resnet, [attention], resnet (no time embedding, eps 1e-6).
final class VAEMidBlock {
    let resnet0: ResnetBlock2D
    let attention: VAEAttentionBlock?
    let resnet1: ResnetBlock2D

    init(_ w: WeightScope, channels: Int, groups: Int, addAttention: Bool) throws {
        resnet0 = try ResnetBlock2D(w.sub("resnets", 0), inChannels: channels, outChannels: channels, tembChannels: nil,
                                    groups: groups, eps: 1e-6)
        attention = addAttention ? try VAEAttentionBlock(w.sub("attentions", 0), channels: channels, groups: groups, eps: 1e-6) : nil
        resnet1 = try ResnetBlock2D(w.sub("resnets", 1), inChannels: channels, outChannels: channels, tembChannels: nil,
                                    groups: groups, eps: 1e-6)
    }

    /// x [B, C, H, W] -> [B, C, H, W]
    func callAsFunction(_ be: Backend, _ x: Tensor) throws -> Tensor {
        var h = try resnet0(be, x, tembAct: nil)             // [B, C, H, W]
        if let a = attention { h = try a(be, h) }            // [B, C, H, W]
        return try resnet1(be, h, tembAct: nil)              // [B, C, H, W]
    }
}
