#!/usr/bin/env python3
"""Does a text encoder tell the toy world's shape words apart? Cosine similarity, for every pair of shapes, of
the states it gives "make the {shape} blue": the pooled (end-of-text) state and the shape word's own state.
A pair near 1.0 is a pair the UNet cannot bind by noun (docs/quality.md, 2026-12-05 09:40 section).

    python3 tools/shape_words.py models/toy-instruct              # an exported folder (its text_encoder/)
    python3 tools/shape_words.py /work/toytrain/instruct_v25.ckpt  # a train_unet.py checkpoint

Needs torch + transformers (tools only; not the library)."""
import itertools
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "toyworld"))
import sdparts  # noqa: E402
import world  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def text_encoder(path):
    from transformers import CLIPTextConfig, CLIPTextModel
    if os.path.isdir(path):
        return CLIPTextModel.from_pretrained(os.path.join(path, "text_encoder")).float().eval()
    ck = torch.load(path, map_location="cpu", weights_only=False)
    te = CLIPTextModel(CLIPTextConfig(**sdparts.TEXT_CONFIG))
    te.load_state_dict(ck["te"])
    return te.eval()


def main():
    from transformers import CLIPTokenizer
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    tok = CLIPTokenizer.from_pretrained(os.path.join(ROOT, "models", "toy-instruct", "tokenizer"))
    for path in sys.argv[1:]:
        te = text_encoder(path)
        states = {}
        with torch.no_grad():
            for s in world.SHAPES:
                ids = tok([f"make the {s} blue"], padding="max_length", max_length=77, return_tensors="pt").input_ids
                out = te(ids)
                states[s] = (out.pooler_output[0], out.last_hidden_state[0, 3])  # bos make the SHAPE blue eos
        print(path)
        for k, name in enumerate(("pooled state", "shape word's state")):
            cos = {(a, b): torch.nn.functional.cosine_similarity(states[a][k], states[b][k], dim=0).item()
                   for a, b in itertools.combinations(world.SHAPES, 2)}
            print(f"  {name:18s} max {max(cos.values()):.2f} mean {sum(cos.values()) / len(cos):.2f}: "
                  + " ".join(f"{a}/{b} {v:.2f}" for (a, b), v in sorted(cos.items(), key=lambda x: -x[1])))


if __name__ == "__main__":
    main()
