"""The training configuration: a pydantic schema that reads the official ltx-trainer YAML layout unchanged.

One sub-model per YAML section (``model``, ``lora``, ``training_strategy``, ``optimization``, ``acceleration``,
``data``, ``validation``, ``checkpoints``, ``hub``, ``wandb``, ``tensorboard``, ``flow_matching``, and our
``pipeline``: the stage options of ``run-pipeline``), all with
``extra="forbid"`` and ``frozen=True``: unknown keys are errors and code derives variants with
``cfg.model_copy(update=...)`` instead of mutating a loaded config.

Deprecated official forms (``validation.prompts``/``images``/``reference_videos``, ``guidance_scale``,
``stg_scale``/``stg_mode``) are migrated in ``mode="before"`` validators that copy the user's dict and log a warning.
The legacy ``text_to_video``/``video_to_video`` strategies still load and convert with ``as_flexible()``.

Filesystem checks are kept out of the models so that a config loads on any machine (``config show``);
``check_paths(cfg)`` runs them and returns every problem at once.

Size note: this module is over the house limit of ~600 lines because the official schema is one flat file that users
know by heart (field names, defaults, section order), and the error translator has to walk that same schema; splitting
it would scatter one contract across several files. Checks that need the machine live in ``config_checks.py``.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from ltx_trainer import config_checks, logger
from ltx_trainer.errors import UsageError

# Our own wording (the official default is a similar list of visual and audio defects).
DEFAULT_NEGATIVE_PROMPT = (
    "worst quality, low quality, blurry, out of focus, overexposed, underexposed, washed-out colors, heavy noise, "
    "grainy texture, flickering, jittery or inconsistent motion, sudden jumps, camera shake, distorted proportions, "
    "deformed face, deformed hands, extra limbs, warped or garbled text, compression artifacts, watermark, "
    "unnatural transitions, cartoonish or CGI look when realism is expected, muffled or distorted audio, clipping, "
    "hiss, hum, robotic voice, echo, off-sync lips, speech that does not match the scene, unwanted silence."
)

# acceleration.quantization: our modes, and the official ltx-trainer names mapped onto them (models/quantization.py,
# docs/configuration.md). int2-quanto is accepted by the schema only to be refused with a reason.
QUANTIZATION_MODES = ("fp8", "fp8-scaled", "int8", "int4", "nf4")
QUANTIZATION_ALIASES = {
    "fp8-quanto": "fp8-scaled",
    "fp8uz-quanto": "fp8-scaled",
    "int8-quanto": "int8",
    "int4-quanto": "int4",
}
# int4: torchao 0.18's CPU int4 layout runs forward only (no derivative for aten::_weight_int4pack_mm_for_cpu), so
# no LoRA trains through it; nf4 (bitsandbytes >= 0.50) runs on both.
QUANTIZATION_CUDA_ONLY = ("int4",)
QuantizationOptions = Literal[
    "fp8",
    "fp8-scaled",
    "int8",
    "int4",
    "nf4",
    "int8-quanto",
    "int4-quanto",
    "int2-quanto",
    "fp8-quanto",
    "fp8uz-quanto",
]


class ConfigError(UsageError):
    """A config file that cannot be read or validated (exit code 2; still a ``ValueError``).

    Args:
        message (str): the full message; its first line names the source file.
        problems (list[str] | None): one readable line per problem (``key.path: what is wrong``).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class ConfigSection(BaseModel):
    """Base of every config model: unknown keys are errors and loaded configs are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        """YAML ``true`` is not a number: without this, ``steps: true`` trains one step."""
        if not isinstance(data, Mapping):
            return data
        for name, value in data.items():
            if isinstance(value, bool) and name in cls.model_fields:
                annotation = cls.model_fields[name].annotation
                types = set(get_args(annotation)) if get_origin(annotation) in (Union, UnionType) else {annotation}
                if types & {int, float} and bool not in types:
                    raise ValueError(f"{name}: must be a number, not {str(value).lower()}")
        return data


# ---------------------------------------------------------------------------------------------------------------------
# model, lora
# ---------------------------------------------------------------------------------------------------------------------


class ModelConfig(ConfigSection):
    """``model:`` the base checkpoint and the training mode."""

    model_path: str | Path = Field(
        description="Local path to a unified LTX checkpoint, or the transformer file of a split pack."
    )
    text_encoder_path: str | Path | None = Field(
        default=None,
        description="Gemma directory (unified layout) or packed text-encoder .safetensors (split pack).",
    )
    video_vae_path: str | Path | None = Field(
        default=None, description="Standalone video VAE .safetensors; required for split packs."
    )
    audio_vae_path: str | Path | None = Field(
        default=None, description="Standalone audio VAE/vocoder .safetensors; required for split packs that use audio."
    )
    training_mode: Literal["lora", "full"] = Field(default="lora", description="LoRA adapters or a full fine-tune.")
    load_checkpoint: str | Path | None = Field(
        default=None,
        description="A .safetensors checkpoint to start from, or a directory (its latest *step_* file is used).",
    )

    @field_validator("model_path")
    @classmethod
    def _local_model_path(cls, value: str | Path) -> str | Path:
        if str(value).startswith(("http://", "https://")):
            raise ValueError(f"must be a local path, not a URL ({value}); download the checkpoint first")
        return value


class LoraConfig(ConfigSection):
    """``lora:`` the PEFT adapter (required when ``model.training_mode`` is ``lora``): LoRA, DoRA, LoKr or LoHa."""

    adapter: Literal["lora", "dora", "lokr", "loha"] = Field(
        default="lora",
        description="peft adapter: lora (LoraConfig), dora (LoraConfig use_dora), lokr (LoKrConfig), loha (LoHaConfig)",
    )
    rank: int = Field(default=64, ge=2, description="LoRA rank r.")
    alpha: int = Field(default=64, ge=1, description="LoRA alpha; keep alpha == rank to match ltx-core inference.")
    dropout: float = Field(default=0.0, ge=0.0, le=1.0, description="Dropout on the LoRA branch (lora, dora).")
    target_modules: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["to_k", "to_q", "to_v", "to_out.0"],
        min_length=1,
        description="PEFT module-name suffixes; short names hit video, audio and cross-modal attention alike.",
    )
    rank_dropout: float | None = Field(
        default=None, ge=0.0, lt=1.0, description="lokr, loha: chance of dropping each output row of the update."
    )
    module_dropout: float | None = Field(
        default=None, ge=0.0, lt=1.0, description="lokr, loha: chance of skipping a module's update in a step."
    )
    factor: int | None = Field(
        default=None, description="lokr: Kronecker factor of each dimension (-1: the most balanced split)."
    )
    decompose_both: bool | None = Field(
        default=None, description="lokr: also split the smaller Kronecker matrix into rank-r factors."
    )

    @model_validator(mode="after")
    def _check_adapter_keys(self) -> LoraConfig:
        given = {name: getattr(self, name) for name in config_checks.ADAPTER_ONLY_KEYS}
        issues = config_checks.adapter_issues(self.adapter, given, self.dropout)
        if issues:
            raise ValueError("\n".join(issues))
        return self


# ---------------------------------------------------------------------------------------------------------------------
# training_strategy
# ---------------------------------------------------------------------------------------------------------------------


class FirstFrameCondition(ConfigSection):
    """Latent frame 0 is kept clean (timestep 0) and excluded from the loss. Video only."""

    type: Literal["first_frame"] = "first_frame"
    probability: float = Field(default=1.0, ge=0.0, le=1.0, description="Chance of applying the condition.")


class PrefixCondition(ConfigSection):
    """The first ``temporal_boundary`` latent frames (or audio latent steps) are clean conditioning."""

    type: Literal["prefix"] = "prefix"
    temporal_boundary: int = Field(ge=1, description="Latent frames (video) or audio latent steps (audio).")
    probability: float = Field(default=1.0, ge=0.0, le=1.0, description="Chance of applying the condition.")


class SuffixCondition(ConfigSection):
    """The last ``temporal_boundary`` latent frames (or audio latent steps) are clean conditioning."""

    type: Literal["suffix"] = "suffix"
    temporal_boundary: int = Field(ge=1, description="Latent frames (video) or audio latent steps (audio).")
    probability: float = Field(default=1.0, ge=0.0, le=1.0, description="Chance of applying the condition.")


class SpatialCropCondition(ConfigSection):
    """A pixel rectangle is clean conditioning (outpainting). Video only."""

    type: Literal["spatial_crop"] = "spatial_crop"
    spatial_region: tuple[int, int, int, int] = Field(description="(y1, x1, y2, x2) in pixels.")
    probability: float = Field(default=1.0, ge=0.0, le=1.0, description="Chance of applying the condition.")


class MaskCondition(ConfigSection):
    """A per-sample precomputed mask (1 = conditioning) picks the clean tokens (inpainting)."""

    type: Literal["mask"] = "mask"
    mask_dir: str = Field(description="Folder of masks under data.preprocessed_data_root.")
    probability: float = Field(default=1.0, ge=0.0, le=1.0, description="Chance of applying the condition.")


class ReferenceCondition(ConfigSection):
    """IC-LoRA: clean reference latents are concatenated to the sequence (one draw per batch)."""

    type: Literal["reference"] = "reference"
    latents_dir: str = Field(description="Folder of reference latents under data.preprocessed_data_root.")
    probability: float = Field(default=1.0, ge=0.0, le=1.0, description="Chance of applying the condition.")


ConditionConfig = Annotated[
    FirstFrameCondition | PrefixCondition | SuffixCondition | SpatialCropCondition | MaskCondition | ReferenceCondition,
    Field(discriminator="type"),
]


class ModalityConfig(ConfigSection):
    """How one modality (video or audio) takes part in flexible training."""

    is_generated: bool = Field(description="True: denoised and in the loss. False: clean conditioning only.")
    latents_dir: str = Field(description="Folder of latents under data.preprocessed_data_root.")
    conditions: list[ConditionConfig] = Field(
        default_factory=list, description="Conditions on top of the always-present text conditioning."
    )
    loss_weight: float = Field(default=1.0, ge=0.0, description="Weight of this modality's loss term (ours).")


class StrategyConfigBase(ConfigSection):
    """Shared surface of the training strategies: the data folders they read and their flexible equivalent."""

    def data_source_keys(self) -> dict[str, tuple[str, str]]:
        """Folders under the data root this strategy reads → (batch key, config key that names the folder)."""
        raise NotImplementedError

    def get_data_sources(self) -> dict[str, str]:
        """Folders under the data root this strategy reads, mapped to their batch keys (official API)."""
        return {directory: batch_key for directory, (batch_key, _) in self.data_source_keys().items()}

    def as_flexible(self) -> FlexibleStrategyConfig:
        """The equivalent ``flexible`` strategy."""
        raise NotImplementedError


class FlexibleStrategyConfig(StrategyConfigBase):
    """``training_strategy: {name: flexible}`` every conditioning scenario expressed as configuration."""

    name: Literal["flexible"] = "flexible"
    video: ModalityConfig | None = Field(default=None, description="Video modality; None = no video.")
    audio: ModalityConfig | None = Field(default=None, description="Audio modality; None = no audio.")

    @model_validator(mode="after")
    def _check_modalities(self) -> FlexibleStrategyConfig:
        issues = []
        present = [m for m in (self.video, self.audio) if m is not None]
        if len(present) == 2 and not any(m.is_generated for m in present):
            issues.append(
                "audio.is_generated: video and audio are both frozen (is_generated: false), so nothing is trained; "
                "set is_generated: true on the modality to generate"
            )
        elif not any(m.is_generated for m in present):
            issues.append("at least one of video or audio must set is_generated: true")
        for label, modality in (("video", self.video), ("audio", self.audio)):
            for i, cond in enumerate(modality.conditions if modality is not None else []):
                limit = config_checks.MAX_TEMPORAL_BOUNDARY[label]
                if isinstance(cond, PrefixCondition | SuffixCondition) and cond.temporal_boundary > limit:
                    unit = "latent frames" if label == "video" else "audio latent steps"
                    issues.append(
                        f"{label}.conditions[{i}].temporal_boundary: {cond.temporal_boundary} {unit} is longer than "
                        f"any clip (at most {limit}), so every token would be conditioning and nothing would train"
                    )
        if self.audio is not None:
            for i, cond in enumerate(self.audio.conditions):
                if cond.type in ("first_frame", "spatial_crop"):
                    issues.append(
                        f"audio.conditions[{i}].type: '{cond.type}' is video-only (audio allows prefix, suffix, "
                        "mask, reference)"
                    )
        if issues:
            raise ValueError("\n".join(issues))
        return self

    def data_source_keys(self) -> dict[str, tuple[str, str]]:
        """Folders this strategy reads → (batch key, config key that names the folder)."""
        sources = {"conditions": ("conditions", "data.preprocessed_data_root")}
        for label, modality in (("video", self.video), ("audio", self.audio)):
            if modality is None:
                continue
            sources[modality.latents_dir] = (f"{label}_latents", f"training_strategy.{label}.latents_dir")
            for i, cond in enumerate(modality.conditions):
                key = f"training_strategy.{label}.conditions[{i}]"
                if isinstance(cond, ReferenceCondition):
                    sources[cond.latents_dir] = (cond.latents_dir, f"{key}.latents_dir")
                elif isinstance(cond, MaskCondition):
                    sources[cond.mask_dir] = (cond.mask_dir, f"{key}.mask_dir")
        return sources

    def as_flexible(self) -> FlexibleStrategyConfig:
        """Already flexible: returns itself (so callers can convert any strategy uniformly)."""
        return self


class TextToVideoConfig(StrategyConfigBase):
    """Deprecated ``text_to_video`` strategy; prefer ``flexible`` (``as_flexible()`` gives the equivalent)."""

    name: Literal["text_to_video"] = "text_to_video"
    first_frame_conditioning_p: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Chance of keeping latent frame 0 clean (image-to-video)."
    )
    with_audio: bool = Field(default=False, description="Also generate audio from audio_latents_dir.")
    audio_latents_dir: str = Field(default="audio_latents", description="Folder of audio latents.")

    @model_validator(mode="after")
    def _warn_deprecated(self) -> TextToVideoConfig:
        logger.warning(
            "training_strategy.name: 'text_to_video' is deprecated; it loads as before, "
            "and `as_flexible()` shows the equivalent 'flexible' strategy"
        )
        return self

    def data_source_keys(self) -> dict[str, tuple[str, str]]:
        """Folders this strategy reads → (batch key, config key that names the folder)."""
        sources = {
            "latents": ("latents", "training_strategy.name"),
            "conditions": ("conditions", "data.preprocessed_data_root"),
        }
        if self.with_audio:
            sources[self.audio_latents_dir] = ("audio_latents", "training_strategy.audio_latents_dir")
        return sources

    def as_flexible(self) -> FlexibleStrategyConfig:
        """The equivalent flexible strategy: video from ``latents`` with a first-frame condition, optional audio."""
        video = ModalityConfig(
            is_generated=True,
            latents_dir="latents",
            conditions=[FirstFrameCondition(probability=self.first_frame_conditioning_p)],
        )
        audio = ModalityConfig(is_generated=True, latents_dir=self.audio_latents_dir) if self.with_audio else None
        return FlexibleStrategyConfig(video=video, audio=audio)


class VideoToVideoConfig(StrategyConfigBase):
    """Deprecated ``video_to_video`` (IC-LoRA) strategy; prefer ``flexible`` with a ``reference`` condition."""

    name: Literal["video_to_video"] = "video_to_video"
    first_frame_conditioning_p: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Chance of keeping latent frame 0 clean."
    )
    reference_latents_dir: str = Field(default="reference_latents", description="Folder of reference latents.")

    @model_validator(mode="after")
    def _warn_deprecated(self) -> VideoToVideoConfig:
        logger.warning(
            "training_strategy.name: 'video_to_video' is deprecated; it loads as before, "
            "and `as_flexible()` shows the equivalent 'flexible' strategy"
        )
        return self

    def data_source_keys(self) -> dict[str, tuple[str, str]]:
        """Folders this strategy reads → (batch key, config key that names the folder)."""
        return {
            "latents": ("latents", "training_strategy.name"),
            "conditions": ("conditions", "data.preprocessed_data_root"),
            self.reference_latents_dir: ("ref_latents", "training_strategy.reference_latents_dir"),
        }

    def as_flexible(self) -> FlexibleStrategyConfig:
        """The equivalent flexible strategy: first-frame condition plus a ``reference`` condition on the video."""
        video = ModalityConfig(
            is_generated=True,
            latents_dir="latents",
            conditions=[
                FirstFrameCondition(probability=self.first_frame_conditioning_p),
                ReferenceCondition(latents_dir=self.reference_latents_dir),
            ],
        )
        return FlexibleStrategyConfig(video=video)


def _strategy_tag(value: Any) -> str | None:
    # Official behaviour: a strategy mapping without `name` is text_to_video.
    if isinstance(value, Mapping):
        return value.get("name", "text_to_video")
    return getattr(value, "name", None)


TrainingStrategyConfig = Annotated[
    Annotated[TextToVideoConfig, Tag("text_to_video")]
    | Annotated[VideoToVideoConfig, Tag("video_to_video")]
    | Annotated[FlexibleStrategyConfig, Tag("flexible")],
    Discriminator(_strategy_tag),
]


# ---------------------------------------------------------------------------------------------------------------------
# optimization, acceleration, data
# ---------------------------------------------------------------------------------------------------------------------


class EmaConfig(ConfigSection):
    """``optimization.ema:`` an exponential moving average of the trainable weights (ours): exported next to the raw
    weights (``*_ema.safetensors``), saved with the training state, and used by validation."""

    decay: float = Field(default=0.999, gt=0.0, lt=1.0, description="ema = decay * ema + (1 - decay) * weights.")
    update_every: int = Field(default=1, ge=1, description="Optimizer steps between two EMA updates.")
    start_step: int = Field(
        default=0, ge=0, description="First step averaged (a copy of the weights then); earlier steps are not."
    )


class OptimizationConfig(ConfigSection):
    """``optimization:`` optimizer, schedule and batch shape."""

    learning_rate: float = Field(default=5e-4, gt=0.0, description="Peak learning rate.")
    steps: int = Field(default=3000, ge=1, description="Optimizer steps to train.")
    batch_size: int = Field(default=2, ge=1, description="Samples per device per micro-step.")
    gradient_accumulation_steps: int = Field(default=1, ge=1, description="Micro-steps per optimizer step.")
    max_grad_norm: float = Field(default=1.0, ge=0.0, description="Gradient clipping norm; 0 disables clipping.")
    optimizer_type: Literal["adamw", "adamw8bit", "prodigy", "adamw_schedulefree", "came"] = Field(
        default="adamw",
        description="torch AdamW, bnb 8-bit AdamW, or pytorch-optimizer's Prodigy, ScheduleFreeAdamW, CAME.",
    )
    optimizer_params: dict[str, Any] = Field(
        default_factory=dict, description="Extra optimizer keyword arguments (betas, weight_decay, ...; ours)."
    )
    ema: EmaConfig | None = Field(default=None, description="Exponential moving average of the trainable weights.")
    scheduler_type: Literal["constant", "linear", "cosine", "cosine_with_restarts", "polynomial", "step"] = Field(
        default="linear", description="Learning-rate schedule after warmup."
    )
    scheduler_params: dict[str, Any] = Field(default_factory=dict, description="Extra scheduler keyword arguments.")
    enable_gradient_checkpointing: bool = Field(default=False, description="Trade compute for activation memory.")
    warmup_steps: int = Field(default=0, ge=0, description="Linear warmup steps before the schedule (ours).")
    caption_dropout: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Chance of training a sample on empty-prompt features (ours)."
    )
    nonfinite: Literal["stop", "skip"] = Field(
        default="stop",
        description="A non-finite loss or gradient: stop naming the samples (stop) or skip that update (skip) (ours).",
    )

    @model_validator(mode="after")
    def _check_schedule(self) -> OptimizationConfig:
        issues = []
        if self.warmup_steps and self.warmup_steps >= self.steps:
            issues.append(
                f"warmup_steps: {self.warmup_steps} is not below steps ({self.steps}), so the learning rate never "
                f"reaches learning_rate; use at most {max(self.steps // 10, 0)} (about 10% of steps) or 0"
            )
        issues += config_checks.optimizer_issues(
            self.optimizer_type, self.optimizer_params, self.scheduler_type, self.learning_rate, self.ema is not None
        )
        allowed = config_checks.SCHEDULER_PARAMS[self.scheduler_type]
        unknown = config_checks.unknown_params(self.scheduler_params, allowed)
        if unknown:
            issues.append(
                f"scheduler_params: unknown keys {unknown} for scheduler_type {self.scheduler_type!r} "
                f"(allowed: {sorted(allowed) or 'none'})"
            )
        if issues:
            raise ValueError("\n".join(issues))
        return self


class AccelerationConfig(ConfigSection):
    """``acceleration:`` precision, quantization and memory switches."""

    mixed_precision_mode: Literal["no", "fp16", "bf16"] | None = Field(
        default="bf16", description="Passed to accelerate's mixed_precision."
    )
    quantization: QuantizationOptions | None = Field(default=None, description="Quantize the frozen base (LoRA).")

    @field_validator("quantization")
    @classmethod
    def _check_quantization(cls, value: str | None) -> str | None:
        if value == "int2-quanto":
            raise ValueError(
                "'int2-quanto' has no maintained 2-bit backend (optimum-quanto is unmaintained); use 'nf4', 'int4' "
                "(CUDA) or 'int8'"
            )
        mode = QUANTIZATION_ALIASES.get(value, value)
        if mode in QUANTIZATION_CUDA_ONLY and config_checks.device_kind() != "cuda":
            raise ValueError(
                f"{value!r} needs a CUDA GPU (training runs on the CPU here, where torchao's int4 has no backward); "
                "use 'nf4' or 'int8'"
            )
        if mode == "nf4" and importlib.util.find_spec("bitsandbytes") is None:
            raise ValueError(f"{value!r} needs bitsandbytes: pip install 'ltx-trainer[quantization]'")
        return value

    load_text_encoder_in_8bit: bool = Field(
        default=False,
        description="Text encoder (Gemma / T5) in 8 bit for validation prompts and caption dropout: bitsandbytes "
        "on CUDA, torchao int8 weight-only on a CPU.",
    )
    load_text_encoder_in_4bit: bool = Field(
        default=False, description="Text encoder (Gemma) in 4 bit: bitsandbytes NF4, CUDA only."
    )
    offload_optimizer_during_validation: bool = Field(
        default=False, description="Move optimizer state to CPU while validation samples are drawn."
    )
    blocks_to_swap: int | str = Field(
        default=0,
        description="Transformer blocks kept in host RAM and brought to the GPU just ahead of use (0 = off; a count "
        'or a percentage such as "50%").',
    )

    @field_validator("blocks_to_swap")
    @classmethod
    def _check_blocks_to_swap(cls, value: int | str) -> int | str:
        if isinstance(value, bool) or (isinstance(value, int) and value < 0):
            raise ValueError(
                f"{value!r} is not a block count; use 0 (off), a positive count or a percentage like '50%'"
            )
        if isinstance(value, str):
            number = value.strip().removesuffix("%")
            try:
                percent = float(number)
            except ValueError:
                percent = -1.0
            if not value.strip().endswith("%") or not 0 <= percent <= 100:
                raise ValueError(f"{value!r} is neither a block count nor a percentage between '0%' and '100%'")
        return value

    @model_validator(mode="after")
    def _one_text_encoder_precision(self) -> AccelerationConfig:
        if self.load_text_encoder_in_8bit and self.load_text_encoder_in_4bit:
            raise ValueError("load_text_encoder_in_4bit: set only one of load_text_encoder_in_8bit / _in_4bit")
        return self

    @property
    def text_encoder_bits(self) -> int | None:
        """8, 4 or None (full precision): what ``models/text_encoders.py`` loads the text encoder in."""
        return 8 if self.load_text_encoder_in_8bit else 4 if self.load_text_encoder_in_4bit else None


class DataConfig(ConfigSection):
    """``data:`` where preprocessed latents and text features live."""

    preprocessed_data_root: str = Field(
        description="Folder written by preprocessing (a .precomputed/ subfolder inside it is used if present)."
    )
    num_dataloader_workers: int = Field(default=2, ge=0, description="DataLoader worker processes (0 = inline).")

    @field_validator("preprocessed_data_root")
    @classmethod
    def _expand_root(cls, value: str) -> str:
        return str(Path(value).expanduser().resolve())


# ---------------------------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------------------------


class _OneModality(ConfigSection):
    """Validation inputs that carry exactly one of ``video`` / ``audio``."""

    video: str | None = Field(default=None, description="Video file (exactly one of video/audio).")
    audio: str | None = Field(default=None, description="Audio file (exactly one of video/audio).")

    @model_validator(mode="after")
    def _exactly_one(self) -> _OneModality:
        if (self.video is None) == (self.audio is None):
            raise ValueError("video: set exactly one of video or audio")
        return self


class ValidationFirstFrame(ConfigSection):
    """Condition the first frame on an image (or the first frame of a video)."""

    type: Literal["first_frame"] = "first_frame"
    image_or_video: str | Path = Field(description="Image, or video whose first frame is used.")


class ValidationPrefix(_OneModality):
    """Extend forward from a clip's start (video: num_frames, VAE-aligned; audio: duration in seconds)."""

    type: Literal["prefix"] = "prefix"
    num_frames: int | None = Field(default=None, ge=1, description="Video prefix frames; (n - 1) % T == 0.")
    duration: float | None = Field(default=None, gt=0, description="Audio prefix seconds.")


