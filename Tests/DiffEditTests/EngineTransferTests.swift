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

    /// Downloads (device -> host moves of op outputs) and host operands (ops that met plain host memory: on
    /// CUDA each is a host -> device copy) during `body`.
    static func transfers(_ body: () throws -> Void) rethrows -> (downloads: Int, hostOperands: Int) {
        let before = TensorStorage.transferStats.downloads, h0 = staged.stats.host_operands
        try body()
        return (TensorStorage.transferStats.downloads - before, Int(staged.stats.host_operands - h0))
    }

    static let (n1, n2) = (3, 6)

    struct Row { let name: String; let downloads: Double; let hostOperands: Double; let total: Int }

    static func row(_ name: String, _ a: (downloads: Int, hostOperands: Int), _ b: (downloads: Int, hostOperands: Int)) -> Row {
        let d = Double(n2 - n1)
        return Row(name: name, downloads: Double(b.downloads - a.downloads) / d, hostOperands: Double(b.hostOperands - a.hostOperands) / d,
                   total: b.downloads)
    }

    /// Extra downloads and host operands per extra step of an image edit.
    func perStep(_ name: String, _ model: String, _ change: (inout EditOptions) -> Void) throws -> Row {
        let editor = ImageEditor(model: try Self.model(model))
        let (image, _) = EntryPointEqualityTests.inputs()
        func run(_ steps: Int) throws -> (downloads: Int, hostOperands: Int) {
            var o = EditOptions()
            o.prompt = "a blue circle"
            o.steps = steps
            change(&o)
            editor.inversionCache.removeAll()
            return try Self.transfers { _ = try editor.edit(image, options: o, progress: ProgressReporter()) }
        }
        return Self.row(name, try run(Self.n1), try run(Self.n2))
    }

    func testDownloadsPerStep() throws {
        let sd1 = EntryPointEqualityTests.sd1, instruct = EntryPointEqualityTests.instruct
        var rows: [Row] = []
        rows.append(try perStep("sdedit", sd1) { $0.method = .sdedit; $0.strength = 1 })
        rows.append(try perStep("sdedit + mask", sd1) { $0.method = .sdedit; $0.strength = 1; $0.mask = EntryPointEqualityTests.inputs().1 })
        rows.append(try perStep("ddim", sd1) { $0.method = .ddim; $0.sourcePrompt = "a red circle" })
        rows.append(try perStep("p2p (no LocalBlend), direct inversion", sd1) {
            $0.method = .p2p; $0.sourcePrompt = "a red circle"; $0.localBlend = false; $0.directInversion = true
        })
        rows.append(try perStep("p2p + negative prompt", sd1) {
            $0.method = .p2p; $0.sourcePrompt = "a red circle"; $0.localBlend = false; $0.negativePrompt = "blurry"
        })
        rows.append(try perStep("instruct", instruct) { $0.method = .instruct; $0.prompt = "make the circle blue" })
        let lb = try perStep("p2p + LocalBlend", sd1) { $0.method = .p2p; $0.sourcePrompt = "a red circle"; $0.localBlend = true }
        rows.append(lb)

        // generate and video
        let m = try Self.model(sd1)
        func gen(_ steps: Int) throws -> (downloads: Int, hostOperands: Int) {
            try Self.transfers { _ = try m.generate(prompt: "a red circle", width: 64, height: 64, steps: steps, guidance: 7.5) }
        }
        rows.append(Self.row("generate", try gen(Self.n1), try gen(Self.n2)))
        let frames = (0..<3).map { f in
            RGBImage(width: 64, height: 64, pixels: (0..<(64 * 64 * 3)).map { UInt8(($0 / 3 + 5 * f) % 200) })
        }
        for method in [EditMethod.sdedit, .p2p] {
            func video(_ steps: Int) throws -> (downloads: Int, hostOperands: Int) {
                var o = VideoOptions()
                o.edit.method = method; o.edit.prompt = "a blue circle"; o.edit.sourcePrompt = "a red circle"
                o.edit.steps = steps; o.edit.strength = 1; o.edit.localBlend = false
                o.keyframeInterval = 3
                o.pixelFusion = false
                return try Self.transfers { _ = try VideoEditor(model: m).edit(frames, options: o, progress: ProgressReporter()) }
            }
            rows.append(Self.row("video \(method.rawValue) (3 frames)", try video(Self.n1), try video(Self.n2)))
        }
        for r in rows {
            print("per extra step: \(r.name): \(r.downloads) downloads, \(r.hostOperands) host operands (downloads of the whole edit at \(Self.n2) steps: \(r.total))")
        }
        for r in rows where !r.name.contains("LocalBlend") {
            XCTAssertEqual(r.downloads, 0, "\(r.name): a denoising step downloads \(r.downloads) tensors")
        }
        for r in rows {
            XCTAssertEqual(r.hostOperands, 0, "\(r.name): a denoising step passes \(r.hostOperands) host tensors to ops")
        }
        // LocalBlend reads its stored maps (one copy per stored site) at its mask steps only (after
        // int(0.2 * steps) steps): per extra mask step at most the number of cross-attention sites, and more
        // than 0 (it ran).
        let maskSteps = { (n: Int) in n - Int(0.2 * Double(n)) }
        let perMaskStep = lb.downloads * Double(Self.n2 - Self.n1) / Double(maskSteps(Self.n2) - maskSteps(Self.n1))
        print("p2p + LocalBlend: \(perMaskStep) downloads per mask step")
        let sites = Double(m.unetConfig.down_block_types.count + m.unetConfig.up_block_types.count)
            * Double(m.unetConfig.resnets(block: 0) + 1)
        XCTAssertGreaterThan(perMaskStep, 0)
        XCTAssertLessThanOrEqual(perMaskStep, sites)
        XCTAssertEqual(perMaskStep, perMaskStep.rounded(), "downloads come in whole mask steps")
    }
}
