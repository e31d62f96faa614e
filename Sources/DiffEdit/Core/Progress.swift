/// Per-call progress and cancellation. `report` returns false when the caller wants to stop;
/// long loops call `check` between steps and throw `.cancelled`.
public final class ProgressReporter: @unchecked Sendable {
    public typealias Callback = (_ step: Int, _ steps: Int, _ frame: Int, _ frames: Int) -> Bool
    private let callback: Callback?
    /// A reporter whose cancellation this one sees too (a wrapper around the caller's reporter).
    private let parent: ProgressReporter?
    private let lock = NSLockLite()
    private var cancelled = false

    public init(_ callback: Callback? = nil, parent: ProgressReporter? = nil) {
        self.callback = callback
        self.parent = parent
    }

    /// Requests cancellation (safe from any thread).
    public func cancel() { lock.withLock { cancelled = true } }
    public var isCancelled: Bool { lock.withLock { cancelled } || (parent?.isCancelled ?? false) }

    /// Reports progress; throws `.cancelled` when cancelled by `cancel()` or by the callback.
    public func step(_ step: Int, of steps: Int, frame: Int = 0, frames: Int = 1) throws {
        if isCancelled { throw DiffEditError.cancelled }
        if let cb = callback, !cb(step, steps, frame, frames) { cancel(); throw DiffEditError.cancelled }
    }

    /// Throws `.cancelled` if cancellation was requested.
    public func check() throws { if isCancelled { throw DiffEditError.cancelled } }
}

#if canImport(Glibc)
import Glibc
#endif

/// A tiny mutex without Foundation.
public final class NSLockLite: @unchecked Sendable {
    private var m = pthread_mutex_t()
    public init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&m); defer { pthread_mutex_unlock(&m) }
        return try body()
    }
    /// Plain lock / unlock, for code that must let go of the lock in the middle of a `withLock`-like span
    /// (the C ABI's compute lock around user callbacks). Pair them exactly.
    public func lock() { pthread_mutex_lock(&m) }
    public func unlock() { pthread_mutex_unlock(&m) }
}
