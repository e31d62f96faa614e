import XCTest
@testable import DiffEdit

/// VideoEditor on the sd1 fixture model (64 px native, 8x8 latents): frame count and size, determinism,
/// streaming == whole clip, bad input, cancellation, and the measured flicker of consistent vs per-frame.
final class VideoEditorTests: XCTestCase {
    /// A static background (vertical gradient + a fixed green square) with a red disc moving right.
    static func clip(frames: Int, size: Int = 64) -> [RGBImage] {
        (0..<frames).map { t in
            var px = [UInt8](repeating: 0, count: size * size * 3)
            let cx = Float(size) * (0.25 + 0.06 * Float(t)), cy = Float(size) * 0.4, r = Float(size) * 0.14
            for y in 0..<size { for x in 0..<size {
                var c: (UInt8, UInt8, UInt8) = (240, 240, UInt8(180 + 60 * y / (size - 1)))
                if x >= size * 6 / 10 && x < size * 9 / 10 && y >= size * 65 / 100 && y < size * 9 / 10 { c = (40, 170, 60) }
                let dx = Float(x) - cx, dy = Float(y) - cy
                if dx * dx + dy * dy <= r * r { c = (220, 30, 40) }
                let i = (y * size + x) * 3
                px[i] = c.0; px[i + 1] = c.1; px[i + 2] = c.2
            } }
            return RGBImage(width: size, height: size, pixels: px)
        }
    }

    static func options(_ m: EditMethod, mode: VideoMode, steps: Int = 4) -> VideoOptions {
        var o = VideoOptions()
        o.edit.method = m
        o.edit.prompt = "a blue circle on a white background"
        o.edit.sourcePrompt = "a red circle on a white background"
        o.edit.steps = steps
        o.edit.strength = 0.75
        o.edit.seed = 11
        o.mode = mode
        o.keyframeInterval = 3
        return o
    }

    /// Mean absolute change (0..255) between consecutive output frames over pixels whose source value
    /// does not change between those frames and is at least `margin` pixels from any that does.
    static func flicker(source: [RGBImage], edited: [RGBImage], margin: Int = 4) -> Double {
        var sum = 0.0, n = 0
        let w = source[0].width, h = source[0].height
        for t in 1..<source.count {
            var moving = [Bool](repeating: false, count: w * h)
            for i in 0..<(w * h) {
                for c in 0..<3 where source[t].pixels[3 * i + c] != source[t - 1].pixels[3 * i + c] { moving[i] = true }
            }
            for y in 0..<h { for x in 0..<w {
                var near = false
                for yy in max(0, y - margin)...min(h - 1, y + margin) {
                    for xx in max(0, x - margin)...min(w - 1, x + margin) where moving[yy * w + xx] { near = true; break }
                    if near { break }
                }
                if near { continue }
                let i = y * w + x
                for c in 0..<3 { sum += abs(Double(edited[t].pixels[3 * i + c]) - Double(edited[t - 1].pixels[3 * i + c])) }
                n += 3
            } }
        }
        return n > 0 ? sum / Double(n) : 0
    }

    func testFrameCountSizeAndDeterminism() throws {
        let editor = VideoEditor(model: try EditTestSupport.sd1())
        let frames = VideoEditorTests.clip(frames: 5)
        let o = VideoEditorTests.options(.sdedit, mode: .consistent)
        let a = try editor.edit(frames, options: o, progress: ProgressReporter())
        XCTAssertEqual(a.count, 5)
        XCTAssertTrue(a.allSatisfy { $0.width == 64 && $0.height == 64 })
        let b = try editor.edit(frames, options: o, progress: ProgressReporter())
        XCTAssertEqual(a, b, "same input and seed: identical frames")
        XCTAssertNotEqual(a[0], frames[0], "the edit changed the frame")
    }

