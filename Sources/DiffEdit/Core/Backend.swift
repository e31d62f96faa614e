import CDiffKernels
import FoundationEssentials
import Synchronization

/// Backend settings given at creation: the Swift face of `de_backend_options` (de_backend.h).
/// `BackendOptions.fromEnvironment()` reads the DIFFEDIT_* variables once (the default when a caller
/// gives no options); no op reads the environment.
public struct BackendOptions: Sendable, Equatable {
    public enum Winograd: Int32, Sendable {
        /// F(4x4) or F(2x2) by shape
        case auto = 0
        /// F(2x2, 3x3) (DIFFEDIT_WINOGRAD=2)
        case f2 = 2
        /// F(4x4, 3x3) (DIFFEDIT_WINOGRAD=4)
        case f4 = 4
        /// im2col / 1x1 GEMM only (DIFFEDIT_NO_WINOGRAD=1)
        case off = -1
    }
    /// CPU worker threads, 0 = all cores.
    public var threads = 0
    /// CUDA device index.
    public var device = 0
    /// CPU: staged test mode of the resident code paths (DIFFEDIT_CPU_STAGED=1).
    public var cpuStaged = false
    public var winograd = Winograd.auto
    /// CPU Winograd tile block, 0 = automatic (DIFFEDIT_WINOGRAD_TILES).
    public var winogradTiles = 0
    /// CPU im2col row block, 0 = automatic (DIFFEDIT_IM2COL_ROWS).
    public var im2colRows = 0
    /// CPU Winograd output-channel block, 0 = automatic: all channels while their transformed weights stay
    /// under 32 MB (DIFFEDIT_WINOGRAD_CHANNELS).
    public var winogradChannels = 0
    /// CPU per-op wall time table on stderr at exit (DIFFEDIT_KERNEL_PROFILE=1).
    public var kernelProfile = false
    /// CUDA GEMM/conv operands in bf16 instead of fp16 (DIFFEDIT_CUDA_DTYPE=bf16).
    public var cudaBF16 = false
    /// CUDA: weights uploaded once as constants (DIFFEDIT_CUDA_WEIGHT_CACHE=0 turns it off).
    public var cudaWeightCache = true
    /// CUDA: wait for the stream after every op (DIFFEDIT_CUDA_SYNC=1).
    public var cudaSync = false
    /// CUDA: activations stay in device memory (DIFFEDIT_CUDA_RESIDENT=0 turns it off).
    public var cudaResident = true
    /// Where to look for libdiffedit_cuda.so first, ':'-separated (DIFFEDIT_BACKEND_PATH).
    public var backendPath = ""

    /// CPU compute precision of the GEMMs (linear layers, conv im2col / 1x1 GEMMs): de_compute_mode.
    public enum Compute: Int32, Sendable, CaseIterable {
        /// f32 everywhere (DIFFEDIT_COMPUTE=f32; the default until 2026-12-03)
        case f32 = 0
        /// every GEMM with bf16 operands and f32 accumulation, on AMX or AVX512_BF16 (DIFFEDIT_COMPUTE=bf16);
        /// f32 on a CPU with neither
        case bf16 = 1
        /// on AMX CPUs, GEMMs with a reduced weight in bf16 terms that keep f32-class parity: the activation as
        /// hi + lo (two bf16); a bf16 or q8_0 weight one term (two AMX products), an f16 weight hi + lo too (three);
        /// the 3x3 convolutions' Winograd GEMMs likewise. f32 elsewhere (f32 weights, no AMX) (DIFFEDIT_COMPUTE=auto).
        /// The default (de_backend_options_init): 4e-5 from diffusers on the fp16 fixture against issue 17's 1e-2
        /// for 16-bit weights, a UNet step ~1.3x faster than f32 on AMX (docs/performance.md).
        case auto = 2
        /// on AVX512-VNNI CPUs (AMD Zen 4, Intel since Ice Lake): GEMMs with a reduced weight (linear layers), the
        /// GEMMs of convolutions (im2col, 1x1, Winograd) and attention's QK^T and PV, operands quantized per block of 64
        /// to 14-bit (activation) / 13-bit (weight) integers, products summed exactly in int32 (vpdpwssd: twice the f32
        /// FMA rate on Zen 4); f32-weight linears and the softmax stay f32; f32 on other CPUs (DIFFEDIT_COMPUTE=i16;
        /// cpu_i16.c). 1.3e-3 from diffusers on the fp16 fixture: within issue 17's bound, not f32-class.
        case i16 = 3

