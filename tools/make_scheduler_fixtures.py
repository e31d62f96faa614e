#!/usr/bin/env python3
"""Reference values for the Swift schedulers, from diffusers (run by developers; CI only reads the JSON).

Writes Tests/Fixtures/schedulers_pipeline.json:
  schedules: alphas_cumprod (float32) for each beta schedule.
  cases: a scheduler built by diffusers from a full config, set_timesteps(steps), then a short
         trajectory on a small fixed sample with fixed random "model outputs": the timesteps, sigmas,
         init_noise_sigma, the scaled model input and the sample after every step.
  img2img: get_timesteps(steps, strength) (StableDiffusionImg2ImgPipeline) and add_noise at the first.
And Tests/Fixtures/randn_pipeline.json: torch.randn with seeded CPU generators (for Core/RNG.swift).
Usage: python3 tools/make_scheduler_fixtures.py [OUT.json]
"""
import json, os, sys
import numpy as np
import torch
from diffusers import (DDIMScheduler, DDIMInverseScheduler, DPMSolverMultistepScheduler, EDMEulerScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler)

CLASSES = {"ddim": DDIMScheduler, "ddim-inverse": DDIMInverseScheduler,
           "euler": EulerDiscreteScheduler, "euler-a": EulerAncestralDiscreteScheduler,
           "dpmpp-2m": DPMSolverMultistepScheduler, "edm-euler": EDMEulerScheduler}

BASE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            prediction_type="epsilon", timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False,
            clip_sample=False, clip_sample_range=1.0, rescale_betas_zero_snr=False, final_sigmas_type="zero")


def f32list(t):
    return [float("%.9g" % v) for v in np.asarray(t, dtype=np.float32).reshape(-1)]


