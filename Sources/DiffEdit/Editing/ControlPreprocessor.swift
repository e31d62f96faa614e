/// The control maps ControlNets see, at the size the method works on (the input after
/// `NativeResolutionPlan.toWork`, or the generated image's size): [1, 3, H, W], values in [0, 1]
/// (inpaint: -1 at masked pixels).
public enum ControlPreprocessor {
    /// The map of `source` for the work image `work`; `mask` is the user mask at work size ([0, 1] plane,
    /// unfeathered; inpaint only). A user image must already have the work size (callers resize it:
    /// `fit`), else `.invalidArgument` naming `field`.
    public static func map(_ source: ControlSource, work: RGBImage, mask: [Float]?, field: String) throws -> Tensor {
        switch source {
        case .image(let img):
            guard img.width == work.width, img.height == work.height else {
                throw DiffEditError.invalidArgument("\(field): control image is \(img.width)x\(img.height), the image the method works on is \(work.width)x\(work.height)")
            }
            return try img.tensor(range: .unit)                                             // [1, 3, H, W]
        case .canny:
            let e = CannyEdgeDetector.edges(work)
            return try RGBImage(width: e.width, height: e.height, pixels: e.pixels.flatMap { [$0, $0, $0] }).tensor(range: .unit)
        case .tile:
            return try work.tensor(range: .unit)
        case .inpaint:
            guard let m = mask else {
                throw DiffEditError.invalidArgument("\(field): the inpaint preprocessor needs a mask (--mask; white = repaint)")
            }
            precondition(m.count == work.width * work.height, "ControlPreprocessor: mask \(m.count) for \(work.width)x\(work.height)")
            let t = try work.tensor(range: .unit)                                            // [1, 3, H, W]
            let hw = m.count
            for i in 0..<hw where m[i] > 0.5 { for c in 0..<3 { t.data[c * hw + i] = -1 } }
            return t
        }
    }

    /// The specs with every user control image (input size, else `.invalidArgument`) brought to the work size
    /// the way the input is (`NativeResolutionPlan.toWork`), so that map and input stay aligned.
    public static func toWork(_ controls: [ControlSpec], plan: NativeResolutionPlan) throws -> [ControlSpec] {
        try controls.enumerated().map { i, c in
            guard case .image(let img) = c.source else { return c }
            guard img.width == plan.inputWidth, img.height == plan.inputHeight else {
                throw DiffEditError.invalidArgument("controls[\(i)]: control image is \(img.width)x\(img.height), the input is \(plan.inputWidth)x\(plan.inputHeight)")
            }
            var w = c
            w.source = .image(plan.toWork(img))
            return w
        }
    }

    /// A control map as 8-bit RGB for `--control-out` (inpaint's -1 shows as black).
    public static func picture(_ map: Tensor) throws -> RGBImage { try RGBImage(tensor: map, range: .unit) }

    /// A user control image at width x height: itself when it has that size, else resized (bilinear) with a
    /// note saying so (the CLI prints it; hosts log it).
    public static func fit(_ image: RGBImage, width: Int, height: Int, what: String) -> (RGBImage, note: String?) {
        if image.width == width && image.height == height { return (image, nil) }
        return (ImageResampler.resize(image, toWidth: width, height: height),
                "\(what): control image \(image.width)x\(image.height) resized to \(width)x\(height)")
    }
}
