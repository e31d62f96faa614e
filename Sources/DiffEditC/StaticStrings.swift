import CDiffEditABI

/// Immutable C strings returned to callers; they live for the whole process.
enum StaticStrings {
    /// Returned by `diff_edit_last_error` if even the thread's error buffer could not be allocated.
    nonisolated(unsafe) static let empty: UnsafePointer<CChar> = make("")
    /// `diff_edit_params_default` points `prompt` here.
    nonisolated(unsafe) static let emptyPrompt: UnsafePointer<CChar> = make("")
    nonisolated(unsafe) static let version: UnsafePointer<CChar> = make(ABIInfo.version)
    /// "auto", the default backend of `diff_edit_model_params_default`.
    nonisolated(unsafe) static let auto: UnsafePointer<CChar> = make("auto")

    nonisolated(unsafe) static let statusNames: [Int32: UnsafePointer<CChar>] = {
        var d: [Int32: UnsafePointer<CChar>] = [:]
        for (s, name) in [(DIFF_EDIT_OK, "ok"), (DIFF_EDIT_CANCELLED, "cancelled"),
                          (DIFF_EDIT_ERR_INVALID_ARGUMENT, "invalid argument"),
                          (DIFF_EDIT_ERR_UNSUPPORTED, "unsupported"),
                          (DIFF_EDIT_ERR_OUT_OF_MEMORY, "out of memory"),
                          (DIFF_EDIT_ERR_BACKEND, "backend error"), (DIFF_EDIT_ERR_IO, "i/o error"),
                          (DIFF_EDIT_ERR_MODEL, "model error"), (DIFF_EDIT_ERR_BUSY, "busy"),
                          (DIFF_EDIT_AGAIN, "again")] {
            d[Int32(s.rawValue)] = make(name)
        }
        return d
    }()
    nonisolated(unsafe) static let unknownStatus: UnsafePointer<CChar> = make("unknown status")

    private static func make(_ s: String) -> UnsafePointer<CChar> {
        let bytes = Array(s.utf8CString)
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
        p.initialize(from: bytes, count: bytes.count)
        return UnsafePointer(p)
    }
}
