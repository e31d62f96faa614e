import CDiffEditABI
import DiffEdit

/// A checked `diff_edit_model_params`.
struct ModelRequest {
    /// nil = the default model. A path that is not valid UTF-8 is "/proc/self/fd/N" here (`BytePath`).
    var path: String?
    var backend: String
    var device: Int
    var threads: Int
    var log: diff_edit_log_fn?
    var logUser: UnsafeMutableRawPointer?
    /// params->max_memory; nil = 0 = the available memory.
    var maxMemory: Int?
    /// params->weights_dtype (NULL / "" = auto).
    var weightsDType: WeightsDType = .auto

    /// The defaults of diff_edit_model_params_default.
    static var cDefaults: diff_edit_model_params {
        var p = diff_edit_model_params()
        p.struct_size = UInt32(MemoryLayout<diff_edit_model_params>.size)
        p.backend = StaticStrings.auto
        return p
    }

    static var fieldEnds: [Int] {
        typealias P = diff_edit_model_params
        let ptr = MemoryLayout<UnsafeRawPointer?>.size
        let ends: [Int?] = [
            MemoryLayout<P>.offset(of: \.struct_size).map { $0 + 4 },
            MemoryLayout<P>.offset(of: \.path).map { $0 + ptr },
            MemoryLayout<P>.offset(of: \.backend).map { $0 + ptr },
            MemoryLayout<P>.offset(of: \.device).map { $0 + 4 },
            MemoryLayout<P>.offset(of: \.n_threads).map { $0 + 4 },
            MemoryLayout<P>.offset(of: \.log).map { $0 + MemoryLayout<diff_edit_log_fn?>.size },
            MemoryLayout<P>.offset(of: \.log_user).map { $0 + ptr },
            MemoryLayout<P>.offset(of: \.max_memory).map { $0 + 8 },
            MemoryLayout<P>.offset(of: \.weights_dtype).map { $0 + ptr },
        ]
        return ends.compactMap { $0 }
    }

    init(_ raw: UnsafePointer<diff_edit_model_params>?) throws {
        guard let raw = raw else { throw DiffEditError.invalidArgument("params is NULL") }
        let p = try ExtensibleStruct.read(UnsafeRawPointer(raw), defaults: ModelRequest.cDefaults,
                                          cName: "diff_edit_model_params", argName: "params",
                                          fieldEnds: ModelRequest.fieldEnds)
        if let cp = p.path {
            if let s = String(validatingCString: cp) {
                path = s.isEmpty ? nil : s
            } else {
                path = try BytePath.open(cp)   // POSIX paths are bytes: opened as given (see BytePath)
            }
        } else { path = nil }
        if let cb = p.backend {
            guard let s = String(validatingCString: cb), ["auto", "cpu", "cuda"].contains(s) else {
                throw DiffEditError.invalidArgument("params->backend (\"\(String(cString: cb))\") is not \"auto\", \"cpu\" or \"cuda\"")
            }
            backend = s
        } else { backend = "auto" }
        guard p.device >= 0 else { throw DiffEditError.invalidArgument("params->device (\(p.device)) is negative") }
        guard p.n_threads >= 0 else { throw DiffEditError.invalidArgument("params->n_threads (\(p.n_threads)) is negative (0 = all cores)") }
        device = Int(p.device)
        threads = Int(p.n_threads)
        log = p.log
        logUser = p.log_user
        maxMemory = p.max_memory == 0 ? nil : Int(clamping: p.max_memory)
        if let wd = p.weights_dtype {
            guard let s = String(validatingCString: wd) else {
                throw DiffEditError.invalidArgument("params->weights_dtype is not valid UTF-8 (accepted: \(WeightsDType.names))")
            }
            weightsDType = try WeightsDType.parse(s, flag: "params->weights_dtype")
        }
    }
}
