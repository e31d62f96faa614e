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

    // Calls running on contexts of this model and streams open on them, and whether the LoRA set is being
    // changed: diff_edit_model_set_loras and calls exclude each other with DIFF_EDIT_ERR_BUSY.
    private let activityLock = NSLockLite()
    private var running = 0
    private var openStreams = 0
    private var weightsChanging = false

    /// A context call starts: false while the weights are being changed.
    func enterCall() -> Bool {
        activityLock.withLock { if weightsChanging { return false }; running += 1; return true }
    }
    func leaveCall() { activityLock.withLock { running -= 1 } }
    func streamOpened() { activityLock.withLock { openStreams += 1 } }
    func streamClosed() { activityLock.withLock { openStreams -= 1 } }

    /// Runs `body` with the weights to itself; `.busy` while calls run or streams are open.
    func changingWeights<T>(_ function: String, _ body: () throws -> T) throws -> T {
        try activityLock.withLock {
            if weightsChanging {
                throw DiffEditError.busy("\(function): the model's LoRA set is being changed by another call")
            }
            if running > 0 || openStreams > 0 {
                throw DiffEditError.busy("\(function): the model is in use (\(running) call(s) running, \(openStreams) stream(s) open on its contexts); retry when they are done")
            }
            weightsChanging = true
        }
        defer { activityLock.withLock { weightsChanging = false } }
        return try body()
    }

    func log(_ level: Int32, _ message: String) {
        ModelHandle.log(logFn, logUser, level, message)
    }

    static func log(_ fn: diff_edit_log_fn?, _ user: UnsafeMutableRawPointer?, _ level: Int32, _ message: String) {
        guard let fn = fn else { return }
        message.withCString { fn(user, level, $0) }
    }
}
