"""CLIP BPE vocabulary built the way OpenAI's SimpleTokenizer (and the published openai/clip-vit-large-patch14
vocab.json / merges.txt) build it, from open_clip's bpe_simple_vocab_16e6.txt.gz.

merges = lines[1 : 49152 - 256 - 2 + 1]  (48894 merges)
vocab  = 256 byte-unicode chars, the same with "</w>", each merge joined, "<|startoftext|>", "<|endoftext|>"
"""
import gzip
import json
import os


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def load_merges():
    import open_clip
    path = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    assert len(merges) == 48894 and all(len(m) == 2 for m in merges)
    return merges


def build_vocab(merges):
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    return {v: i for i, v in enumerate(vocab)}


def write_tokenizer_files(folder):
    """Writes vocab.json and merges.txt (with the "#version: 0.2" header line, as published) into folder."""
    merges = load_merges()
    vocab = build_vocab(merges)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    return vocab, merges