class ValidationSuffix(_OneModality):
    """Extend backward from a clip's end (video: num_frames, VAE-aligned; audio: duration in seconds)."""

    type: Literal["suffix"] = "suffix"
    num_frames: int | None = Field(default=None, ge=1, description="Video suffix frames; n % T == 0.")
    duration: float | None = Field(default=None, gt=0, description="Audio suffix seconds.")


class ValidationSpatialCrop(ConfigSection):
    """Outpaint around a pixel region of a video."""

    type: Literal["spatial_crop"] = "spatial_crop"
    video: str = Field(description="Source video.")
    spatial_region: tuple[int, int, int, int] = Field(description="(y1, x1, y2, x2) in pixels.")


class ValidationMask(_OneModality):
    """Inpaint a video or audio clip where ``mask`` is 0."""

    type: Literal["mask"] = "mask"
    mask: str = Field(description="Mask file (1 = keep as conditioning).")


class ValidationReference(_OneModality):
    """IC-LoRA reference clip concatenated to the sequence."""

    type: Literal["reference"] = "reference"
    downscale_factor: int = Field(default=1, ge=1, description="Reference is encoded at 1/n resolution.")
    temporal_scale_factor: int = Field(default=1, ge=1, description="Reference keeps every n-th frame.")
    include_in_output: bool = Field(default=False, description="Put the reference beside the output video.")


