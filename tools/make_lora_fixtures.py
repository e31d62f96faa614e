#!/usr/bin/env python3
"""LoRA fixtures for the tiny SD1 model (Tests/Fixtures/sd1): LoRA files in the layouts users have, and
diffusers' final latents with each one fused (developers run this; CI only reads its outputs).

    python3 tools/make_lora_fixtures.py [--out Tests/Fixtures]

Needs PyTorch, diffusers 0.42, transformers 5 and peft. Deterministic (seeded). Writes Tests/Fixtures/lora/:

- peft.safetensors: what diffusers' `StableDiffusionPipeline.save_lora_weights` writes for PEFT adapters
  (`unet.<module>.lora_A.weight` / `lora_B.weight`, `text_encoder.<module>...`) with the adapters' LoraConfig as
  `lora_adapter_metadata` (r 4, lora_alpha 6 for the UNet with an alpha_pattern entry, 2 for the text encoder).
  UNet: attention q/k/v/out, proj_in/out (1x1 convs in this model), feed-forward, resnet conv1 (a 3x3 conv LoRA:
  A [r, in, 3, 3], B [out, r, 1, 1]) and time_emb_proj; text encoder: q/k/v/out_proj, fc1, fc2. The text encoder's
  keys use the real-world `text_encoder.text_model.encoder.*` names (transformers 5 would write them without
  `text_model.`).
- kohya.safetensors: kohya sd-scripts layout (`lora_unet_<diffusers module with _>`, `lora_te_text_model_...`,
  `.lora_down.weight`, `.lora_up.weight`, `.alpha`), alpha 2 with rank 4, LoCon entries (3x3
  down + 1x1 up) on resnet convs, the downsampler and the upsampler. One alpha for all modules: with several
  different .alpha values diffusers 0.42 builds an alpha_pattern under the unconverted key names, which PEFT
  ignores (it warns), so its result would not be kohya's (each module's own alpha, which diffedit applies).
- kohya_ldm.safetensors: the same adapters under the original LDM names kohya uses for SDXL-style UNets
  (`lora_unet_input_blocks_1_1_proj_in`, `lora_unet_input_blocks_1_0_in_layers_2`, `lora_unet_input_blocks_3_0_op`,
  `lora_unet_middle_block_1_...`, `lora_unet_output_blocks_4_1_...`), names made with tools/ldm_names.py. Without
  the upsampler of up_blocks.0 (`output_blocks_2_1_conv`): diffusers' own SGM-name mapping sends `.1.` of an
  output block to `attentions`, which is wrong for an UpBlock2D, so diffusers cannot be the reference there.
- sd2_arch.safetensors: a PEFT LoRA made for the sd2 fixture (other widths under names that sd1 also has).
- unknown_key.safetensors: a kohya LoRA with one module that no SD UNet has; loha.safetensors: a LyCORIS LoHa.
- manifest.json and <case>_latents.npy: for peft, kohya and kohya_ldm, diffusers `load_lora_weights(file)` then
  `fuse_lora(lora_scale=0.7)`, then the ref/sd1 generate_ddim case (same prompt, negative prompt, steps, guidance
  and x_T): final latents before VAE decode; plus how far each moves the latents from the base model's
  (max |lora - base| / max |base|), which must be far above the 1e-3 parity tolerance.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ldm_names  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
torch.set_grad_enabled(False)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


def allow_peft_below_transformers_minimum():
    """transformers 5.24 asks for peft >= 0.22 for its adapter methods, but PyPI's newest peft here is 0.21.2;
    the text-encoder LoRA path (load_adapter / add_adapter on a CLIPTextModel) works with it unchanged."""
    import transformers.integrations.peft as tp
    tp.check_peft_version = lambda *a, **k: None


allow_peft_below_transformers_minimum()

SCALE = 0.7
RANK = 4
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1",
                "time_emb_proj"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def load_pipe(fix):
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(fix, "sd1"), torch_dtype=torch.float32,
                                                   safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, case, noise):
    return pipe(case["prompt"], negative_prompt=case["negative_prompt"], num_inference_steps=case["steps"],
                guidance_scale=case["guidance"], height=case["height"], width=case["width"],
                latents=noise.clone(), output_type="latent").images.numpy()


def save(tensors, path, metadata=None):
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata or {"format": "pt"})


def make_peft(fix, out):
    """PEFT adapters on a pipeline, random A and B, saved through diffusers' own save_lora_weights."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    pipe = load_pipe(fix)
    ucfg = LoraConfig(r=RANK, lora_alpha=6, target_modules=UNET_TARGETS, init_lora_weights="gaussian",
                      alpha_pattern={"down_blocks.0.attentions.0.proj_in": 3})
    tcfg = LoraConfig(r=RANK, lora_alpha=2, target_modules=TEXT_TARGETS, init_lora_weights="gaussian")
    pipe.unet.add_adapter(ucfg)
    pipe.text_encoder.add_adapter(tcfg)
    g = torch.Generator().manual_seed(1801)
    for model in (pipe.unet, pipe.text_encoder):
        for name, p in sorted(model.named_parameters()):
            if "lora_" in name:
                fan_in = p[0].numel()
                p.copy_((torch.randn(p.shape, generator=g) * (0.5 / fan_in ** 0.5)).half().float())
    unet_sd = {k: v.half() for k, v in get_peft_model_state_dict(pipe.unet).items()}
    te_sd = get_peft_model_state_dict(pipe.text_encoder)
    # the real-world text-encoder names (transformers 4 and every published LoRA): text_model.encoder.*
    te_sd = {("text_model." + k if not k.startswith("text_model.") else k): v.half() for k, v in te_sd.items()}
    meta_u = {k: (sorted(v) if isinstance(v, set) else v) for k, v in ucfg.to_dict().items()}
    meta_t = {k: (sorted(v) if isinstance(v, set) else v) for k, v in tcfg.to_dict().items()}
    meta_t["base_model_name_or_path"] = None   # transformers records the fixture's absolute path
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=unet_sd, text_encoder_lora_layers=te_sd,
                                              unet_lora_adapter_metadata=meta_u,
                                              text_encoder_lora_adapter_metadata=meta_t,
                                              weight_name="peft.safetensors", safe_serialization=True)