    func testFlickerConsistentVsPerFrame() throws {
        let editor = VideoEditor(model: try EditTestSupport.sd1())
        let frames = VideoEditorTests.clip(frames: 6)
        for m in [EditMethod.sdedit, .ddim] {
            let pf = try editor.edit(frames, options: VideoEditorTests.options(m, mode: .perFrame), progress: ProgressReporter())
            let cs = try editor.edit(frames, options: VideoEditorTests.options(m, mode: .consistent), progress: ProgressReporter())
            XCTAssertEqual(pf.count, 6)
            let fp = VideoEditorTests.flicker(source: frames, edited: pf)
            let fc = VideoEditorTests.flicker(source: frames, edited: cs)
            print("video flicker \(m): per-frame \(fp), consistent \(fc), ratio \(fc / max(fp, 1e-9))")
            XCTAssertGreaterThan(fp, 0.5, "\(m): the per-frame baseline flickers measurably on this clip")
            XCTAssertLessThanOrEqual(fc, 0.5 * fp, "\(m): consistent mode flickers at most half as much as per-frame")
        }
    }

    func testStreamingGivesTheSameFramesAsTheWholeClip() throws {
        let editor = VideoEditor(model: try EditTestSupport.sd1())
        let frames = VideoEditorTests.clip(frames: 5)
        let o = VideoEditorTests.options(.ddim, mode: .consistent)
        let whole = try editor.edit(frames, options: o, progress: ProgressReporter())
        let s = try VideoStream(editor: editor, options: o, width: 64, height: 64)
        XCTAssertEqual(s.lookahead, 2)
        var got: [RGBImage] = []
        XCTAssertNil(s.pull(), "pull before push: nothing ready")
        for (i, f) in frames.enumerated() {
            try s.push(f, progress: ProgressReporter())
            while let x = s.pull() { got.append(x) }
            XCTAssertGreaterThanOrEqual(got.count, i + 1 - s.lookahead, "bounded lookahead after frame \(i)")
        }
        XCTAssertEqual(got.count, 3, "windows of 3: frames 0-2 out, 3-4 wait for the end")
        try s.finish(progress: ProgressReporter())
        while let x = s.pull() { got.append(x) }
        XCTAssertEqual(got.count, 5)
        var maxDiff = 0
        for (a, b) in zip(got, whole) { for k in 0..<a.pixels.count { maxDiff = max(maxDiff, abs(Int(a.pixels[k]) - Int(b.pixels[k]))) } }
        XCTAssertLessThanOrEqual(maxDiff, 1, "streaming vs whole clip")
        XCTAssertThrowsError(try s.push(frames[0], progress: ProgressReporter())) { e in
            XCTAssertTrue("\(e)".contains("push after end"), "\(e)")
        }
    }

    func testBadInput() throws {
        let editor = VideoEditor(model: try EditTestSupport.sd1())
        let o = VideoEditorTests.options(.sdedit, mode: .consistent)
        XCTAssertThrowsError(try editor.edit([], options: o, progress: ProgressReporter())) { e in
            XCTAssertTrue("\(e)".contains("no frames"), "\(e)")
        }
        let s = try VideoStream(editor: editor, options: o, width: 64, height: 64)
        XCTAssertThrowsError(try s.push(RGBImage(width: 32, height: 64), progress: ProgressReporter())) { e in
            XCTAssertTrue("\(e)".contains("32x64 differs"), "\(e)")
        }
        var bad = o
        bad.keyframeInterval = 0
        XCTAssertThrowsError(try VideoStream(editor: editor, options: bad, width: 64, height: 64)) { e in
            XCTAssertTrue("\(e)".contains("keyframeInterval"), "\(e)")
        }
        bad = o
        bad.edit.strength = 1.5
        XCTAssertThrowsError(try VideoStream(editor: editor, options: bad, width: 64, height: 64)) { e in
            XCTAssertTrue("\(e)".contains("strength"), "\(e)")
        }
    }

