#if canImport(Glibc)
import Glibc
#endif
import CDiffEditABI
import DiffEdit

// The streaming video API of include/diffedit.h (diff_edit_stream_*): frames pushed one at a time,
// edited by the consistent video method (DiffEdit.VideoStream) with bounded lookahead, pulled in order.

/// One open stream of a context.
final class StreamState {
    let stream: EditStream
    let width: Int
    let height: Int
    let format: PixelFormat
    let progress: diff_edit_progress_fn?
    let progressUser: UnsafeMutableRawPointer?
    /// The request, for the C field names in messages.
    let request: EditRequest
    /// Alpha planes of pushed frames not pulled yet (in order), for pass-through.
    var alphas: [[UInt8]?] = []
    var ended = false

    init(stream: EditStream, width: Int, height: Int, format: PixelFormat, request: EditRequest) {
        self.stream = stream; self.width = width; self.height = height; self.format = format
        self.progress = request.progress; self.progressUser = request.progressUser; self.request = request
    }
}

/// Stream limits. The stream state itself lives in its context (ContextHandle.streamState): nothing
/// about streams is process-global, and a stream is released with its context.
enum StreamRegistry {
    static let defaultLookahead = 3
    static let maxLookahead = VideoOptions.maxKeyframeInterval - 1
}

private func streamFail(_ error: DiffEditError, ctx: ContextHandle?) -> diff_edit_status {
    ThreadError.set(error.message)
    ctx?.error.set(error.message)
    return error.cStatus
}

/// Takes the context (BUSY when another call holds it), runs body, maps errors.
private func withStreamContext(_ ctxPtr: OpaquePointer?, function: String,
                               _ body: (ContextHandle) throws -> diff_edit_status) -> diff_edit_status {
    guard let ctxPtr = ctxPtr else { return streamFail(.invalidArgument("\(function): ctx is NULL"), ctx: nil) }
    let ctx = Unmanaged<ContextHandle>.fromOpaque(UnsafeRawPointer(ctxPtr)).takeUnretainedValue()
    guard ctx.tryEnter() else {
        return streamFail(.busy("\(function): ctx is busy: another call is running on this context"), ctx: nil)
    }
    defer { ctx.leave() }
    guard ctx.model.enterCall() else {
        return streamFail(.busy("\(function): the model's LoRA set is being changed (diff_edit_model_set_loras)"), ctx: nil)
    }
    defer { ctx.model.leaveCall() }
    do {
        return try body(ctx)
    } catch DiffEditError.cancelled {
        let message = "\(function): cancelled by diff_edit_cancel or the progress callback; the stream is broken: end it"
        ThreadError.set(message)
        ctx.error.set(message)
        return DIFF_EDIT_CANCELLED
    } catch {
        return streamFail(DiffEditError.from(error, context: function), ctx: ctx)
    }
}

private func reporter(_ s: StreamState, ctx: ContextHandle) -> ProgressReporter {
    let cb = s.progress, user = s.progressUser
    let r = ProgressReporter(cb.map { fn in
        { step, steps, frame, frames in
            fn(user, UInt32(clamping: step), UInt32(clamping: steps), UInt32(clamping: frame), UInt32(clamping: frames))
        }
    })
    ctx.setReporter(r)
    return r
}

@_cdecl("diff_edit_stream_set_lookahead")
public func diffEditStreamSetLookahead(_ ctx: OpaquePointer?, _ frames: UInt32) -> diff_edit_status {
    withStreamContext(ctx, function: "diff_edit_stream_set_lookahead") { c in
        guard Int(frames) <= StreamRegistry.maxLookahead else {
            throw DiffEditError.invalidArgument("frames (\(frames)) is above the maximum lookahead \(StreamRegistry.maxLookahead)")
        }
        c.setStreamLookahead(Int(frames))
        return DIFF_EDIT_OK
    }
}

@_cdecl("diff_edit_stream_begin")
public func diffEditStreamBegin(_ ctx: OpaquePointer?, _ params: UnsafePointer<diff_edit_params>?,
                                _ width: UInt32, _ height: UInt32, _ format: diff_edit_pixel_format) -> diff_edit_status {
    withStreamContext(ctx, function: "diff_edit_stream_begin") { c in
        c.setRecord(nil)
        if let old = c.streamState(), !old.ended {
            throw DiffEditError.invalidArgument("a stream is already open on this context (\(old.stream.pushed) frames pushed): call diff_edit_stream_end first")
        }
        let req = try EditRequest(params)
        let maxDim = ABIInfo.maxDimension
        guard width >= 1, height >= 1 else { throw DiffEditError.invalidArgument("width x height (\(width)x\(height)) is empty") }
        guard Int(width) <= maxDim, Int(height) <= maxDim else {
            throw DiffEditError.invalidArgument("width x height (\(width)x\(height)) is above the maximum \(maxDim) (DIFF_EDIT_MAX_DIMENSION)")
        }
        guard let f = PixelFormat(rawValue: format.rawValue), f != .gray8 else {
            throw DiffEditError.invalidArgument("format (\(format.rawValue)) is not a colour diff_edit_pixel_format (RGB8, RGBA8, BGR8, BGRA8)")
        }
        if req.maskOut != nil { throw DiffEditError.unsupported("params->mask_out: streams do not write masks") }
        try req.controls.requireEngine(c.model.engine)
        for (i, b) in req.controls.images where b.width != Int(width) || b.height != Int(height) {
            throw DiffEditError.invalidArgument("params->controls[\(i)].image (\(b.width)x\(b.height)) must have the stream's size (\(width)x\(height))")
        }
        var o = VideoOptions(edit: req.options, mode: .consistent)
        if let m = req.mask {
            // one mask for every frame: INPAINT's repaint region (the library refuses it for the other methods)
            guard m.width == Int(width), m.height == Int(height) else {
                throw DiffEditError.invalidArgument("params->mask (\(m.width)x\(m.height)) must have the stream's size (\(width)x\(height))")
            }
            o.edit.mask = try PixelConverter.readGray(m)
        }
        o.keyframeInterval = c.streamLookahead() + 1
        let stream: EditStream
        do {
            stream = try c.session.makeStream(options: o, width: Int(width), height: Int(height))
        } catch let e as DiffEditError {
            throw req.cNamed(e)
        }
        c.setStreamState(StreamState(stream: stream, width: Int(width), height: Int(height), format: f, request: req))
        c.setRecord(provenance(c, req, width: Int(width), height: Int(height), video: true))
        return DIFF_EDIT_OK
    }
}

