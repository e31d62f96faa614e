/// One ControlNet of a request with its input and schedule (diffusers: one entry of MultiControlNet with its
/// controlnet_conditioning_scale, control_guidance_start and control_guidance_end).
public struct ControlSpec: Sendable {
    public var net: ControlNetModel
    public var source: ControlSource
    /// Multiplies the residuals (diffusers' controlnet_conditioning_scale); 0 turns the net off.
    public var scale: Float = 1
    /// Fractions of the denoising steps the net acts in: step i of n runs it when
    /// i / n >= start and (i + 1) / n <= end (diffusers' controlnet_keep).
    public var start: Float = 0
    public var end: Float = 1

    public init(net: ControlNetModel, source: ControlSource, scale: Float = 1, start: Float = 0, end: Float = 1) {
        self.net = net; self.source = source; self.scale = scale; self.start = start; self.end = end
    }

    /// Throws `.invalidArgument` naming the field (`field` is the caller's name for this entry, e.g.
    /// "--control-scale" or "controls[1]") when scale, start or end is not usable.
    public func validate(_ field: String = "control") throws {
        guard scale.isFinite else { throw DiffEditError.invalidArgument("\(field) scale: \(scale) is not a finite number") }
        guard start.isFinite, start >= 0, start <= 1 else {
            throw DiffEditError.invalidArgument("\(field) start: \(start) is not a fraction of the steps in [0, 1]")
        }
        guard end.isFinite, end >= 0, end <= 1 else {
            throw DiffEditError.invalidArgument("\(field) end: \(end) is not a fraction of the steps in [0, 1]")
        }
        guard start < end else { throw DiffEditError.invalidArgument("\(field) start \(start) must be below end \(end)") }
    }

    /// Whether the net acts at step i of n (diffusers' controlnet_keep, in double precision as Python).
    func acts(step i: Int, of n: Int) -> Bool {
        !(Double(i) / Double(n) < Double(start) || Double(i + 1) / Double(n) > Double(end))
    }
}

/// What a ControlNet sees: a user-supplied control image, or one computed from the edit's input.
public enum ControlSource: Sendable, Equatable {
    /// Used as given (RGB, scaled to [0, 1]); it must have the size of the image the method works on.
    case image(RGBImage)
    /// `cv2.Canny(gray, 100, 200)` of the input (`CannyEdgeDetector`), as 3 equal channels.
    case canny
    /// The input itself (the tile ControlNet's condition).
    case tile
    /// The input with the mask's pixels (mask > 0.5) set to -1 (the ControlNet inpaint annotator); needs a mask.
    case inpaint

    /// The preprocessor names the CLI and the C ABI take.
    public static let preprocessorNames = ["canny", "tile", "inpaint"]

    /// A preprocessor by name; throws `.invalidArgument` naming `field` for an unknown one.
    public static func preprocessor(_ name: String, field: String) throws -> ControlSource {
        switch name {
        case "canny": return .canny
        case "tile": return .tile
        case "inpaint": return .inpaint
        default:
            throw DiffEditError.invalidArgument("\(field): unknown ControlNet preprocessor \"\(name)\" (expected \(preprocessorNames.joined(separator: ", ")))")
        }
    }
}
