"""LTX-2 audio: the official ``audio_vae.*`` / ``vocoder.*`` keys and metadata <-> diffusers ``AutoencoderKLLTX2Audio``,
``LTX2Vocoder`` and ``LTX2VocoderWithBWE``, plus the runtime audio helpers the model layer calls.

Runtime helpers (all match ltx-core 1.0.0 numerically, see tests/test_formats_audio_text.py):

- ``waveform_to_mel``: what ltx-core's ``AudioProcessor`` does (band-limited sinc resampling to 16 kHz, centred
  reflect-padded STFT with a periodic Hann window, magnitude, Slaney mel filterbank with Slaney norm,
  ``log(clamp(1e-5))``), written with torch only (our environment has no torchaudio). Note the STFT is NOT causal
  although the metadata says ``stft.causal: true``: that flag only shifts the latents' time positions.
- ``encode_audio`` / ``decode_audio``: the audio VAE with the per-channel latent (de)normalisation that ltx-core's
  ``AudioEncoder`` / ``AudioDecoder`` apply inside their forward (diffusers leaves it to the pipeline).
- ``vocode``: mel -> waveform, with the bandwidth-extension stage for LTX-2.3 vocoders.

What diffusers can't hold: the STFT size (``preprocessing.stft.filter_length``; ltx-core's default 1024) is not part
of the audio VAE config, so ``audio_processor_params`` reads it from the metadata and ``audio_vae_official_config``
takes it as an argument. Causality axis ``none`` (metadata ``null``) and ``attn_type``/``resamp_with_conv`` other
than the defaults are refused: diffusers' decoder always trims 3 frames, and it has no linear/no-op attention nor
pooling downsamplers.
"""

import math

import torch
import torch.nn.functional as F
from diffusers.loaders.single_file_utils import convert_ltx2_audio_vae_to_diffusers

from ltx_trainer.models.formats.common import StateDict, select_prefix

AUDIO_VAE_PREFIX = "audio_vae."
VOCODER_PREFIX = "vocoder."
_STATS = {"mean-of-means": "latents_mean", "std-of-means": "latents_std"}

# ----------------------------------------------------------------------------------------------------------------
# audio VAE: config
# ----------------------------------------------------------------------------------------------------------------
# ltx-core 1.0.0's defaults for absent keys (ltx_core/model/audio_vae/model_configurator.py)
_DDCONFIG_DEFAULTS = {
    "ch": 128,
    "out_ch": 2,
    "ch_mult": (1, 2, 4),
    "num_res_blocks": 2,
    "attn_resolutions": (8, 16, 32),
    "resolution": 256,
    "z_channels": 8,
    "double_z": True,
    "dropout": 0.0,
    "resamp_with_conv": True,
    "in_channels": 2,
    "attn_type": "vanilla",
    "mid_block_add_attention": True,
    "norm_type": "pixel",
    "causality_axis": "height",
}
_DEFAULT_SAMPLE_RATE = 16000
_DEFAULT_HOP = 160
_DEFAULT_N_FFT = 1024


def _audio_sections(official: dict) -> tuple[dict, dict, dict, dict]:
    params = official.get("model", {}).get("params", {})
    pre = official.get("preprocessing", {})
    return params, params.get("ddconfig", {}), pre.get("stft", {}), pre.get("mel", {})


def _mel_bins(official: dict) -> int | None:
    _, dd, _, mel = _audio_sections(official)
    return dd.get("mel_bins") or mel.get("n_mel_channels") or official.get("variables", {}).get("mel_bins")


