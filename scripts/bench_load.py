"""Peak host RAM of loading an LTX-2 checkpoint's trainable part (transformer + text connectors), per load path.

Each path runs in its own subprocess; the peak RSS is reset (``/proc/self/clear_refs``) right before the load, so
the numbers are what the load itself costs, next to the bytes those tensors take in the file and in the result.
After the load every page of the result is read once (tensors that stay on the file's mapping, zero copy, only
count in RSS once they are used).

    uv run ltx-trainer make-tiny /tmp/fw --family ltx2-2.3 --full-width-blocks 2
    uv run python scripts/bench_load.py /tmp/fw/ltx-2.3-full-width-2-blocks.safetensors --gemma /tmp/fw/gemma

Paths: ``bf16`` and ``fp32`` (streamed, cast on the way); ``int8``, ``fp8`` and ``fp8-scaled``: the
``acceleration.quantization`` modes, applied per loading unit through ``on_block`` exactly as the trainer does
(``models/quantization.quantize_module_``).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

PATHS = ("bf16", "fp32", "int8", "fp8", "fp8-scaled")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _quantizer(path: str):
    """The trainer's own hook: ``acceleration.quantization`` applied per loading unit as it streams in."""
    if path in ("bf16", "fp32"):
        return None
    import torch

    from ltx_trainer.models.quantization import quantize_module_

    return lambda name, unit: quantize_module_(unit, path, torch.bfloat16, f"{name}.")


def child(checkpoint: str, gemma: str, path: str) -> dict:
    import torch
    from safetensors import safe_open

    from ltx_trainer.models.families import load_model
    from ltx_trainer.training.bench import module_bytes

    with safe_open(checkpoint, "pt") as f:
        keys = [k for k in f.keys() if k.startswith(("model.diffusion_model.", "text_embedding_projection."))]
        sizes = {k: f.get_slice(k).get_shape() for k in keys}
    file_bytes = sum(2 * int(torch.Size(s).numel()) for s in sizes.values())  # the file is bf16
    model = load_model(checkpoint, gemma, dtype=torch.float32 if path == "fp32" else torch.bfloat16)
    model.on_block = _quantizer(path)
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: the peak from here on is the load's
    modules = [model.transformer, model.connectors]
    for module in modules:  # use every page once: tensors left on the file's mapping count when they are read
        for t in [*module.parameters(), *module.buffers()]:
            if type(t.data) is torch.Tensor and t.numel():
                t.data.flatten()[:: max(1, 4096 // t.element_size())].float().sum()
    peak = _rss_kib("VmHWM")
    result_bytes = sum(module_bytes(m) for m in modules)
    return {
        "path": path,
        "tensors_in_file_gib": file_bytes / 2**30,
        "result_gib": result_bytes / 2**30,
        "rss_before_gib": before / 2**20,
        "peak_rss_gib": peak / 2**20,
        "load_peak_gib": (peak - before) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--gemma", required=True)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _out(json.dumps(child(args.checkpoint, args.gemma, args.child)))
        return
    size = Path(args.checkpoint).stat().st_size / 2**30
    _out(f"file: {args.checkpoint} ({size:.2f} GiB)\n")
    _out("| path | tensors loaded, in file (GiB) | result (GiB) | load peak RSS (GiB) | / file tensors | / result |")
    _out("|---|---|---|---|---|---|")
    for path in args.paths.split(","):
        out = subprocess.run(
            [sys.executable, __file__, args.checkpoint, "--gemma", args.gemma, "--child", path],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        _out(
            f"| {path} | {r['tensors_in_file_gib']:.2f} | {r['result_gib']:.2f} | {r['load_peak_gib']:.2f} | "
            f"{r['load_peak_gib'] / r['tensors_in_file_gib']:.2f}x | {r['load_peak_gib'] / r['result_gib']:.2f}x |"
        )


if __name__ == "__main__":
    main()
