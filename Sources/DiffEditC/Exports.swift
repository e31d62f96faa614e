#if canImport(Glibc)
import Glibc
#endif
import CDiffEditABI
import DiffEdit

// The C ABI of include/diffedit.h. Every export checks all its arguments before touching anything,
// catches every Swift error and returns a status; messages go to the context and the thread.

// MARK: - Helpers

/// Records a failure for the thread (always) and the context (when given) and returns its status.
private func fail(_ error: DiffEditError, ctx: ContextHandle?) -> diff_edit_status {
    let message = error.message
    ThreadError.set(message)
    ctx?.error.set(message)
    return error.cStatus
}

private func handle<T: AnyObject>(_ p: OpaquePointer) -> T {
    Unmanaged<T>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
}

// MARK: - Versions and errors

@_cdecl("diff_edit_abi_version")
public func diffEditABIVersion() -> UInt32 { ABIInfo.abiVersion }

@_cdecl("diff_edit_version")
public func diffEditVersion() -> UnsafePointer<CChar> { StaticStrings.version }

@_cdecl("diff_edit_status_string")
public func diffEditStatusString(_ status: diff_edit_status) -> UnsafePointer<CChar> {
    StaticStrings.statusNames[Int32(status.rawValue)] ?? StaticStrings.unknownStatus
}

@_cdecl("diff_edit_last_error")
public func diffEditLastError(_ ctx: OpaquePointer?) -> UnsafePointer<CChar> {
    guard let ctx = ctx else { return ThreadError.cString }
    let c: ContextHandle = handle(ctx)
    return c.error.cString
}

// MARK: - Models

@_cdecl("diff_edit_model_params_default")
public func diffEditModelParamsDefault(_ params: UnsafeMutablePointer<diff_edit_model_params>?) {
    params?.pointee = ModelRequest.cDefaults
}

@_cdecl("diff_edit_model_load")
public func diffEditModelLoad(_ params: UnsafePointer<diff_edit_model_params>?,
                              _ out: UnsafeMutablePointer<OpaquePointer?>?) -> diff_edit_status {
    guard let out = out else { return fail(.invalidArgument("out is NULL"), ctx: nil) }
    out.pointee = nil
    do {
        let req = try ModelRequest(params)
        let path = try req.path ?? DefaultModelLocator.resolve()
        guard access(path, R_OK) == 0 else {
            throw DiffEditError.io("params->path \"\(path)\": \(String(cString: strerror(errno)))")
        }
        let backend = try Backend(name: req.backend, device: req.device, threads: req.threads)
        if !backend.fallbackReason.isEmpty {
            ModelHandle.log(req.log, req.logUser, 2, "backend \(req.backend): \(backend.fallbackReason)")
        }
        let engine = try EngineLoader.load(path: path, backend: backend, maxMemory: req.maxMemory,
                                           weightsDType: req.weightsDType)
        let model = ModelHandle(engine: engine, path: path, log: req.log, logUser: req.logUser)
        model.log(1, "loaded \(engine.summary)")
        out.pointee = OpaquePointer(Unmanaged.passRetained(model).toOpaque())
        return DIFF_EDIT_OK
    } catch {
        return fail(DiffEditError.from(error, context: "diff_edit_model_load"), ctx: nil)
    }
}

@_cdecl("diff_edit_model_free")
public func diffEditModelFree(_ model: OpaquePointer?) {
    guard let model = model else { return }
    Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(model)).release()
}

@_cdecl("diff_edit_lora_default")
public func diffEditLoraDefault(_ lora: UnsafeMutablePointer<diff_edit_lora>?) {
    lora?.pointee = LoRARequest.cDefaults
}

