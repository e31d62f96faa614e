import CDiffEditABI
import DiffEdit

/// The object behind `diff_edit_model *`: the loaded engine and the caller's log callback.
/// Retained once by the caller's handle and once by every context.
final class ModelHandle: @unchecked Sendable {
    let engine: EditEngine
    private let logFn: diff_edit_log_fn?
    private let logUser: UnsafeMutableRawPointer?

    init(engine: EditEngine, log: diff_edit_log_fn?, logUser: UnsafeMutableRawPointer?) {
        self.engine = engine; self.logFn = log; self.logUser = logUser
    }

    func log(_ level: Int32, _ message: String) {
        ModelHandle.log(logFn, logUser, level, message)
    }

    static func log(_ fn: diff_edit_log_fn?, _ user: UnsafeMutableRawPointer?, _ level: Int32, _ message: String) {
        guard let fn = fn else { return }
        message.withCString { fn(user, level, $0) }
    }
}
