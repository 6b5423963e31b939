"""Validation samples during training: ``validation.samples`` drawn every ``validation.interval`` steps.

Setup (once, ``prepare``): every prompt's features and the negative prompt's are encoded, then the text encoder is
unloaded (``model.unload_text_encoder()``); every sample's conditioning media are VAE-encoded. A run (``run``) only
denoises and decodes: the transformer samples as it is being trained (the in-memory LoRA included), the VAE decoders
and the vocoder move to the accelerator only while decoding and go back to the CPU. With
``acceleration.offload_optimizer_during_validation`` the optimizer state waits on the CPU meanwhile.

Samples may be smaller than the training clips: the schedule's shift follows the sample's own token count. Files:
``<output_dir>/samples/step_000100_<k>.mp4`` (``k`` = 1-based index in ``validation.samples``; ``.png`` for one frame,
``.wav`` for audio only). Under several processes the samples are shared round-robin between the ranks.
"""

import re
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from ltx_trainer import logger
from ltx_trainer.config import LtxTrainerConfig, ValidationAudioToVideo, ValidationConfig, ValidationVideoToAudio
from ltx_trainer.models.base import LTXModel
from ltx_trainer.sampling.runner import SampleRunner
from ltx_trainer.sampling.sampler import SampleSpec, check_geometry


def sample_spec(config: ValidationConfig, index: int, model: LTXModel) -> SampleSpec:
    """The ``SampleSpec`` of ``validation.samples[index]`` (its own dims and seed, else the section's)."""
    sample = config.samples[index]
    width, height, frames = sample.video_dims or config.video_dims
    spec = SampleSpec(
        width=width,
        height=height,
        frames=frames,
        fps=config.frame_rate,
        steps=config.inference_steps,
        seed=sample.seed if sample.seed is not None else config.seed,
        video_cfg=config.video_cfg_scale,
        audio_cfg=config.audio_cfg_scale,
        video_stg=config.video_stg_scale,
        audio_stg=config.audio_stg_scale,
        stg_blocks=tuple(config.stg_blocks) if config.stg_blocks is not None else None,
        video_modality=config.video_modality_guidance_scale,
        audio_modality=config.audio_modality_guidance_scale,
        rescale=config.guidance_rescale,
        generate_video=config.generate_video,
        generate_audio=config.generate_audio and model.spec.has_audio,
    )
    where = f"validation.samples[{index}].video_dims" if sample.video_dims else "validation.video_dims"
    check_geometry(spec, model.spec, where)
    kinds = {type(c) for c in sample.conditions}
    if ValidationVideoToAudio in kinds and not spec.generate_audio:
        raise ValueError(
            f"validation.samples[{index}]: video_to_audio generates audio, but generate_audio is false "
            f"(or {model.spec.family} {model.spec.version} has no audio)"
        )
    if ValidationAudioToVideo in kinds and not spec.generate_video:
        raise ValueError(f"validation.samples[{index}]: audio_to_video generates video, but generate_video is false")
    return spec


@contextmanager
def offloaded_optimizer(optimizer: torch.optim.Optimizer):
    """Optimizer state tensors on the CPU for the duration (``offload_optimizer_during_validation``), then back."""
    moved = []
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.device.type != "cpu":
                moved.append((state, key, value.device))
                state[key] = value.to("cpu")
    if moved and torch.cuda.is_available():
        torch.cuda.empty_cache()
    logger.debug("validation: %d optimizer state tensors offloaded to the CPU", len(moved))
    try:
        yield len(moved)
    finally:
        for state, key, device in moved:
            state[key] = state[key].to(device)


def _sample_index(path: Path) -> int:
    match = re.search(r"_(\d+)$", path.stem)
    return int(match.group(1)) if match else 0


