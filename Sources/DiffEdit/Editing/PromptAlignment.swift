/// Token bookkeeping for Prompt-to-Prompt (Hertz et al., ICLR 2023): which of the 77 text tokens belong to
/// which word, the word-swap mapper, the refinement mapper (global alignment of the token sequences), the
/// re-weighting equalizer and the words LocalBlend looks at. Mirrors tools/p2p_reference.py.
///
/// Words are the prompt split on whitespace; a word's tokens are the CLIP tokens of that word on its own
/// (the same as the paper's get_word_inds for ordinary words).
public struct PromptAlignment {
    public static let maxLength = 77

    public let source: String
    public let target: String
    /// true: word swap (same number of words); false: refinement.
    public let isReplace: Bool
    /// Word swap: [77 * 77] row-major, new[n] = sum_w base[w] * mapper[w * 77 + n].
    public let replaceMapper: [Float]
    /// Refinement: target token n takes source token refineMapper[n] with weight refineAlphas[n].
    public let refineMapper: [Int]
    public let refineAlphas: [Float]
    /// Re-weighting factors per target token (nil when no word is re-weighted).
    public let equalizer: [Float]?
    /// LocalBlend token weights (1 on the blend words' tokens) for the source and the target prompt.
    public let blendSource: [Float]
    public let blendTarget: [Float]
    /// Whether any blend word was found (LocalBlend needs one).
    public var hasBlendWords: Bool { blendSource.contains { $0 != 0 } || blendTarget.contains { $0 != 0 } }

    /// `tokenize(word)` gives the BPE ids of a text without start/end tokens. `blendNextWord`: for a word
    /// swap, LocalBlend also looks at the word that follows each swapped word when it is the same in both
    /// prompts (the noun a swapped adjective qualifies).
    public init(source: String, target: String, reweight: [String: Float] = [:], blendNextWord: Bool = false,
                tokenize: (String) -> [Int32]) throws {
        self.source = source
        self.target = target
        let ws = PromptAlignment.words(source), wt = PromptAlignment.words(target)
        for (w, f) in reweight {
            guard f.isFinite else { throw DiffEditError.invalidArgument("reweight: factor for \"\(w)\" is not finite") }
            guard wt.contains(w) else {
                throw DiffEditError.invalidArgument("reweight: word \"\(w)\" is not a word of the prompt \"\(target)\"")
            }
        }
        let L = PromptAlignment.maxLength
        isReplace = ws.count == wt.count
        if isReplace {
            replaceMapper = PromptAlignment.replacementMapper(source: ws, target: wt, tokenize: tokenize)
            refineMapper = Array(0..<L)
            refineAlphas = [Float](repeating: 1, count: L)
        } else {
            replaceMapper = []
            let xs = PromptAlignment.sequence(source, tokenize: tokenize)
            let ys = PromptAlignment.sequence(target, tokenize: tokenize)
            (refineMapper, refineAlphas) = PromptAlignment.refinementMapper(xs, ys)
        }
        if reweight.isEmpty {
            equalizer = nil
        } else {
            var eq = [Float](repeating: 1, count: L)
            for (i, w) in wt.enumerated() {
                if let f = reweight[w] { for k in PromptAlignment.wordIndices(wt, i, tokenize: tokenize) { eq[k] = f } }
            }
            equalizer = eq
        }
        var a = ws.filter { !wt.contains($0) }
        var b = wt.filter { !ws.contains($0) }
        if a.isEmpty && b.isEmpty {
            a = ws.filter { reweight[$0] != nil }
            b = wt.filter { reweight[$0] != nil }
        }
        var bs = PromptAlignment.tokenMask(ws, Set(a), tokenize: tokenize)
        var bt = PromptAlignment.tokenMask(wt, Set(b), tokenize: tokenize)
        if blendNextWord && isReplace {
            // the word after each swapped word, when both prompts have it ("circle" in "a red circle" ->
            // "a blue circle"): by position, so another "circle" elsewhere in the prompt is not taken
            for i in 0..<wt.count where ws[i] != wt[i] && i + 1 < wt.count && ws[i + 1] == wt[i + 1] {
                for k in PromptAlignment.wordIndices(ws, i + 1, tokenize: tokenize) { bs[k] = 1 }
                for k in PromptAlignment.wordIndices(wt, i + 1, tokenize: tokenize) { bt[k] = 1 }
            }
        }
        blendSource = bs
        blendTarget = bt
    }

