"""Did training move the samples toward the data? Base and trained weights sampled from the same seeds, side by side.

A falling loss says the model fits its training batches; it does not say that what it *generates* changed. This
module measures that: for a few training clips (their cached caption features and latents, read from the cache the
run trained on), it draws samples from the same seeds once with the base weights and once with the trained ones (a
LoRA or a full fine-tune) and measures each sample's distance to its clip:

- ``latent video`` / ``latent audio``: RMSE between the sample's latents and the clip's cached latents;
- ``pixels video``: mean absolute difference of the decoded frames and the clip's decoded latents, in [0, 1] units
  (the clip as the VAE sees it: the original media need not be there);
- ``spectrogram audio``: mean absolute difference of the log-magnitude spectrograms of the decoded waveforms.

Sampling is short and deterministic: a few Euler steps (``EfficacySettings.steps``), guidance off (one transformer pass
per step: the measure is of the weights, not of CFG), noise from each seed's own generator, no conditioning media (a
clip is generated from its caption alone). ``Efficacy.closer`` is ``1 - tuned / base`` of a distance's mean: 0.42
means the trained samples are 42 % closer to the training clips than the base model's.

Which weights are "base" and which "trained" is the caller's: ``measure`` takes two context managers that put the
model into each state (``lora_file`` and ``full_checkpoint`` here for files; training swaps its in-memory weights).
"""

import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ltx_trainer import logger
from ltx_trainer.config import FlexibleStrategyConfig
from ltx_trainer.data.dataset import PrecomputedDataset
from ltx_trainer.data.decode import decode_latents, write_decoded
from ltx_trainer.io import atomic_write_json
from ltx_trainer.models.base import FamilySpec, LTXModel, TextFeatures
from ltx_trainer.models.devices import on_device
from ltx_trainer.sampling.sampler import SampleSpec, generate

VARIANTS = ("base", "tuned")
EFFICACY_FILE = "efficacy.json"


@dataclass(frozen=True)
class EfficacySettings:
    """How much to sample. Cost: ``clips * len(seeds) * 2`` samples of ``steps`` transformer passes, at the clips'
    own size.

    Attributes:
        clips: how many training clips (the first ones of the cache, in id order).
        seeds: noise seeds; every clip is drawn from each, with and without the trained weights.
        steps: Euler steps per sample.
        decode: also decode and compare frames / waveforms (and write the media for the report).
    """

    clips: int = 2
    seeds: tuple[int, ...] = (0, 1)
    steps: int = 8
    decode: bool = True


@dataclass
class Target:
    """One training clip to compare against.

    Attributes:
        sample_id: its id in the cache (relative path without suffix).
        caption: the caption text when a sidecar ``<data root>/<id>.txt`` is there, else None.
        features: the cached pre-connector caption features (batch 1).
        video: clean video latents ``[1, C, F', H', W']`` or None.
        audio: clean audio latents ``[1, 8, T, 16]`` or None.
        fps: the clip's frame rate.
    """

    sample_id: str
    caption: str | None
    features: TextFeatures
    video: torch.Tensor | None
    audio: torch.Tensor | None
    fps: float


def load_targets(data_root: str | Path, strategy: FlexibleStrategyConfig, spec: FamilySpec, limit: int) -> list[Target]:
    """The first ``limit`` training samples (id order) with the latents of every modality the strategy generates.

    Args:
        data_root: ``data.preprocessed_data_root``.
        strategy: the run's strategy (``training_strategy.as_flexible()``): which latents folders hold the clips.
        spec: the model's spec (the cache files are checked against it).
    """
    sources = {"conditions": "conditions"}
    for label, modality in (("video", strategy.video), ("audio", strategy.audio)):
        if modality is not None and modality.is_generated:
            sources[modality.latents_dir] = f"{label}_latents"
    dataset = PrecomputedDataset(data_root, sources, spec=spec)
    targets = []
    for index in range(min(limit, len(dataset))):
        item = dataset[index]
        cond = item["conditions"]
        audio_text = cond.get("audio_prompt_embeds") if spec.has_audio else None
        features = TextFeatures(
            cond["video_prompt_embeds"][None].float(),
            audio_text[None].float() if audio_text is not None else None,
            cond["prompt_attention_mask"][None],
        )
        video = item.get("video_latents")
        audio = item.get("audio_latents")
        if audio is not None and not audio.get("audio_present", 1.0):
            audio = None  # a video-only sample: nothing to compare the audio with
        sidecar = Path(data_root) / f"{item['id']}.txt"
        targets.append(
            Target(
                item["id"],
                sidecar.read_text(errors="replace").strip() if sidecar.is_file() else None,
                features,
                video["latents"][None].float() if video is not None else None,
                audio["latents"][None].float() if audio is not None else None,
                float(video.get("fps", 24.0)) if video is not None else 24.0,
            )
        )
    return targets


