import CDiffEditABI
import DiffEdit

/// The object behind `diff_edit_model *`: the loaded engine and the caller's log callback.
/// Retained once by the caller's handle and once by every context.
final class ModelHandle: @unchecked Sendable {
    let engine: EditEngine
    /// The model's file or folder (for the provenance record's name and hash).
    let path: String
    private let logFn: diff_edit_log_fn?
    private let logUser: UnsafeMutableRawPointer?
    private let hashLock = NSLockLite()
    private var hash: String?? = nil

    init(engine: EditEngine, path: String, log: diff_edit_log_fn?, logUser: UnsafeMutableRawPointer?) {
        self.engine = engine; self.path = path; self.logFn = log; self.logUser = logUser
    }

    /// The SHA-256 of the weights (ModelHash: computed once per weight file and cached beside it or in the
    /// user's cache directory), nil when they cannot be hashed (with a log line). Computed on first use and
    /// kept for the life of the model.
    func weightsSHA256() -> String? {
        hashLock.withLock {
            if let h = hash { return h }
            var h: String? = nil
            do {
                h = try ModelHash.sha256(modelPath: path, hashed: { f in self.log(1, "hashing \(f) for the provenance record (once; cached)") })
            } catch {
                log(2, "provenance: model hash unavailable: \(DiffEditError.from(error, context: "hash").message)")
            }
            hash = .some(h)
            return h
        }
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
