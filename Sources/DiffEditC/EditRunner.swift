import CDiffEditABI
import DiffEdit

/// Runs a checked diff_edit_image (or a frame of diff_edit_video with a mask): converts the caller's pixels,
/// calls the session, writes the outputs. The pixels themselves (compositing, masks) are the library's
/// (`PixelPolicy`): the C ABI returns what the CLI and the Swift API return for the same request.
struct EditRunner {
    let ctx: ContextHandle
    let request: EditRequest
    let reporter: ProgressReporter

    /// Edits one image (input may alias output: the input is read fully first).
    func run(input: CheckedBuffer, output: CheckedBuffer, inputName: String) throws {
        // the request's working set, the pictures at the input's size included, before the pixels are converted
        do {
            try ctx.session.checkRequest(width: input.width, height: input.height, options: request.options,
                                         masked: request.mask != nil, alpha: input.format.hasAlpha)
        } catch let e as DiffEditError {
            throw request.cNamed(e)
        }
        let (rgb, alpha) = try PixelConverter.readRGB(input)
        var options = request.options
        options.mask = try request.mask.map { try PixelConverter.readGray($0) }
        options.reportMask = request.maskOut != nil   // else no input-size mask is made
        try reporter.check()
        let result: EditResult
        do {
            result = try ctx.session.edit(rgb, options: options, progress: reporter)
        } catch let e as DiffEditError {
            throw request.cNamed(e)
        }
        try reporter.check()
        guard result.image.width == input.width && result.image.height == input.height else {
            throw DiffEditError.backend("\(inputName): internal error: the editor returned \(result.image.width)x\(result.image.height) for a \(input.width)x\(input.height) image")
        }
        let image = request.watermark ? InvisibleWatermark.embed(result.image) : result.image
        PixelConverter.writeRGB(image, alpha: alpha, to: output)
        if let mo = request.maskOut {
            PixelConverter.writeGray(result.mask ?? GrayImage(width: input.width, height: input.height,
                                                              pixels: [UInt8](repeating: 255, count: input.width * input.height)), to: mo)
        }
    }
}