class ValidationVideoToAudio(ConfigSection):
    """Generate audio for a given (frozen) video."""

    type: Literal["video_to_audio"] = "video_to_audio"
    video: str = Field(description="Video kept clean; audio is generated.")


class ValidationAudioToVideo(ConfigSection):
    """Generate video for a given (frozen) audio clip."""

    type: Literal["audio_to_video"] = "audio_to_video"
    audio: str = Field(description="Audio kept clean; video is generated.")


ValidationCondition = Annotated[
    ValidationFirstFrame
    | ValidationPrefix
    | ValidationSuffix
    | ValidationSpatialCrop
    | ValidationMask
    | ValidationReference
    | ValidationVideoToAudio
    | ValidationAudioToVideo,
    Field(discriminator="type"),
]


def _targets(cond: ValidationCondition, modality: Literal["video", "audio"]) -> bool:
    """Whether a validation condition feeds the given modality."""
    always = {"video": ("first_frame", "spatial_crop", "video_to_audio"), "audio": ("audio_to_video",)}
    if cond.type in always[modality]:
        return True
    return isinstance(cond, _OneModality) and getattr(cond, modality) is not None


class ValidationSample(ConfigSection):
    """One validation sample: a prompt, its conditions and optional per-sample overrides."""

    prompt: str = Field(description="Text prompt.")
    conditions: list[ValidationCondition] = Field(default_factory=list, description="Conditions for this sample.")
    video_dims: tuple[int, int, int] | None = Field(default=None, description="(W, H, F) override.")
    seed: int | None = Field(default=None, description="Seed override.")

    @model_validator(mode="after")
    def _check_frozen_modalities(self) -> ValidationSample:
        kinds = {c.type for c in self.conditions}
        if {"video_to_audio", "audio_to_video"} <= kinds:
            raise ValueError("conditions: video_to_audio and audio_to_video together leave nothing to generate")
        for frozen, modality in (("video_to_audio", "video"), ("audio_to_video", "audio")):
            if frozen not in kinds:
                continue
            for i, cond in enumerate(self.conditions):
                if cond.type != frozen and _targets(cond, modality):
                    raise ValueError(f"conditions[{i}]: '{cond.type}' targets {modality}, which {frozen} keeps frozen")
        return self