def target_spec(target: Target, spec: FamilySpec, seed: int, steps: int) -> SampleSpec:
    """The clip's own size, ``steps`` Euler steps, guidance off."""
    tc, sc = spec.temporal_compression, spec.spatial_compression
    if target.video is not None:
        _, _, latent_frames, latent_height, latent_width = target.video.shape
        frames, height, width = (latent_frames - 1) * tc + 1, latent_height * sc, latent_width * sc
    else:  # audio only: as many video frames as the audio lasts (the sampler sizes the audio from them)
        seconds = target.audio.shape[2] / spec.audio_latents_per_second
        frames, height, width = max(0, round((seconds * target.fps - 1) / tc)) * tc + 1, sc, sc
    return SampleSpec(
        width=width,
        height=height,
        frames=frames,
        fps=target.fps,
        steps=steps,
        seed=seed,
        video_cfg=1.0,
        audio_cfg=1.0,
        video_stg=0.0,
        audio_stg=0.0,
        stg_blocks=(),
        rescale=0.0,
        generate_video=target.video is not None,
        generate_audio=target.audio is not None and spec.has_audio,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------------------------------------------------
def _rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.dim() == 4:  # audio [1, 8, T, 16]: the sampler sizes T from the frames, preprocessing from the waveform
        steps = min(a.shape[2], b.shape[2])
        a, b = a[:, :, :steps], b[:, :, :steps]
    return (a.float() - b.float()).pow(2).mean().sqrt().item()


def _log_spectrogram(waveform: torch.Tensor) -> torch.Tensor:
    """``[C, S]`` -> log-magnitude STFT of the channel mean ``[bins, frames]``."""
    mono = waveform.float().mean(dim=0)
    window = torch.hann_window(512)
    return torch.log1p(torch.stft(mono, 512, 128, window=window, return_complex=True).abs())


def _spectrogram_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    sa, sb = _log_spectrogram(a), _log_spectrogram(b)
    n = min(sa.shape[1], sb.shape[1])
    return (sa[:, :n] - sb[:, :n]).abs().mean().item()


def _pixel_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """uint8 ``[F, H, W, 3]`` frames -> mean absolute difference in [0, 1] units."""
    n = min(a.shape[0], b.shape[0])
    return (a[:n].float() - b[:n].float()).abs().mean().item() / 255.0


# ---------------------------------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class Measurement:
    """One sample's distances to its clip (``latent video``, ``pixels video``, ``latent audio``, ...)."""

    clip: str
    seed: int
    variant: str
    distances: dict[str, float]


@dataclass
class Efficacy:
    """Every measurement of a comparison, with what it compared.

    Attributes:
        label: what the trained weights are (e.g. the checkpoint file name).
        settings: how it was sampled.
        captions: clip id -> caption (None when unknown).
        measurements: one per (clip, seed, variant).
        media: clip id -> {"clip" | "base" | "tuned" -> file}, the first seed's decoded media (paths as written).
    """

    label: str
    settings: EfficacySettings
    captions: dict[str, str | None] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    media: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        """The distances measured, latent ones first."""
        names = {name for m in self.measurements for name in m.distances}
        return sorted(names, key=lambda n: (not n.startswith("latent"), n))

    def mean(self, variant: str, metric: str, clip: str | None = None) -> float:
        values = [
            m.distances[metric]
            for m in self.measurements
            if m.variant == variant and metric in m.distances and (clip is None or m.clip == clip)
        ]
        return sum(values) / len(values) if values else float("nan")

    def closer(self, metric: str, clip: str | None = None) -> float:
        """``1 - tuned / base`` of the mean distance: > 0 when the trained samples are closer to the clips."""
        base = self.mean("base", metric, clip)
        return 1.0 - self.mean("tuned", metric, clip) / base if base > 0 else float("nan")

    def ratios(self, metric: str) -> dict[tuple[str, int], float]:
        """(clip, seed) -> tuned / base distance, for every pair drawn from the same seed."""
        found: dict[tuple[str, int], dict[str, float]] = {}
        for m in self.measurements:
            if metric in m.distances:
                found.setdefault((m.clip, m.seed), {})[m.variant] = m.distances[metric]
        return {k: v["tuned"] / v["base"] for k, v in found.items() if len(v) == 2 and v["base"] > 0}

    def overall(self) -> float:
        """The headline number: the mean of ``closer`` over the latent distances (video and audio alike)."""
        values = [self.closer(m) for m in self.metrics if m.startswith("latent")]
        values = [v for v in values if not math.isnan(v)]
        return sum(values) / len(values) if values else float("nan")

    def verdict(self) -> str:
        """One line, e.g. ``samples moved 42 % closer to the training clips (latent video 45 %, ...)``."""
        overall = self.overall()
        if math.isnan(overall):
            return "no comparison: no training clip could be measured"
        parts = ", ".join(f"{name} {100 * self.closer(name):+.0f} %" for name in self.metrics)
        clips = len(self.captions)
        how = f"{clips} clip{'s' if clips != 1 else ''} x {len(self.settings.seeds)} seeds, {self.settings.steps} steps"
        if abs(overall) < 0.01:
            head = f"samples did not move toward the training clips ({100 * overall:+.1f} %)"
        elif overall > 0:
            head = f"samples moved {100 * overall:.0f} % closer to the training clips"
        else:
            head = f"samples moved {-100 * overall:.0f} % further from the training clips"
        return f"{head} ({parts}; {how})"

    def to_dict(self) -> dict:
        """Plain JSON data, also what the HTML report reads (with the summary numbers computed)."""
        return {
            "label": self.label,
            "settings": {**asdict(self.settings), "seeds": list(self.settings.seeds)},
            "captions": self.captions,
            "measurements": [asdict(m) for m in self.measurements],
            "media": self.media,
            "verdict": self.verdict(),
            "overall": self.overall(),
            "summary": {
                metric: {
                    "base": self.mean("base", metric),
                    "tuned": self.mean("tuned", metric),
                    "closer": self.closer(metric),
                    "per_clip": {
                        clip: {
                            "base": self.mean("base", metric, clip),
                            "tuned": self.mean("tuned", metric, clip),
                            "closer": self.closer(metric, clip),
                        }
                        for clip in self.captions
                    },
                }
                for metric in self.metrics
            },
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Efficacy":
        settings = {**data["settings"], "seeds": tuple(data["settings"]["seeds"])}
        return cls(
            data["label"],
            EfficacySettings(**settings),
            dict(data["captions"]),
            [Measurement(**m) for m in data["measurements"]],
            {k: dict(v) for k, v in data.get("media", {}).items()},
        )

    def save(self, path: Path) -> Path:
        return atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: Path) -> "Efficacy":
        return cls.from_dict(json.loads(Path(path).read_text()))


# ---------------------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------------------
def _file_name(sample_id: str) -> str:
    return sample_id.replace("/", "__")


def _decode(model: LTXModel, video, audio, device, seed: int):
    """(frames, waveform, rate) of latents ``[1, ...]`` (None when absent)."""
    return decode_latents(model, video, audio, device, seed)


def _draw(model: LTXModel, targets: Sequence[Target], settings: EfficacySettings) -> dict[tuple[str, int], object]:
    """(clip, seed) -> generated ``Sample`` (latents on the CPU), with the model in whatever state it is now."""
    drawn = {}
    for target in targets:
        f = target.features  # in the model's dtype, as the trainer feeds them to the connectors
        audio = f.audio.to(model.dtype) if f.audio is not None else None
        features = TextFeatures(f.video.to(model.dtype), audio, f.mask)
        for seed in settings.seeds:
            spec = target_spec(target, model.spec, seed, settings.steps)
            drawn[(target.sample_id, seed)] = generate(model, features, None, spec)
    return drawn


@torch.no_grad()
def measure(
    model: LTXModel,
    targets: Sequence[Target],
    settings: EfficacySettings,
    tuned: Callable[[], AbstractContextManager],
    base: Callable[[], AbstractContextManager] = nullcontext,
    label: str = "trained weights",
    out_dir: Path | None = None,
    device: torch.device | str | None = None,
) -> Efficacy:
    """Sample every target from every seed under ``base()`` then under ``tuned()`` and measure the distances.

    Args:
        model: the model; its transformer runs where its weights are.
        targets: ``load_targets`` output.
        tuned / base: context managers that put the model into the trained / the base state for their duration
            (all base samples are drawn first, then all trained ones: one swap each).
        label: what the trained weights are, for the report.
        out_dir: where the first seed's media go (``<id>_clip.mp4``, ``<id>_base.mp4``, ``<id>_tuned.mp4``) when
            ``settings.decode``; None writes nothing.
        device: where the decoders run.
    """
    result = Efficacy(label, settings, {t.sample_id: t.caption for t in targets})
    drawn = {}
    for variant, state in (("base", base), ("tuned", tuned)):
        with state():
            drawn[variant] = _draw(model, targets, settings)
    for target in targets:
        clip = _decoded_clip(model, target, settings, device, out_dir, result)
        for variant in VARIANTS:
            for seed in settings.seeds:
                sample = drawn[variant][(target.sample_id, seed)]
                distances = {}
                if target.video is not None:
                    distances["latent video"] = _rmse(sample.video_latents, target.video)
                if target.audio is not None and sample.audio_latents is not None:
                    distances["latent audio"] = _rmse(sample.audio_latents, target.audio)
                if clip is not None:
                    frames, waveform, rate = _decode(model, sample.video_latents, sample.audio_latents, device, seed)
                    if frames is not None and clip[0] is not None:
                        distances["pixels video"] = _pixel_distance(frames, clip[0])
                    if waveform is not None and clip[1] is not None:
                        distances["spectrogram audio"] = _spectrogram_distance(waveform, clip[1])
                    if out_dir is not None and seed == settings.seeds[0]:
                        path = Path(out_dir) / f"{_file_name(target.sample_id)}_{variant}"
                        written = write_decoded(path, frames, waveform, rate, target.fps)
                        result.media.setdefault(target.sample_id, {})[variant] = str(written)
                result.measurements.append(Measurement(target.sample_id, seed, variant, distances))
    logger.info("efficacy (%s): %s", label, result.verdict())
    return result


def _decoded_clip(model, target: Target, settings, device, out_dir, result) -> tuple | None:
    """The clip's decoded frames and waveform (written for the report), or None without decoding."""
    if not settings.decode:
        return None
    frames, waveform, rate = _decode(model, target.video, target.audio, device, 0)
    if out_dir is not None:
        written = write_decoded(
            Path(out_dir) / f"{_file_name(target.sample_id)}_clip", frames, waveform, rate, target.fps
        )
        result.media.setdefault(target.sample_id, {})["clip"] = str(written)
    return frames, waveform


# ---------------------------------------------------------------------------------------------------------------------
# Trained weights from files
# ---------------------------------------------------------------------------------------------------------------------
@contextmanager
def lora_file(model: LTXModel, path: Path, strength: float = 1.0) -> Iterator[None]:
    """A LoRA file applied to ``model.transformer`` for the duration (forward hooks, removed on exit)."""
    from ltx_trainer.sampling.lora import apply_loras, read_lora

    handles = apply_loras(model.transformer, [(read_lora(path, model.diffusers_module_name), strength)])
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def full_checkpoint(model: LTXModel, path: Path) -> Iterator[None]:
    """The transformer of a full checkpoint in place of ``model.transformer`` for the duration; the base transformer
    waits on the CPU meanwhile (only one is on the device)."""
    from ltx_trainer.models.devices import device_of
    from ltx_trainer.models.families import load_model

    base = model.transformer
    device = device_of(base)
    tuned = load_model(path, None, model.dtype)
    if tuned.spec != model.spec:
        raise ValueError(
            f"{path} is {tuned.spec.family} {tuned.spec.version} ({tuned.spec.num_layers} blocks), the base model is "
            f"{model.spec.family} {model.spec.version} ({model.spec.num_layers} blocks)"
        )
    with on_device([base], "cpu"):
        model.transformer = tuned.transformer.to(device).eval()
        try:
            yield
        finally:
            model.transformer = base