        public var name: String { self == .f32 ? "f32" : self == .bf16 ? "bf16" : self == .auto ? "auto" : "i16" }

        /// "f32", "bf16", "auto" (case-insensitive); anything else is an error naming the accepted values.
        public static func parse(_ s: String, what: String = "--compute") throws -> Compute {
            guard let c = allCases.first(where: { $0.name == s.lowercased() }) else {
                throw DiffEditError.invalidArgument("\(what): unknown compute precision \"\(s)\" (use auto, f32, bf16 or i16)")
            }
            return c
        }
    }
    /// CPU GEMM compute precision (DIFFEDIT_COMPUTE).
    public var compute = Compute.auto
    /// CPU: the best bf16 kernel to use: 0 = the best the CPU has, 1 = AVX512_BF16 at most, -1 = none
    /// (DIFFEDIT_BF16_KERNEL=amx|avx512bf16|none).
    public var bf16Kernel: Int32 = 0
    /// CPU: widest vectors of the hand-written f32 kernels: 0 = the widest the CPU has (AVX-512 where present),
    /// 256 = AVX2 only (DIFFEDIT_CPU_SIMD=256; a test and comparison aid).
    public var cpuSIMD: Int32 = 0

    public init() {}

    /// Defaults overlaid with the DIFFEDIT_* environment variables (read now, once).
    public static func fromEnvironment() -> BackendOptions {
        var o = de_backend_options()
        de_backend_options_from_env(&o)
        return BackendOptions(o)
    }

    init(_ o: de_backend_options) {
        threads = Int(o.threads)
        device = Int(o.device)
        cpuStaged = o.cpu_staged
        winograd = Winograd(rawValue: o.winograd) ?? .auto
        winogradTiles = Int(o.winograd_tiles)
        im2colRows = Int(o.im2col_rows)
        winogradChannels = Int(o.winograd_channels)
        kernelProfile = o.kernel_profile
        cudaBF16 = o.cuda_dtype == Int32(DE_BF16.rawValue)
        cudaWeightCache = o.cuda_weight_cache
        cudaSync = o.cuda_sync
        cudaResident = o.cuda_resident
        compute = Compute(rawValue: o.cpu_compute) ?? .auto
        bf16Kernel = o.cpu_bf16_kernel
        cpuSIMD = o.cpu_simd
        backendPath = withUnsafeBytes(of: o.backend_path) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The C struct (struct_size set).
    var c: de_backend_options {
        var o = de_backend_options()
        de_backend_options_init(&o)
        o.threads = Int32(clamping: threads)
        o.device = Int32(clamping: device)
        o.cpu_staged = cpuStaged
        o.winograd = winograd.rawValue
        o.winograd_tiles = Int32(clamping: winogradTiles)
        o.im2col_rows = Int32(clamping: im2colRows)
        o.winograd_channels = Int32(clamping: winogradChannels)
        o.kernel_profile = kernelProfile
        o.cuda_dtype = Int32((cudaBF16 ? DE_BF16 : DE_F16).rawValue)
        o.cuda_weight_cache = cudaWeightCache
        o.cuda_sync = cudaSync
        o.cuda_resident = cudaResident
        o.cpu_compute = compute.rawValue
        o.cpu_bf16_kernel = bf16Kernel
        o.cpu_simd = cpuSIMD
        let capacity = MemoryLayout.size(ofValue: o.backend_path)
        withUnsafeMutableBytes(of: &o.backend_path) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            let bytes = Array(backendPath.utf8.prefix(capacity - 1))
            raw.copyMemory(from: bytes.withUnsafeBytes { UnsafeRawBufferPointer($0) })
        }
        return o
    }
}

