import CDiffKernels
import FoundationEssentials
import Synchronization

/// A kernel backend (CPU provider, or the CUDA provider when loaded). All tensor math of the
/// models goes through the `Ops` methods below, which fill the C op descriptors of de_backend.h.
/// Tensors are f32. On a resident backend (CUDA, or the CPU provider with `staged: true` /
/// DIFFEDIT_CPU_STAGED=1, which exercises the same code paths with host memory) op outputs are
/// allocated in backend memory and stay there until host code reads them (see TensorStorage).
public final class Backend: @unchecked Sendable {
    public let raw: UnsafeMutablePointer<de_backend>
    public let name: String
    /// Why "auto" fell back to the CPU (empty when it did not).
    public let fallbackReason: String
    /// Op outputs live in backend memory (device-resident activations).
    public let resident: Bool
    private let transferFailure = Mutex<String?>(nil)

    /// name: "auto", "cpu" or "cuda"; threads 0 = all cores. `staged`: the CPU provider allocates op
    /// outputs through its alloc slot and moves them to host memory only when host code reads them,
    /// exactly as the CUDA provider does (a test mode for the resident code paths; default from the
    /// environment variable DIFFEDIT_CPU_STAGED=1).
    public init(name: String = "cpu", device: Int = 0, threads: Int = 0, staged: Bool? = nil) throws {
        guard ["auto", "cpu", "cuda"].contains(name) else {
            throw DiffEditError.invalidArgument("backend: unknown backend \"\(name)\" (use auto, cpu or cuda)")
        }
        var err = [CChar](repeating: 0, count: 512)
        guard let be = de_backend_load(name, Int32(device), Int32(threads), &err, err.count) else {
            let msg = err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw DiffEditError.backend("backend \(name): \(msg.isEmpty ? "could not be loaded" : msg)")
        }
        self.raw = be
        self.name = String(cString: de_backend_name(be))
        self.fallbackReason = err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let env = ProcessInfo.processInfo.environment
        let stagedEnv = env["DIFFEDIT_CPU_STAGED"] == "1"
        // DIFFEDIT_CUDA_RESIDENT=0: the CUDA provider takes host memory for every op (the pre-API-2 path,
        // slow but simpler), a fallback while the resident path has not yet run on a GPU
        let cudaResident = env["DIFFEDIT_CUDA_RESIDENT"] != "0"
        self.resident = (self.name == "cuda" && cudaResident) || (self.name == "cpu" && (staged ?? stagedEnv))
    }

    /// A tensor for an op to write: backend memory on a resident backend, host memory otherwise.
    public func output(_ shape: [Int]) throws -> Tensor {
        if !resident { return Tensor(shape: shape, zeroed: false) }
        return Tensor(shape: shape, storage: try TensorStorage(deviceCount: shape.reduce(1, *), backend: self))
    }

    /// x in backend memory: on a resident backend a host tensor is uploaded once (so the ops that
    /// read it do not each copy it in); otherwise x itself.
    public func onDevice(_ x: Tensor) throws -> Tensor {
        if !resident || x.isOnDevice { return x }
        let y = try output(x.shape)
        try check(de_backend_upload(raw, y.opData, x.data, x.count * MemoryLayout<Float>.stride), "upload")
        return y
    }

    /// Called by TensorStorage when a download failed (a property cannot throw): the next op fails with it.
    func recordTransferFailure(_ message: String) {
        transferFailure.withLock { if $0 == nil { $0 = message } }
    }

    /// Waits for queued device work; reports a device failure as an error.
    public func synchronize() throws {
        try check(de_backend_synchronize(raw), "synchronize")
    }

    deinit { de_backend_free(raw) }

    /// The CPU backend with all cores, created once per process for convenience (tests, tools).
    nonisolated(unsafe) public static let cpu: Backend = try! Backend(name: "cpu")

    @inline(__always)
    func check(_ status: de_status, _ op: String) throws {
        // only a resident backend moves data behind the caller's back (TensorStorage downloads)
        if resident, let failure = transferFailure.withLock({ f -> String? in let m = f; f = nil; return m }) {
            throw DiffEditError.backend("\(op): an earlier device transfer failed: \(failure)")
        }
        if status == DE_OK { return }
        let msg = String(cString: de_backend_last_error(raw))
        switch status {
        case DE_ERR_OOM: throw DiffEditError.outOfMemory("\(op): \(msg)")
        case DE_ERR_UNSUPPORTED: throw DiffEditError.unsupported("\(op): \(msg)")
        default: throw DiffEditError.backend("\(op): \(msg)")
        }
    }
}