def audio_vae_diffusers_config(official_audio_vae: dict) -> dict:
    """Metadata ``config["audio_vae"]`` -> ``AutoencoderKLLTX2Audio`` kwargs (ltx-core's defaults for absent keys)."""
    params, dd_given, stft, _ = _audio_sections(official_audio_vae)
    dd = {**_DDCONFIG_DEFAULTS, **dd_given}
    if dd["causality_axis"] is None or dd["causality_axis"] == "none":
        raise ValueError(
            "audio VAE causality_axis none: diffusers' decoder trims 3 frames for every axis, ltx-core "
            "doesn't for none; not representable"
        )
    if dd["attn_type"] != "vanilla":
        raise ValueError(
            f"audio VAE attn_type={dd['attn_type']!r}: only 'vanilla' exists in diffusers (ltx-core's "
            "decoder ignores attn_type, its encoder honours it)"
        )
    if not dd["resamp_with_conv"]:
        raise ValueError("audio VAE resamp_with_conv=false (pooling downsamplers) is not representable in diffusers")
    return {
        "base_channels": dd["ch"],
        "output_channels": dd["out_ch"],
        "ch_mult": tuple(dd["ch_mult"]),
        "num_res_blocks": dd["num_res_blocks"],
        "attn_resolutions": tuple(sorted(dd["attn_resolutions"])),
        "in_channels": dd["in_channels"],
        "resolution": dd["resolution"],
        "latent_channels": dd["z_channels"],
        "norm_type": dd["norm_type"],
        "causality_axis": dd["causality_axis"],
        "dropout": dd["dropout"],
        "mid_block_add_attention": dd["mid_block_add_attention"],
        "sample_rate": params.get("sampling_rate", _DEFAULT_SAMPLE_RATE),
        "mel_hop_length": stft.get("hop_length", _DEFAULT_HOP),
        "is_causal": stft.get("causal", True),
        "mel_bins": _mel_bins(official_audio_vae),
        "double_z": dd["double_z"],
    }


def audio_vae_official_config(diffusers_cfg: dict, n_fft: int = _DEFAULT_N_FFT) -> dict:
    """``AutoencoderKLLTX2Audio`` config -> metadata ``config["audio_vae"]``.

    ``n_fft`` is the STFT size of the mel front end, which diffusers' config doesn't carry.
    """
    c = diffusers_cfg
    axis = c["causality_axis"]
    if axis is None or axis == "none":
        raise ValueError("audio VAE causality_axis none is not representable in ltx-core's format (see module doc)")
    ddconfig = {
        "ch": c["base_channels"],
        "out_ch": c["output_channels"],
        "in_channels": c["in_channels"],
        "ch_mult": list(c["ch_mult"]),
        "num_res_blocks": c["num_res_blocks"],
        "attn_resolutions": sorted(c["attn_resolutions"] or ()),
        "resolution": c["resolution"],
        "z_channels": c["latent_channels"],
        "double_z": c["double_z"],
        "norm_type": c["norm_type"],
        "causality_axis": axis,
        "dropout": c["dropout"],
        "mid_block_add_attention": c["mid_block_add_attention"],
        "attn_type": "vanilla",
    }
    preprocessing = {"stft": {"filter_length": n_fft, "hop_length": c["mel_hop_length"], "causal": c["is_causal"]}}
    if c["mel_bins"] is not None:
        ddconfig["mel_bins"] = c["mel_bins"]
        preprocessing["mel"] = {"n_mel_channels": c["mel_bins"]}
    return {
        "model": {"params": {"sampling_rate": c["sample_rate"], "ddconfig": ddconfig}},
        "preprocessing": preprocessing,
    }


def audio_processor_params(official_audio_vae: dict) -> dict:
    """The mel front end's settings from metadata ``config["audio_vae"]`` as ``waveform_to_mel`` keyword arguments
    (what ltx-core's ``encode_audio`` builds its ``AudioProcessor`` from)."""
    params, _, stft, _ = _audio_sections(official_audio_vae)
    mel_bins = _mel_bins(official_audio_vae)
    return {
        "target_sample_rate": params.get("sampling_rate", _DEFAULT_SAMPLE_RATE),
        "n_fft": stft.get("filter_length", _DEFAULT_N_FFT),
        "hop_length": stft.get("hop_length", _DEFAULT_HOP),
        "n_mels": 64 if mel_bins is None else mel_bins,  # AudioEncoder's own default
    }


# ----------------------------------------------------------------------------------------------------------------
# audio VAE: keys (the same module tree on both sides; only the prefix and the latent statistics are renamed)
# ----------------------------------------------------------------------------------------------------------------
def audio_vae_to_diffusers(sd: StateDict) -> StateDict:
    """``audio_vae.{encoder,decoder,per_channel_statistics}.*`` file keys -> ``AutoencoderKLLTX2Audio`` keys."""
    return convert_ltx2_audio_vae_to_diffusers(dict(select_prefix(sd, AUDIO_VAE_PREFIX)))


def audio_vae_to_official(sd: StateDict) -> StateDict:
    """``AutoencoderKLLTX2Audio`` keys -> ``audio_vae.*`` file keys (one shared set of per-channel statistics)."""
    inverse = {v: k for k, v in _STATS.items()}
    return {
        AUDIO_VAE_PREFIX + (f"per_channel_statistics.{inverse[k]}" if k in inverse else k): v for k, v in sd.items()
    }


