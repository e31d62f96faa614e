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
        func mul(_ xs: Int...) -> Int {
            var r = 1
            for x in xs {
                let (m, o) = r.multipliedReportingOverflow(by: max(x, 0))
                if o { return Int.max }
                r = m
            }
            return r
        }
        func add(_ a: Int, _ b: Int) -> Int { let (s, o) = a.addingReportingOverflow(b); return o ? Int.max : s }
        let pixels = mul(width, height)
        var vae = 0
        for (i, c) in vaeConfig.block_out_channels.enumerated() {
            vae = add(vae, mul(c, pixels >> (2 * min(i, 62)), 4, 4))
        }
        let f = max(vaeFactor, 1)
        let latentPixels = mul(width / f, height / f)
        var unet = 0
        let live = unetConfig.layers_per_block + 6      // skip connections kept for the up path, plus working tensors
        for (i, c) in unetConfig.block_out_channels.enumerated() {
            unet = add(unet, mul(c, latentPixels >> (2 * min(i, 62)), max(unetItems, 1), live, 4))
        }
        let images = mul(pixels, 3, 4, 4)
        return add(max(vae, unet), images)
    }

    /// Throws `.outOfMemory` when `estimatedWorkingSet` is above `limit` (default: the machine's memory).
    public func checkWorkingSet(width: Int, height: Int, unetItems: Int, limit: Int? = nil) throws {
        guard let limit = limit ?? Self.physicalMemory else { return }
        let need = estimatedWorkingSet(width: width, height: height, unetItems: unetItems)
        guard need <= limit else {
            func gib(_ b: Int) -> String { String(Double(b / (1 << 20)) / 1024).prefix(8) + " GiB" }
            throw DiffEditError.outOfMemory("\(width)x\(height): this request needs about \(need) bytes (\(gib(need))) of working memory with \(origin), more than the \(limit) bytes (\(gib(limit))) available; use a smaller width/height")
        }
    }
}
