import Synchronization

extension StableDiffusionModel {
    /// Loads a ControlNet for this model (a diffusers ControlNetModel folder or a single file, `ControlNetCheckpoint`)
    /// on the model's backend, with the model's UNet config for what a single file's shapes cannot tell; a
    /// ControlNet made for another base is refused (`.model`, naming the tensor that does not fit). Its config is
    /// checked (ConfigLimits) and its weights' size, estimated from it (`ModelSizeEstimate.controlNet`), against
    /// what `maxMemory` leaves beside the model's weights and the ControlNets already loaded for it (else the
    /// memory available now) before any tensor is read: over it, `.outOfMemory` naming the file and the numbers.
    public func loadControlNet(path: String) throws -> ControlNetModel {
        let (config, weights) = try ControlNetCheckpoint.open(path: path, base: unetConfig)
        try config.checkLimits(origin: "\(weights.origin) (ControlNet config)")
        try ControlNetModel.checkFits(config, origin: weights.origin, storedName: { n in
            weights.refs[n].map { $0.name == n ? n : "\($0.name) (\(n))" } ?? n
        }, unet: unetConfig, unetOrigin: origin)
        let bytes = try checkControlNetSize(config, origin: weights.origin)
        let net = try ControlNetModel(config: config, weights: weights, backend: backend)
        controlNets.add(net, bytes: bytes)
        return net
    }

    /// The ControlNet's estimated weights (bytes of f32) checked against `maxMemory` less the model's weights and
    /// the ControlNets loaded for it and still alive, or against the memory available now. Returns the estimate.
    func checkControlNetSize(_ config: ControlNetConfig, origin path: String, available: Int? = StableDiffusionModel.availableMemory) throws -> Int {
        let params = ModelSizeEstimate.controlNet(config)
        let need = ModelSizeEstimate.mul(params, 4)
        let what = "\(path): the ControlNet's weights need about \(need) bytes (\(Self.gib(need))) as f32 (\(params) parameters, estimated from its config)"
        if let m = maxMemory {
            let others = controlNets.bytes
            let used = ModelSizeEstimate.sum(estimatedWeightBytes, others)
            guard need > m - min(used, m) else { return need }
            let total = ModelSizeEstimate.sum(used, need)
            throw DiffEditError.outOfMemory("\(what), more than max_memory (\(m) bytes) leaves beside the model's weights (\(estimatedWeightBytes) bytes)\(others > 0 ? " and the ControlNets loaded for it (\(others) bytes)" : ""); raise max_memory to at least \(total) bytes (\(Self.gib(total))) plus the working memory of a request")
        }
        if let cap = available, need > cap {
            throw DiffEditError.outOfMemory("\(what), more than the memory available now, \(cap) bytes (\(Self.gib(cap))); free memory or use a smaller ControlNet")
        }
        return need
    }
}

/// The ControlNets loaded for a model and still alive, with their estimated sizes: what max_memory holds besides
/// the model's weights (`loadControlNet`, `checkWorkingSet`).
final class ControlNetTally: @unchecked Sendable {
    private struct Entry { weak var net: ControlNetModel?; let bytes: Int }
    private let entries = Mutex<[Entry]>([])

    /// Bytes of the ControlNets still alive.
    var bytes: Int {
        entries.withLock { e in
            e.removeAll { $0.net == nil }
            return e.reduce(0) { ModelSizeEstimate.sum($0, $1.bytes) }
        }
    }

    func add(_ net: ControlNetModel, bytes: Int) {
        entries.withLock { e in
            e.removeAll { $0.net == nil }
            e.append(Entry(net: net, bytes: bytes))
        }
    }
}