# ----------------------------------------------------------------------------------------------------------------
# vocoder: config
# ----------------------------------------------------------------------------------------------------------------
# ltx-core 1.0.0's defaults for absent keys (model_configurator._vocoder_from_config, vocoder.py)
_VOCODER_DEFAULTS = {
    "resblock_kernel_sizes": [3, 7, 11],
    "upsample_rates": [6, 5, 2, 2, 2],
    "upsample_kernel_sizes": [16, 15, 8, 4, 4],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "upsample_initial_channel": 1024,
    "resblock": "1",
    "output_sampling_rate": 24000,
    "activation": "snake",
    "use_tanh_at_final": True,
    "use_bias_at_final": True,
}
_MEL_CHANNELS_IN = 128  # ltx-core hard-codes conv_pre's input: 2 stereo channels x 64 mel bins
_CHANNELS_OUT = 2
_LRELU_SLOPE = 0.1
_ANTIALIAS = {"antialias_ratio": 2, "antialias_kernel_size": 12}  # ltx-core's Activation1d
_BWE_REQUIRED = ("input_sampling_rate", "output_sampling_rate", "n_fft", "hop_length", "num_mels")


def is_bwe_vocoder(official_vocoder: dict) -> bool:
    """LTX-2.3 metadata nests ``{"vocoder": ..., "bwe": ...}``; LTX-2.0's is one flat vocoder section."""
    return "bwe" in official_vocoder


def vocoder_class(official_vocoder: dict) -> type[torch.nn.Module]:
    """``LTX2VocoderWithBWE`` or ``LTX2Vocoder``, for ``vocoder_diffusers_config``'s kwargs."""
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE

    return LTX2VocoderWithBWE if is_bwe_vocoder(official_vocoder) else LTX2Vocoder


def _check(cfg: dict, key: str, expected: object, where: str) -> None:
    # ltx-core's check_config_value: the key must be present with exactly this value
    if cfg.get(key) != expected:
        raise ValueError(f"vocoder config {where}{key}={cfg.get(key)!r}; ltx-core requires {expected!r}")


def _generator_kwargs(cfg: dict, final_activation: bool, output_sampling_rate: int) -> dict:
    c = {**_VOCODER_DEFAULTS, **cfg}
    if c["resblock"] == "1":
        act, antialias = "leaky_relu", False
    elif c["resblock"] == "AMP1":
        act, antialias = c["activation"], True
        if act not in ("snake", "snakebeta"):
            raise ValueError(f"vocoder activation={act!r}: ltx-core only has snake and snakebeta")
    else:
        raise ValueError(f"vocoder resblock={c['resblock']!r}: diffusers has ResBlock1 and AMP1 only")
    final = ("tanh" if c["use_tanh_at_final"] else "clamp") if final_activation else None
    return {
        "in_channels": _MEL_CHANNELS_IN,
        "hidden_channels": c["upsample_initial_channel"],
        "out_channels": _CHANNELS_OUT,
        "upsample_kernel_sizes": list(c["upsample_kernel_sizes"]),
        "upsample_factors": list(c["upsample_rates"]),
        "resnet_kernel_sizes": list(c["resblock_kernel_sizes"]),
        "resnet_dilations": [list(d) for d in c["resblock_dilation_sizes"]],
        "act_fn": act,
        "leaky_relu_negative_slope": _LRELU_SLOPE,
        "antialias": antialias,
        **_ANTIALIAS,
        "final_act_fn": final,
        "final_bias": c["use_bias_at_final"],
        "output_sampling_rate": output_sampling_rate,
    }