/// A kernel backend (CPU provider, or the CUDA provider when loaded). All tensor math of the
/// models goes through the `Ops` methods below, which fill the C op descriptors of de_backend.h.
/// Tensors are f32. What the backend is comes from the provider's capabilities (de_backend_caps):
/// on a resident backend (CUDA, or the CPU provider in staged mode, which exercises the same code
/// paths with host memory) op outputs are allocated in backend memory and stay there until host
/// code reads them (see TensorStorage); a backend that wants constants gets model weights uploaded
/// once at load (`constant(_:kind:)`).
public final class Backend: @unchecked Sendable {
    public let raw: UnsafeMutablePointer<de_backend>
    public let name: String
    /// Why "auto" fell back to the CPU (empty when it did not).
    public let fallbackReason: String
    /// The options the backend was created with.
    public let options: BackendOptions
    /// The provider's DE_CAP_* bits.
    public let capabilities: UInt32
    /// Op outputs live in backend memory (device-resident activations): DE_CAP_RESIDENT.
    public let resident: Bool
    /// Constants (weights, biases, norms) should be uploaded once and used by handle: DE_CAP_CONSTANTS.
    public let wantsConstants: Bool
    /// Model weights may stay in reduced precision (f16, bf16, q8_0), read in place by gemm / conv2d:
    /// the provider has DE_CAP_WEIGHT_DTYPES and takes constants as host pointers (the plain CPU provider).
    public var keepsReducedWeights: Bool { capabilities & UInt32(DE_CAP_WEIGHT_DTYPES) != 0 && !wantsConstants }
    private let transferFailure = Mutex<String?>(nil)

    /// name: "auto", "cpu" or "cuda"; threads 0 = all cores. `staged`: the CPU provider allocates op
    /// outputs through its alloc slot and moves them to host memory only when host code reads them,
    /// exactly as the CUDA provider does (a test mode for the resident code paths). The other options
    /// (and `staged` when nil: DIFFEDIT_CPU_STAGED=1) come from the environment, read once here.
    public convenience init(name: String = "cpu", device: Int = 0, threads: Int = 0, staged: Bool? = nil) throws {
        var o = BackendOptions.fromEnvironment()
        o.device = device
        o.threads = threads
        if let staged { o.cpuStaged = staged }
        try self.init(name: name, options: o)
    }

    /// name: "auto", "cpu" or "cuda", with explicit options (the environment is not read).
    public init(name: String, options: BackendOptions) throws {
        guard ["auto", "cpu", "cuda"].contains(name) else {
            throw DiffEditError.invalidArgument("backend: unknown backend \"\(name)\" (use auto, cpu or cuda)")
        }
        var err = [CChar](repeating: 0, count: 2048)
        var o = options.c
        guard let be = de_backend_load_opts(name, &o, &err, err.count) else {
            let msg = err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw DiffEditError.backend("backend \(name): \(msg.isEmpty ? "could not be loaded" : msg)")
        }
        self.raw = be
        self.name = String(cString: de_backend_name(be))
        self.fallbackReason = err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        self.options = options
        self.capabilities = de_backend_caps(be)
        self.resident = capabilities & UInt32(DE_CAP_RESIDENT) != 0
        self.wantsConstants = capabilities & UInt32(DE_CAP_CONSTANTS) != 0
    }

