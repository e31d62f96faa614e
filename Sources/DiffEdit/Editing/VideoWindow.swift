/// The frames one consistent-mode UNet batch holds, and whom each attends to.
///
/// Window j holds frames [j*I, j*I + n) (I = keyframe interval, n <= I); its first frame is the keyframe.
/// Slots: the anchor (frame 0) as a context slot when j > 0, then the window's frames in order.
/// Self-attention key sources (slot indices, the slot itself last):
/// - anchor:        [anchor]
/// - keyframe:      [anchor, keyframe]
/// - other frame f: [anchor, keyframe, f-1, f] (duplicates removed)
/// So the anchor's and every keyframe's computation never depends on the window, and a frame depends only
/// on frames of its own window (plus the anchor): any split of the clip into pushes gives the same windows.
struct VideoWindow: Equatable {
    /// Frame index of each slot.
    let frames: [Int]
    /// Whether a slot's result is emitted (false: the anchor as context).
    let emit: [Bool]
    /// Key sources per slot (slot indices).
    let sources: [[Int]]
    /// Whether a slot takes its self-attention maps from the source branch (all but the anchor).
    let propagate: [Bool]
    /// The slot whose edited latents a slot's matched tokens are copied from: the keyframe for other
    /// frames, the anchor for keyframes, nil for the anchor.
    let reference: [Int?]

    /// The window starting at frame `start` (a multiple of `interval`) with `count` frames.
    init(start: Int, count: Int, interval: Int) {
        precondition(start % interval == 0 && count >= 1 && count <= interval, "VideoWindow(\(start), \(count), \(interval))")
        var frames: [Int] = [], emit: [Bool] = []
        if start > 0 { frames.append(0); emit.append(false) }
        for f in start..<(start + count) { frames.append(f); emit.append(true) }
        let anchorSlot = 0
        let keySlot = start > 0 ? 1 : 0
        var sources: [[Int]] = [], propagate: [Bool] = [], reference: [Int?] = []
        for (s, f) in frames.enumerated() {
            var list: [Int]
            if f == 0 {
                list = [s]
            } else if f == start {
                list = [anchorSlot, s]
            } else {
                list = [anchorSlot, keySlot, s - 1, s]
            }
            var seen = Set<Int>()
            list = list.filter { seen.insert($0).inserted }
            sources.append(list)
            propagate.append(f != 0)
            reference.append(f == 0 ? nil : (f == start ? anchorSlot : keySlot))
        }
        self.frames = frames; self.emit = emit; self.sources = sources; self.propagate = propagate
        self.reference = reference
    }
}
