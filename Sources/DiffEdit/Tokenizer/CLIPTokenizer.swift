import CClipBPE
import FoundationEssentials

/// CLIP byte-level BPE tokenizer giving exactly the ids of transformers' `CLIPTokenizer` (transformers 5,
/// backed by the `tokenizers` library) as Stable Diffusion pipelines call it:
/// `tokenizer(text, padding="max_length", max_length=77, truncation=True)`.
///
/// The steps, in the order `tokenizers` applies them:
/// 1. Special tokens: exact, case-sensitive occurrences of `<|startoftext|>`, `<|endoftext|>` and the pad token
///    in the raw text become their ids (they are not normalized; `<|ENDOFTEXT|>` is ordinary text). transformers
///    registers the pad token as a special added token too, so with SD2's pad token `!` every `!` in a prompt
///    becomes id 0, not 256 (`!</w>`) — we do the same, since the goal is transformers' ids.
/// 2. Normalizer on every other segment: Unicode NFC, each run of Unicode whitespace (White_Space) -> one
///    space, lower-casing scalar by scalar (full case mapping, no context rules: `İ` -> `i̇`, final `Σ` -> `σ`).
///    transformers 5 never calls ftfy (the old Python tokenizer used ftfy.fix_text + html.unescape when ftfy
///    was installed; the tokenizers-backed one does neither), so neither do we: `&amp;` stays `&amp;`.
/// 3. Pre-tokenizer: CLIP's pattern `'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`, keeping
///    the matches and dropping the rest (whitespace). (The pattern's `<|startoftext|>|<|endoftext|>`
///    alternatives are omitted: the byte-level GPT-2 split that follows cuts such a piece into `<|`, letters,
///    `|>`, exactly what the remaining alternatives give.)
/// 4. Byte-level mapping of each piece's UTF-8 bytes, then BPE by merge rank with `</w>` on the last symbol.
/// 5. `<|startoftext|>` + at most `maxLength - 2` ids + `<|endoftext|>`, padded to `maxLength` with the
///    pad token (SD1: `<|endoftext|>` = 49407; SD2: `!` = 0).
public final class CLIPTokenizer {
    public static let startToken = "<|startoftext|>"
    public static let endToken = "<|endoftext|>"

    public let bosTokenId: Int32
    public let eosTokenId: Int32
    public var padTokenId: Int32

    /// Number of entries in the vocabulary (49408 for CLIP).
    public let vocabularySize: Int

    private let byteId: [Int32]      // [256] id of the byte's unicode char
    private let byteEndId: [Int32]   // [256] id of the byte's unicode char + "</w>"
    private let merges: [UInt64: (rank: Int32, id: Int32)]  // (left id << 32 | right id) -> rank, merged id
    private let specialTokens: [(text: String, id: Int32)]  // matched on the raw text before normalization

    // MARK: - Construction

    /// Loads vocab.json + merges.txt (as published with SD checkpoints). `padToken` nil means
    /// `<|endoftext|>` (transformers' default, SD1); SD2 checkpoints pad with `!`.
    public convenience init(vocabPath: String, mergesPath: String, padToken: String? = nil) throws {
        guard let vocabData = FileManager.default.contents(atPath: vocabPath) else {
            throw DiffEditError.io("\(vocabPath): cannot read tokenizer vocabulary")
        }
        let object: Any
        do {
            object = try JSONAny.parse(vocabData)
        } catch {
            throw DiffEditError.model("\(vocabPath): not valid JSON (\(error))")
        }
        guard let dict = object as? [String: Any] else {
            throw DiffEditError.model("\(vocabPath): expected a JSON object mapping tokens to ids")
        }
        var vocab: [String: Int32] = [:]
        vocab.reserveCapacity(dict.count)
        for (token, value) in dict {
            guard let number = (value as? Int).map(Double.init) ?? (value as? Double), let id = Int32(exactly: number), id >= 0 else {
                throw DiffEditError.model("\(vocabPath): id of token \(token.debugDescription) is not a non-negative integer")
            }
            vocab[token] = id
        }
        guard let mergesData = FileManager.default.contents(atPath: mergesPath) else {
            throw DiffEditError.io("\(mergesPath): cannot read tokenizer merges")
        }
        let pairs = try CLIPTokenizer.parseMerges([UInt8](mergesData), origin: mergesPath)
        try self.init(vocab: vocab, merges: pairs, padToken: padToken, origin: "\(vocabPath) / \(mergesPath)")
    }