    public static func words(_ prompt: String) -> [String] {
        prompt.split(whereSeparator: { $0.isWhitespace }).map(String.init)
    }

    /// Token positions (in the 77-token sequence, after the start token) of word `index`.
    public static func wordIndices(_ words: [String], _ index: Int, tokenize: (String) -> [Int32]) -> [Int] {
        var start = 1
        for k in 0..<index { start += tokenize(words[k]).count }
        let n = tokenize(words[index]).count
        let end = min(start + n, maxLength - 1)
        return start < end ? Array(start..<end) : []
    }

    static func tokenMask(_ words: [String], _ selected: Set<String>, tokenize: (String) -> [Int32]) -> [Float] {
        var m = [Float](repeating: 0, count: maxLength)
        for (i, w) in words.enumerated() where selected.contains(w) {
            for k in wordIndices(words, i, tokenize: tokenize) { m[k] = 1 }
        }
        return m
    }

    /// Start token, ids, end token (no padding), at most 77.
    static func sequence(_ text: String, tokenize: (String) -> [Int32]) -> [Int32] {
        Array(([Int32(-1)] + tokenize(text) + [Int32(-2)]).prefix(maxLength))
    }

    /// The paper's get_replacement_mapper (seq_aligner.py), with our word-token convention.
    static func replacementMapper(source ws: [String], target wt: [String], tokenize: (String) -> [Int32]) -> [Float] {
        let L = maxLength
        let replaced = (0..<wt.count).filter { wt[$0] != ws[$0] }
        let src = replaced.map { wordIndices(ws, $0, tokenize: tokenize) }
        let tgt = replaced.map { wordIndices(wt, $0, tokenize: tokenize) }
        var m = [Float](repeating: 0, count: L * L)
        var i = 0, j = 0, cur = 0
        while i < L && j < L {
            if cur < src.count, let first = src[cur].first, first == i {
                let s = src[cur], t = tgt[cur]
                if s.count == t.count {
                    for k in 0..<s.count { m[s[k] * L + t[k]] = 1 }
                } else {
                    let r = Float(1) / Float(max(t.count, 1))
                    for si in s { for ti in t { m[si * L + ti] = r } }
                }
                cur += 1
                i += s.count
                j += t.count
            } else if cur < src.count {
                m[i * L + j] = 1
                i += 1; j += 1
            } else {
                m[j * L + j] = 1
                i += 1; j += 1
            }
        }
        return m
    }

    /// The paper's get_refinement_mapper: Needleman-Wunsch (gap 0, match 1, mismatch -1) of the token
    /// sequences; target tokens without a source partner get alpha 0.
    static func refinementMapper(_ x: [Int32], _ y: [Int32]) -> ([Int], [Float]) {
        let L = maxLength
        let nx = x.count, ny = y.count
        var score = [Int](repeating: 0, count: (nx + 1) * (ny + 1))
        var tb = [Int](repeating: 0, count: (nx + 1) * (ny + 1))
        let w = ny + 1
        for j in 1...max(ny, 1) where j <= ny { tb[j] = 1 }
        for i in 1...max(nx, 1) where i <= nx { tb[i * w] = 2 }
        tb[0] = 4
        if nx > 0 && ny > 0 {
            for i in 1...nx {
                for j in 1...ny {
                    let left = score[i * w + j - 1]
                    let up = score[(i - 1) * w + j]
                    let diag = score[(i - 1) * w + j - 1] + (x[i - 1] == y[j - 1] ? 1 : -1)
                    let best = max(left, up, diag)
                    score[i * w + j] = best
                    tb[i * w + j] = best == left ? 1 : (best == up ? 2 : 3)
                }
            }
        }
        var i = nx, j = ny
        var pairs: [(Int, Int)] = []
        while i > 0 || j > 0 {
            switch tb[i * w + j] {
            case 3: i -= 1; j -= 1; pairs.append((j, i))
            case 1: j -= 1; pairs.append((j, -1))
            case 2: i -= 1
            default: i = 0; j = 0
            }
        }
        pairs.reverse()
        var mapper = Array(0..<L)
        var alphas = [Float](repeating: 1, count: L)
        for (k, p) in pairs.enumerated() where k < L {
            alphas[k] = p.1 == -1 ? 0 : 1
            mapper[k] = p.1 >= 0 ? p.1 : L - 1
        }
        return (mapper, alphas)
    }
}
