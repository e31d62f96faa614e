import Foundation
import XCTest
@testable import DiffEdit

/// The editing engine keeps a denoising step on a resident backend: scheduler updates, guidance, masks,
/// direct inversion and LocalBlend's arithmetic are backend ops. Measured with the CPU provider in staged
/// mode (it moves data exactly as the CUDA provider does): the downloads of an edit with N2 steps minus those
/// with N1 steps are the downloads the extra steps cost. The goal is 0 for every method but p2p with
/// LocalBlend, whose mask steps read the stored attention maps (one copy per stored site).
final class EngineTransferTests: XCTestCase {
    static let staged = try! Backend(name: "cpu", staged: true)
    nonisolated(unsafe) static var models: [String: StableDiffusionModel] = [:]

    static func model(_ path: String) throws -> StableDiffusionModel {
        if let m = models[path] { return m }
        let m = try StableDiffusionModel.load(path: path, backend: staged)
        models[path] = m
        return m
    }

    static func downloads(_ body: () throws -> Void) rethrows -> Int {
        let before = TensorStorage.transferStats.downloads
        try body()
        return TensorStorage.transferStats.downloads - before
    }

    static let (n1, n2) = (3, 6)

    /// Extra downloads per extra step of an image edit.
    func perStep(_ model: String, _ change: (inout EditOptions) -> Void) throws -> (Double, Int) {
        let editor = ImageEditor(model: try Self.model(model))
        let (image, _) = EntryPointEqualityTests.inputs()
        func run(_ steps: Int) throws -> Int {
            var o = EditOptions()
            o.prompt = "a blue circle"
            o.steps = steps
            change(&o)
            editor.inversionCache.removeAll()
            return try Self.downloads { _ = try editor.edit(image, options: o, progress: ProgressReporter()) }
        }
        let a = try run(Self.n1), b = try run(Self.n2)
        return (Double(b - a) / Double(Self.n2 - Self.n1), b)
    }

    func testDownloadsPerStep() throws {
        let sd1 = EntryPointEqualityTests.sd1, instruct = EntryPointEqualityTests.instruct
        var rows: [(String, Double, Int)] = []
        func record(_ name: String, _ r: (Double, Int)) { rows.append((name, r.0, r.1)) }

        record("sdedit", try perStep(sd1) { $0.method = .sdedit; $0.strength = 1 })
        record("sdedit + mask", try perStep(sd1) { $0.method = .sdedit; $0.strength = 1; $0.mask = EntryPointEqualityTests.inputs().1 })
        record("ddim", try perStep(sd1) { $0.method = .ddim; $0.sourcePrompt = "a red circle" })
        record("p2p (no LocalBlend), direct inversion", try perStep(sd1) {
            $0.method = .p2p; $0.sourcePrompt = "a red circle"; $0.localBlend = false; $0.directInversion = true
        })
        record("p2p + negative prompt", try perStep(sd1) {
            $0.method = .p2p; $0.sourcePrompt = "a red circle"; $0.localBlend = false; $0.negativePrompt = "blurry"
        })
        record("instruct", try perStep(instruct) { $0.method = .instruct; $0.prompt = "make the circle blue" })
        let lb = try perStep(sd1) { $0.method = .p2p; $0.sourcePrompt = "a red circle"; $0.localBlend = true }
        record("p2p + LocalBlend", lb)

        // generate and video
        let m = try Self.model(sd1)
        func gen(_ steps: Int) throws -> Int {
            try Self.downloads { _ = try m.generate(prompt: "a red circle", width: 64, height: 64, steps: steps, guidance: 7.5) }
        }
        let g1 = try gen(Self.n1), g2 = try gen(Self.n2)
        rows.append(("generate", Double(g2 - g1) / Double(Self.n2 - Self.n1), g2))
        let frames = (0..<3).map { f in
            RGBImage(width: 64, height: 64, pixels: (0..<(64 * 64 * 3)).map { UInt8(($0 / 3 + 5 * f) % 200) })
        }
        for method in [EditMethod.sdedit, .p2p] {
            func video(_ steps: Int) throws -> Int {
                var o = VideoOptions()
                o.edit.method = method; o.edit.prompt = "a blue circle"; o.edit.sourcePrompt = "a red circle"
                o.edit.steps = steps; o.edit.strength = 1; o.edit.localBlend = false
                o.keyframeInterval = 3
                o.pixelFusion = false
                return try Self.downloads { _ = try VideoEditor(model: m).edit(frames, options: o, progress: ProgressReporter()) }
            }
            let v1 = try video(Self.n1), v2 = try video(Self.n2)
            rows.append(("video \(method.rawValue) (3 frames)", Double(v2 - v1) / Double(Self.n2 - Self.n1), v2))
        }
        for (name, per, total) in rows {
            print("downloads per extra step: \(name): \(per) (whole edit at \(Self.n2) steps: \(total))")
        }
        for (name, per, _) in rows where !name.contains("LocalBlend") {
            XCTAssertEqual(per, 0, "\(name): a denoising step downloads \(per) tensors")
        }
        // LocalBlend reads its stored maps (one copy per site) at its mask steps only: at most the number of
        // cross-attention sites at its height per step, and more than 0 (it ran).
        let sites = Double(m.unetConfig.down_block_types.count + m.unetConfig.up_block_types.count)
            * Double(m.unetConfig.layers_per_block + 1)
        XCTAssertGreaterThan(lb.0, 0)
        XCTAssertLessThanOrEqual(lb.0, sites)
    }
}