    /// The CLIP vocabulary embedded in the library (the 48894 merges of OpenAI's bpe_simple_vocab_16e6;
    /// the vocabulary is rebuilt from them the way OpenAI's SimpleTokenizer does). For single-file
    /// checkpoints, which carry no tokenizer files.
    public static func embedded(padToken: String? = nil) throws -> CLIPTokenizer {
        var length = 0
        let base = de_clip_bpe_merges(&length)!
        let bytes = [UInt8](UnsafeBufferPointer(start: base, count: length))
        let pairs = try parseMerges(bytes, origin: "embedded CLIP merges")
        let byteChars = byteUnicode()
        var vocab: [String: Int32] = [:]
        vocab.reserveCapacity(49408)
        var next: Int32 = 0
        func add(_ token: String) { vocab[token] = next; next += 1 }
        for b in byteOrder() { add(String(Character(byteChars[b]))) }
        for b in byteOrder() { add(String(Character(byteChars[b])) + "</w>") }
        for (a, b) in pairs { add(a + b) }
        add(startToken)
        add(endToken)
        return try CLIPTokenizer(vocab: vocab, merges: pairs, padToken: padToken, origin: "embedded CLIP vocabulary")
    }

    /// The pad token a diffusers tokenizer folder declares (special_tokens_map.json, then
    /// tokenizer_config.json, key "pad_token", a string or {"content": ...}); nil when neither says.
    public static func padToken(inTokenizerFolder folder: String) -> String? {
        for name in ["special_tokens_map.json", "tokenizer_config.json"] {
            let path = PathName.join(folder, name)
            guard let data = FileManager.default.contents(atPath: path),
                  let object = (try? JSONAny.parse(data)) as? [String: Any],
                  let pad = object["pad_token"] else { continue }
            if let s = pad as? String { return s }
            if let d = pad as? [String: Any], let s = d["content"] as? String { return s }
        }
        return nil
    }

    /// A diffusers `tokenizer/` folder: vocab.json, merges.txt and the pad token it declares.
    public static func load(folder: String) throws -> CLIPTokenizer {
                return try CLIPTokenizer(vocabPath: PathName.join(folder, "vocab.json"),
                                 mergesPath: PathName.join(folder, "merges.txt"),
                                 padToken: padToken(inTokenizerFolder: folder))
    }

    private init(vocab: [String: Int32], merges pairs: [(String, String)], padToken: String?, origin: String) throws {
        func lookup(_ token: String, _ what: String) throws -> Int32 {
            guard let id = vocab[token] else {
                throw DiffEditError.model("\(origin): \(what) \(token.debugDescription) is not in the vocabulary")
            }
            return id
        }
        bosTokenId = try lookup(CLIPTokenizer.startToken, "start token")
        eosTokenId = try lookup(CLIPTokenizer.endToken, "end token")
        let pad = padToken ?? CLIPTokenizer.endToken
        guard !pad.isEmpty else { throw DiffEditError.invalidArgument("\(origin): empty pad token") }
        padTokenId = try lookup(pad, "pad token")
        var specials: [(text: String, id: Int32)] = [(CLIPTokenizer.startToken, bosTokenId), (CLIPTokenizer.endToken, eosTokenId)]
        if !specials.contains(where: { $0.text == pad }) { specials.append((pad, padTokenId)) }
        specialTokens = specials
        vocabularySize = vocab.count
        let chars = CLIPTokenizer.byteUnicode()
        var ids = [Int32](repeating: 0, count: 256), endIds = [Int32](repeating: 0, count: 256)
        for b in 0..<256 {
            let s = String(Character(chars[b]))
            ids[b] = try lookup(s, "byte token")
            endIds[b] = try lookup(s + "</w>", "byte token")
        }
        byteId = ids
        byteEndId = endIds
        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(pairs.count)
        for (rank, (a, b)) in pairs.enumerated() {
            let left = try lookup(a, "merge \(rank + 1) part"), right = try lookup(b, "merge \(rank + 1) part")
            let merged = try lookup(a + b, "merge \(rank + 1) result")
            let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
            if table[key] == nil { table[key] = (Int32(rank), merged) }
        }
        merges = table
    }