def vocoder_diffusers_config(official_vocoder: dict) -> dict:
    """Metadata ``config["vocoder"]`` -> ``LTX2Vocoder`` or ``LTX2VocoderWithBWE`` kwargs (see ``vocoder_class``)."""
    if not is_bwe_vocoder(official_vocoder):
        _check(official_vocoder, "resblock", "1", "")
        _check(official_vocoder, "stereo", True, "")
        c = {**_VOCODER_DEFAULTS, **official_vocoder}
        return _generator_kwargs(official_vocoder, True, c["output_sampling_rate"])
    voc, bwe = official_vocoder.get("vocoder", {}), official_vocoder["bwe"]
    for where, part in (("vocoder.", voc), ("bwe.", bwe)):
        _check(part, "resblock", "AMP1", where)
        _check(part, "stereo", True, where)
        _check(part, "activation", "snakebeta", where)
    missing = [k for k in _BWE_REQUIRED if k not in bwe]
    if missing:
        raise ValueError(f"vocoder config bwe section lacks {missing} (ltx-core has no default for them)")
    # ltx-core: the first stage always applies its final activation, the BWE generator never (whatever the config says)
    stage1 = _generator_kwargs(voc, True, bwe["input_sampling_rate"])
    stage2 = _generator_kwargs(bwe, False, bwe["output_sampling_rate"])
    del stage1["output_sampling_rate"], stage2["output_sampling_rate"]
    return {
        **stage1,
        **{f"bwe_{k}": v for k, v in stage2.items()},
        "filter_length": bwe["n_fft"],
        "hop_length": bwe["hop_length"],
        "window_length": bwe["n_fft"],  # ltx-core's MelSTFT uses win_length = n_fft
        "num_mel_channels": bwe["num_mels"],
        "input_sampling_rate": bwe["input_sampling_rate"],
        "output_sampling_rate": bwe["output_sampling_rate"],
    }


def _generator_official(c: dict, final_activation: bool, where: str) -> dict:
    problems = []
    if c["in_channels"] != _MEL_CHANNELS_IN or c["out_channels"] != _CHANNELS_OUT:
        problems.append(f"in/out channels {c['in_channels']}/{c['out_channels']} (ltx-core: 128/2)")
    if c["leaky_relu_negative_slope"] != _LRELU_SLOPE:
        problems.append(f"leaky_relu_negative_slope {c['leaky_relu_negative_slope']} (ltx-core: 0.1)")
    if c["act_fn"] == "leaky_relu":
        out = {"resblock": "1"}
        if c["antialias"]:
            problems.append("anti-aliased leaky_relu")
    else:
        out = {"resblock": "AMP1", "activation": c["act_fn"]}
        if not c["antialias"] or any(c[k] != v for k, v in _ANTIALIAS.items()):
            problems.append("snake activations without ltx-core's 2x/12-tap anti-aliasing")
    if final_activation and c["final_act_fn"] not in ("tanh", "clamp"):
        problems.append(f"final_act_fn={c['final_act_fn']!r} (ltx-core: tanh or clamp)")
    if not final_activation and c["final_act_fn"] is not None:
        problems.append(f"final_act_fn={c['final_act_fn']!r} on the BWE generator (ltx-core: none)")
    if problems:
        raise ValueError(f"vocoder config {where}not representable in ltx-core's format: " + "; ".join(problems))
    out.update(
        {
            "stereo": True,
            "upsample_rates": list(c["upsample_factors"]),
            "upsample_kernel_sizes": list(c["upsample_kernel_sizes"]),
            "upsample_initial_channel": c["hidden_channels"],
            "resblock_kernel_sizes": list(c["resnet_kernel_sizes"]),
            "resblock_dilation_sizes": [list(d) for d in c["resnet_dilations"]],
            "use_tanh_at_final": c["final_act_fn"] != "clamp",
            "use_bias_at_final": c["final_bias"],
        }
    )
    return out


def vocoder_official_config(cfg: dict) -> dict:
    """``LTX2Vocoder`` / ``LTX2VocoderWithBWE`` config -> metadata ``config["vocoder"]``."""
    if "bwe_hidden_channels" not in cfg:
        out = _generator_official(cfg, True, "")
        if out["resblock"] != "1":
            raise ValueError("a plain (non-BWE) vocoder must use ResBlock1 / leaky_relu for ltx-core to load it")
        return {**out, "output_sampling_rate": cfg["output_sampling_rate"]}
    if cfg["window_length"] != cfg["filter_length"]:
        raise ValueError("BWE vocoder window_length != filter_length: ltx-core's MelSTFT uses win_length = n_fft")
    stage2 = {k.removeprefix("bwe_"): v for k, v in cfg.items() if k.startswith("bwe_")}
    voc = _generator_official(cfg, True, "vocoder.")
    bwe = _generator_official(stage2, False, "bwe.")
    for where, part in (("vocoder.", voc), ("bwe.", bwe)):
        if part.get("activation") != "snakebeta":
            raise ValueError(f"vocoder config {where}: ltx-core's BWE vocoder needs AMP1 + snakebeta")
    bwe.update(
        {
            "apply_final_activation": False,
            "input_sampling_rate": cfg["input_sampling_rate"],
            "output_sampling_rate": cfg["output_sampling_rate"],
            "n_fft": cfg["filter_length"],
            "hop_length": cfg["hop_length"],
            "win_size": cfg["window_length"],
            "num_mels": cfg["num_mel_channels"],
        }
    )
    return {"vocoder": voc, "bwe": bwe}