@_cdecl("diff_edit_model_set_loras")
public func diffEditModelSetLoras(_ model: OpaquePointer?, _ loras: UnsafePointer<diff_edit_lora>?,
                                  _ n: UInt32) -> diff_edit_status {
    guard let model = model else { return fail(.invalidArgument("model is NULL"), ctx: nil) }
    let m: ModelHandle = handle(model)
    do {
        let specs = try LoRARequest.specs(loras, count: n)
        try m.changingWeights("diff_edit_model_set_loras") { try m.engine.setLoRAs(specs) }
        m.log(1, specs.isEmpty ? "LoRA: none (base weights)"
                               : "LoRA: " + specs.map { "\($0.path) x \($0.scale)" }.joined(separator: ", "))
        return DIFF_EDIT_OK
    } catch {
        return fail(DiffEditError.from(error, context: "diff_edit_model_set_loras"), ctx: nil)
    }
}

// MARK: - Contexts

@_cdecl("diff_edit_ctx_create")
public func diffEditCtxCreate(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> diff_edit_status {
    guard let out = out else { return fail(.invalidArgument("out is NULL"), ctx: nil) }
    out.pointee = nil
    guard let model = model else { return fail(.invalidArgument("model is NULL"), ctx: nil) }
    do {
        let ctx = try ContextHandle(model: handle(model))
        out.pointee = OpaquePointer(Unmanaged.passRetained(ctx).toOpaque())
        return DIFF_EDIT_OK
    } catch {
        return fail(DiffEditError.from(error, context: "diff_edit_ctx_create"), ctx: nil)
    }
}

@_cdecl("diff_edit_ctx_free")
public func diffEditCtxFree(_ ctx: OpaquePointer?) {
    guard let ctx = ctx else { return }
    Unmanaged<ContextHandle>.fromOpaque(UnsafeRawPointer(ctx)).release()
}

@_cdecl("diff_edit_cancel")
public func diffEditCancel(_ ctx: OpaquePointer?) {
    guard let ctx = ctx else { return }
    let c: ContextHandle = handle(ctx)
    c.cancel()
}

// MARK: - Editing

@_cdecl("diff_edit_params_default")
public func diffEditParamsDefault(_ params: UnsafeMutablePointer<diff_edit_params>?) {
    params?.pointee = EditRequest.cDefaults
}

// MARK: - ControlNet

@_cdecl("diff_edit_control_default")
public func diffEditControlDefault(_ control: UnsafeMutablePointer<diff_edit_control>?) {
    control?.pointee = ControlRequest.cDefaults
}

@_cdecl("diff_edit_controlnet_load")
public func diffEditControlnetLoad(_ model: OpaquePointer?, _ path: UnsafePointer<CChar>?,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> diff_edit_status {
    guard let out = out else { return fail(.invalidArgument("out is NULL"), ctx: nil) }
    out.pointee = nil
    guard let model = model else { return fail(.invalidArgument("model is NULL"), ctx: nil) }
    guard let path = path else { return fail(.invalidArgument("path is NULL"), ctx: nil) }
    do {
        guard let p = String(validatingCString: path) else { throw DiffEditError.invalidArgument("path is not valid UTF-8") }
        guard !p.isEmpty else { throw DiffEditError.invalidArgument("path is empty") }
        let m: ModelHandle = handle(model)
        let net = try m.engine.loadControlNet(path: p)
        m.log(1, "loaded ControlNet \(p)")
        out.pointee = OpaquePointer(Unmanaged.passRetained(ControlNetHandle(engine: m.engine, net: net)).toOpaque())
        return DIFF_EDIT_OK
    } catch {
        return fail(DiffEditError.from(error, context: "diff_edit_controlnet_load"), ctx: nil)
    }
}

@_cdecl("diff_edit_controlnet_free")
public func diffEditControlnetFree(_ net: OpaquePointer?) {
    guard let net = net else { return }
    Unmanaged<ControlNetHandle>.fromOpaque(UnsafeRawPointer(net)).release()
}

@_cdecl("diff_edit_control_map")
public func diffEditControlMap(_ preprocessor: UnsafePointer<CChar>?, _ input: UnsafePointer<diff_edit_buffer>?,
                               _ mask: UnsafePointer<diff_edit_buffer>?,
                               _ output: UnsafeMutablePointer<diff_edit_buffer>?) -> diff_edit_status {
    do {
        guard let pp = preprocessor else { throw DiffEditError.invalidArgument("preprocessor is NULL") }
        guard let name = String(validatingCString: pp) else { throw DiffEditError.invalidArgument("preprocessor is not valid UTF-8") }
        let source = try ControlSource.preprocessor(name, field: "preprocessor")
        let i = try CheckedBuffer(input, name: "input")
        let o = try CheckedBuffer(output.map { UnsafePointer($0) }, name: "output")
        try o.requireSize(of: i, name: "output", otherName: "input")
        var plane: [Float]? = nil
        if let mask {
            let m = try CheckedBuffer(mask, name: "mask")
            try m.requireFormat(.gray8, name: "mask")
            try m.requireSize(of: i, name: "mask", otherName: "input")
            plane = try PixelConverter.readGray(m).pixels.map { Float($0) / 255 }
        }
        let (rgb, _) = try PixelConverter.readRGB(i)
        let map = try ControlPreprocessor.map(source, work: rgb, mask: plane, field: "preprocessor")
        PixelConverter.writeRGB(try ControlPreprocessor.picture(map), alpha: nil, to: o)
        return DIFF_EDIT_OK
    } catch {
        return fail(DiffEditError.from(error, context: "diff_edit_control_map"), ctx: nil)
    }
}

/// Mutable frame index shared with the progress closure of a video call.
final class FrameCounter: @unchecked Sendable {
    var frame = 0
    let frames: Int
    init(frames: Int) { self.frames = frames }
}

/// The common part of diff_edit_image and diff_edit_video: takes the context, checks the params
/// and the frames (`check`), runs `body` with a reporter, maps errors.
private func withContext(_ ctxPtr: OpaquePointer?, _ params: UnsafePointer<diff_edit_params>?,
                         frames: Int, function: String,
                         check: (EditRequest) throws -> Void,
                         body: (ContextHandle, EditRequest, ProgressReporter, FrameCounter) throws -> Void) -> diff_edit_status {
    guard let ctxPtr = ctxPtr else { return fail(.invalidArgument("ctx is NULL"), ctx: nil) }
    let ctx: ContextHandle = handle(ctxPtr)
    guard ctx.tryEnter() else {
        return fail(.busy("ctx is busy: another \(function) call is running on this context"), ctx: nil)
    }
    defer { ctx.leave() }
    guard ctx.model.enterCall() else {
        return fail(.busy("\(function): the model's LoRA set is being changed (diff_edit_model_set_loras)"), ctx: nil)
    }
    defer { ctx.model.leaveCall() }
    ctx.setRecord(nil)   // the provenance is of the last successful call
    do {
        let req = try EditRequest(params)
        try req.controls.requireEngine(ctx.model.engine)
        try check(req)
        let counter = FrameCounter(frames: frames)
        let cb = req.progress, user = req.progressUser
        let reporter = ProgressReporter(cb.map { fn in
            { step, steps, _, _ in
                fn(user, UInt32(clamping: step), UInt32(clamping: steps), UInt32(clamping: counter.frame),
                   UInt32(clamping: counter.frames))
            }
        })
        ctx.setReporter(reporter)
        try body(ctx, req, reporter, counter)
        return DIFF_EDIT_OK
    } catch DiffEditError.cancelled {
        let message = "\(function): cancelled by diff_edit_cancel or the progress callback"
        ThreadError.set(message)
        ctx.error.set(message)
        return DIFF_EDIT_CANCELLED
    } catch {
        return fail(DiffEditError.from(error, context: function), ctx: ctx)
    }
}

@_cdecl("diff_edit_image")
public func diffEditImage(_ ctx: OpaquePointer?, _ params: UnsafePointer<diff_edit_params>?,
                          _ input: UnsafePointer<diff_edit_buffer>?,
                          _ output: UnsafeMutablePointer<diff_edit_buffer>?) -> diff_edit_status {
    var inBuf: CheckedBuffer? = nil, outBuf: CheckedBuffer? = nil
    return withContext(ctx, params, frames: 1, function: "diff_edit_image", check: { req in
        let i = try CheckedBuffer(input, name: "input")
        let o = try CheckedBuffer(output.map { UnsafePointer($0) }, name: "output")
        try o.requireSize(of: i, name: "output", otherName: "input")
        try req.checkMasks(against: i, inputName: "input")
        inBuf = i; outBuf = o
    }, body: { ctx, req, reporter, _ in
        try EditRunner(ctx: ctx, request: req, reporter: reporter)
            .run(input: inBuf!, output: outBuf!, inputName: "input")
        ctx.setRecord(provenance(ctx, req, width: inBuf!.width, height: inBuf!.height, video: false))
    })
}

@_cdecl("diff_edit_video")
public func diffEditVideo(_ ctx: OpaquePointer?, _ params: UnsafePointer<diff_edit_params>?,
                          _ framesIn: UnsafePointer<diff_edit_buffer>?, _ nFrames: UInt32,
                          _ framesOut: UnsafeMutablePointer<diff_edit_buffer>?) -> diff_edit_status {
    var ins: [CheckedBuffer] = [], outs: [CheckedBuffer] = []
    return withContext(ctx, params, frames: Int(nFrames), function: "diff_edit_video", check: { req in
        guard let framesIn = framesIn else { throw DiffEditError.invalidArgument("frames_in is NULL") }
        guard let framesOut = framesOut else { throw DiffEditError.invalidArgument("frames_out is NULL") }
        guard nFrames > 0 else { throw DiffEditError.invalidArgument("n_frames is 0") }
        for i in 0..<Int(nFrames) {
            let fi = try CheckedBuffer(framesIn + i, name: "frames_in[\(i)]")
            if let first = ins.first {
                try fi.requireSize(of: first, name: "frames_in[\(i)]", otherName: "frames_in[0]")
            }
            let fo = try CheckedBuffer(UnsafePointer(framesOut + i), name: "frames_out[\(i)]")
            try fo.requireSize(of: fi, name: "frames_out[\(i)]", otherName: "frames_in[\(i)]")
            ins.append(fi); outs.append(fo)
        }
        try req.checkMasks(against: ins[0], inputName: "frames_in[0]")
    }, body: { ctx, req, reporter, counter in
        // The consistent video method (StreamExports.swift: videoConsistent); with a mask (which it does
        // not take), frame by frame with diff_edit_image semantics.
        if req.mask == nil, req.maskOut == nil {
            try videoConsistent(ctx: ctx, request: req, reporter: reporter, counter: counter, ins: ins, outs: outs)
        } else {
            let runner = EditRunner(ctx: ctx, request: req, reporter: reporter)
            for i in 0..<ins.count {
                counter.frame = i
                try runner.run(input: ins[i], output: outs[i], inputName: "frames_in[\(i)]")
            }
        }
        ctx.setRecord(provenance(ctx, req, width: ins[0].width, height: ins[0].height, video: true))
    })
}

/// The record of a successful call (the model's name and hash are added when it is asked for).
func provenance(_ ctx: ContextHandle, _ req: EditRequest, width: Int, height: Int, video: Bool) -> ProvenanceRecord {
    ctx.model.engine.provenance(options: req.options, width: width, height: height, video: video,
                                watermark: req.watermark && InvisibleWatermark.canMark(width: width, height: height))
}

/// diff_edit_last_provenance: the XMP packet of the last successful editing call on ctx ("" when none).
@_cdecl("diff_edit_last_provenance")
public func diffEditLastProvenance(_ ctx: OpaquePointer?) -> UnsafePointer<CChar> {
    guard let ctx = ctx else { return StaticStrings.emptyPrompt }
    let c: ContextHandle = handle(ctx)
    return c.provenancePacket()
}
