import DiffEdit

/// libFuzzer harness: the input is a prompt (any bytes, decoded as the C ABI and CLI decode UTF-8, with
/// replacement characters). It goes through the embedded CLIP tokenizer (special tokens, NFC, whitespace,
/// lower-casing, the pre-tokenizer pattern, byte-level BPE) with SD1's and SD2's pad tokens.
nonisolated(unsafe) let sd1 = try! CLIPTokenizer.embedded()
nonisolated(unsafe) let sd2 = try! CLIPTokenizer.embedded(padToken: "!")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    for tok in [sd1, sd2] {
        let ids = tok.encode(text)
        precondition(ids.count == 77 && ids.allSatisfy { $0 >= 0 && Int($0) < tok.vocabularySize })
        for piece in tok.tokenize(text) { precondition(!piece.isEmpty) }
    }
    _ = sd1.encode(text, maxLength: 3)
    return 0
}