@_cdecl("diff_edit_stream_push")
public func diffEditStreamPush(_ ctx: OpaquePointer?, _ frame: UnsafePointer<diff_edit_buffer>?) -> diff_edit_status {
    withStreamContext(ctx, function: "diff_edit_stream_push") { c in
        guard let s = c.streamState() else {
            throw DiffEditError.invalidArgument("no stream on this context: call diff_edit_stream_begin first")
        }
        guard !s.ended else { throw DiffEditError.invalidArgument("push after diff_edit_stream_end (frame \(s.stream.pushed))") }
        let b = try CheckedBuffer(frame, name: "frame")
        guard b.width == s.width && b.height == s.height else {
            throw DiffEditError.invalidArgument("frame size (\(b.width)x\(b.height)) must equal the stream's (\(s.width)x\(s.height)) (frame \(s.stream.pushed))")
        }
        try b.requireFormat(s.format, name: "frame")
        let (rgb, alpha) = try PixelConverter.readRGB(b)
        let r = reporter(s, ctx: c)
        try s.stream.push(rgb, progress: r)
        s.alphas.append(alpha)
        return DIFF_EDIT_OK
    }
}

@_cdecl("diff_edit_stream_pull")
public func diffEditStreamPull(_ ctx: OpaquePointer?, _ out: UnsafeMutablePointer<diff_edit_buffer>?) -> diff_edit_status {
    withStreamContext(ctx, function: "diff_edit_stream_pull") { c in
        guard let s = c.streamState() else {
            throw DiffEditError.invalidArgument("no stream on this context: call diff_edit_stream_begin first")
        }
        let b = try CheckedBuffer(out.map { UnsafePointer($0) }, name: "out")
        guard b.width == s.width && b.height == s.height else {
            throw DiffEditError.invalidArgument("out size (\(b.width)x\(b.height)) must equal the stream's (\(s.width)x\(s.height))")
        }
        try b.requireFormat(s.format, name: "out")
        guard let img = s.stream.pull() else {
            if s.ended {
                c.setStreamState(nil)
                throw DiffEditError.invalidArgument("the stream has ended and every frame was pulled")
            }
            return DIFF_EDIT_AGAIN
        }
        let alpha = s.alphas.isEmpty ? nil : s.alphas.removeFirst()
        PixelConverter.writeRGB(s.request.watermark ? InvisibleWatermark.embed(img) : img, alpha: alpha, to: b)
        return DIFF_EDIT_OK
    }
}

@_cdecl("diff_edit_stream_end")
public func diffEditStreamEnd(_ ctx: OpaquePointer?) -> diff_edit_status {
    withStreamContext(ctx, function: "diff_edit_stream_end") { c in
        guard let s = c.streamState() else {
            throw DiffEditError.invalidArgument("no stream on this context: call diff_edit_stream_begin first")
        }
        guard !s.ended else { return DIFF_EDIT_OK }
        s.ended = true
        if s.stream.broken {
            c.setStreamState(nil)
            return DIFF_EDIT_OK
        }
        let r = reporter(s, ctx: c)
        do {
            try s.stream.finish(progress: r)
        } catch {
            c.setStreamState(nil)
            throw error
        }
        if s.stream.readyCount == 0 { c.setStreamState(nil) }
        return DIFF_EDIT_OK
    }
}

/// diff_edit_video's consistent method: the clip through the session's video editor (the same windows as a
/// stream with the default lookahead), frames read and written as their windows are done.
func videoConsistent(ctx: ContextHandle, request: EditRequest, reporter: ProgressReporter,
                     counter: FrameCounter, ins: [CheckedBuffer], outs: [CheckedBuffer]) throws {
    guard let first = ins.first else { return }
    var o = VideoOptions(edit: request.options, mode: .consistent)
    o.keyframeInterval = StreamRegistry.defaultLookahead + 1
    // frame numbers for the C callback (its reporter reads counter.frame); cancellation goes through `reporter`
    let inner = ProgressReporter { step, steps, frame, _ in
        counter.frame = frame
        do { try reporter.step(step, of: steps); return true } catch { return false }
    }
    var next = 0, emitted = 0
    do {
        try ctx.session.editVideo(
            width: first.width, height: first.height, frameCount: ins.count, options: o, progress: inner,
            next: { () -> RGBImage? in
                guard next < ins.count else { return nil }
                defer { next += 1 }
                return try PixelConverter.readRGB(ins[next]).0
            },
            emit: { image in
                let alpha = try PixelConverter.readRGB(ins[emitted]).1   // read before frames_out[i] (maybe the same memory) is written
                PixelConverter.writeRGB(request.watermark ? InvisibleWatermark.embed(image) : image, alpha: alpha, to: outs[emitted])
                emitted += 1
            })
    } catch let e as DiffEditError {
        throw request.cNamed(e)
    }
}
