import Glibc

/// The working set of a request, estimated from the model's configs before anything is allocated, and
/// checked against the machine's memory: a request that could not fit is `.outOfMemory` naming the
/// estimate and what to change, instead of Swift trapping on an allocation (issue 21).
extension StableDiffusionModel {
    /// Physical memory of this machine in bytes (sysconf), or nil when unknown.
    public static var physicalMemory: Int? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return nil }
        let (m, o) = pages.multipliedReportingOverflow(by: size)
        return o ? Int.max : m
    }

    /// Bytes a width x height request with `unetItems` UNet batch items (2 with classifier-free guidance)
    /// needs at its peak, roughly: the VAE at full resolution (4 live f32 activations of each level's
    /// channels), or the UNet on the latents (activations, skip connections and attention scratch), plus
    /// the images as f32. An estimate to refuse absurd requests with, not an exact figure. Saturates at
    /// Int.max instead of overflowing.
    public func estimatedWorkingSet(width: Int, height: Int, unetItems: Int) -> Int {
        Self.estimatedWorkingSet(unet: unetConfig, vae: vaeConfig, width: width, height: height, unetItems: unetItems)
    }

    /// `estimatedWorkingSet` from the configs alone (the fuzz harness calls it on unchecked configs).
    public static func estimatedWorkingSet(unet unetConfig: UNetConfig, vae vaeConfig: VAEConfig,
                                           width: Int, height: Int, unetItems: Int) -> Int {
        func mul(_ xs: Int...) -> Int { HostMemory.product(xs) }
        func add(_ a: Int, _ b: Int) -> Int { let (s, o) = a.addingReportingOverflow(b); return o ? Int.max : s }
        let pixels = mul(width, height)
        var vae = 0
        for (i, c) in vaeConfig.block_out_channels.enumerated() {
            vae = add(vae, mul(c, pixels >> (2 * min(i, 62)), 4, 4))
        }
        let f = max(vaeConfig.downsampleFactor, 1)
        let latentPixels = mul(width / f, height / f)
        var unet = 0
        let live = add(max(unetConfig.layers_per_block.maximum(over: unetConfig.block_out_channels.count), 0), 6)     // skip connections kept for the up path, plus working tensors
        for (i, c) in unetConfig.block_out_channels.enumerated() {
            unet = add(unet, mul(c, latentPixels >> (2 * min(i, 62)), max(unetItems, 1), live, 4))
        }
        let images = mul(pixels, 3, 4, 4)
        return add(max(vae, unet), images)
    }

    /// Memory available for new allocations now (Linux /proc/meminfo MemAvailable), else the physical memory.
    public static var availableMemory: Int? {
        if let text = try? String(decoding: ConfigFile.readData("/proc/meminfo"), as: UTF8.self) {
            for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
                let f = line.split(separator: " ")
                if f.count >= 2, let kb = Int(f[1]) { return kb.multipliedReportingOverflow(by: 1024).overflow ? Int.max : kb * 1024 }
            }
        }
        return physicalMemory
    }

    static func gib(_ b: Int) -> String { String(format2(Double(b) / Double(1 << 30))) + " GiB" }
    static func format2(_ x: Double) -> String { let r = (x * 100).rounded() / 100; return r < 1e15 ? "\(r)" : "\(x)" }

    /// The weights' estimated size (`ModelSizeEstimate`, bytes of f32) checked against `limit` (the caller's
    /// max_memory) or the available memory, before any tensor is read. Returns the estimate.
    static func checkModelSize(_ ck: LoadedCheckpoint, limit: Int?) throws -> Int {
        let e = ModelSizeEstimate(unet: ck.unetConfig, vae: ck.vaeConfig, text: ck.textConfig, text2: ck.textConfig2)
        let need = e.bytes
        guard let cap = limit ?? availableMemory, need > cap else { return need }
        let what = limit != nil ? "max_memory" : "the memory available now"
        let change = limit != nil ? "raise max_memory (0 = the available memory)" : "free memory or use a smaller model"
        throw DiffEditError.outOfMemory("\(ck.origin): the weights need about \(need) bytes (\(gib(need))) as f32 (\(e.unetParameters) UNet, \(e.vaeParameters) VAE and \(e.textParameters) text encoder parameters, estimated from the configs), more than \(what), \(cap) bytes (\(gib(cap))); \(change)")
    }

    /// Throws `.outOfMemory` when `estimatedWorkingSet` plus `inputPlanes` (bytes an edit holds at the input's size,
    /// `PixelPolicy.inputPlaneBytes`; 0 for generate) is above `limit` (default: the model's `maxMemory` less its
    /// weights and the ControlNets loaded for it, else the machine's memory). The message gives the numbers and
    /// what the caller can change: `sizeAdvice` when the caller chose the size (generate's width/height, an edit at
    /// full resolution; nil when the size comes from the model, as for an edit at the model's size through the C
    /// ABI), and the max_memory that would fit when the limit is max_memory.
    public func checkWorkingSet(width: Int, height: Int, unetItems: Int, limit: Int? = nil,
                                sizeAdvice: String? = "use a smaller width/height", inputPlanes: Int = 0) throws {
        let held = ModelSizeEstimate.sum(estimatedWeightBytes, controlNets.bytes)
        let fromModel = maxMemory.map { max($0 - held, 0) }
        guard let cap = limit ?? fromModel ?? Self.physicalMemory else { return }
        let work = estimatedWorkingSet(width: width, height: height, unetItems: unetItems)
        let need = ModelSizeEstimate.sum(work, max(inputPlanes, 0))
        guard need > cap else { return }
        let byMaxMemory = limit == nil && fromModel != nil
        let whose = byMaxMemory
            ? "what max_memory (\(maxMemory!) bytes) leaves beside the weights (\(held) bytes)"
            : limit != nil ? "the \(cap) bytes (\(Self.gib(cap))) available" : "this machine's memory, \(cap) bytes (\(Self.gib(cap)))"
        var advice = sizeAdvice.map { [$0] } ?? []
        // the pictures at the input's size outweigh the diffusion: a smaller input is what helps
        if inputPlanes > work && !(sizeAdvice ?? "").contains("smaller input") { advice.append("use a smaller input") }
        if byMaxMemory {
            let total = ModelSizeEstimate.sum(held, need)
            advice.append("raise max_memory to at least \(total) bytes (\(Self.gib(total)))")
        }
        let planes = inputPlanes > 0 ? ", plus \(inputPlanes) bytes (\(Self.gib(inputPlanes))) for the picture at the input's size" : ""
        throw DiffEditError.outOfMemory("\(width)x\(height): this request needs about \(work) bytes (\(Self.gib(work))) of working memory with \(origin)\(planes), more than \(whose)\(advice.isEmpty ? "" : "; " + advice.joined(separator: " or "))")
    }
}
