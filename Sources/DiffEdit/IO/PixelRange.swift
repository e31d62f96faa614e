/// How 8-bit pixels map to floats: `.signed` is [-1, 1] (VAE input/output, x / 127.5 - 1 as
/// diffusers' VaeImageProcessor does), `.unit` is [0, 1].
public enum PixelRange: Sendable {
    case signed
    case unit
}
