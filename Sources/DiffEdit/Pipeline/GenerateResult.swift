/// What text-to-image returns: the 8-bit image, the final latents before VAE decoding (scaled, as
/// diffusers' output_type="latent"), and the decoded image tensor [1, 3, H, W] in about [-1, 1].
public struct GenerateResult {
    public var image: RGBImage
    public var latents: Tensor
    public var decoded: Tensor
    /// The control map each ControlNet saw (`--control-out`), in order.
    public var controlMaps: [RGBImage] = []
    public init(image: RGBImage, latents: Tensor, decoded: Tensor, controlMaps: [RGBImage] = []) {
        self.image = image; self.latents = latents; self.decoded = decoded; self.controlMaps = controlMaps
    }
}
