"""The one sampling runner: what ``ltx-trainer sample`` and in-training validation both do to draw samples.

Prepare once: every distinct prompt (and the negative prompt) is encoded, then the text encoder is unloaded; every
sample's conditioning media are VAE-encoded. Draw: denoise (``sampler.generate``) and decode + write
(``sampler.save_sample``); the decoders visit the runner's device only while decoding.

``sample_file`` is the whole ``sample`` verb as a library call: load the model, read the LoRAs (an IC-LoRA's header
gives the reference factors), prepare, move the transformer to the device, apply the LoRAs, draw.
"""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ltx_trainer.config import ValidationCondition, ValidationSample
from ltx_trainer.models.base import FamilySpec, LTXModel, TextFeatures
from ltx_trainer.models.devices import on_device, resolve_device
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.sampling.conditions import EncodedConditions, encode_conditions
from ltx_trainer.sampling.sampler import SampleSpec, check_geometry, generate, save_sample

Progress = Callable[[int, int], None]


@dataclass
class PreparedSample:
    """One sample ready to draw: ``index`` is the ``k`` in its file name (validation) or 1."""

    index: int
    prompt: str
    spec: SampleSpec
    conditions: EncodedConditions


def encode_prompts(model: LTXModel, prompts: list[str], needed_by: str | None = None) -> dict[str, TextFeatures]:
    """Features of each distinct prompt (on the CPU), then the text encoder is unloaded.

    Args:
        needed_by: what needs the prompts (e.g. ``"validation.samples"``), named when the text encoder is missing.
    """
    modules = model.connector_modules()  # next to the text encoder while encoding
    try:
        with on_device(modules, "cpu" if modules else None):
            features = {p: model.encode_text([p]) for p in dict.fromkeys(prompts)}
    except ModelLoadError as e:
        if needed_by is None:
            raise
        raise ModelLoadError(f"{needed_by} need the text encoder to encode their prompts once: {e}") from e
    model.unload_text_encoder()
    return features


class SampleRunner:
    """Draws samples from ``model``; the transformer runs where its weights are, the decoders visit ``device``.

    Args:
        model: any family (during training, the model being trained: its transformer carries the in-memory LoRA).
        device: where conditions are encoded and samples decoded.
    """

    def __init__(self, model: LTXModel, device: torch.device | str):
        self.model = model
        self.device = torch.device(device)
        self.features: dict[str, TextFeatures] = {}
        self.negative_prompt: str | None = None
        self.prepared: list[PreparedSample] = []

    def prepare(
        self,
        samples: Sequence[tuple[str, Sequence[ValidationCondition], SampleSpec]],
        negative_prompt: str,
        labels: Sequence[str] | None = None,
        needed_by: str | None = None,
    ) -> list[PreparedSample]:
        """Encode the prompts (then unload the text encoder) and every sample's conditions, once.

        Args:
            samples: ``(prompt, conditions, spec)`` per sample; their 1-based position is the sample index.
            labels: a prefix per sample for condition errors (e.g. ``validation.samples[0].conditions``).
        """
        prompts = [prompt for prompt, _, _ in samples]
        self.features = encode_prompts(self.model, [*prompts, negative_prompt], needed_by)
        self.negative_prompt = negative_prompt
        self.prepared = []
        for i, (prompt, conditions, spec) in enumerate(samples):
            try:
                encoded = encode_conditions(self.model, conditions, spec.geometry, self.device)
            except ValueError as e:
                if labels is None:
                    raise
                raise ValueError(f"{labels[i]}: {e}") from e
            self.prepared.append(PreparedSample(i + 1, prompt, spec, encoded))
        return self.prepared

    @torch.no_grad()
    def draw(
        self,
        item: PreparedSample,
        path: Path,
        progress: Progress | None = None,
        decoding: Callable[[], AbstractContextManager] = nullcontext,
    ) -> Path:
        """Denoise ``item`` and write it to ``path`` (the suffix becomes .mp4, .png or .wav); returns the file.

        Args:
            progress: called as ``progress(step, steps)`` after every denoising step.
            decoding: a context manager around decoding and writing (e.g. a status line).
        """
        negative = self.features[self.negative_prompt]
        sample = generate(self.model, self.features[item.prompt], negative, item.spec, item.conditions, progress)
        with decoding():
            return save_sample(self.model, sample, path, item.spec.fps, self.device, item.spec.seed)


