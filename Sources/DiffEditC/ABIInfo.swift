/// Version constants of the C ABI (include/diffedit.h).
enum ABIInfo {
    /// DIFF_EDIT_ABI_VERSION of the header this library implements.
    static let abiVersion: UInt32 = 1
    /// The library version returned by `diff_edit_version`.
    static let version = "0.1.0"
    /// DIFF_EDIT_MAX_DIMENSION.
    static let maxDimension = 16384
    /// DIFF_EDIT_MAX_STEPS.
    static let maxSteps = 1000
    /// DIFF_EDIT_MAX_GUIDANCE.
    static let maxGuidance: Float = 100
}
