import CDiffEditABI
import DiffEdit

/// A checked `diff_edit_params`: every field validated and converted. Masks are checked for format
/// only here; their size is checked against the input by the caller (`checkMasks`).
struct EditRequest {
    var method: diff_edit_method
    var prompt: String
    var sourcePrompt: String?
    var negativePrompt: String?
    var guidance: Float?
    var imageGuidance: Float?
    var strength: Float?
    var steps: Int?
    var seed: UInt64
    var mask: CheckedBuffer?
    var maskOut: CheckedBuffer?
    var progress: diff_edit_progress_fn?
    var progressUser: UnsafeMutableRawPointer?
    /// params->watermark: embed the invisible watermark in the outputs.
    var watermark: Bool
    /// params->n_controls / controls: the ControlNets of the call.
    var controls: ControlRequest

    /// The defaults of diff_edit_params_default.
    static var cDefaults: diff_edit_params {
        var p = diff_edit_params()
        p.struct_size = UInt32(MemoryLayout<diff_edit_params>.size)
        p.method = DIFF_EDIT_METHOD_AUTO
        p.prompt = StaticStrings.emptyPrompt
        return p
    }

    /// Offsets at which an older, shorter diff_edit_params may end.
    static var fieldEnds: [Int] {
        typealias P = diff_edit_params
        let ends: [Int?] = [
            MemoryLayout<P>.offset(of: \.struct_size).map { $0 + 4 },
            MemoryLayout<P>.offset(of: \.method).map { $0 + 4 },
            MemoryLayout<P>.offset(of: \.prompt).map { $0 + MemoryLayout<UnsafePointer<CChar>?>.size },
            MemoryLayout<P>.offset(of: \.source_prompt).map { $0 + MemoryLayout<UnsafePointer<CChar>?>.size },
            MemoryLayout<P>.offset(of: \.negative_prompt).map { $0 + MemoryLayout<UnsafePointer<CChar>?>.size },
            MemoryLayout<P>.offset(of: \.guidance).map { $0 + 4 },
            MemoryLayout<P>.offset(of: \.image_guidance).map { $0 + 4 },
            MemoryLayout<P>.offset(of: \.strength).map { $0 + 4 },
            MemoryLayout<P>.offset(of: \.steps).map { $0 + 4 },
            MemoryLayout<P>.offset(of: \.seed).map { $0 + 8 },
            MemoryLayout<P>.offset(of: \.mask).map { $0 + MemoryLayout<UnsafeRawPointer?>.size },
            MemoryLayout<P>.offset(of: \.mask_out).map { $0 + MemoryLayout<UnsafeRawPointer?>.size },
            MemoryLayout<P>.offset(of: \.progress).map { $0 + MemoryLayout<diff_edit_progress_fn?>.size },
            MemoryLayout<P>.offset(of: \.progress_user).map { $0 + MemoryLayout<UnsafeRawPointer?>.size },
            MemoryLayout<P>.offset(of: \.watermark).map { $0 + 4 },
            MemoryLayout<P>.offset(of: \.n_controls).map { $0 + 4 },
            MemoryLayout<P>.offset(of: \.controls).map { $0 + MemoryLayout<UnsafeRawPointer?>.size },
        ]
        return ends.compactMap { $0 }
    }

    init(_ raw: UnsafePointer<diff_edit_params>?) throws {
        guard let raw = raw else { throw DiffEditError.invalidArgument("params is NULL") }
        let p = try ExtensibleStruct.read(UnsafeRawPointer(raw), defaults: EditRequest.cDefaults,
                                          cName: "diff_edit_params", argName: "params",
                                          fieldEnds: EditRequest.fieldEnds)
        guard p.method.rawValue <= DIFF_EDIT_METHOD_INPAINT.rawValue else {
            throw DiffEditError.invalidArgument("params->method (\(p.method.rawValue)) is not a diff_edit_method (0..5)")
        }
        method = p.method
        guard let pr = p.prompt else { throw DiffEditError.invalidArgument("params->prompt is NULL (use \"\" for no prompt)") }
        prompt = try EditRequest.string(pr, "params->prompt")
        sourcePrompt = try p.source_prompt.map { try EditRequest.string($0, "params->source_prompt") }
        negativePrompt = try p.negative_prompt.map { try EditRequest.string($0, "params->negative_prompt") }
        guidance = try EditRequest.optionalFloat(p.guidance, "params->guidance", max: ABIInfo.maxGuidance)
        imageGuidance = try EditRequest.optionalFloat(p.image_guidance, "params->image_guidance", max: ABIInfo.maxGuidance)
        strength = try EditRequest.optionalFloat(p.strength, "params->strength", max: 1)
        guard Int(p.steps) <= ABIInfo.maxSteps else {
            throw DiffEditError.invalidArgument("params->steps (\(p.steps)) is above the maximum \(ABIInfo.maxSteps) (DIFF_EDIT_MAX_STEPS)")
        }
        steps = p.steps == 0 ? nil : Int(p.steps)
        seed = p.seed
        if let m = p.mask {
            let b = try CheckedBuffer(m, name: "params->mask")
            try b.requireFormat(.gray8, name: "params->mask")
            mask = b
        } else { mask = nil }
        if let m = p.mask_out {
            let b = try CheckedBuffer(UnsafePointer(m), name: "params->mask_out")
            try b.requireFormat(.gray8, name: "params->mask_out")
            maskOut = b
        } else { maskOut = nil }
        progress = p.progress
        progressUser = p.progress_user
        guard p.watermark <= 1 else {
            throw DiffEditError.invalidArgument("params->watermark (\(p.watermark)) must be 0 (no mark) or 1 (embed the invisible watermark)")
        }
        watermark = p.watermark == 1
        controls = try ControlRequest(count: p.n_controls, array: p.controls)
    }

