import CDiffKernels

/// How model weights are kept in memory (`--weights-dtype`, diff_edit_model_params.weights_dtype).
/// Only linear and convolution weights are affected; biases, norms and embeddings stay f32.
/// - auto: as the file stores them (an fp16 / bf16 checkpoint is used in place, never widened as a whole;
///   f32 stays f32);
/// - f32: everything widened to f32 (the behaviour before weights could stay reduced);
/// - f16 / bf16: converted to that dtype (an f32 file is narrowed; the other 16-bit dtype is converted);
/// - q8_0: quantized in blocks of 32 along each row with one fp16 scale per block (GGUF q8_0); a weight
///   whose row length is not a multiple of 32 (e.g. conv_in over 4 channels) stays 16-bit.
/// Reduced weights need a backend that computes with them in place (the CPU provider,
/// DE_CAP_WEIGHT_DTYPES); a backend that keeps its own weight copies (CUDA) gets f32 constants and
/// chooses its own precision (BackendOptions.cudaBF16).
public enum WeightsDType: String, CaseIterable, Sendable {
    case auto, f32, f16, bf16, q8_0

    /// The accepted names, for messages: "auto, f32, f16, bf16, q8_0".
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// Parses a user-given name ("" = auto); `flag` names the option in the error.
    public static func parse(_ s: String, flag: String = "--weights-dtype") throws -> WeightsDType {
        if s.isEmpty { return .auto }
        guard let v = WeightsDType(rawValue: s.lowercased()) else {
            throw DiffEditError.invalidArgument("\(flag): unknown weights dtype \"\(s)\" (accepted: \(names))")
        }
        return v
    }
}
