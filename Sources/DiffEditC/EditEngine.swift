import DiffEdit

/// What the C ABI needs from a loaded model: whether it is an instruct checkpoint (for AUTO) and a
/// way to start an editing session per context. `EngineLoader` makes the real one.
protocol EditEngine: AnyObject, Sendable {
    /// True for an InstructPix2Pix checkpoint (UNet with 8 input channels).
    var isInstruct: Bool { get }
    /// One line for the log, e.g. "sd1 (diffusers folder /x), backend cpu".
    var summary: String { get }
    /// A new editing session (one per context; sessions of one engine may run in parallel).
    func makeSession() throws -> EditSession
}

/// One editing session (owned by one context, used by one call at a time).
protocol EditSession: AnyObject {
    func edit(_ image: RGBImage, options: EditOptions, progress: ProgressReporter) throws -> EditResult
}
