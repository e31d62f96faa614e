import DiffEdit
import Glibc

/// libFuzzer harness: the input is the JSON header of a single-file (CompVis layout) checkpoint. The
/// harness writes the 8-byte length, the header and a 1 GiB sparse data area (no memory, no disk), so
/// headers with real tensor names and shapes pass the safetensors checks and reach the architecture
/// detection from shapes (UNet, VAE, CLIP / OpenCLIP), the configs' limits and the name translation.
nonisolated(unsafe) let file = FuzzFile("singlefile")
let verbose = getenv("FUZZ_VERBOSE") != nil

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSingleFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var length = UInt64(size).littleEndian
    withUnsafeBytes(of: &length) { len in
        file.write([len, UnsafeRawBufferPointer(start: data, count: size)], sparseTail: 1 << 30)
    }
    let ck: LoadedCheckpoint
    do {
        ck = try SingleFileCheckpoint.load(path: file.path)
    } catch {
        if verbose { print("singlefile: \(error)") }   // FUZZ_VERBOSE=1: is a seed detected?
        return 0
    }
    if verbose { print("singlefile: \(ck.kind), unet \(ck.unetConfig.block_out_channels)") }
    _ = try? ck.checkConfigLimits()
    _ = ModelSizeEstimate(unet: ck.unetConfig, vae: ck.vaeConfig, text: ck.textConfig).bytes
    for src in [ck.unet, ck.vae, ck.textEncoder] {
        for name in src.names.prefix(8) { _ = src.shape(of: name) }
    }
    return 0
}