# ----------------------------------------------------------------------------------------------------------------
# vocoder: keys
# ----------------------------------------------------------------------------------------------------------------
_VOCODER_SEGMENTS = {
    "conv_pre": "conv_in",
    "conv_post": "conv_out",
    "ups": "upsamplers",
    "resblocks": "resnets",
    "act_post": "act_out",
}
_VOCODER_SEGMENTS_INV = {v: k for k, v in _VOCODER_SEGMENTS.items()}


def _vocoder_key_to_diffusers(local: str) -> str:
    parts = [_VOCODER_SEGMENTS.get(p, p) for p in local.split(".")]
    # ltx-core's anti-aliasing DownSample1d wraps its filter in a LowPassFilter1d ("downsample.lowpass.filter")
    out = [p for i, p in enumerate(parts) if not (p == "lowpass" and i > 0 and parts[i - 1] == "downsample")]
    return ".".join(out)


def _vocoder_key_to_official(key: str) -> str:
    parts = [_VOCODER_SEGMENTS_INV.get(p, p) for p in key.split(".")]
    out = []
    for i, p in enumerate(parts):
        out.append(p)
        if p == "downsample" and parts[i + 1 : i + 2] == ["filter"]:
            out.append("lowpass")
    return ".".join(out)


def _check_vocoder_layout(keys: list[str], official_vocoder: dict | None) -> None:
    if official_vocoder is None or not keys:
        return
    has_bwe = any(k.startswith("bwe_generator.") for k in keys)
    if has_bwe != is_bwe_vocoder(official_vocoder):
        raise ValueError(
            f"vocoder weights are {'with' if has_bwe else 'without'} bandwidth extension but the "
            f"metadata describes a {'BWE' if is_bwe_vocoder(official_vocoder) else 'plain'} vocoder"
        )


def vocoder_to_diffusers(sd: StateDict, official_vocoder: dict | None = None) -> StateDict:
    """``vocoder.*`` file keys (BWE: ``vocoder.{vocoder,bwe_generator,mel_stft}.*``) -> diffusers vocoder keys.

    With ``official_vocoder`` (the metadata section) the layout is checked against it.
    """
    out = {
        _vocoder_key_to_diffusers(k.removeprefix(VOCODER_PREFIX)): v
        for k, v in select_prefix(sd, VOCODER_PREFIX).items()
    }
    _check_vocoder_layout(list(out), official_vocoder)
    return out


def vocoder_to_official(sd: StateDict, official_vocoder: dict | None = None) -> StateDict:
    """diffusers vocoder keys -> ``vocoder.*`` file keys (the inverse of ``vocoder_to_diffusers``)."""
    _check_vocoder_layout(list(sd), official_vocoder)
    return {VOCODER_PREFIX + _vocoder_key_to_official(k): v for k, v in sd.items()}


# ----------------------------------------------------------------------------------------------------------------
# runtime: waveform -> log-mel (ltx-core's AudioProcessor, without torchaudio)
# ----------------------------------------------------------------------------------------------------------------
def _sinc_resample_kernel(
    orig: int, new: int, dtype: torch.dtype, device: torch.device, zero_crossings: int = 6, rolloff: float = 0.99
) -> tuple[torch.Tensor, int]:
    """Hann-windowed sinc filters, one per output phase: [new, 1, 2*width + orig] for rates already divided by
    their gcd. Band limit = rolloff * min(orig, new) / 2 (the same choices as torchaudio's default resampler)."""
    cutoff = min(orig, new) * rolloff
    width = math.ceil(zero_crossings * orig / cutoff)
    taps = torch.arange(-width, width + orig, dtype=dtype, device=device) / orig  # input sample times
    phases = torch.arange(0, -new, -1, dtype=dtype, device=device) / new  # minus each output sample's time
    x = ((phases[:, None] + taps[None, :]) * cutoff).clamp(-zero_crossings, zero_crossings)
    window = torch.cos(x * math.pi / zero_crossings / 2) ** 2
    x = x * math.pi
    sinc = torch.where(x == 0, torch.ones_like(x), torch.sin(x) / x)
    return (sinc * (window * (cutoff / orig)))[:, None, :], width


