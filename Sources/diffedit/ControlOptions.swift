import FoundationEssentials
import DiffEdit

/// The ControlNet options of `generate`, `edit` and `video` (DESIGN.md, Wave 2): `--controlnet PATH` repeatable,
/// each with its input in the same order (`--control-image IMG` or `--control canny|tile|inpaint`),
/// `--control-scale`, `--control-start`, `--control-end` (one value for all, or one per ControlNet: repeated or
/// comma-separated), `--control-guess-mode`, `--control-out PNG`.
enum ControlOptions {
    /// `out`: with --control-out (not for video, whose maps are per frame).
    static func options(preprocessors: Bool, out: Bool = true) -> [ArgParser.Option] {
        var o: [ArgParser.Option] = [
            .init(name: "controlnet", value: "PATH", help: "ControlNet: diffusers ControlNetModel folder or single .safetensors (control_*.safetensors); repeatable, each with a control input in the same order"),
            .init(name: "control-image", value: "IMG", help: "a ControlNet's control image (resized to the \(preprocessors ? "input" : "output") size with a note when its size differs)"),
        ]
        if preprocessors {
            o.append(.init(name: "control", value: "canny|tile|inpaint", help: "a ControlNet's control map computed from the input: canny (cv2.Canny(gray, 100, 200)), tile (the input), inpaint (masked pixels -1; needs --mask)"))
        }
        o += [
            .init(name: "control-scale", value: "S", help: "ControlNet conditioning scale: one for all or one per ControlNet (repeat or S1,S2; default 1)"),
            .init(name: "control-start", value: "F", help: "fraction of the steps where each ControlNet starts acting (one or one per net; default 0)"),
            .init(name: "control-end", value: "F", help: "fraction of the steps where each ControlNet stops acting (one or one per net; default 1)"),
            .init(name: "control-guess-mode", value: nil, help: "diffusers' guess mode: the ControlNets see only the conditional branch, residuals scaled 0.1 -> 1 by depth"),
        ]
        if out {
            o.append(.init(name: "control-out", value: "PNG", help: "write the control map each ControlNet saw (several: PNG with -1, -2, ... before the extension)"))
        }
        return o
    }

    /// Per-net values of a number option: none (default), one for all, or exactly one per net.
    static func perNet(_ p: ArgParser.Parsed, _ name: String, count: Int, default d: Float) throws -> [Float] {
        let items = p.all([name]).flatMap { $0.value.split(separator: ",").map(String.init) }
        let vals = try items.map { s -> Float in
            guard let v = Float(s) else { throw CLIError.usage(p.command, "--\(name): \"\(s)\" is not a number") }
            guard v.isFinite else { throw CLIError.usage(p.command, "--\(name): \(s) is not a finite number") }
            return v
        }
        switch vals.count {
        case 0: return Array(repeating: d, count: count)
        case 1: return Array(repeating: vals[0], count: count)
        case count: return vals
        default: throw CLIError.usage(p.command, "--\(name): \(vals.count) values for \(count) ControlNets (give one, or one per --controlnet)")
        }
    }

    /// The ControlNet specs of the command line; user control images are fitted to width x height (a note on
    /// stderr when resized). Empty without --controlnet.
    static func specs(_ p: ArgParser.Parsed, model: StableDiffusionModel, width: Int, height: Int) throws -> [ControlSpec] {
        let nets = p.all(["controlnet"]).map(\.value)
        let inputs = p.all(["control-image", "control"])
        if nets.isEmpty {
            for n in ["control-image", "control", "control-scale", "control-start", "control-end", "control-out"] where p.string(n) != nil {
                throw CLIError.usage(p.command, "--\(n) needs --controlnet PATH")
            }
            if p.flag("control-guess-mode") { throw CLIError.usage(p.command, "--control-guess-mode needs --controlnet PATH") }
            return []
        }
        guard inputs.count == nets.count else {
            throw CLIError.usage(p.command, "\(nets.count) --controlnet but \(inputs.count) control inputs (--control-image\(p.command == "generate" ? "" : " / --control")): give one per ControlNet, in the same order")
        }
        let scales = try perNet(p, "control-scale", count: nets.count, default: 1)
        let starts = try perNet(p, "control-start", count: nets.count, default: 0)
        let ends = try perNet(p, "control-end", count: nets.count, default: 1)
        var specs: [ControlSpec] = []
        for (i, path) in nets.enumerated() {
            let source: ControlSource
            if inputs[i].name == "control" {
                source = try ControlSource.preprocessor(inputs[i].value, field: "--control")
            } else {
                let (img, note) = ControlPreprocessor.fit(try ImageFile.read(path: inputs[i].value), width: width, height: height,
                                                          what: "--control-image \(inputs[i].value)")
                if let note { CommonOptions.stderrLine("diffedit: \(note)") }
                source = .image(img)
            }
            let spec = ControlSpec(net: try model.loadControlNet(path: path), source: source, scale: scales[i],
                                   start: starts[i], end: ends[i])
            do { try spec.validate("--controlnet \(path): --control") } catch let e as DiffEditError {
                throw CLIError.usage(p.command, e.message)
            }
            specs.append(spec)
        }
        return specs
    }

    /// `--control-out`: the maps, one file per ControlNet.
    static func writeMaps(_ p: ArgParser.Parsed, _ maps: [RGBImage]) throws {
        guard let out = p.string("control-out"), !maps.isEmpty else { return }
        if maps.count == 1 { try ImageFile.write(maps[0], path: out); return }
        let ext = PathName.pathExtension(out)
        let stem = ext.isEmpty ? out : String(out.dropLast(ext.count + 1))
        for (i, m) in maps.enumerated() { try ImageFile.write(m, path: "\(stem)-\(i + 1)" + (ext.isEmpty ? ".png" : ".\(ext)")) }
    }
}
