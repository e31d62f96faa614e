import CDiffEditABI
import DiffEdit

/// The object behind `diff_edit_ctx *`: one editing session over a model, with its busy flag, the
/// running call's ProgressReporter (for diff_edit_cancel) and its last-error buffer.
final class ContextHandle: @unchecked Sendable {
    let model: ModelHandle
    let session: EditSession
    let error = ErrorSlot()
    private let lock = NSLockLite()
    private var busy = false
    private var reporter: ProgressReporter? = nil

    init(model: ModelHandle) throws {
        self.model = model
        self.session = try model.engine.makeSession()
    }

    /// Marks the context busy; false when another call holds it.
    func tryEnter() -> Bool {
        lock.withLock { if busy { return false }; busy = true; return true }
    }

    func leave() { lock.withLock { busy = false; reporter = nil } }

    /// Publishes the running call's reporter so that `cancel` from any thread reaches it.
    func setReporter(_ r: ProgressReporter) { lock.withLock { reporter = r } }

    /// Cancels the running call, if any (diff_edit_cancel).
    func cancel() { lock.withLock { reporter?.cancel() } }

    // The streaming session (diff_edit_stream_*) of this context, released with it.
    private var stream: StreamState? = nil
    private var lookahead = StreamRegistry.defaultLookahead

    // The provenance of the last successful editing call (diff_edit_last_provenance): its record, and the
    // XMP packet made from it on request (a C string owned here, valid until the next editing call).
    private var record: ProvenanceRecord? = nil
    private var packet: UnsafeMutablePointer<CChar>? = nil

    /// Called at the start of every editing call (nil) and at its success (the record).
    func setRecord(_ r: ProvenanceRecord?) {
        lock.withLock {
            record = r
            packet?.deallocate()
            packet = nil
        }
    }

    /// The XMP packet of the last successful editing call, "" when there is none. The model's name and weights
    /// hash are filled in here (the hash is computed on the model's first request, then cached).
    func provenancePacket() -> UnsafePointer<CChar> {
        guard var r = lock.withLock({ record }) else { return StaticStrings.emptyPrompt }
        if let p = lock.withLock({ packet }) { return UnsafePointer(p) }
        r.model = ProvenanceRecord.modelName(path: model.path)
        r.modelSHA256 = model.weightsSHA256()
        let bytes = Array(XMPPacket.make(r).utf8)
        let buf = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
        bytes.withUnsafeBufferPointer { src in UnsafeMutableRawPointer(buf).copyMemory(from: src.baseAddress!, byteCount: src.count) }
        buf[bytes.count] = 0
        return lock.withLock {
            if let other = packet { buf.deallocate(); return UnsafePointer(other) }   // made by a concurrent request
            packet = buf
            return UnsafePointer(buf)
        }
    }

    func streamState() -> StreamState? { lock.withLock { stream } }
    /// Also counts the model's open streams (diff_edit_model_set_loras is BUSY while one is open).
    func setStreamState(_ s: StreamState?) {
        let (opened, closed) = lock.withLock { () -> (Bool, Bool) in
            let was = stream != nil
            stream = s
            return (!was && s != nil, was && s == nil)
        }
        if opened { model.streamOpened() }
        if closed { model.streamClosed() }
    }

    deinit {
        if stream != nil { model.streamClosed() }
        packet?.deallocate()
    }
    func streamLookahead() -> Int { lock.withLock { lookahead } }
    func setStreamLookahead(_ n: Int) { lock.withLock { lookahead = n } }
}