def resample(waveform: torch.Tensor, orig_sample_rate: int, new_sample_rate: int) -> torch.Tensor:
    """Band-limited resampling of ``[..., S]`` (polyphase Hann-windowed sinc, 6 zero crossings, roll-off 0.99)."""
    if orig_sample_rate == new_sample_rate:
        return waveform
    if int(orig_sample_rate) != orig_sample_rate or int(new_sample_rate) != new_sample_rate:
        raise ValueError(f"sample rates must be whole numbers, got {orig_sample_rate} -> {new_sample_rate}")
    g = math.gcd(int(orig_sample_rate), int(new_sample_rate))
    orig, new = int(orig_sample_rate) // g, int(new_sample_rate) // g
    kernel, width = _sinc_resample_kernel(orig, new, waveform.dtype, waveform.device)
    flat = waveform.reshape(-1, waveform.shape[-1])  # [N, S]
    length = flat.shape[-1]
    padded = F.pad(flat, (width, width + orig))[:, None]  # [N, 1, S + 2*width + orig]
    out = F.conv1d(padded, kernel, stride=orig)  # [N, new, frames]: one output phase per channel
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)[:, : math.ceil(new * length / orig)]
    return out.reshape(*waveform.shape[:-1], out.shape[-1])


def _hz_to_mel_slaney(hz: float) -> float:
    # Slaney's Auditory Toolbox scale: linear (3 bins per 200 Hz) below 1 kHz, logarithmic above
    if hz < 1000.0:
        return hz / (200.0 / 3)
    return 1000.0 / (200.0 / 3) + math.log(hz / 1000.0) / (math.log(6.4) / 27.0)


def _mel_to_hz_slaney(mel: torch.Tensor) -> torch.Tensor:
    f_sp, knee_mel, logstep = 200.0 / 3, 1000.0 / (200.0 / 3), math.log(6.4) / 27.0
    linear = 0.0 + f_sp * mel
    return torch.where(mel >= knee_mel, 1000.0 * torch.exp(logstep * (mel - knee_mel)), linear)