    /// merges.txt: optional "#version" header, then "left right" per line.
    private static func parseMerges(_ bytes: [UInt8], origin: String) throws -> [(String, String)] {
        var result: [(String, String)] = []
        result.reserveCapacity(49000)
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            lineNumber += 1
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            defer { start = end + 1 }
            if lineEnd == start { continue }
            if lineNumber == 1 && bytes[start] == 0x23 { continue }  // "#version: 0.2"
            guard let space = bytes[start..<lineEnd].firstIndex(of: 0x20), space > start, space + 1 < lineEnd,
                  bytes[(space + 1)..<lineEnd].firstIndex(of: 0x20) == nil else {
                throw DiffEditError.model("\(origin): line \(lineNumber) is not \"left right\"")
            }
            guard let a = String(validating: bytes[start..<space], as: UTF8.self),
                  let b = String(validating: bytes[(space + 1)..<lineEnd], as: UTF8.self) else {
                throw DiffEditError.model("\(origin): line \(lineNumber) is not valid UTF-8")
            }
            result.append((a, b))
        }
        if result.isEmpty { throw DiffEditError.model("\(origin): no merges") }
        return result
    }

    /// GPT-2 / CLIP byte -> unicode scalar map: printable Latin-1 bytes map to themselves, the rest to 256+n.
    private static func byteUnicode() -> [Unicode.Scalar] {
        var map = [Unicode.Scalar](repeating: "\0", count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if isPrintableByte(b) {
                map[b] = Unicode.Scalar(UInt32(b))!
            } else {
                map[b] = Unicode.Scalar(256 + n)!
                n += 1
            }
        }
        return map
    }

    private static func isPrintableByte(_ b: Int) -> Bool {
        (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
    }

    /// The order of bytes in the vocabulary: printable ones first, then the others ascending.
    private static func byteOrder() -> [Int] {
        (0..<256).filter { isPrintableByte($0) } + (0..<256).filter { !isPrintableByte($0) }
    }

    // MARK: - Encoding

    /// Ids of `text`: start token, at most `maxLength - 2` BPE ids, end token, then the pad token up to
    /// `maxLength` (values of `maxLength` below 2 count as 2).
    public func encode(_ text: String, maxLength: Int = 77) -> [Int32] {
        let length = max(2, maxLength)
        var ids: [Int32] = [bosTokenId]
        let limit = length - 1
        for piece in tokenize(text) {
            if ids.count >= limit { break }
            ids.append(contentsOf: piece.prefix(limit - ids.count))
        }
        ids.append(eosTokenId)
        while ids.count < length { ids.append(padTokenId) }
        return ids
    }

    /// BPE ids of `text` without start/end/padding, grouped by pre-tokenized piece.
    public func tokenize(_ text: String) -> [[Int32]] {
        var out: [[Int32]] = []
        for segment in splitSpecialTokens(text) {
            switch segment {
            case .special(let id):
                out.append([id])
            case .text(let raw):
                for piece in preTokenize(normalize(raw)) { out.append(bpe(piece)) }
            }
        }
        return out
    }

    private enum Segment { case text(String), special(Int32) }

    /// Splits out exact occurrences of the special tokens (matched on the raw text, case-sensitive; the
    /// leftmost match wins, the longest among matches at the same place).
    private func splitSpecialTokens(_ text: String) -> [Segment] {
        var segments: [Segment] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            var best: (Range<Substring.Index>, Int32)? = nil
            for (token, id) in specialTokens {
                guard let r = TextUtil.literalRange(of: token, in: rest) else { continue }
                if let b = best {
                    if r.lowerBound > b.0.lowerBound { continue }
                    if r.lowerBound == b.0.lowerBound && r.upperBound <= b.0.upperBound { continue }
                }
                best = (r, id)
            }
            guard let (range, id) = best else { break }
            if range.lowerBound > rest.startIndex { segments.append(.text(String(rest[rest.startIndex..<range.lowerBound]))) }
            segments.append(.special(id))
            rest = rest[range.upperBound...]
        }
        if !rest.isEmpty { segments.append(.text(String(rest))) }
        return segments
    }

    /// NFC, whitespace runs -> " ", per-scalar lower-casing.
    private func normalize(_ text: String) -> [Unicode.Scalar] {
        let nfc = TextUtil.nfc(text)
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(nfc.unicodeScalars.count)
        var inSpace = false
        for s in nfc.unicodeScalars {
            if s.properties.isWhitespace {
                if !inSpace { out.append(" ") }
                inSpace = true
                continue
            }
            inSpace = false
            if s.isASCII {
                let v = s.value
                out.append((0x41...0x5A).contains(v) ? Unicode.Scalar(v + 32)! : s)
            } else {
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    private enum ScalarClass { case space, letter, number, other }

    private func classify(_ s: Unicode.Scalar) -> ScalarClass {
        if s.isASCII {
            let v = s.value
            if (0x61...0x7A).contains(v) || (0x41...0x5A).contains(v) { return .letter }
            if (0x30...0x39).contains(v) { return .number }
            if v == 0x20 || (0x09...0x0D).contains(v) { return .space }
            return .other
        }
        if s.properties.isWhitespace { return .space }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    /// CLIP's pre-tokenization pattern; returns the UTF-8 bytes of each kept piece.
    private func preTokenize(_ scalars: [Unicode.Scalar]) -> [[UInt8]] {
        var pieces: [[UInt8]] = []
        var i = 0
        let n = scalars.count
        func bytes(_ range: Range<Int>) -> [UInt8] {
            var b: [UInt8] = []
            for s in scalars[range] { b.append(contentsOf: Array(String(s).utf8)) }
            return b
        }
        while i < n {
            let s = scalars[i]
            if s == "'" && i + 1 < n {
                let c1 = scalars[i + 1]
                if c1 == "s" || c1 == "t" || c1 == "m" || c1 == "d" {
                    pieces.append(bytes(i..<(i + 2))); i += 2; continue
                }
                if i + 2 < n {
                    let c2 = scalars[i + 2]
                    if (c1 == "r" && c2 == "e") || (c1 == "v" && c2 == "e") || (c1 == "l" && c2 == "l") {
                        pieces.append(bytes(i..<(i + 3))); i += 3; continue
                    }
                }
            }
            switch classify(s) {
            case .space:
                i += 1
            case .number:
                pieces.append(bytes(i..<(i + 1))); i += 1
            case .letter:
                var j = i + 1
                while j < n && classify(scalars[j]) == .letter { j += 1 }
                pieces.append(bytes(i..<j)); i = j
            case .other:
                var j = i + 1
                while j < n && classify(scalars[j]) == .other { j += 1 }
                pieces.append(bytes(i..<j)); i = j
            }
        }
        return pieces
    }

    /// BPE over the byte-level symbols of one piece, "</w>" on the last one; lowest rank first,
    /// every occurrence of that pair left to right.
    private func bpe(_ bytes: [UInt8]) -> [Int32] {
        guard !bytes.isEmpty else { return [] }
        var symbols = bytes.map { byteId[Int($0)] }
        symbols[symbols.count - 1] = byteEndId[Int(bytes[bytes.count - 1])]
        while symbols.count > 1 {
            var bestRank = Int32.max
            var bestPair: UInt64 = 0
            var bestId: Int32 = 0
            for k in 0..<(symbols.count - 1) {
                let key = UInt64(UInt32(symbols[k])) << 32 | UInt64(UInt32(symbols[k + 1]))
                if let m = merges[key], m.rank < bestRank {
                    bestRank = m.rank; bestPair = key; bestId = m.id
                }
            }
            if bestRank == Int32.max { break }
            var merged: [Int32] = []
            merged.reserveCapacity(symbols.count)
            var k = 0
            while k < symbols.count {
                if k + 1 < symbols.count,
                   UInt64(UInt32(symbols[k])) << 32 | UInt64(UInt32(symbols[k + 1])) == bestPair {
                    merged.append(bestId); k += 2
                } else {
                    merged.append(symbols[k]); k += 1
                }
            }
            symbols = merged
        }
        return symbols
    }
}
