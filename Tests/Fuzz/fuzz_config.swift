import DiffEdit
import FoundationEssentials

/// libFuzzer harness: the input is a config.json. It is decoded as each of the model configs (limits
/// checked, as at load), a ControlNet's config, the scheduler config and the edit defaults; every config that
/// decodes goes into the model-size estimate (the ControlNet's too) and the request working-set estimate, which
/// must never trap (they saturate).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    let unet = try? ConfigFile.decode(UNetConfig.self, from: bytes, origin: "fuzz")
    let vae = try? ConfigFile.decode(VAEConfig.self, from: bytes, origin: "fuzz")
    let text = try? ConfigFile.decode(CLIPTextConfig.self, from: bytes, origin: "fuzz")
    if let s = try? ConfigFile.decode(SchedulerConfig.self, from: bytes, origin: "fuzz") {
        _ = try? NoiseSchedule(config: s)
    }
    // a ControlNet config: limits as at load, then its size estimate, on the checked and the unchecked struct
    let cn = try? ConfigFile.decode(ControlNetConfig.self, from: bytes, origin: "fuzz")
    for c in [cn, try? JSONDecoder().decode(ControlNetConfig.self, from: bytes)] {
        if let c { precondition(ModelSizeEstimate.controlNet(c) >= 0) }
    }
    _ = try? EditDefaults.decode(bytes, origin: "fuzz")
    _ = try? JSONAny.parse(bytes)
    // the estimate takes the unchecked structs too (a config detected from shapes is checked later)
    let raw = try? JSONDecoder().decode(UNetConfig.self, from: bytes)
    let e = ModelSizeEstimate(unet: unet ?? raw ?? UNetConfig(), vae: vae ?? VAEConfig(), text: text ?? CLIPTextConfig())
    precondition(e.bytes >= 0 && e.parameters >= 0)
    if let u = unet ?? raw {
        let v = vae ?? VAEConfig()
        let ws = StableDiffusionModel.estimatedWorkingSet(unet: u, vae: v, width: 16384, height: 16384, unetItems: 4)
        precondition(ws >= 0)
    }
    return 0
}