def module_shapes(unet, text):
    u = {k[:-len(".weight")]: tuple(v.shape) for k, v in unet.state_dict().items() if k.endswith(".weight") and v.dim() >= 2}
    t = {k[:-len(".weight")]: tuple(v.shape) for k, v in text.state_dict().items() if k.endswith(".weight") and v.dim() >= 2}
    return u, t


KOHYA_UNET = [
    "down_blocks.0.attentions.0.proj_in",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
    "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj",
    "down_blocks.0.attentions.1.transformer_blocks.0.ff.net.2",
    "down_blocks.0.resnets.0.conv1",            # LoCon: 3x3 down, 1x1 up
    "down_blocks.0.downsamplers.0.conv",        # LoCon
    "down_blocks.1.resnets.0.conv_shortcut",
    "down_blocks.1.resnets.1.time_emb_proj",
    "mid_block.attentions.0.proj_out",
    "mid_block.resnets.1.conv2",                # LoCon
    "up_blocks.0.upsamplers.0.conv",            # LoCon (not in kohya_ldm, see above)
    "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v",
    "up_blocks.1.attentions.2.proj_in",
    "up_blocks.1.resnets.2.conv1",              # LoCon
]
KOHYA_TEXT = [
    "text_model.encoder.layers.0.self_attn.q_proj",
    "text_model.encoder.layers.0.self_attn.v_proj",
    "text_model.encoder.layers.1.mlp.fc1",
    "text_model.encoder.layers.2.self_attn.out_proj",
    "text_model.encoder.layers.2.mlp.fc2",
]


def lora_pair(shape, g):
    """down [r, in(, k, k)], up [out, r(, 1, 1)] for a weight of `shape`."""
    out_f, in_f = shape[0], shape[1]
    if len(shape) == 4:
        down = torch.randn(RANK, in_f, shape[2], shape[3], generator=g) * (0.5 / (in_f * shape[2] * shape[3]) ** 0.5)
        up = torch.randn(out_f, RANK, 1, 1, generator=g) * (1.0 / RANK ** 0.5)
    else:
        down = torch.randn(RANK, in_f, generator=g) * (0.5 / in_f ** 0.5)
        up = torch.randn(out_f, RANK, generator=g) * (1.0 / RANK ** 0.5)
    return down.half(), up.half()


def make_kohya(fix, out):
    pipe = load_pipe(fix)
    ushapes, tshapes = module_shapes(pipe.unet, pipe.text_encoder)
    g = torch.Generator().manual_seed(1802)
    sd, sd_ldm = {}, {}
    # diffusers module -> original LDM module, from the full UNet state dict (tools/ldm_names.py)
    keys = list(pipe.unet.state_dict().keys())
    to_ldm = {v: k for k, v in ldm_names.unet_to_ldm({k: k for k in keys}, dict(pipe.unet.config)).items()}
    for m in KOHYA_UNET:
        down, up = lora_pair(ushapes[m], g)
        alpha = torch.tensor(2.0).half()
        name = "lora_unet_" + m.replace(".", "_")
        sd.update({name + ".lora_down.weight": down, name + ".lora_up.weight": up, name + ".alpha": alpha})
        if m != "up_blocks.0.upsamplers.0.conv":
            ldm = to_ldm[m + ".weight"][len("model.diffusion_model."):-len(".weight")]
            lname = "lora_unet_" + ldm.replace(".", "_")
            sd_ldm.update({lname + ".lora_down.weight": down, lname + ".lora_up.weight": up, lname + ".alpha": alpha})
    tnames = {k if k.startswith("text_model.") else "text_model." + k: k for k in tshapes}
    for m in KOHYA_TEXT:
        down, up = lora_pair(tshapes[tnames[m]], g)
        name = "lora_te_" + m.replace(".", "_")
        for d in (sd, sd_ldm):
            d.update({name + ".lora_down.weight": down, name + ".lora_up.weight": up,
                      name + ".alpha": torch.tensor(2.0).half()})
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(RANK), "ss_network_alpha": "2.0"}
    save(sd, os.path.join(out, "kohya.safetensors"), meta)
    save(sd_ldm, os.path.join(out, "kohya_ldm.safetensors"), meta)
    return ushapes


