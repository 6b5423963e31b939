"""Reference video-VAE outputs from the official ltx-core code (run with the ORACLE interpreter, not the project's).

    ORACLE_PY video_vae_ref.py --oracle-dir shared/oracle [--load-check] --job FILE OUT.pt [--job FILE2 OUT2.pt ...]

For each job, builds ltx-core's VideoEncoder / VideoDecoder from FILE exactly as ltx-pipelines' ModelLedger does
(SingleGPUModelBuilder + the official configurators and SDOps, via the oracle's component table), in fp32 on CPU,
then encodes seeded videos and decodes seeded latents. OUT.pt (load with weights_only=True) holds the inputs and
outputs under the names in VIDEO_SHAPES / DECODE_CASES (+ "_in" / "_out"), plus "meta" (JSON: decoder defaults and
the decode cases). --load-check first runs the oracle's load_check on FILE with --strict (every file key consumed,
every module tensor bit-equal to its file tensor; absent components are not a failure). One process for all jobs
keeps the ltx-core import cost to one.
"""

import argparse
import json
import sys
from pathlib import Path

VIDEO_SHAPES = {"enc_a": (1, 3, 9, 64, 64), "enc_b": (1, 3, 17, 64, 96)}
# name -> (latent shape without channels, timestep or None, generator seed)
DECODE_CASES = {
    "dec_a": ((1, 2, 2, 2), None, 1234),
    "dec_b": ((1, 3, 2, 3), [0.3], 99),
    "dec_c": ((2, 2, 2, 2), [0.05, 0.5], 7),
}


def reference(checkpoint: str, out: str, seed: int) -> None:
    import oracle_common as oc
    import torch
    from ltx_core.loader import SingleGPUModelBuilder

    specs = {s.name: s for s in oc.checkpoint_components()}
    models = {}
    for name in ("video_encoder", "video_decoder"):
        spec = specs[name]
        builder = SingleGPUModelBuilder(
            model_class_configurator=spec.configurator, model_path=checkpoint, model_sd_ops=spec.sd_ops
        )
        model = builder.build(device=oc.CPU, dtype=torch.float32).eval()
        if oc.meta_tensor_names(model):
            raise SystemExit(f"ERROR: {name}: tensors left on meta: {oc.meta_tensor_names(model)[:4]}")
        models[name] = model
    encoder, decoder = models["video_encoder"], models["video_decoder"]
    channels = decoder.per_channel_statistics.get_buffer("mean-of-means").numel()

    result: dict = {}
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, shape in VIDEO_SHAPES.items():
            video = torch.rand(shape, generator=g) * 2 - 1
            result[f"{name}_in"] = video
            result[f"{name}_out"] = encoder(video)
        for name, (shape, timestep, case_seed) in DECODE_CASES.items():
            latent = torch.randn((shape[0], channels, *shape[1:]), generator=g)
            t = None if timestep is None else torch.tensor(timestep)
            result[f"{name}_in"] = latent
            result[f"{name}_out"] = decoder(latent, timestep=t, generator=torch.Generator().manual_seed(case_seed))
    meta = {
        "decode_timestep": decoder.decode_timestep,
        "decode_noise_scale": decoder.decode_noise_scale,
        "timestep_conditioning": decoder.timestep_conditioning,
        "decode_cases": DECODE_CASES,
        "encoder_params": oc.n_params(encoder),
        "decoder_params": oc.n_params(decoder),
    }
    result["meta"] = json.dumps(meta)
    torch.save(result, out)
    print(f"wrote {out}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in result.items() if k != "meta"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oracle-dir", required=True)
    ap.add_argument("--job", nargs=2, action="append", required=True, metavar=("CHECKPOINT", "OUT"))
    ap.add_argument("--load-check", action="store_true", help="run load_check --strict on each checkpoint first")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    sys.dont_write_bytecode = True
    sys.path.insert(0, str(Path(args.oracle_dir).resolve()))
    import oracle_common as oc  # imports ltx_core.loader first

    oc.check_versions()
    oc.cpu_setup()
    for checkpoint, out in args.job:
        if args.load_check:
            import load_check

            if not load_check.check_all(checkpoint, strict_unused=True):
                raise SystemExit(f"ERROR: load_check failed for {checkpoint}")
        reference(checkpoint, out, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