_LEGACY_SAMPLE_KEYS = (
    "prompts",
    "images",
    "reference_videos",
    "reference_downscale_factor",
    "include_reference_in_output",
)


def _migrate_guidance(values: dict[str, Any]) -> None:
    """guidance_scale → video/audio_cfg_scale; stg_scale/stg_mode → video/audio_stg_scale (in the copy)."""
    if "guidance_scale" in values:
        if {"video_cfg_scale", "audio_cfg_scale"} & values.keys():
            raise ValueError(
                "guidance_scale: deprecated and cannot be combined with video_cfg_scale/audio_cfg_scale; "
                "keep only video_cfg_scale and audio_cfg_scale"
            )
        scale = values.pop("guidance_scale")
        values["video_cfg_scale"] = values["audio_cfg_scale"] = scale
        logger.warning("validation.guidance_scale is deprecated; using video_cfg_scale = audio_cfg_scale = %s", scale)
    if {"stg_scale", "stg_mode"} & values.keys():
        if {"video_stg_scale", "audio_stg_scale"} & values.keys():
            raise ValueError(
                "stg_scale: deprecated stg_scale/stg_mode cannot be combined with video_stg_scale/audio_stg_scale; "
                "keep only video_stg_scale and audio_stg_scale"
            )
        scale = values.pop("stg_scale", 1.0)
        mode = values.pop("stg_mode", "stg_av")
        if mode not in ("stg_av", "stg_v"):
            raise ValueError(f"stg_mode: {mode!r} is not one of stg_av, stg_v")
        values["video_stg_scale"] = scale
        values["audio_stg_scale"] = scale if mode == "stg_av" else 0.0
        logger.warning(
            "validation.stg_scale/stg_mode are deprecated; using video_stg_scale = %s, audio_stg_scale = %s",
            values["video_stg_scale"],
            values["audio_stg_scale"],
        )