def make(kind, cfg):
    full = dict(BASE, **cfg)
    kw = {k: v for k, v in full.items()}
    if kind == "dpmpp-2m":
        kw.update(algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", lower_order_final=True)
    if kind == "euler":
        kw.update(interpolation_type="linear")
    return CLASSES[kind].from_config(kw), full


def case(kind, steps, cfg, seed):
    sched, full = make(kind, cfg)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    shape = (1, 2, 3, 3)
    x = torch.randn(shape, generator=g)
    outs = [torch.randn(shape, generator=g) for _ in sched.timesteps]
    # euler-a draws its step noise from a generator seeded noise_seed (diffusers' generator= argument)
    gen = torch.Generator().manual_seed(1000 + seed) if kind == "euler-a" else None
    rec = dict(scheduler=kind, steps=steps, config=full, shape=list(shape),
               timesteps=[float(t) for t in sched.timesteps],
               init_noise_sigma=float(sched.init_noise_sigma),
               sample=f32list(x), model_outputs=[f32list(o) for o in outs], scaled=[], samples=[])
    if gen is not None:
        rec["noise_seed"] = 1000 + seed
    if hasattr(sched, "sigmas") and kind in ("euler", "euler-a", "dpmpp-2m", "edm-euler"):
        rec["sigmas"] = f32list(sched.sigmas)
    for t, o in zip(sched.timesteps, outs):
        rec["scaled"].append(f32list(sched.scale_model_input(x, t)))
        x = sched.step(o, t, x, generator=gen).prev_sample if gen is not None else sched.step(o, t, x).prev_sample
        rec["samples"].append(f32list(x))
    return rec


def img2img(kind, steps, strength, cfg, seed):
    sched, full = make(kind, cfg)
    sched.set_timesteps(steps)
    init_timestep = min(int(steps * strength), steps)
    t_start = max(steps - init_timestep, 0)
    ts = sched.timesteps[t_start * sched.order:]
    if hasattr(sched, "set_begin_index"):
        sched.set_begin_index(t_start * sched.order)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn((1, 2, 3, 3), generator=g)
    noise = torch.randn((1, 2, 3, 3), generator=g)
    noisy = sched.add_noise(x0, noise, ts[:1])
    return dict(scheduler=kind, steps=steps, strength=strength, config=full,
                timesteps=[float(t) for t in ts], start_index=t_start * sched.order,
                original=f32list(x0), noise=f32list(noise), noisy=f32list(noisy))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures",
                                                              "schedulers_pipeline.json")
    schedules = []
    for cfg in [dict(), dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02),
                dict(beta_schedule="squaredcos_cap_v2"), dict(rescale_betas_zero_snr=True)]:
        s, full = make("ddim", cfg)
        schedules.append(dict(config=full, alphas_cumprod=f32list(s.alphas_cumprod)))

    sd2 = dict(prediction_type="v_prediction")
    cases = []
    seed = 0
    plan = [
        ("ddim", 10, {}), ("ddim-inverse", 10, {}), ("euler", 10, {}), ("dpmpp-2m", 10, {}), ("dpmpp-2m", 20, {}),
        ("ddim", 10, sd2), ("ddim-inverse", 10, sd2), ("euler", 10, sd2), ("dpmpp-2m", 16, sd2),
        ("ddim", 7, dict(timestep_spacing="linspace", steps_offset=0)),
        ("ddim", 10, dict(timestep_spacing="trailing", steps_offset=0, set_alpha_to_one=True, clip_sample=True)),
        ("ddim-inverse", 10, dict(timestep_spacing="trailing", steps_offset=0)),
        ("euler", 7, dict(timestep_spacing="linspace", steps_offset=0)),
        ("euler", 10, dict(timestep_spacing="trailing", steps_offset=0)),
        ("euler", 6, dict(final_sigmas_type="sigma_min")),
        ("dpmpp-2m", 8, dict(timestep_spacing="linspace", steps_offset=0)),
        ("dpmpp-2m", 10, dict(timestep_spacing="trailing", steps_offset=0)),
        ("dpmpp-2m", 9, dict(final_sigmas_type="sigma_min")),
        ("ddim", 5, dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, prediction_type="sample")),
        ("ddim", 5, dict(beta_schedule="squaredcos_cap_v2")),
        ("ddim", 8, dict(rescale_betas_zero_snr=True, timestep_spacing="trailing", steps_offset=0,
                         prediction_type="v_prediction")),
        ("euler", 8, dict(rescale_betas_zero_snr=True, timestep_spacing="trailing", steps_offset=0,
                          prediction_type="v_prediction")),
        ("ddim", 1, {}), ("euler", 1, {}), ("dpmpp-2m", 1, {}), ("ddim", 50, {}),
        # SDXL's schedulers (issue 20): DPM++ 2M Karras, Euler with Karras sigmas, Euler ancestral, and the
        # trailing spacing + few steps of Turbo/Lightning checkpoints
        ("dpmpp-2m", 10, dict(use_karras_sigmas=True)), ("dpmpp-2m", 25, dict(use_karras_sigmas=True)),
        ("euler", 10, dict(use_karras_sigmas=True)), ("euler-a", 10, {}), ("euler-a", 8, sd2),
        ("euler-a", 4, dict(timestep_spacing="trailing", steps_offset=0)),
        ("euler", 4, dict(timestep_spacing="trailing", steps_offset=0)),
        ("dpmpp-2m", 4, dict(timestep_spacing="trailing", steps_offset=0)),
        ("ddim", 1, dict(timestep_spacing="trailing", steps_offset=0)),
        # CosXL's EDM Euler (v-prediction, sigma_data 1, exponential), and the Karras default
        ("edm-euler", 8, dict(prediction_type="v_prediction", sigma_min=0.002, sigma_max=120.0, sigma_data=1.0,
                              sigma_schedule="exponential")),
        ("edm-euler", 6, dict(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5, sigma_schedule="karras", rho=7.0)),
    ]
    for kind, steps, cfg in plan:
        cases.append(case(kind, steps, cfg, seed))
        seed += 1
    i2i = []
    for kind in ("ddim", "euler", "dpmpp-2m"):
        for steps, strength in ((10, 0.6), (10, 0.75), (7, 0.3), (10, 1.0)):
            i2i.append(img2img(kind, steps, strength, {}, seed))
            seed += 1
    doc = dict(generator="tools/make_scheduler_fixtures.py", diffusers=__import__("diffusers").__version__,
               torch=torch.__version__, schedules=schedules, cases=cases, img2img=i2i)
    with open(out, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
    print("wrote", out, os.path.getsize(out), "bytes")
    randn_out = os.path.join(os.path.dirname(out), "randn_pipeline.json")
    rcases = []
    for seed, shapes in [(0, [[1, 4, 8, 8]]), (42, [[1, 4, 5, 5], [2, 3]]), (12345, [[3], [1, 4, 4, 4], [7]]),
                         (2 ** 40 + 7, [[1, 4, 2, 8]])]:
        g = torch.Generator().manual_seed(seed)
        vals = [f32list(torch.randn(s, generator=g)) for s in shapes]
        rcases.append(dict(seed=seed, shapes=shapes, values=vals))
    with open(randn_out, "w") as fh:
        json.dump(dict(generator="torch.randn with torch.Generator().manual_seed(seed), calls in order",
                       torch=torch.__version__, cases=rcases), fh)
    print("wrote", randn_out)


if __name__ == "__main__":
    main()
