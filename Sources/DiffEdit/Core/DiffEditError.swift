/// The one error type of the library. Every case carries a message that names the file, tensor,
/// field or argument at fault. The C ABI maps the cases 1:1 onto `diff_edit_status`.
public enum DiffEditError: Error, CustomStringConvertible, Equatable {
    case invalidArgument(String)   // DIFF_EDIT_ERR_INVALID_ARGUMENT
    case unsupported(String)       // DIFF_EDIT_ERR_UNSUPPORTED
    case outOfMemory(String)       // DIFF_EDIT_ERR_OUT_OF_MEMORY
    case backend(String)           // DIFF_EDIT_ERR_BACKEND
    case io(String)                // DIFF_EDIT_ERR_IO
    case model(String)             // DIFF_EDIT_ERR_MODEL
    case busy(String)              // DIFF_EDIT_ERR_BUSY
    case cancelled                 // DIFF_EDIT_CANCELLED

    public var message: String {
        switch self {
        case .invalidArgument(let m), .unsupported(let m), .outOfMemory(let m), .backend(let m),
             .io(let m), .model(let m), .busy(let m):
            return m
        case .cancelled:
            return "cancelled"
        }
    }

    public var description: String { message }
}
