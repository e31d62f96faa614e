import DiffEdit

/// libFuzzer harness: the input is a whole .safetensors file (8-byte header length, JSON header, data).
/// SafetensorsFile validates the header; then every tensor the header accepts is read, as the loaders would.
/// Any thrown DiffEditError is the expected outcome for bad input; a trap or a sanitizer report is a bug.
nonisolated(unsafe) let file = FuzzFile("safetensors")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    file.write([UnsafeRawBufferPointer(start: data, count: size)])
    guard let st = try? SafetensorsFile(path: file.path) else { return 0 }
    _ = st.mainDType
    for name in st.names.prefix(64) {
        guard let e = st.entries[name] else { continue }
        _ = try? st.rawBytes(name)
        if let t = try? st.tensor(name, expectedShape: nil) {
            precondition(t.shape == e.shape, "tensor \(name): shape \(t.shape) != header \(e.shape)")
        }
        if e.count >= 2 { _ = try? st.tensor(name, elements: 1, count: 1, shape: [1]) }
    }
    return 0
}
