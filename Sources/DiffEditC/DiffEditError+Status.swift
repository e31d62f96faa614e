import CDiffEditABI
import DiffEdit

extension DiffEditError {
    /// The C status of each case (1:1, see include/diffedit.h).
    var cStatus: diff_edit_status {
        switch self {
        case .invalidArgument: return DIFF_EDIT_ERR_INVALID_ARGUMENT
        case .unsupported: return DIFF_EDIT_ERR_UNSUPPORTED
        case .outOfMemory: return DIFF_EDIT_ERR_OUT_OF_MEMORY
        case .backend: return DIFF_EDIT_ERR_BACKEND
        case .io: return DIFF_EDIT_ERR_IO
        case .model: return DIFF_EDIT_ERR_MODEL
        case .busy: return DIFF_EDIT_ERR_BUSY
        case .cancelled: return DIFF_EDIT_CANCELLED
        }
    }

    /// Any error thrown below the ABI as a DiffEditError (foreign errors become backend errors
    /// that carry their description, so no Swift error crosses the boundary unnamed).
    static func from(_ error: Error, context: String) -> DiffEditError {
        if let e = error as? DiffEditError { return e }
        return .backend("\(context): internal error: \(error)")
    }
}

extension DiffEditError {
    /// The same case with another message (the C ABI renames library field names to diff_edit_params').
    func withMessage(_ m: String) -> DiffEditError {
        switch self {
        case .invalidArgument: return .invalidArgument(m)
        case .unsupported: return .unsupported(m)
        case .outOfMemory: return .outOfMemory(m)
        case .backend: return .backend(m)
        case .io: return .io(m)
        case .model: return .model(m)
        case .busy: return .busy(m)
        case .cancelled: return .cancelled
        }
    }
}