    /// Checks mask and mask_out against the image size.
    func checkMasks(against input: CheckedBuffer, inputName: String) throws {
        try mask?.requireSize(of: input, name: "params->mask", otherName: inputName)
        try maskOut?.requireSize(of: input, name: "params->mask_out", otherName: inputName)
        try controls.checkImages(against: input, inputName: inputName)
    }

    /// The library's method for params->method (AUTO stays auto: the library resolves and validates it,
    /// once, for every entry point).
    var editMethod: EditMethod {
        switch method {
        case DIFF_EDIT_METHOD_SDEDIT: return .sdedit
        case DIFF_EDIT_METHOD_DDIM: return .ddim
        case DIFF_EDIT_METHOD_P2P: return .p2p
        case DIFF_EDIT_METHOD_INSTRUCT: return .instruct
        case DIFF_EDIT_METHOD_INPAINT: return .inpaint
        default: return .auto
        }
    }

    /// C names of the library's option fields, for messages: the library names the field at fault first
    /// ("sourcePrompt: ..."); the C ABI reports it as the caller wrote it ("params->source_prompt: ...").
    static let fieldNames: [(String, String)] = [
        ("sourcePrompt", "params->source_prompt"), ("negativePrompt", "params->negative_prompt"),
        ("prompt", "params->prompt"), ("imageGuidance", "params->image_guidance"), ("guidance", "params->guidance"),
        ("strength", "params->strength"), ("steps", "params->steps"), ("mask", "params->mask"),
    ]

    /// A library error with its field named as in diff_edit_params (params->method also names the C enum value).
    func cNamed(_ e: DiffEditError) -> DiffEditError {
        let m = e.message
        var renamed: String? = nil
        if m.hasPrefix("controls[") {
            renamed = "params->" + m
        } else if m.hasPrefix("method:") {
            let names = ["DIFF_EDIT_METHOD_AUTO", "DIFF_EDIT_METHOD_SDEDIT", "DIFF_EDIT_METHOD_DDIM", "DIFF_EDIT_METHOD_P2P",
                         "DIFF_EDIT_METHOD_INSTRUCT", "DIFF_EDIT_METHOD_INPAINT"]
            let n = Int(method.rawValue) < names.count ? names[Int(method.rawValue)] : "\(method.rawValue)"
            renamed = "params->method (\(n)):" + m.dropFirst("method:".count)
        } else if let (lib, c) = EditRequest.fieldNames.first(where: { m.hasPrefix($0.0 + ":") }) {
            renamed = c + m.dropFirst(lib.count)
        }
        // the library's hints name CLI flags ("(--source-prompt)"): not what a C caller sets
        renamed = renamed.map { r in
            guard r.hasSuffix(")"), let open = r.lastIndex(of: "("), r[open...].hasPrefix("(--"), open > r.startIndex,
                  r[r.index(before: open)] == " " else { return r }
            return String(r[..<r.index(before: open)])
        }
        return renamed.map { e.withMessage($0) } ?? e
    }

    var options: EditOptions {
        var o = EditOptions()
        o.method = editMethod
        o.prompt = prompt
        o.sourcePrompt = sourcePrompt
        o.negativePrompt = negativePrompt
        o.guidance = guidance
        o.imageGuidance = imageGuidance
        o.strength = strength
        o.steps = steps
        o.seed = seed
        o.controls = controls.specs
        return o
    }

    private static func string(_ p: UnsafePointer<CChar>, _ name: String) throws -> String {
        guard let s = String(validatingCString: p) else {
            throw DiffEditError.invalidArgument("\(name) is not valid UTF-8")
        }
        return s
    }

    /// 0 = default (nil); else finite and in (0, max].
    private static func optionalFloat(_ v: Float, _ name: String, max: Float) throws -> Float? {
        guard !v.isNaN else { throw DiffEditError.invalidArgument("\(name) is NaN") }
        guard v.isFinite else { throw DiffEditError.invalidArgument("\(name) is infinite") }
        if v == 0 { return nil }
        guard v > 0 && v <= max else {
            throw DiffEditError.invalidArgument("\(name) (\(v)) is out of range: use 0 for the method's default or a value in (0, \(max)]")
        }
        return v
    }
}