def _migrate_legacy_samples(values: dict[str, Any]) -> None:
    """prompts (+ images, reference_videos, ...) → samples (in the copy)."""
    present = [key for key in _LEGACY_SAMPLE_KEYS if key in values]
    if not present:
        return
    legacy = {key: values.pop(key) for key in present}
    prompts = legacy.get("prompts") or []
    images = legacy.get("images")
    references = legacy.get("reference_videos")
    for key, items in (("prompts", prompts), ("images", images), ("reference_videos", references)):
        if items is not None and not isinstance(items, list):
            raise ValueError(f"{key}: expected a list, got {items!r}")
    if prompts and values.get("samples"):
        raise ValueError("prompts: deprecated list cannot be combined with samples; move each prompt into samples")
    factor = legacy.get("reference_downscale_factor", 1)
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"reference_downscale_factor: expected an integer >= 1, got {factor!r}")
    for key, items in (("images", images), ("reference_videos", references)):
        if items is not None and len(items) != len(prompts):
            raise ValueError(f"{key}: {len(items)} given for {len(prompts)} prompts; give exactly one per prompt")
    samples = []
    for i, prompt in enumerate(prompts):
        conditions: list[dict[str, Any]] = []
        if images:
            conditions.append({"type": "first_frame", "image_or_video": images[i]})
        if references:
            conditions.append(
                {
                    "type": "reference",
                    "video": references[i],
                    "downscale_factor": factor,
                    "include_in_output": legacy.get("include_reference_in_output", False),
                }
            )
        samples.append({"prompt": prompt, "conditions": conditions})
    if samples:
        values["samples"] = samples
    logger.warning("validation.%s: deprecated; converted to validation.samples", "/".join(present))


class ValidationConfig(ConfigSection):
    """``validation:`` samples drawn during training and the guidance used to draw them."""

    samples: list[ValidationSample] = Field(default_factory=list, description="Validation samples.")
    negative_prompt: str = Field(default=DEFAULT_NEGATIVE_PROMPT, description="Negative prompt for CFG.")
    video_dims: tuple[int, int, int] = Field(
        default=(960, 544, 89), description="(W, H, F); checked against the checkpoint's VAE factors at runtime."
    )
    frame_rate: float = Field(default=24.0, gt=0, description="Frames per second of generated samples.")
    seed: int = Field(default=42, description="Sampling seed.")
    inference_steps: int = Field(default=30, gt=0, description="Denoising steps per sample.")
    interval: int | None = Field(default=100, gt=0, description="Steps between validation runs; null disables.")
    video_cfg_scale: float = Field(default=3.0, ge=1.0, description="Video classifier-free guidance scale.")
    audio_cfg_scale: float = Field(default=7.0, ge=1.0, description="Audio classifier-free guidance scale.")
    video_stg_scale: float = Field(default=1.0, ge=0.0, description="Video spatio-temporal guidance; 0 disables.")
    audio_stg_scale: float = Field(default=1.0, ge=0.0, description="Audio spatio-temporal guidance; 0 disables.")
    stg_blocks: list[int] | None = Field(
        default_factory=lambda: [28], description="Blocks perturbed for STG; null = all blocks."
    )
    guidance_rescale: float = Field(default=0.7, ge=0.0, le=1.0, description="Guidance rescale; 0 disables.")
    video_modality_guidance_scale: float = Field(
        default=3.0, ge=1.0, description="Video modality guidance (used when audio is present)."
    )
    audio_modality_guidance_scale: float = Field(
        default=3.0, ge=1.0, description="Audio modality guidance (used when video is present)."
    )
    generate_audio: bool = Field(default=True, description="Generate audio in samples.")
    generate_video: bool = Field(default=True, description="Generate video in samples.")
    video_decoder: Literal["conv", "diffusion"] = Field(
        default="conv",
        description="Decoder of the samples' video: the convolutional VAE decoder, or LTX-2.5's diffusion decoder.",
    )
    skip_initial_validation: bool = Field(default=False, description="Skip sampling at step 0.")
    efficacy_clips: int = Field(
        default=2,
        ge=0,
        description="Training clips sampled with the base and the trained weights when training ends (the report's "
        "before/after comparison; runs when interval is set); 0 disables.",
    )
    efficacy_seeds: list[int] = Field(
        default_factory=lambda: [0, 1], min_length=1, description="Seeds of the before/after comparison."
    )
    efficacy_steps: int = Field(default=8, gt=0, description="Euler steps per sample of the before/after comparison.")

    @model_validator(mode="before")
    @classmethod
    def _migrate_deprecated(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        values = dict(data)  # a copy: the user's mapping is never changed
        _migrate_guidance(values)
        _migrate_legacy_samples(values)
        return values

    @model_validator(mode="after")
    def _check_outputs(self) -> ValidationConfig:
        if self.samples and not (self.generate_video or self.generate_audio):
            raise ValueError("generate_video: generate_video and generate_audio are both false; enable one")
        width, height, frames = self.video_dims
        s, t = config_checks.SPATIAL_FACTOR, config_checks.TEMPORAL_FACTOR
        if width < s or height < s or width % s or height % s or frames < 1 or (frames - 1) % t:
            raise ValueError(
                f"video_dims: {list(self.video_dims)} does not fit the VAE: width and height must be multiples of {s} "
                f"and frames {t}k+1 (e.g. [{max(s, width // s * s)}, {max(s, height // s * s)}, "
                f"{max(frames - 1, 0) // t * t + 1}])"
            )
        return self


# ---------------------------------------------------------------------------------------------------------------------
# checkpoints, hub, wandb, tensorboard, flow_matching
# ---------------------------------------------------------------------------------------------------------------------


class CheckpointsConfig(ConfigSection):
    """``checkpoints:`` how often and in what form weights and training state are saved."""

    interval: int | None = Field(default=None, gt=0, description="Steps between checkpoints; null = final only.")
    keep_last_n: int = Field(default=1, ge=-1, description="Checkpoints to keep; -1 keeps all.")
    precision: Literal["bfloat16", "float32"] = Field(default="bfloat16", description="dtype of saved weights.")
    no_resume: bool = Field(default=False, description="Ignore saved training state and start at step 0.")
    save_training_state: Literal["full", "minimal", "off"] = Field(
        default="full",
        description="full: exact resume (+ optimizer moments); minimal: scheduler, RNG, step; off: weights only.",
    )


class HubConfig(ConfigSection):
    """``hub:`` push the result to the Hugging Face Hub (integrations/hub.py; docs/hub.md).

    The token and the Hub's reachability are checked before any model loads; a failed push at the end keeps the run
    and names the ``ltx-trainer push`` command that retries it.
    """

    push_to_hub: bool = Field(
        default=False,
        description="At the end of training, upload the final weights, a model card, samples and the loss curve.",
    )
    hub_model_id: str | None = Field(default=None, description="Target repository, e.g. user/my-lora.")
    private: bool = Field(default=False, description="Create the repository private (an existing one keeps its own).")
    push_checkpoints: bool = Field(
        default=False,
        description="Also upload every checkpoint's weights to checkpoints/ in the repo as it is saved (in the "
        "background; a failed upload warns and training goes on).",
    )

    @model_validator(mode="after")
    def _needs_repo(self) -> HubConfig:
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("hub_model_id: required when push_to_hub is true (e.g. user/my-lora)")
        if self.push_checkpoints and not self.push_to_hub:
            raise ValueError("push_checkpoints: needs push_to_hub: true (and hub_model_id)")
        if self.hub_model_id is not None:
            from huggingface_hub.utils import HFValidationError, validate_repo_id  # only when a repo is named

            try:
                validate_repo_id(self.hub_model_id)
            except HFValidationError as e:
                raise ValueError(f"hub_model_id: {e} (e.g. user/my-lora)") from None
        return self


class WandbConfig(ConfigSection):
    """``wandb:`` Weights & Biases logging."""

    enabled: bool = Field(default=False, description="Log to W&B.")
    project: str = Field(default="ltxv-trainer", description="W&B project.")
    entity: str | None = Field(default=None, description="W&B user or team.")
    tags: list[str] = Field(default_factory=list, description="Run tags.")
    log_validation_videos: bool = Field(default=True, description="Upload validation samples.")
    mode: Literal["online", "offline", "disabled"] = Field(default="online", description="W&B mode (ours).")

    @model_validator(mode="after")
    def _needs_credentials(self) -> WandbConfig:
        if self.enabled and self.mode == "online" and not config_checks.wandb_has_credentials():
            raise ValueError(
                "mode: online W&B logging needs WANDB_API_KEY or `wandb login`; set mode: offline to log locally "
                "(wandb sync later) or enabled: false"
            )
        return self


class TensorboardConfig(ConfigSection):
    """``tensorboard:`` TensorBoard logging (ours; not in the official schema)."""

    enabled: bool = Field(default=False, description="Write TensorBoard event files under output_dir.")


class FlowMatchingConfig(ConfigSection):
    """``flow_matching:`` how training timesteps are drawn."""

    timestep_sampling_mode: Literal["uniform", "shifted_logit_normal"] = Field(
        default="shifted_logit_normal", description="Timestep sampler."
    )
    timestep_sampling_params: dict[str, Any] = Field(default_factory=dict, description="Sampler keyword arguments.")

    @model_validator(mode="after")
    def _check_params(self) -> FlowMatchingConfig:
        allowed = config_checks.TIMESTEP_SAMPLING_PARAMS[self.timestep_sampling_mode]
        unknown = config_checks.unknown_params(self.timestep_sampling_params, allowed)
        if unknown:
            raise ValueError(
                f"timestep_sampling_params: unknown keys {unknown} for {self.timestep_sampling_mode!r} "
                f"(allowed: {sorted(allowed)})"
            )
        return self


# ---------------------------------------------------------------------------------------------------------------------
# pipeline (ours): the stage options of `ltx-trainer run-pipeline`
# ---------------------------------------------------------------------------------------------------------------------

PipelineStage = Literal["split", "caption", "preprocess", "train", "sample"]
PIPELINE_STAGES: tuple[str, ...] = get_args(PipelineStage)
# The caption backends of data/captioning/factory.py (the config layer cannot import it; a test keeps them equal).
CaptionBackend = Literal["template", "qwen-vl", "qwen-omni", "whisper", "openai"]
# A scene length: frames (15, "15"), seconds (2.5, "2s") or a timecode ("00:00:02.000"); checked by run-pipeline
# against data/scenes' parser before any stage runs.
SceneLength = int | float | str


class PipelineSplitConfig(ConfigSection):
    """``pipeline.split:`` the split-scenes stage (the options of ``ltx-trainer split-scenes``)."""

    detector: Literal["content", "adaptive", "threshold", "histogram", "hash"] = Field(
        default="content", description="PySceneDetect detector."
    )
    threshold: float | None = Field(default=None, description="Detector threshold (null: the detector's default).")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Other detector parameters by name (e.g. luma_only: true)."
    )
    min_scene_len: SceneLength = Field(default=15, description="Drop scenes shorter than this (frames, seconds).")
    max_scene_len: SceneLength | None = Field(
        default=None, description="Cut longer scenes into pieces of this length (null: no limit)."
    )
    max_scenes: int | None = Field(default=None, ge=1, description="Keep only the first N scenes of each video.")
    skip_start: SceneLength = Field(default=0, description="Ignore the start of each video.")
    skip_end: SceneLength = Field(default=0, description="Ignore the end of each video.")
    previews: bool = Field(default=True, description="Save first/middle/last frame images of every scene.")
    crf: int = Field(default=18, ge=0, le=51, description="x264 quality of the clips.")
    preset: str = Field(default="veryfast", description="x264 preset of the clips.")


