import FoundationEssentials
import DiffEdit
#if canImport(Glibc)
import Glibc
#endif

/// A progress bar on stderr: "[#######.......] step 7/20  1.84 it/s". Redraws in place on a terminal,
/// one line per step otherwise. `quiet` turns it off.
final class ProgressBar: @unchecked Sendable {
    let label: String
    let quiet: Bool
    let isTTY: Bool
    let start = Date()
    var lastStep = 0

    init(label: String, quiet: Bool = false) {
        self.label = label
        self.quiet = quiet
        self.isTTY = isatty(2) != 0
    }

    /// A ProgressReporter that draws this bar.
    var reporter: ProgressReporter {
        ProgressReporter { [self] step, steps, frame, frames in
            self.draw(step: step, steps: steps, frame: frame, frames: frames)
            return true
        }
    }

    func draw(step: Int, steps: Int, frame: Int, frames: Int) {
        if quiet { return }
        let elapsed = Date().timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(step) / elapsed : 0
        let width = 24
        let filled = steps > 0 ? min(width, step * width / steps) : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        var line = "\(label) [\(bar)] step \(step)/\(steps)"
        if frames > 1 { line += " frame \(frame + 1)/\(frames)" }
        line += TextUtil.format("  %.2f it/s", rate)
        if isTTY {
            StdIO.err("\r" + line + (step >= steps ? "\n" : ""))
        } else {
            StdIO.err(line + "\n")
        }
        lastStep = step
    }
}
