/// Source-static pixel fusion, the last stage of the consistent video method (in the spirit of
/// Rerender-A-Video's pixel-level fusion, with zero flow only): where the *source* video does not change
/// between frame f-1 and f within a neighbourhood, the edited frame f takes the edited frame f-1's pixels,
/// with a feathered edge. The neighbourhood margin keeps the edit's bleed around moving objects from
/// being dragged along: a pixel is copied only when nothing within `radius` changed in the source.
/// "Changed" means some channel differs by more than `tolerance` (compressed input is noisy).
enum VideoPixelFusion {
    static let defaultTolerance = 6

    static func fuse(source: RGBImage, previousSource: RGBImage, edited: RGBImage, previousEdited: RGBImage,
                     radius r: Int, tolerance: Int = VideoPixelFusion.defaultTolerance) -> RGBImage {
        let (w, h) = (source.width, source.height)
        precondition(previousSource.width == w && edited.width == w && previousEdited.width == w &&
                     previousSource.height == h && edited.height == h && previousEdited.height == h,
                     "VideoPixelFusion: frame sizes differ")
        let n = w * h
        var changed = [Float](repeating: 0, count: n)
        for i in 0..<n {
            for c in 0..<3 where abs(Int(source.pixels[3 * i + c]) - Int(previousSource.pixels[3 * i + c])) > tolerance {
                changed[i] = 1
                break
            }
        }
        // static = no change within radius r; alpha = static shrunk by a further r/2 and blurred by r/2 (feather)
        let feather = max(r / 2, 1)
        let grown = EditMask.dilate(changed, width: w, height: h, radius: r + feather)
        let alpha = EditMask.boxBlur(grown.map { 1 - $0 }, width: w, height: h, radius: feather)
        var px = edited.pixels
        for i in 0..<n where alpha[i] > 0 {
            let a = min(alpha[i], 1)
            for c in 0..<3 {
                let e = Float(px[3 * i + c]), p = Float(previousEdited.pixels[3 * i + c])
                px[3 * i + c] = UInt8(min(max(e + a * (p - e), 0), 255).rounded())
            }
        }
        return RGBImage(width: w, height: h, pixels: px)
    }
}