    /// A tensor for an op to write: backend memory on a resident backend, host memory otherwise.
    public func output(_ shape: [Int]) throws -> Tensor {
        if !resident { return try Tensor.allocate(shape, what: "an op output") }
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

    /// How the backend may keep a constant (de_const_kind).
    public enum ConstantKind: Sendable {
        /// Matrix / conv weight: may be stored in reduced precision (fp16 on CUDA).
        case weight
        /// f32 parameter (bias, norm gamma/beta): kept exactly.
        case param
    }

    /// A model constant uploaded once: on a backend that wants constants (CUDA, staged CPU) a tensor whose
    /// op address is the provider's handle (host reads still see `t`'s data, which it keeps alive); on
    /// any other backend `t` itself (no copy, same memory).
    public func constant(_ t: Tensor, kind: ConstantKind) throws -> Tensor {
        if !wantsConstants || t.storage.isConstant { return t }
        // constants are uploaded as f32 (the provider chooses its own precision): a reduced weight is
        // widened into a new tensor, which the constant keeps for host reads
        if t.elementType != .f32 { return try constant(t.widened().copy(), kind: kind) }
        let host = t.data
        let bytes = t.count * MemoryLayout<Float>.stride
        let k = kind == .weight ? DE_CONST_WEIGHT : DE_CONST_PARAM
        guard let handle = de_backend_constant_upload(raw, host, bytes, k) else {
            try check(DE_ERR_OOM, "constant_upload")
            throw DiffEditError.outOfMemory("constant_upload: \(bytes) bytes")
        }
        return Tensor(shape: t.shape, storage: TensorStorage(constantHandle: handle, source: t, backend: self, kind: k))
    }

    /// The provider's counters (constants uploaded, host operands met).
    public var stats: de_backend_stats {
        var s = de_backend_stats()
        s.struct_size = MemoryLayout<de_backend_stats>.size
        de_backend_stats_get(raw, &s)
        return s
    }

    /// The bf16 GEMM kernel the CPU provider uses under `options.compute` bf16 / auto: "amx", "avx512bf16" or
    /// "none" (the CPU's best, limited by `options.bf16Kernel`); "none" on other providers.
    public var bf16Kernel: String {
        guard name == "cpu" else { return "none" }
        var k = de_cpu_bf16_kernel()
        if options.bf16Kernel < 0 { k = Int32(DE_BF16_KERNEL_NONE.rawValue) }
        else if options.bf16Kernel > 0 { k = min(k, options.bf16Kernel) }
        return String(cString: de_bf16_kernel_name(k))
    }

    /// Whether GEMMs with weights of this storage run in bf16 here (options.compute and the CPU's kernel).
    public func computesInBF16(weights: ElementType) -> Bool {
        switch (options.compute, bf16Kernel) {
        case (_, "none"), (.f32, _), (.i16, _): return false
        case (.bf16, _): return true
        case (.auto, let k): return k == "amx" && (weights == .bf16 || weights == .q8_0 || weights == .f16)
        }
    }

    /// Whether `options.compute` i16 takes the VNNI kernel here (cpu_i16.c): the CPU provider on an AVX512-VNNI CPU.
    public var computesInI16: Bool { name == "cpu" && options.compute == .i16 && de_cpu_has_avx512vnni() != 0 }

    /// GEMMs the CPU provider has computed in bf16 so far (de_backend_stats.bf16_gemms).
    public var bf16GEMMs: Int { Int(stats.bf16_gemms) }

    /// Bytes the provider's reusable op buffers hold (de_backend_stats.scratch_bytes; 0 where not reported).
    public var scratchBytes: Int { Int(stats.scratch_bytes) }

    /// Above this many bytes of scratch, `shrinkScratch()` frees it (256 MB: a 512x512 request stays under,
    /// a 1024x1024 one or a large VAE decode goes above).
    public static let scratchKeepBytes = 256 << 20

    /// After a request: frees the provider's reusable op buffers when they grew above `scratchKeepBytes`
    /// (a large image), so that a long-lived host (a GIMP / Krita plug-in) does not keep that memory.
    /// `above`: the threshold (0 frees any scratch, e.g. between a model's stages whose ops need different
    /// buffers).
    public func shrinkScratch(above: Int = Backend.scratchKeepBytes) {
        if scratchBytes > above { de_backend_trim(raw) }
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