    func testCancellationAndProgressOverFrames() throws {
        let editor = VideoEditor(model: try EditTestSupport.sd1())
        let frames = VideoEditorTests.clip(frames: 4)
        var seen: [(Int, Int, Int, Int)] = []
        let p = ProgressReporter { step, steps, frame, total in
            seen.append((step, steps, frame, total))
            return seen.count < 3
        }
        XCTAssertThrowsError(try editor.edit(frames, options: VideoEditorTests.options(.sdedit, mode: .consistent), progress: p)) { e in
            XCTAssertEqual(e as? DiffEditError, DiffEditError.cancelled)
        }
        XCTAssertEqual(seen.count, 3)
        XCTAssertEqual(seen[0].3, 4, "progress knows the frame count")
        var frameReports = Set<Int>()
        let q = ProgressReporter { _, _, frame, _ in frameReports.insert(frame); return true }
        _ = try editor.edit(frames, options: VideoEditorTests.options(.sdedit, mode: .perFrame), progress: q)
        XCTAssertEqual(frameReports, [0, 1, 2, 3], "per-frame progress names every frame")
    }

    /// Frames in flight (read but not yet emitted) never exceed the window, however long the clip.
    func testMemoryIsBoundedByTheWindow() throws {
        let editor = VideoEditor(model: try EditTestSupport.sd1())
        let frames = VideoEditorTests.clip(frames: 4)
        var o = VideoEditorTests.options(.sdedit, mode: .consistent, steps: 2)
        o.keyframeInterval = 3
        var read = 0, emitted = 0, maxInFlight = 0
        try editor.edit(width: 64, height: 64, frameCount: nil, options: o, progress: ProgressReporter(),
                        next: { () -> RGBImage? in
                            guard read < 20 else { return nil }
                            defer { read += 1 }
                            return frames[read % 4]
                        },
                        emit: { _ in emitted += 1; maxInFlight = max(maxInFlight, read - emitted + 1) })
        XCTAssertEqual(emitted, 20)
        XCTAssertLessThanOrEqual(maxInFlight, o.keyframeInterval, "frames held at once")
    }

    /// The anchor (frame 0) attends only to itself and does not propagate: in consistent mode it must come
    /// out as the image edit of frame 0 (up to rounding of the larger batch). sdedit on the sd1 fixture,
    /// instruct on the 8-channel edit fixture (shared noise and cross-frame attention only).
    func testAnchorFrameEqualsTheImageEdit() throws {
        let frames = VideoEditorTests.clip(frames: 3)
        var cases: [(VideoEditor, VideoOptions)] = [(VideoEditor(model: try EditTestSupport.sd1()),
                                                     VideoEditorTests.options(.sdedit, mode: .consistent))]
        var io = VideoEditorTests.options(.instruct, mode: .consistent)
        io.edit.prompt = "make the circle blue"
        io.edit.sourcePrompt = nil
        cases.append((VideoEditor(model: try EditTestSupport.model(EditTestSupport.editFixtures + "/instruct/model")), io))
        // p2p with direct inversion: the window pins each slot's source branch as the image editor does
        var po = VideoEditorTests.options(.p2p, mode: .consistent)
        po.edit.directInversion = true
        po.edit.blendDilation = 0
        cases.append((VideoEditor(model: try EditTestSupport.sd1()), po))
        for (editor, o) in cases {
            let out = try editor.edit(frames, options: o, progress: ProgressReporter())
            XCTAssertEqual(out.count, 3)
            let single = try editor.imageEditor.edit(frames[0], options: o.edit, progress: ProgressReporter()).image
            var maxDiff = 0
            for k in 0..<single.pixels.count { maxDiff = max(maxDiff, abs(Int(single.pixels[k]) - Int(out[0].pixels[k]))) }
            print("video anchor vs image edit (\(o.edit.method)): max pixel difference \(maxDiff)")
            XCTAssertLessThanOrEqual(maxDiff, 2, "\(o.edit.method)")
            XCTAssertNotEqual(out[1], frames[1], "\(o.edit.method): frame 1 edited")
        }
    }
}
