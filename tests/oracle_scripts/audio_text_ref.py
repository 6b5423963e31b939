"""Reference outputs of ltx-core 1.0.0's audio path and text embeddings processor, for tests/test_formats_audio_text.py.

Runs in the ORACLE venv (official ltx-core 1.0.0, transformers 4.x), not in the project venv:

    $LTX_ORACLE_PYTHON tests/oracle_scripts/audio_text_ref.py --gemma DIR --job FILE OUT.pt [--job FILE2 OUT2.pt ...]
                                                              [--load-check FILE ...]

--load-check FILE runs the oracle's load_check (every component present built through ltx-core's real loading path,
all module tensors from the file and bit-equal, and --strict: no file key left unused) before the jobs. One process
does it all, to pay the interpreter start-up once.

For each --job checkpoint (official single-file format) it builds, exactly as ltx-pipelines' ModelLedger does
(SingleGPUModelBuilder + the official configurator + SDOps, fp32 on CPU), the audio VAE encoder and decoder, the
vocoder (plain or with BWE) and the embeddings processor (feature extractor V1/V2 + connectors; --gemma patches
ltx-core's hard-coded Gemma config, so every checkpoint must be made for that Gemma), then runs them on seeded inputs:

    wave_<sr>        [1, 2, S] stereo test signals at 44100, 48000 and 16000 Hz (1 s, 0.25 s, 0.5 s)
    resampled_<sr>   torchaudio.functional.resample(wave_<sr>, sr, 16000)        (what AudioProcessor resamples to)
    mel_<sr>         AudioProcessor(...).waveform_to_mel(Audio(wave_<sr>, sr))   [1, 2, T, 64]
    latent_<sr>      AudioEncoder(mel_<sr>)                                       [1, 8, T', 16] (normalized)
    dec_latent       seeded latent [1, 8, 13, 16];   dec_mel = AudioDecoder(dec_latent)
    voc_mel          seeded log-mel [1, 2, 18, 64];  voc_wave = Vocoder(voc_mel)   (+ voc_rate)
    hidden_states    seeded Gemma stack [1, 1024, D, L];  mask [1, 1024] left-padded (n_valid tokens at the end)
    video_feats / audio_feats              EmbeddingsProcessor.feature_extractor(hidden_states, mask, "left")
    video_ctx / audio_ctx / ctx_mask       EmbeddingsProcessor.create_embeddings(feats, additive mask)
    video_ctx_full / audio_ctx_full / ctx_mask_full   process_hidden_states(...) (the same, in one call)

Prints a line per component and ends with "RESULT: PASS" (exit 0) or an error (exit 1).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

sys.dont_write_bytecode = True
ORACLE_DIR = os.environ.get("LTX_ORACLE_DIR", str(Path(__file__).resolve().parents[2].parent / "shared" / "oracle"))
sys.path.insert(0, ORACLE_DIR)
import oracle_common as oc  # noqa: E402  (imports ltx_core.loader first)
import torch  # noqa: E402

COMPONENTS = ("audio_encoder", "audio_decoder", "vocoder", "embeddings_processor")


def _build(checkpoint: str) -> dict[str, torch.nn.Module]:
    from ltx_core.loader import SingleGPUModelBuilder

    specs = {s.name: s for s in oc.checkpoint_components()}
    out = {}
    for name in COMPONENTS:
        spec = specs[name]
        model = SingleGPUModelBuilder(
            model_class_configurator=spec.configurator, model_path=checkpoint, model_sd_ops=spec.sd_ops
        ).build(device=oc.CPU, dtype=torch.float32)
        meta = oc.meta_tensor_names(model)
        if meta:
            raise oc.OracleError(f"{name}: {len(meta)} tensor(s) not in the checkpoint, e.g. {meta[:4]}")
        out[name] = model.eval()
    return out


def _test_signal(sample_rate: int, seconds: float, g: torch.Generator) -> torch.Tensor:
    n = round(sample_rate * seconds)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    left = 0.3 * torch.sin(2 * math.pi * 440.0 * t) + 0.2 * torch.sin(2 * math.pi * 3150.0 * t)
    right = 0.25 * torch.sin(2 * math.pi * 220.0 * t + 0.5) + 0.15 * torch.sin(2 * math.pi * 7400.0 * t)
    wave = torch.stack([left, right]).float()[None]
    return wave + 0.02 * torch.randn(wave.shape, generator=g)


def reference(checkpoint: str, out: str, seed: int, n_valid: int) -> None:
    import torchaudio
    from ltx_core.model.audio_vae.ops import AudioProcessor
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX
    from ltx_core.text_encoders.gemma.embeddings_processor import convert_to_additive_mask
    from ltx_core.types import Audio

    print(f"[job] {checkpoint} -> {out}")
    m = _build(checkpoint)
    enc, dec, voc, ep = m["audio_encoder"], m["audio_decoder"], m["vocoder"], m["embeddings_processor"]
    g = torch.Generator().manual_seed(seed)
    res: dict[str, object] = {}

    proc = AudioProcessor(
        target_sample_rate=enc.sample_rate, mel_bins=enc.mel_bins, mel_hop_length=enc.mel_hop_length, n_fft=enc.n_fft
    )
    for sr, seconds in ((44100, 1.0), (48000, 0.25), (16000, 0.5)):
        wave = _test_signal(sr, seconds, g)
        res[f"wave_{sr}"] = wave
        res[f"resampled_{sr}"] = torchaudio.functional.resample(wave, sr, enc.sample_rate)
        mel = proc.waveform_to_mel(Audio(waveform=wave, sampling_rate=sr))
        res[f"mel_{sr}"] = mel
        res[f"latent_{sr}"] = enc(mel)
        print(
            f"[audio] {sr} Hz wave {tuple(wave.shape)} -> mel {tuple(mel.shape)} -> latent "
            f"{tuple(res[f'latent_{sr}'].shape)}"
        )

    res["dec_latent"] = torch.randn(1, 8, 13, 16, generator=g)
    res["dec_mel"] = dec(res["dec_latent"])
    res["voc_mel"] = torch.randn(1, 2, 18, 64, generator=g) * 1.5 - 4.0
    res["voc_wave"] = voc(res["voc_mel"])
    res["voc_rate"] = int(voc.output_sampling_rate)
    print(
        f"[audio] decoder {tuple(res['dec_latent'].shape)} -> {tuple(res['dec_mel'].shape)}; {type(voc).__name__} "
        f"{tuple(res['voc_mel'].shape)} -> {tuple(res['voc_wave'].shape)} @ {res['voc_rate']} Hz"
    )

    text_cfg = GEMMA3_CONFIG_FOR_LTX.text_config
    d, n_layers = text_cfg.hidden_size, text_cfg.num_hidden_layers + 1
    seq = 1024
    scales = torch.logspace(-1, 1.5, n_layers)  # Gemma's layers differ a lot in scale
    hidden = torch.randn(1, seq, d, n_layers, generator=g) * scales + 0.3 * torch.randn(1, 1, d, n_layers, generator=g)
    mask = torch.zeros(1, seq, dtype=torch.int64)
    mask[:, seq - n_valid :] = 1  # the Gemma tokenizer pads on the LEFT
    res["hidden_states"], res["mask"] = hidden, mask
    layers = tuple(hidden.unbind(-1))
    video_feats, audio_feats = ep.feature_extractor(layers, mask, "left")
    res["video_feats"], res["audio_feats"] = video_feats, audio_feats
    additive = convert_to_additive_mask(mask, video_feats.dtype)
    res["video_ctx"], res["audio_ctx"], res["ctx_mask"] = ep.create_embeddings(video_feats, audio_feats, additive)
    full = ep.process_hidden_states(layers, mask, padding_side="left")
    res["video_ctx_full"], res["audio_ctx_full"], res["ctx_mask_full"] = full
    res["feature_extractor"] = type(ep.feature_extractor).__name__
    print(
        f"[text] {res['feature_extractor']} stack {tuple(hidden.shape)} mask valid={n_valid} -> feats "
        f"{tuple(video_feats.shape)} / {tuple(audio_feats.shape)} -> ctx {tuple(res['video_ctx'].shape)} / "
        f"{tuple(res['audio_ctx'].shape)}"
    )

    torch.save(res, out)
    print(f"saved {len(res)} entries to {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--gemma", required=True, help="Gemma dir the checkpoints were made for (sizes the feature extractor)"
    )
    ap.add_argument("--job", nargs=2, action="append", default=[], metavar=("CHECKPOINT", "OUT"))
    ap.add_argument("--load-check", action="append", default=[], metavar="CHECKPOINT")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-valid", type=int, default=77, help="valid (left-padded) text tokens out of 1024")
    args = ap.parse_args()
    oc.check_versions()
    oc.check_gemma_dir(args.gemma)
    oc.patch_gemma_config_from_dir(args.gemma, verbose=False)
    torch.set_grad_enabled(False)

    failed = []
    if args.load_check:
        import load_check

        for checkpoint in args.load_check:
            if not load_check.check_all(checkpoint, gemma=args.gemma, strict_unused=True):
                failed.append(checkpoint)
    for checkpoint, out in args.job:
        reference(checkpoint, out, args.seed, args.n_valid)
    if failed:
        raise oc.OracleError(f"load_check failed for {failed}")
    print("RESULT: PASS")
    return 0


if __name__ == "__main__":
    oc.run_main(main)
