"""diffusers -> original (CompVis LDM) tensor names for UNet, VAE and CLIP text encoder.

Works on state dicts of torch tensors or numpy arrays alike (names and [C, C] -> [C, C, 1, 1] reshapes only).
Used by tools/make_fixtures.py (test fixtures) and tools/to_single_file.py (single-file export).
"""


def clip_to_ldm(sd, position_ids):
    """SD1: cond_stage_model.transformer.text_model.* (+ the int64 position_ids buffer [1, 77] real files carry)."""
    out = {"cond_stage_model.transformer.text_model." + k: v for k, v in sd.items()}
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = position_ids
    return out


def unet_to_ldm(sd, cfg):
    """diffusers UNet2DConditionModel state dict -> model.diffusion_model.* (CompVis LDM names)."""
    n = len(cfg["block_out_channels"])
    lpb = cfg["layers_per_block"]  # one count, or one per level (the original UNetModel's num_res_blocks list)
    L = [lpb] * n if isinstance(lpb, int) else list(lpb)
    assert len(L) == n, (L, n)
    out = {}

    def resnet(src, dst):
        ren = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
        for k, v in sd.items():
            if k.startswith(src + "."):
                rest = k[len(src) + 1:]
                head, tail = rest.split(".", 1)
                out[f"{dst}.{ren[head]}.{tail}"] = v

    def prefix(src, dst):
        for k, v in sd.items():
            if k.startswith(src + "."):
                out[dst + k[len(src):]] = v

    top = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
           "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for s, d in top.items():
        prefix(s, d)
    i = 1  # input_blocks.0 is conv_in; each level's resnets, then its downsampler (all but the last level)
    for b in range(n):
        for l in range(L[b]):
            resnet(f"down_blocks.{b}.resnets.{l}", f"input_blocks.{i}.0")
            prefix(f"down_blocks.{b}.attentions.{l}", f"input_blocks.{i}.1")
            i += 1
        if b < n - 1:
            prefix(f"down_blocks.{b}.downsamplers.0.conv", f"input_blocks.{i}.0.op")
            i += 1
    resnet("mid_block.resnets.0", "middle_block.0")
    prefix("mid_block.attentions.0", "middle_block.1")
    resnet("mid_block.resnets.1", "middle_block.2")
    i = 0  # up block u mirrors level n - 1 - u, with one resnet more; the upsampler sits in its last block
    for u in range(n):
        has_attn = any(k.startswith(f"up_blocks.{u}.attentions.") for k in sd)
        m = L[n - 1 - u] + 1
        for l in range(m):
            resnet(f"up_blocks.{u}.resnets.{l}", f"output_blocks.{i}.0")
            prefix(f"up_blocks.{u}.attentions.{l}", f"output_blocks.{i}.1")
            if l == m - 1 and u < n - 1:
                prefix(f"up_blocks.{u}.upsamplers.0.conv", f"output_blocks.{i}.{2 if has_attn else 1}.conv")
            i += 1
    assert len(out) == len(sd), (len(out), len(sd))
    return {"model.diffusion_model." + k: v for k, v in out.items()}


def vae_to_ldm(sd, cfg):
    """diffusers AutoencoderKL -> first_stage_model.* (mid attention q/k/v/proj_out as [C, C, 1, 1] convs)."""
    n = len(cfg["block_out_channels"])
    out = {}

    def resnet(src, dst):
        for k, v in sd.items():
            if k.startswith(src + "."):
                out[dst + k[len(src):].replace("conv_shortcut", "nin_shortcut")] = v

    def attn(src, dst):
        ren = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
        for k, v in sd.items():
            if k.startswith(src + "."):
                rest = k[len(src) + 1:]
                for a, b in ren.items():
                    if rest.startswith(a + "."):
                        name = b + rest[len(a):]
                        break
                else:
                    raise KeyError(k)
                if len(v.shape) == 2:
                    v = v[:, :, None, None]
                out[f"{dst}.{name}"] = v

    for part in ("encoder", "decoder"):
        for k, v in sd.items():
            for s, d in (("conv_in", "conv_in"), ("conv_out", "conv_out"), ("conv_norm_out", "norm_out")):
                if k.startswith(f"{part}.{s}."):
                    out[f"{part}.{d}" + k[len(f"{part}.{s}"):]] = v
        resnet(f"{part}.mid_block.resnets.0", f"{part}.mid.block_1")
        resnet(f"{part}.mid_block.resnets.1", f"{part}.mid.block_2")
        attn(f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1")
    for i in range(n):
        for j in range(cfg["layers_per_block"]):
            resnet(f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.down.{i}.block.{j}")
        for k, v in sd.items():
            if k.startswith(f"encoder.down_blocks.{i}.downsamplers.0.conv."):
                out[f"encoder.down.{i}.downsample.conv." + k.split(".")[-1]] = v
    for i in range(n):
        bid = n - 1 - i
        for j in range(cfg["layers_per_block"] + 1):
            resnet(f"decoder.up_blocks.{i}.resnets.{j}", f"decoder.up.{bid}.block.{j}")
        for k, v in sd.items():
            if k.startswith(f"decoder.up_blocks.{i}.upsamplers.0.conv."):
                out[f"decoder.up.{bid}.upsample.conv." + k.split(".")[-1]] = v
    for k, v in sd.items():
        if k.startswith("quant_conv.") or k.startswith("post_quant_conv."):
            out[k] = v
    assert len(out) == len(sd), (len(out), len(sd), sorted(set(sd) - set()))
    return {"first_stage_model." + k: v for k, v in out.items()}