def _fill_reference_factors(conditions: list[dict], header: tuple[int, int]) -> list[dict]:
    """Reference conditions without factors take them from the IC-LoRA header (else 1)."""
    filled = []
    for cond in conditions:
        if cond.get("type") == "reference":
            cond = dict(cond)
            if cond.get("downscale_factor") is None:
                cond["downscale_factor"] = header[0]
            if cond.get("temporal_scale_factor") is None:
                cond["temporal_scale_factor"] = header[1]
        filled.append(cond)
    return filled


@dataclass
class SampleResult:
    path: Path
    family: FamilySpec
    spec: SampleSpec


def sample_file(
    model_path: Path,
    prompt: str,
    output: Path,
    conditions: list[dict],
    text_encoder: Path | None = None,
    loras: Sequence[str] = (),
    merge: bool = False,
    negative_prompt: str | None = None,
    width: int = 768,
    height: int = 512,
    frames: int = 121,
    fps: float = 24.0,
    seed: int = 42,
    overrides: dict | None = None,
    no_audio: bool = False,
    device: str | None = None,
    status: Callable[[str], object] | None = None,
    progress: Callable[[int], Progress] | None = None,
    video_decoder: str = "conv",
) -> SampleResult:
    """Generate one sample from a model file, LoRA files (``PATH[:STRENGTH]``), a prompt and condition entries
    (``validation.samples[].conditions`` dicts; a reference without factors takes the IC-LoRA header's).

    Args:
        overrides: ``SampleSpec`` fields over the family's defaults (steps, guidance scales, ``stg_blocks``).
        status: ``status(text)`` returns a context manager shown while a phase runs (e.g. rich's ``console.status``).
        progress: ``progress(steps)`` returns the per-step callback of the denoising loop.
        video_decoder: ``"conv"`` or ``"diffusion"`` (``LTXModel.select_video_decoder``).

    Raises:
        ValueError: a bad size, condition or LoRA (pydantic's ``ValidationError`` for a malformed condition).
        ModelLoadError: the model or text encoder can't be used.
    """
    from ltx_trainer.config import DEFAULT_NEGATIVE_PROMPT
    from ltx_trainer.models.families import load_model
    from ltx_trainer.sampling.lora import apply_loras, parse_lora_arg, read_lora

    def phase(text: str):
        return status(text) if status is not None else nullcontext()

    target = resolve_device(device)
    dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
    model = load_model(model_path, text_encoder, dtype=dtype)
    model.select_video_decoder(video_decoder)
    fam = model.spec
    read = [(read_lora(path, model.diffusers_module_name), strength) for path, strength in map(parse_lora_arg, loras)]
    header = next((scale for f, _ in read if (scale := f.reference_scale()) is not None), (1, 1))
    request = ValidationSample(prompt=prompt, conditions=_fill_reference_factors(conditions, header))
    spec = SampleSpec.family_defaults(
        fam, width=width, height=height, frames=frames, fps=fps, seed=seed, **(overrides or {})
    )
    if no_audio or not fam.has_audio:
        spec = replace(spec, generate_audio=False)
    check_geometry(spec, fam, "--width/--height/--frames")
    runner = SampleRunner(model, target)
    negative = negative_prompt if negative_prompt is not None else DEFAULT_NEGATIVE_PROMPT
    with phase("encoding the prompts"):
        runner.features = encode_prompts(model, [prompt, negative])
        runner.negative_prompt = negative
    model.transformer.to(target)
    model.connectors_to(target)
    apply_loras(model.transformer, read, merge=merge)
    with phase("encoding the conditions"):
        encoded = encode_conditions(model, request.conditions, spec.geometry, target)
    item = PreparedSample(1, prompt, spec, encoded)
    path = runner.draw(item, output, progress(spec.steps) if progress is not None else None, lambda: phase("decoding"))
    return SampleResult(path, fam, spec)