class ValidationRunner:
    """Draws ``validation.samples`` with a model that is being trained.

    Args:
        config: the ``validation`` section.
        model: the model being trained (its transformer carries the in-memory LoRA).
        output_dir: the run's output folder; samples go to ``samples/`` inside it.
        device: where the transformer runs; the decoders visit it while decoding.
    """

    def __init__(self, config: ValidationConfig, model: LTXModel, output_dir: Path, device: torch.device | str):
        self.config = config
        self.model = model
        self.samples_dir = Path(output_dir) / "samples"
        self.device = torch.device(device)
        self.runner = SampleRunner(model, self.device)

    @classmethod
    def for_training(
        cls, config: LtxTrainerConfig, model: LTXModel, output_dir: Path, device: torch.device
    ) -> "ValidationRunner | None":
        """A prepared runner, or None when validation is off (no samples, or ``interval: null``)."""
        if not config.validation.samples or config.validation.interval is None:
            return None
        model.select_video_decoder(config.validation.video_decoder)  # refused here when the model has no such one
        runner = cls(config.validation, model, output_dir, device)
        runner.prepare()
        return runner

    def prepare(self) -> None:
        """Encode the prompts (then unload the text encoder) and every sample's conditions, once."""
        cfg = self.config
        started = time.perf_counter()
        specs = [sample_spec(cfg, i, self.model) for i in range(len(cfg.samples))]  # geometry errors first
        prepared = self.runner.prepare(
            [(sample.prompt, sample.conditions, spec) for sample, spec in zip(cfg.samples, specs, strict=True)],
            cfg.negative_prompt,
            labels=[f"validation.samples[{i}].conditions" for i in range(len(cfg.samples))],
            needed_by="validation.samples",
        )
        if self.model.text_context_is_frozen():  # the connectors once per prompt, where they are (training: CPU)
            with torch.no_grad():
                self.runner.features = {p: self.model.text_context(f) for p, f in self.runner.features.items()}
        logger.info(
            "validation: %d samples prepared (prompts cached, text encoder unloaded) in %.1f s",
            len(prepared),
            time.perf_counter() - started,
        )

    def due(self, step: int, starting: bool = False) -> bool:
        """Whether to sample at ``step``: every ``interval`` steps, and when training starts unless
        ``skip_initial_validation`` (a resumed run skips it when that step was already sampled)."""
        interval = self.config.interval
        if interval is None:
            return False
        if starting:
            return not self.config.skip_initial_validation and (step == 0 or step % interval != 0)
        return step % interval == 0

    def path(self, step: int, index: int) -> Path:
        """``samples/step_000100_<k>`` (the suffix is chosen when writing)."""
        return self.samples_dir / f"step_{step:06d}_{index}"

    @torch.no_grad()
    def run(self, step: int, rank: int = 0, world_size: int = 1) -> list[Path]:
        """Draw this rank's share of the samples; returns the files written."""
        started = time.perf_counter()
        items = self.runner.prepared[rank::world_size]
        written = [self.runner.draw(item, self.path(step, item.index)) for item in items]
        logger.info(
            "validation at step %d (rank %d of %d): %d samples in %.1f s: %s",
            step,
            rank,
            world_size,
            len(written),
            time.perf_counter() - started,
            " ".join(p.name for p in written),
        )
        return written

    def run_during_training(
        self, step: int, accelerator, optimizer: torch.optim.Optimizer | None = None, offload_optimizer: bool = False
    ) -> list[Path]:
        """Sample from the transformer being trained (unwrapped, in eval mode, under the run's autocast), with the
        optimizer state offloaded when asked. Every rank draws its share; the main process gets all the paths."""
        from accelerate.utils import DistributedType

        model = self.model
        wrapped = model.transformer
        transformer = accelerator.unwrap_model(wrapped)
        was_training = transformer.training
        offload = offload_optimizer and optimizer is not None and accelerator.distributed_type != DistributedType.FSDP
        model.transformer = transformer
        transformer.eval()
        try:
            with offloaded_optimizer(optimizer) if offload else nullcontext(), accelerator.autocast():
                self.run(step, accelerator.process_index, accelerator.num_processes)
        finally:
            model.transformer = wrapped
            transformer.train(was_training)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # give the decoders' activations back to training
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            return []
        return sorted(self.samples_dir.glob(f"step_{step:06d}_*.*"), key=_sample_index)