class PipelineCaptionConfig(ConfigSection):
    """``pipeline.caption:`` the caption stage (the options of ``ltx-trainer caption``; captions are .txt sidecars)."""

    backend: CaptionBackend = Field(default="template", description="Captioner (template: file metadata, no model).")
    model: str | None = Field(default=None, description="qwen-vl/qwen-omni folder, whisper model, served model name.")
    style: Literal["dense", "sections"] = Field(default="dense", description="Caption style.")
    trigger: str | None = Field(default=None, description="LoRA trigger word prepended to every new caption.")
    clean: bool = Field(default=True, description="Strip LLM boilerplate from captions.")
    prompt: str | None = Field(default=None, description="Replace the built-in captioning instruction.")
    speech: bool = Field(default=False, description="Transcribe speech with Whisper and quote it in the captions.")
    whisper_model: str = Field(default="large-v3", description="Whisper model for speech.")
    language: str | None = Field(default=None, description="Spoken language for Whisper (null: detect).")
    vad: bool = Field(default=True, description="Whisper voice-activity filter.")
    num_frames: int = Field(default=8, ge=1, description="Frames sampled per video.")
    max_pixels: int = Field(default=640 * 360, ge=1, description="Frames are downscaled to at most this many pixels.")
    max_new_tokens: int = Field(default=512, ge=1, description="Caption length limit in tokens.")
    device: str = Field(default="auto", description="Where an in-process captioner runs: auto, cpu, cuda, ...")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(default="auto", description="VLM weights dtype.")
    load_in_8bit: bool = Field(default=False, description="Load the VLM in 8 bits (bitsandbytes, CUDA).")
    base_url: str = Field(default="http://localhost:8000/v1", description="openai: API root of the server.")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="openai: environment variable with the API key.")
    send_audio: bool = Field(default=False, description="openai: send the audio track too.")

    @model_validator(mode="after")
    def _needs_model(self) -> PipelineCaptionConfig:
        if self.backend in ("qwen-vl", "qwen-omni") and self.model is None:
            raise ValueError(f"model: required for backend {self.backend} (a local model folder)")
        return self


class PipelinePreprocessConfig(ConfigSection):
    """``pipeline.preprocess:`` the preprocess stage (the options of ``ltx-trainer preprocess``; the model is
    ``model.model_path`` / ``model.text_encoder_path``, the cache ``<data.preprocessed_data_root>/.precomputed``)."""

    resolution_buckets: str | None = Field(
        default=None, description="'WxHxF;WxHxF;...' (W, H multiples of 32, F = 8k+1); required for the stage."
    )
    fps: float | None = Field(default=None, gt=0, description="Resample frames to this rate (null: the source's).")
    crop: Literal["center", "random"] = Field(default="center", description="Crop to the bucket: center or random.")
    seed: int = Field(default=0, description="Seed of the random crops.")
    vae_tiling: bool = Field(default=False, description="Encode in spatial tiles (less memory).")
    audio: bool | None = Field(default=None, description="Audio latents (null: on for models with audio).")
    allow_missing_audio: bool = Field(default=False, description="Keep clips without audio as video-only samples.")
    device: str = Field(default="auto", description="Where the VAEs and the text encoder run.")
    latents_dtype: Literal["bf16", "fp32"] = Field(default="bf16", description="dtype of stored latents/features.")
    compute_dtype: Literal["auto", "bf16", "fp32"] = Field(default="auto", description="dtype the encoders run in.")
    strict: bool = Field(default=False, description="Stop the pipeline when a sample was skipped.")


class PipelineSampleConfig(ConfigSection):
    """``pipeline.sample:`` the final samples, drawn from the trained weights with the ``validation`` settings
    (video_dims, frame_rate, inference_steps, seed, guidance, negative_prompt)."""

    prompts: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Prompts of the final samples (empty: validation.samples, else the first clip's caption).",
    )


