import CDiffKernels

/// A kernel backend (CPU provider, or the CUDA provider when loaded). All tensor math of the
/// models goes through the `Ops` methods below, which fill the C op descriptors of de_backend.h.
/// Tensors are host f32; for the CPU provider backend memory is host memory.
public final class Backend: @unchecked Sendable {
    public let raw: UnsafeMutablePointer<de_backend>
    public let name: String
    /// Why "auto" fell back to the CPU (empty when it did not).
    public let fallbackReason: String

    /// name: "auto", "cpu" or "cuda"; threads 0 = all cores.
    public init(name: String = "cpu", device: Int = 0, threads: Int = 0) throws {
        guard ["auto", "cpu", "cuda"].contains(name) else {
            throw DiffEditError.invalidArgument("backend: unknown backend \"\(name)\" (use auto, cpu or cuda)")
        }
        var err = [CChar](repeating: 0, count: 512)
        guard let be = de_backend_load(name, Int32(device), Int32(threads), &err, err.count) else {
            let msg = String(cString: err)
            throw DiffEditError.backend("backend \(name): \(msg.isEmpty ? "could not be loaded" : msg)")
        }
        self.raw = be
        self.name = String(cString: de_backend_name(be))
        self.fallbackReason = String(cString: err)
    }

    deinit { de_backend_free(raw) }

    /// The CPU backend with all cores, created once per process for convenience (tests, tools).
    nonisolated(unsafe) public static let cpu: Backend = try! Backend(name: "cpu")

    @inline(__always)
    func check(_ status: de_status, _ op: String) throws {
        if status == DE_OK { return }
        let msg = String(cString: de_backend_last_error(raw))
        switch status {
        case DE_ERR_OOM: throw DiffEditError.outOfMemory("\(op): \(msg)")
        case DE_ERR_UNSUPPORTED: throw DiffEditError.unsupported("\(op): \(msg)")
        default: throw DiffEditError.backend("\(op): \(msg)")
        }
    }
}
