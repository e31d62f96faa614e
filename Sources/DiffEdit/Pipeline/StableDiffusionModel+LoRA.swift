import COpenBLAS

/// LoRA files fused into the loaded weights (UNet and text encoder): W = W0 + sum_i scale_i * alpha_i/r_i *
/// up_i @ down_i, diffusers' `load_lora_weights` + `fuse_lora(lora_scale:)` for each file. The originals W0 of
/// touched weights are kept, so a new set (other scales, fewer files, none) is fused again from them and
/// removing every LoRA gives back the base weights bit for bit, without reading the base checkpoint again.
/// Constants uploaded to a backend are uploaded again (TensorStorage.rebind).
///
/// Not thread-safe against inference: the caller guarantees that nothing runs on this model while
/// `setLoRAs` runs (the C ABI answers DIFF_EDIT_ERR_BUSY instead).
extension StableDiffusionModel {
    /// The LoRA files fused now, in the order given.
    public var loras: [LoRASpec] { loraState.data.withLock { $0.specs } }

    /// Changes whenever the fused weights do (a cache key part: EditModelParts.weightsGeneration).
    public var weightsGeneration: Int { loraState.data.withLock { $0.generation } }

    /// The parameters a LoRA may update, with their shapes.
    public var loraTargets: LoRAFile.Targets {
        func shapes(_ r: WeightRegistry) -> [String: [Int]] {
            var d: [String: [Int]] = [:]
            for n in r.names { if let t = r.tensor(n), t.rank == 2 || t.rank == 4 { d[n] = t.shape } }
            return d
        }
        return LoRAFile.Targets(unet: shapes(unet.parameters), text: shapes(textEncoder.parameters),
                                text2: textEncoder2.map { shapes($0.parameters) },
                                resnetsPerLevel: unetConfig.block_out_channels.indices.map { unetConfig.resnets(block: $0) })
    }

    /// Replaces the fused set by `specs` (empty: back to the base weights). Every file is read, translated
    /// and checked before any weight changes: on an error (missing file, a key it cannot place, a shape
    /// of another architecture, an unsupported format, a scale that is not finite) the model is as before.
    public func setLoRAs(_ specs: [LoRASpec]) throws {
        for (i, s) in specs.enumerated() where !s.scale.isFinite {
            throw DiffEditError.invalidArgument("lora[\(i)] (\(s.path)): scale \(s.scale) is not finite")
        }
        loraState.changing.lock()
        defer { loraState.changing.unlock() }
        let targets = loraTargets
        // 1. read every file; group the updates by weight
        var byWeight: [String: [(LoRAFile.Update, Float)]] = [:]
        var order: [String] = []
        for s in specs {
            for u in try LoRAFile.load(path: s.path, targets: targets) {
                let key = u.component.rawValue + "|" + u.target
                if byWeight[key] == nil { order.append(key) }
                byWeight[key, default: []].append((u, s.scale))
            }
        }
        let originals = loraState.data.withLock { $0.originals }
        // 2. the fused data of each touched weight, from its original
        var fused: [String: TensorStorage] = [:]
        for key in order {
            let (registry, name) = try weight(key)
            guard let t = registry.tensor(name) else { throw DiffEditError.model("LoRA: no parameter \(key)") }
            let base = originals[key] ?? t.storage
            let out = TensorStorage(count: t.count, zeroed: false)
            // (a reduced weight is read through a temporary f32 copy: none is kept beside its original)
            let base32 = Tensor(shape: [base.count], storage: base).widened()
            out.pointer.update(from: base32.data + t.offset, count: t.count)
            let rows = t.shape[0], cols = t.count / rows
            for (u, scale) in byWeight[key]! {
                let r = u.down.shape[0]
                // out [rows, cols] += (scale * alpha / r) * up [rows, r] @ down [r, cols]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(cols), Int32(r),
                            scale * u.coefficient, u.up.data, Int32(r), u.down.data, Int32(cols), 1, out.pointer, Int32(cols))
            }
            fused[key] = out
        }
        // 3. swap: untouched-now weights back to their originals, touched ones to the fused data
        var kept = originals
        do {
            for (key, orig) in originals where fused[key] == nil {
                let (registry, name) = try weight(key)
                try registry.replace(name, with: orig)
                kept[key] = nil
            }
            for key in order {
                let (registry, name) = try weight(key)
                if kept[key] == nil { kept[key] = registry.tensor(name)!.storage.detachData() }
                try registry.replace(name, with: fused[key]!)
            }
        } catch {
            // an upload failed (out of device memory): back to the base weights, no LoRA
            for (key, orig) in kept {
                if let (registry, name) = try? weight(key) { try? registry.replace(name, with: orig) }
            }
            loraState.data.withLock { $0.specs = []; $0.originals = [:]; $0.generation += 1 }
            throw error
        }
        loraState.data.withLock { $0.specs = specs; $0.originals = kept; $0.generation += 1 }
    }

    /// "unet|name" / "text_encoder|name" -> the registry and the name.
    private func weight(_ key: String) throws -> (WeightRegistry, String) {
        guard let bar = key.firstIndex(of: "|") else { throw DiffEditError.model("LoRA: bad weight key \(key)") }
        let comp = key[..<bar], name = String(key[key.index(after: bar)...])
        switch comp {
        case "unet": return (unet.parameters, name)
        case "text_encoder_2":
            guard let te2 = textEncoder2 else { throw DiffEditError.model("LoRA: this model has no second text encoder (\(key))") }
            return (te2.parameters, name)
        default: return (textEncoder.parameters, name)
        }
    }
}