class PipelineConfig(ConfigSection):
    """``pipeline:`` what ``ltx-trainer run-pipeline`` runs and with which options (ours; ``train`` ignores it).

    The dataset folder is ``data.preprocessed_data_root`` (clips, captions, ``.precomputed/``), the training run and
    the pipeline's report and final samples go to ``output_dir``; ``run-pipeline --out DIR`` moves both under DIR.
    """

    raw_dir: str | None = Field(default=None, description="Footage folder (the RAW_DIR argument takes precedence).")
    stages: list[PipelineStage] = Field(
        default_factory=lambda: list(PIPELINE_STAGES), description="Stages to run (in pipeline order)."
    )
    split: PipelineSplitConfig = Field(default_factory=PipelineSplitConfig)
    caption: PipelineCaptionConfig = Field(default_factory=PipelineCaptionConfig)
    preprocess: PipelinePreprocessConfig = Field(default_factory=PipelinePreprocessConfig)
    sample: PipelineSampleConfig = Field(default_factory=PipelineSampleConfig)

    @field_validator("raw_dir")
    @classmethod
    def _expand_raw_dir(cls, value: str | None) -> str | None:
        return str(Path(value).expanduser().resolve()) if value is not None else None

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"empty; list the stages to run among {', '.join(PIPELINE_STAGES)}")
        repeated = sorted({s for s in value if value.count(s) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return [s for s in PIPELINE_STAGES if s in value]  # pipeline order, whatever order they were written in

    @model_validator(mode="after")
    def _needs_buckets(self) -> PipelineConfig:
        if "preprocess" in self.stages and not self.preprocess.resolution_buckets:
            raise ValueError(
                "preprocess.resolution_buckets: required when the preprocess stage runs (e.g. '768x448x89;512x512x49')"
            )
        return self


# ---------------------------------------------------------------------------------------------------------------------
# top level
# ---------------------------------------------------------------------------------------------------------------------


class LtxTrainerConfig(ConfigSection):
    """The whole training config (top level of the YAML file)."""

    model: ModelConfig = Field(description="Base checkpoint and training mode.")
    lora: LoraConfig | None = Field(default=None, description="LoRA adapter; required in lora mode.")
    training_strategy: TrainingStrategyConfig = Field(
        default_factory=TextToVideoConfig, description="What is generated and what conditions it."
    )
    optimization: OptimizationConfig = Field(default_factory=OptimizationConfig)
    acceleration: AccelerationConfig = Field(default_factory=AccelerationConfig)
    data: DataConfig = Field(description="Preprocessed dataset location.")
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    checkpoints: CheckpointsConfig = Field(default_factory=CheckpointsConfig)
    hub: HubConfig = Field(default_factory=HubConfig)
    flow_matching: FlowMatchingConfig = Field(default_factory=FlowMatchingConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    tensorboard: TensorboardConfig = Field(default_factory=TensorboardConfig)
    pipeline: PipelineConfig | None = Field(
        default=None, description="Stage options of run-pipeline (ours); train ignores this section."
    )
    seed: int = Field(default=42, description="Training seed.")
    output_dir: str = Field(default="outputs", description="Where checkpoints and samples are written.")

    @field_validator("output_dir")
    @classmethod
    def _expand_output_dir(cls, value: str) -> str:
        path = Path(value).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ValueError(f"{str(path)!r} is a file, not a directory; point output_dir at a folder")
        return str(path)

    @model_validator(mode="after")
    def _check_cross_fields(self) -> LtxTrainerConfig:
        issues = []
        mode = self.model.training_mode
        strategy = self.training_strategy.name
        if mode == "lora" and self.lora is None:
            issues.append("lora: required when model.training_mode is 'lora'; add a lora section or set it to 'full'")
        if strategy == "video_to_video" and mode != "lora":
            issues.append("model.training_mode: video_to_video needs 'lora' (IC-LoRA); use lora or a flexible strategy")
        if strategy == "video_to_video" and self.validation.interval:
            has_reference = any(c.type == "reference" for s in self.validation.samples for c in s.conditions)
            if not has_reference:
                issues.append(
                    "validation.samples: video_to_video needs a sample with a reference condition "
                    "(or set validation.interval: null)"
                )
        if mode == "full" and self.acceleration.quantization is not None:
            issues.append("acceleration.quantization: only works with model.training_mode 'lora'; set it to null")
        if mode == "lora" and self.lora is not None:
            clash = config_checks.adapter_quantization_issue(
                self.lora.adapter, self.acceleration.quantization, QUANTIZATION_ALIASES
            )
            issues += [clash] if clash else []
            if self.lora.adapter != "lora" and self.model.load_checkpoint is not None:
                issues.append(
                    f"model.load_checkpoint: starts plain LoRA runs only, not lora.adapter {self.lora.adapter!r}; "
                    "remove it or train a lora adapter"
                )
        issues += config_checks.blocks_to_swap_issues(
            self.acceleration.blocks_to_swap,
            mode,
            self.optimization.enable_gradient_checkpointing,
            self.model.model_path,
        )
        if issues:
            raise ValueError("\n".join(issues))
        return self


# ---------------------------------------------------------------------------------------------------------------------
# loading, errors, dumping, path checks
# ---------------------------------------------------------------------------------------------------------------------


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the type a value is validated against."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType) and len(members := [a for a in get_args(tp) if a is not type(None)]) == 1:
            tp = members[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tag(model: type[BaseModel]) -> tuple[str, str] | None:
    """(discriminator key, tag) of a union member, e.g. ("type", "first_frame")."""
    for key in ("type", "name"):
        field = model.model_fields.get(key)
        if field is not None and get_origin(field.annotation) is Literal:
            return key, get_args(field.annotation)[0]
    return None


def _union_tags(tp: Any) -> dict[str, type[BaseModel]]:
    members = [_unwrap(arg) for arg in get_args(tp)]
    return {tag[1]: m for m in members if _is_model(m) and (tag := _tag(m)) is not None}


def _type_name(tp: Any) -> str:
    if get_origin(tp) in (Union, UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _resolve_loc(loc: tuple[Any, ...]) -> tuple[list[Any], type[BaseModel] | None, Any, bool]:
    """Map a pydantic error location to the user's key path.

    Pydantic inserts union tags (``flexible``, ``first_frame``) and union member labels (``str``, ``is-instance[Path]``)
    into locations; walking the schema tells them apart from keys.

    Returns:
        tuple: (key parts, model owning the last key, type at the end of the path, whether a member label was dropped).
    """
    parts: list[Any] = []
    owner: type[BaseModel] | None = None
    tp: Any = LtxTrainerConfig
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if _is_model(tp):
            owner = tp
            parts.append(part)
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            tp = field.annotation if field is not None else None
        elif origin in (list, tuple, dict):
            owner = None
            parts.append(part)
            args = get_args(tp)
            if origin is tuple and isinstance(part, int) and Ellipsis not in args:
                tp = args[part] if part < len(args) else None
            else:
                tp = args[-1] if args else None
        elif origin in (Union, UnionType):
            tags = _union_tags(tp)
            if part not in tags:
                return parts, owner, tp, True
            tp = tags[part]
        elif tp is None:
            parts.append(part)
        else:
            return parts, owner, tp, True
    return parts, owner, _unwrap(tp), False


def _join(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path and not key.startswith("[") else f"{path}{key}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_KEYED_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:\[\d+\][\w.]*)*): (.*)$")


def _did_you_mean(key: str, owner: type[BaseModel] | None) -> str:
    """A hint for a misspelled key, or for a section key written at the top level."""
    if owner is None:
        return ""
    if owner is LtxTrainerConfig:
        for section, field in LtxTrainerConfig.model_fields.items():
            if _is_model(model := _unwrap(field.annotation)) and key in model.model_fields:
                return f"; did you mean {section}.{key}?"
    close = difflib.get_close_matches(key, list(owner.model_fields), n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


def _describe(error: Mapping[str, Any]) -> list[str]:
    """One readable line (or several, for multi-issue validators) for one pydantic error."""
    parts, owner, tp, dropped_label = _resolve_loc(tuple(error["loc"]))
    path = _join(parts)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return [f"{path}: required"]
    if kind == "extra_forbidden":
        allowed = list(owner.model_fields) if owner else []
        line = f"{path}: unknown key (allowed: {', '.join(allowed)})"
        return [line + _did_you_mean(str(parts[-1]), owner)]
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", ctx.get("expected", "")) or [ctx.get("expected", "?")]
        return [f"{path}: {_short(value)} is not one of {', '.join(options)}"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = _union_tags(tp)
        key = next((_tag(m)[0] for m in tags.values()), "type")
        if kind == "union_tag_invalid":
            return [f"{_child(path, key)}: {_short(ctx.get('tag'))} is not one of {', '.join(tags)}"]
        if isinstance(value, Mapping):
            return [f"{_child(path, key)}: required (one of {', '.join(tags)})"]
        return [f"{path}: expected a mapping with a '{key}' key (one of {', '.join(tags)}), got {_short(value)}"]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return [f"{path}: expected a mapping of keys, got {_short(value)}"]
    if dropped_label:
        return [f"{path}: expected {_type_name(tp)}, got {_short(value)}"]
    if kind == "value_error" and "error" in ctx:
        lines = []
        for line in str(ctx["error"]).splitlines():
            match = _KEYED_LINE.match(line)
            lines.append(f"{_child(path, match[1])}: {match[2]}" if match else (f"{path}: {line}" if path else line))
        return lines
    shown = "" if isinstance(value, Mapping | list) else f" (got {_short(value)})"
    return [f"{path}: {error['msg']}{shown}" if path else f"{error['msg']}{shown}"]


def describe_validation_error(error: ValidationError) -> list[str]:
    """Translate a ``LtxTrainerConfig`` ValidationError into one ``key.path: problem`` line per problem.

    Args:
        error (ValidationError): raised by ``LtxTrainerConfig.model_validate``.

    Returns:
        list[str]: the problems, deduplicated, in pydantic's order.
    """
    lines: list[str] = []
    for item in error.errors():
        for line in _describe(item):
            if line not in lines:
                lines.append(line)
    return lines


def parse_config(data: Any, source: str = "<config>") -> LtxTrainerConfig:
    """Validate an already-parsed config mapping.

    Args:
        data (Any): the YAML document (must be a mapping of sections).
        source (str): what to name in error messages, usually the file path.

    Returns:
        LtxTrainerConfig: the validated, frozen config.

    Raises:
        ConfigError: one line per problem, each naming the full key path.
    """
    if not isinstance(data, Mapping):
        got = "nothing (empty file)" if data is None else type(data).__name__
        raise ConfigError(f"{source}: the top level must be a mapping of sections (model, data, ...), got {got}")
    try:
        return LtxTrainerConfig.model_validate(data)
    except ValidationError as err:
        problems = describe_validation_error(err)
        if len(problems) == 1:
            message = f"{source}: {problems[0]}"
        else:
            message = f"{source}: {len(problems)} config problems:\n" + "\n".join(f"  {p}" for p in problems)
        raise ConfigError(message, problems) from None


def load_config(path: str | Path) -> LtxTrainerConfig:
    """Read and validate a YAML training config.

    Args:
        path (str | Path): the YAML file.

    Returns:
        LtxTrainerConfig: the validated, frozen config (deprecated forms already migrated).

    Raises:
        ConfigError: missing/unreadable file, YAML syntax error (with line and column), a top level that is not a
            mapping, or schema problems (one line each); the message starts with the file path.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (binary content); a config is a YAML text file") from None
    try:
        data = config_checks.load_yaml_strict(text)
    except config_checks.DuplicateKeyError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}: invalid YAML{where}: {' '.join(str(problem).split())}") from None
    return parse_config(data, source=str(path))


def dump_config(cfg: LtxTrainerConfig) -> str:
    """The resolved config as YAML (defaults filled in, deprecated forms migrated); ``load_config`` reads it back."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=120)


def config_warnings(cfg: LtxTrainerConfig, device: str | None = None) -> list[str]:
    """Settings that load but train badly, one line each (``config validate`` prints them, the trainer logs them).

    ``device`` (``cuda``/``mps``/``cpu``) is where validation will run; guessed without importing torch when None.
    """
    warnings = []
    val = cfg.validation
    if val.interval and val.samples:
        estimate = validation_estimate(cfg, device or config_checks.device_kind())
        if estimate >= 60:
            known = Path(cfg.model.model_path).is_file()
            basis = "from the checkpoint size" if known else "assuming the smallest, 2B model"
            w, h, f = val.video_dims
            warnings.append(
                f"validation: about {config_checks.format_duration(estimate)} per sample on "
                f"{device or config_checks.device_kind()} ({w}x{h}x{f}, {val.inference_steps} steps; rough estimate "
                f"{basis}), {len(val.samples)} sample(s) every {val.interval} steps; lower "
                "validation.video_dims / inference_steps or raise validation.interval"
            )
    return warnings


def validation_estimate(cfg: LtxTrainerConfig, device: str) -> float:
    """Rough seconds per validation sample (see ``config_checks.validation_seconds_per_sample``)."""
    val = cfg.validation
    passes = 1 + (val.video_cfg_scale > 1) + (val.video_stg_scale > 0)
    if val.generate_audio and val.generate_video:
        passes += val.video_modality_guidance_scale > 1
    path = Path(cfg.model.model_path)
    size = path.stat().st_size if path.is_file() else None
    return config_checks.validation_seconds_per_sample(*val.video_dims, val.inference_steps, passes, size, device)


def _validation_files(cfg: LtxTrainerConfig) -> list[tuple[str, str]]:
    """(key path, file) for every media file the validation samples read."""
    files = []
    for i, sample in enumerate(cfg.validation.samples):
        for j, cond in enumerate(sample.conditions):
            key = f"validation.samples[{i}].conditions[{j}]"
            for name in ("image_or_video", "video", "audio", "mask"):
                value = getattr(cond, name, None)
                if value is not None:
                    files.append((f"{key}.{name}", str(value)))
    return files


def check_paths(cfg: LtxTrainerConfig) -> list[str]:
    """Check every path the config points at; run before training, not at load time.

    Args:
        cfg (LtxTrainerConfig): a loaded config.

    Returns:
        list[str]: every problem found (``key.path: what is wrong; how to fix``); empty when all paths exist.
    """
    problems = []
    model = cfg.model
    if not Path(model.model_path).exists():
        problems.append(f"model.model_path: {str(model.model_path)!r} does not exist; download the checkpoint there")
    if model.text_encoder_path is not None and not Path(model.text_encoder_path).exists():
        problems.append(
            f"model.text_encoder_path: {str(model.text_encoder_path)!r} does not exist; point it at the Gemma "
            "folder or packed text-encoder file"
        )
    for name in ("video_vae_path", "audio_vae_path"):
        value = getattr(model, name)
        if value is not None and not Path(value).is_file():
            problems.append(f"model.{name}: {str(value)!r} is not a file; point it at the VAE .safetensors")
    if model.load_checkpoint is not None and not Path(model.load_checkpoint).exists():
        problems.append(
            f"model.load_checkpoint: {str(model.load_checkpoint)!r} does not exist; fix the path or remove the key"
        )

    root = Path(cfg.data.preprocessed_data_root)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        problems.append(
            f"data.preprocessed_data_root: {str(root)!r} {what}; point it at the folder written by preprocessing"
        )
    else:
        if (root / ".precomputed").is_dir():
            root = root / ".precomputed"
        for directory, (_, key) in cfg.training_strategy.data_source_keys().items():
            if not (root / directory).is_dir():
                problems.append(
                    f"{key}: folder {directory!r} not found under {root}; preprocess that data or fix the folder name"
                )

    for key, file in _validation_files(cfg):
        if not Path(file).exists():
            problems.append(f"{key}: {file!r} does not exist; fix the path or drop the condition")
    return problems


__all__ = [
    "DEFAULT_NEGATIVE_PROMPT",
    "PIPELINE_STAGES",
    "AccelerationConfig",
    "CheckpointsConfig",
    "ConditionConfig",
    "ConfigError",
    "ConfigSection",
    "DataConfig",
    "FirstFrameCondition",
    "FlexibleStrategyConfig",
    "FlowMatchingConfig",
    "HubConfig",
    "LoraConfig",
    "LtxTrainerConfig",
    "MaskCondition",
    "ModalityConfig",
    "ModelConfig",
    "OptimizationConfig",
    "PipelineCaptionConfig",
    "PipelineConfig",
    "PipelinePreprocessConfig",
    "PipelineSampleConfig",
    "PipelineSplitConfig",
    "PrefixCondition",
    "QuantizationOptions",
    "ReferenceCondition",
    "SpatialCropCondition",
    "StrategyConfigBase",
    "SuffixCondition",
    "TensorboardConfig",
    "TextToVideoConfig",
    "TrainingStrategyConfig",
    "ValidationAudioToVideo",
    "ValidationCondition",
    "ValidationConfig",
    "ValidationFirstFrame",
    "ValidationMask",
    "ValidationPrefix",
    "ValidationReference",
    "ValidationSample",
    "ValidationSpatialCrop",
    "ValidationSuffix",
    "ValidationVideoToAudio",
    "VideoToVideoConfig",
    "WandbConfig",
    "check_paths",
    "config_warnings",
    "describe_validation_error",
    "dump_config",
    "load_config",
    "parse_config",
]
