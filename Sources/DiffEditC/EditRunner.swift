import CDiffEditABI
import DiffEdit

/// Runs checked edits on a context: converts pixels, calls the session, composites the user mask,
/// writes outputs. Everything it is given has been validated already.
struct EditRunner {
    let ctx: ContextHandle
    let request: EditRequest
    let method: EditMethod
    let reporter: ProgressReporter

    /// Edits one image (input may alias output: the input is read fully first).
    func run(input: CheckedBuffer, output: CheckedBuffer, inputName: String) throws {
        let (rgb, alpha) = PixelConverter.readRGB(input)
        var options = request.options(method: method)
        let userMask = request.mask.map { PixelConverter.readGray($0) }
        options.mask = userMask
        try reporter.check()
        let result = try ctx.session.edit(rgb, options: options, progress: reporter)
        try reporter.check()
        guard result.image.width == input.width && result.image.height == input.height else {
            throw DiffEditError.backend("\(inputName): internal error: the editor returned \(result.image.width)x\(result.image.height) for a \(input.width)x\(input.height) image")
        }
        var edited = result.image
        if let m = userMask { edited = PixelConverter.composite(edited: edited, input: rgb, mask: m) }
        var usedMask: GrayImage
        if let m = result.mask, m.width == input.width, m.height == input.height {
            usedMask = m
            if let u = userMask {   // the method's mask, restricted to the user's
                for i in 0..<usedMask.pixels.count { usedMask.pixels[i] = min(usedMask.pixels[i], u.pixels[i]) }
            }
        } else if let u = userMask {
            usedMask = u
        } else {
            usedMask = GrayImage(width: input.width, height: input.height,
                                 pixels: [UInt8](repeating: 255, count: input.width * input.height))
        }
        PixelConverter.writeRGB(edited, alpha: alpha, to: output)
        if let mo = request.maskOut { PixelConverter.writeGray(usedMask, to: mo) }
    }
}