def slaney_mel_filterbank(
    n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular Slaney-scale mel filters with Slaney (area) normalisation: [n_freqs, n_mels], float32."""
    f_max = sample_rate / 2.0 if f_max is None else f_max
    bin_hz = torch.linspace(0, sample_rate // 2, n_freqs)
    edges = _mel_to_hz_slaney(torch.linspace(_hz_to_mel_slaney(f_min), _hz_to_mel_slaney(f_max), n_mels + 2))
    gaps = edges[1:] - edges[:-1]  # [n_mels + 1]
    offsets = edges[None, :] - bin_hz[:, None]  # [n_freqs, n_mels + 2]
    rising = (-1.0 * offsets[:, :-2]) / gaps[:-1]
    falling = offsets[:, 2:] / gaps[1:]
    fb = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return fb * (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[None, :]


def waveform_to_mel(
    waveform: torch.Tensor,
    sample_rate: int,
    *,
    target_sample_rate: int = _DEFAULT_SAMPLE_RATE,
    n_fft: int = _DEFAULT_N_FFT,
    hop_length: int = _DEFAULT_HOP,
    n_mels: int = 64,
) -> torch.Tensor:
    """Stereo waveform ``[B, C, S]`` (or ``[C, S]``) at ``sample_rate`` -> log-mel ``[B, C, T, n_mels]`` exactly as
    ltx-core's ``AudioProcessor.waveform_to_mel`` computes it, T = S_16k // hop + 1.

    Mono input is duplicated to two channels (the audio VAE takes stereo); more channels must be downmixed first.
    The defaults are ltx-core's (16 kHz, 1024-point STFT, hop 160, 64 bins); ``audio_processor_params`` reads them
    from a checkpoint's metadata. Computed in float32 (float64 kept), returned in the input dtype.
    """
    if waveform.ndim == 2:
        waveform = waveform[None]
    if waveform.ndim != 3:
        raise ValueError(f"waveform must be [B, C, S] or [C, S], got shape {tuple(waveform.shape)}")
    if waveform.shape[1] == 1:
        waveform = waveform.expand(-1, 2, -1)
    elif waveform.shape[1] != 2:
        raise ValueError(f"waveform has {waveform.shape[1]} channels; downmix to stereo (or mono) first")
    work = waveform if waveform.dtype == torch.float64 else waveform.float()
    work = resample(work, sample_rate, target_sample_rate)
    b, c, s = work.shape
    window = torch.hann_window(n_fft, dtype=work.dtype, device=work.device)
    spec = torch.stft(
        work.reshape(b * c, s),
        n_fft,
        hop_length=hop_length,
        win_length=n_fft,
        window=window,
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    ).abs()
    fb = slaney_mel_filterbank(n_fft // 2 + 1, n_mels, target_sample_rate).to(work)
    mel = torch.matmul(spec.transpose(-1, -2), fb)  # [B*C, T, n_mels]
    mel = torch.log(torch.clamp(mel, min=1e-5))
    return mel.reshape(b, c, *mel.shape[-2:]).to(waveform.dtype)


# ----------------------------------------------------------------------------------------------------------------
# runtime: audio VAE and vocoder
# ----------------------------------------------------------------------------------------------------------------
def _latent_stats(audio_vae: torch.nn.Module, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # The statistics live on the patchified latent [B, T, C*F] (channel-major): reshape them to broadcast on [B,C,T,F].
    c, f = latents.shape[1], latents.shape[3]
    mean = audio_vae.latents_mean.to(latents).reshape(1, c, 1, f)
    std = audio_vae.latents_std.to(latents).reshape(1, c, 1, f)
    return mean, std


def encode_audio(audio_vae: torch.nn.Module, mel: torch.Tensor) -> torch.Tensor:
    """Log-mel ``[B, 2, T, 64]`` -> normalised latents ``[B, 8, T', 16]``: the posterior mean, normalised with the
    per-channel statistics, exactly as ltx-core's ``AudioEncoder`` returns it (T' = (T - 1) // 4 + 1)."""
    param = next(audio_vae.parameters())
    means = audio_vae.encode(mel.to(device=param.device, dtype=param.dtype)).latent_dist.mode()
    mean, std = _latent_stats(audio_vae, means)
    return (means - mean) / std


def decode_audio(audio_vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents ``[B, 8, T', 16]`` -> log-mel ``[B, 2, 4*T' - 3, 64]`` (ltx-core's ``AudioDecoder``)."""
    param = next(audio_vae.parameters())
    latents = latents.to(device=param.device, dtype=param.dtype)
    mean, std = _latent_stats(audio_vae, latents)
    return audio_vae.decode(latents * std + mean).sample


def _bwe_forward(vocoder: torch.nn.Module, mel: torch.Tensor) -> torch.Tensor:
    # LTX2VocoderWithBWE.forward, minus diffusers 0.42.1's AttributeError (self.hop_length) when the first stage's
    # length isn't a multiple of the STFT hop.
    cfg = vocoder.config
    low = vocoder.vocoder(mel)  # [B, C, S_in]
    n_samples, hop = low.shape[-1], cfg.hop_length
    if n_samples % hop:
        low = F.pad(low, (0, hop - n_samples % hop))
    log_mel, _, _, _ = vocoder.mel_stft(low.flatten(0, 1))  # [B*C, n_mels, frames]
    log_mel = log_mel.unflatten(0, (low.shape[0], low.shape[1]))
    residual = vocoder.bwe_generator(log_mel.transpose(2, 3))
    wave = torch.clamp(residual + vocoder.resampler(low), -1, 1)
    return wave[..., : n_samples * cfg.output_sampling_rate // cfg.input_sampling_rate]


def vocode(vocoder: torch.nn.Module, mel: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Log-mel ``[B, 2, T, 64]`` -> (waveform ``[B, 2, S]`` in [-1, 1], sample rate): 24 kHz for LTX-2.0's vocoder,
    48 kHz for LTX-2.3's (vocoder + bandwidth extension)."""
    param = next(vocoder.parameters())
    mel = mel.to(device=param.device, dtype=param.dtype)
    if hasattr(vocoder, "bwe_generator"):
        return _bwe_forward(vocoder, mel), int(vocoder.config.output_sampling_rate)
    return vocoder(mel), int(vocoder.config.output_sampling_rate)