def make_bad(fix, out, ushapes):
    g = torch.Generator().manual_seed(1803)
    # sd2's widths (32 channels, cross-attention 16) under a name sd1 also has
    down, up = torch.randn(RANK, 32, generator=g).half(), torch.randn(32, RANK, generator=g).half()
    save({"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight": down,
          "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight": up},
         os.path.join(out, "sd2_arch.safetensors"))
    m = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    d1, u1 = lora_pair(ushapes[m], g)
    save({"lora_unet_" + m.replace(".", "_") + ".lora_down.weight": d1,
          "lora_unet_" + m.replace(".", "_") + ".lora_up.weight": u1,
          "lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight": d1.clone(),
          "lora_unet_down_blocks_7_attentions_0_proj_in.lora_up.weight": u1.clone()},
         os.path.join(out, "unknown_key.safetensors"))
    name = "lora_unet_" + m.replace(".", "_")
    save({name + ".hada_w1_a": torch.randn(16, RANK, generator=g).half(),
          name + ".hada_w1_b": torch.randn(RANK, 16, generator=g).half(),
          name + ".hada_w2_a": torch.randn(16, RANK, generator=g).half(),
          name + ".hada_w2_b": torch.randn(RANK, 16, generator=g).half(),
          name + ".alpha": torch.tensor(2.0).half()},
         os.path.join(out, "loha.safetensors"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "Fixtures"))
    fix = ap.parse_args().out
    out = os.path.join(fix, "lora")
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    with open(os.path.join(fix, "ref", "sd1", "manifest.json")) as f:
        case = json.load(f)["generate_ddim"]
    noise = torch.from_numpy(np.load(os.path.join(fix, "ref", "sd1", case["noise"])))
    base_ref = np.load(os.path.join(fix, "ref", "sd1", case["latents"]))

    base_pipe = load_pipe(fix)
    base = generate(base_pipe, case, noise)
    assert rel(base, base_ref) < 1e-5, ("the sd1 folder no longer reproduces ref/sd1", rel(base, base_ref))
    base_unet = {k: v.clone() for k, v in base_pipe.unet.state_dict().items()}
    base_text = {k: v.clone() for k, v in base_pipe.text_encoder.state_dict().items()}

    make_peft(fix, out)
    ushapes = make_kohya(fix, out)
    make_bad(fix, out, ushapes)

    manifest = {"model": "sd1", "scale": SCALE, "case": "ref/sd1 generate_ddim", "prompt": case["prompt"],
                "negative_prompt": case["negative_prompt"], "steps": case["steps"], "guidance": case["guidance"],
                "width": case["width"], "height": case["height"], "noise": "../ref/sd1/" + case["noise"],
                "base_latents": "../ref/sd1/" + case["latents"], "cases": {},
                "what": "diffusers load_lora_weights(file); fuse_lora(lora_scale=scale); StableDiffusionPipeline("
                        "latents=noise) -> final latents before VAE decode. moved = max|lora - base| / max|base|."}
    for name in ("peft", "kohya", "kohya_ldm"):
        pipe = load_pipe(fix)
        if name == "kohya_ldm":
            # diffusers' SD1 loader does not renumber LDM block names; its SGM mapping (used for SDXL) does
            from diffusers.loaders.lora_conversion_utils import _maybe_map_sgm_blocks_to_diffusers
            from safetensors.torch import load_file
            sd = _maybe_map_sgm_blocks_to_diffusers(load_file(os.path.join(out, "kohya_ldm.safetensors")),
                                                    pipe.unet.config)
            pipe.load_lora_weights(sd)
        else:
            pipe.load_lora_weights(out, weight_name=f"{name}.safetensors")
        pipe.fuse_lora(lora_scale=SCALE)
        # every component the file targets really changed (nothing silently dropped by a name mismatch)
        def changed(model, base):
            sd = {k.replace(".base_layer", ""): v for k, v in model.state_dict().items() if "lora_" not in k}
            return sum(not torch.equal(v, base[k]) for k, v in sd.items() if k in base)
        changed_u, changed_t = changed(pipe.unet, base_unet), changed(pipe.text_encoder, base_text)
        lat = generate(pipe, case, noise)
        moved = rel(lat, base)
        np.save(os.path.join(out, f"{name}_latents.npy"), lat.astype(np.float32))
        manifest["cases"][name] = {"file": f"{name}.safetensors", "latents": f"{name}_latents.npy",
                                   "moved": moved, "unet_tensors_changed": changed_u,
                                   "text_tensors_changed": changed_t}
        print(f"{name}: moved {moved:.4f} from the base latents; {changed_u} UNet and {changed_t} text-encoder "
              f"tensors changed")
        assert changed_u > 0 and changed_t > 0, name
        assert moved > 0.05, (name, moved)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"wrote {out} ({total} bytes)")


if __name__ == "__main__":
    main()
