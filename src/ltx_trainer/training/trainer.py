"""The training loop (accelerate): load, prepare, step, accumulate, clip, log, checkpoint, resume.

``Trainer.__init__`` only stores the config; ``setup`` builds everything in this order:
accelerator -> the Hub check (``hub.push_to_hub``: token and reachability, in seconds, before minutes of loading)
-> model (transformer + connectors; the text encoder only if caption dropout needs the empty prompt) -> strategy
-> data -> adapters -> optimizer, schedule and EMA (they need the trainable parameters) -> text contexts (once per
sample, connectors then off the device) -> block offload -> device placement -> resume state. The run ends with the
report, then the push (``hub.push_to_hub``).

Validation and every exported weights file see the weights to sample from (``_sampling_weights``): a schedule-free
optimizer's average, or the EMA (which is also written as its own ``*_ema`` file); the training state keeps the raw
weights, so saving or validating never changes the run.
"""

import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from ltx_trainer import logger
from ltx_trainer.config import LtxTrainerConfig, config_warnings, dump_config
from ltx_trainer.data.dataset import BucketBatchSampler, PrecomputedDataset, collate
from ltx_trainer.data.fingerprint import check_cache_fingerprint
from ltx_trainer.data.reference_scale import read_reference_scale
from ltx_trainer.errors import DataError, Interrupted, UsageError
from ltx_trainer.integrations.hub import Publisher
from ltx_trainer.integrations.tracking import Tracker
from ltx_trainer.io import atomic_write_bytes, atomic_write_text
from ltx_trainer.models.base import LTXModel, TextContext, TextFeatures
from ltx_trainer.models.devices import weights_dtype
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.families import load_model
from ltx_trainer.models.lora_files import save_lora
from ltx_trainer.models.offload import BlockOffloader, enable_block_offload, resolve_blocks_to_swap
from ltx_trainer.models.quantization import quantize_module_, quantize_transformer_
from ltx_trainer.training import adapters, checkpoints, distributed, ema, guards, resume, run_dir, warm_start
from ltx_trainer.training.context_cache import ContextCache, features_of, with_empty_prompt
from ltx_trainer.training.draws import Draws
from ltx_trainer.training.metrics import PhaseTimer, TrainResult, progress_bar, sigma_bucket_losses
from ltx_trainer.training.optim import evaluation_weights, make_optimizer, make_scheduler, set_peak_lr
from ltx_trainer.training.signals import StopRequest
from ltx_trainer.training.strategies import FlexibleStrategy, PreparedModality
from ltx_trainer.training.timesteps import make_sigma_sampler


class Trainer:
    def __init__(self, config: LtxTrainerConfig, config_source: Path | None = None):
        self.config = config
        self.config_source = config_source
        self.output_dir = Path(config.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self.profile = False  # per-phase timings in the metrics (bench); syncs CUDA, so off in normal runs

    # ---- setup ----------------------------------------------------------------------------------------------------
    def setup(self, model: LTXModel | None = None) -> None:
        """Build everything. ``model`` replaces loading ``model.model_path`` (bench's random full-size models)."""
        cfg = self.config
        mixed = cfg.acceleration.mixed_precision_mode or "no"
        self.accelerator = distributed.make_accelerator(mixed)
        # A push that can't work fails now, in seconds, not after the run (the main process pushes)
        main = self.accelerator.is_main_process
        self.publisher = Publisher.for_training(cfg.hub, self.output_dir, cfg.optimization.steps) if main else None
        self._claim_output_dir()
        set_seed(cfg.seed)  # LoRA initialisation draws from the global RNGs
        self.device = self.accelerator.device
        # Base weights in bf16 with bf16 mixed precision wherever the device computes bf16 natively (trainable LoRA
        # weights stay fp32); fp32 otherwise, and with mixed_precision_mode "no" (the tests' exact path).
        base_dtype = weights_dtype(self.device, bf16=mixed == "bf16")
        self.model = model or load_model(
            cfg.model.model_path,
            cfg.model.text_encoder_path,
            base_dtype,
            cfg.acceleration.text_encoder_bits,
            cfg.model.video_vae_path,
            cfg.model.audio_vae_path,
        )
        if cfg.acceleration.quantization:
            self._quantize_base(cfg.acceleration.quantization, base_dtype)
        flexible = cfg.training_strategy.as_flexible()
        self.strategy = FlexibleStrategy(flexible, read_reference_scale(flexible, cfg.data.preprocessed_data_root))
        self.sigma_sampler = make_sigma_sampler(
            cfg.flow_matching.timestep_sampling_mode, cfg.flow_matching.timestep_sampling_params
        )
        self.empty_prompt = self._empty_prompt_features() if cfg.optimization.caption_dropout > 0 else None
        self._setup_data()
        self._setup_trainable()
        opt = cfg.optimization
        self.optimizer = make_optimizer(self.trainable, opt.optimizer_type, opt.learning_rate, opt.optimizer_params)
        self.ema = ema.make_ema(opt, self.trainable, distributed.sharded(self.accelerator))
        self.scheduler = make_scheduler(
            self.optimizer,
            cfg.optimization.scheduler_type,
            cfg.optimization.steps,
            cfg.optimization.warmup_steps,
            cfg.optimization.scheduler_params,
        )
        # Frozen connectors: every sample's context once, before the transformer takes the device; then they stay off it
        frozen = self.model.text_context_is_frozen()
        self.contexts = ContextCache.build(self.model, self.dataset, self.empty_prompt, self.device) if frozen else None
        self.offloader = self._block_offload()
        transformer, self.optimizer = self.accelerator.prepare(
            self.model.transformer, self.optimizer, device_placement=[self.offloader is None, True]
        )
        self.model.transformer = transformer
        self.trainable = distributed.prepared_trainable(self.optimizer)  # FSDP2 swaps in sharded parameters
        if self.contexts is None:
            self.model.connectors_to(self.device)
        # Training draws are keyed per sample (training/draws.py); this stream serves callers without keys (bench).
        self.generator = torch.Generator().manual_seed(cfg.seed + self.accelerator.process_index)
        self.step, self.batches_consumed = 0, 0
        self.wandb_run_id = None
        self._resume()
        self._cut_metrics()
        self.tracker = Tracker(cfg, self.output_dir, self.wandb_run_id) if self.accelerator.is_main_process else None
        from ltx_trainer.sampling.validation import ValidationRunner  # imported when needed: a faster start

        self.validation = ValidationRunner.for_training(cfg, self.model, self.output_dir, self.device)

    def _block_offload(self) -> BlockOffloader | None:
        """``acceleration.blocks_to_swap`` blocks kept in host memory (their frozen weights; LoRA stays on device)."""
        blocks = self.model.transformer_blocks()
        value = self.config.acceleration.blocks_to_swap
        if resolve_blocks_to_swap(value, len(blocks)) and self.accelerator.num_processes > 1:
            raise UsageError("acceleration.blocks_to_swap: not supported with several processes yet; set it to 0")
        return enable_block_offload(self.model.transformer, blocks, value, self.device)

    def _empty_prompt_features(self) -> TextFeatures:
        """Caption dropout trains on the empty prompt's features: encode it once, then free the text encoder."""
        try:
            features = self.model.encode_text([""])
        except ModelLoadError as e:
            raise ValueError(
                f"optimization.caption_dropout > 0 needs the text encoder (the empty prompt is encoded once): {e}"
            ) from e
        self.model.unload_text_encoder()
        return features

    def _setup_data(self) -> None:
        cfg = self.config
        self.dataset = PrecomputedDataset(
            cfg.data.preprocessed_data_root, self.strategy.sources(), spec=self.model.spec
        )
        # A cache built by another model version trains silently wrong: refuse it, saying how to rebuild.
        problems = check_cache_fingerprint(cfg.data.preprocessed_data_root, self.model, list(self.strategy.sources()))
        if problems:
            raise DataError(
                f"{cfg.data.preprocessed_data_root}: the cache does not match model.model_path "
                f"{cfg.model.model_path}: {'; '.join(problems)}"
            )
        self.model.unload_codecs()  # loaded for hashing; validation reloads them lazily
        self.batch_sampler = BucketBatchSampler(
            [self.dataset.shape_key(i) for i in range(len(self.dataset))],
            cfg.optimization.batch_size,
            seed=cfg.seed,
            num_replicas=self.accelerator.num_processes,
            rank=self.accelerator.process_index,
        )
        workers = cfg.data.num_dataloader_workers
        self.dataloader = DataLoader(
            self.dataset,
            batch_sampler=self.batch_sampler,
            collate_fn=collate,
            num_workers=workers,
            pin_memory=workers > 0 and torch.cuda.is_available(),
        )

    def _quantize_base(self, mode: str, dtype: torch.dtype) -> None:
        """``acceleration.quantization``: the frozen base quantized unit by unit as it streams in, on the training
        device (the host never holds it in full precision; in host memory with block offload); then whatever was
        built without streaming (a model passed in, a folder read whole) in one pass, which skips quantized layers."""
        streamed: list[str] = []
        swapping = str(self.config.acceleration.blocks_to_swap).rstrip("%") not in ("0", "0.0")
        device = None if swapping else self.device  # offloaded blocks must start in host memory
        self.model.load_device = device
        self.model.on_block = lambda name, unit: streamed.extend(quantize_module_(unit, mode, dtype, f"{name}."))
        rest = quantize_transformer_(self.model.transformer, mode, dtype, device)
        logger.info(
            "acceleration.quantization %s: %d linear layers quantized (%d as they streamed in)",
            mode,
            len(streamed) + rest,
            len(streamed),
        )

    def _setup_trainable(self) -> None:
        cfg = self.config
        start = (
            warm_start.resolve(cfg.model.load_checkpoint, cfg.model.training_mode)
            if cfg.model.load_checkpoint
            else None
        )
        if start is not None and cfg.model.training_mode == "full":
            warm_start.use_transformer_of(self.model, start)
        transformer = self.model.transformer
        if cfg.model.training_mode == "lora":
            self.trainable = adapters.add_lora(transformer, cfg.lora)
            if start is not None:
                warm_start.load_lora(transformer, self.model, start, cfg.lora)
        else:
            transformer.requires_grad_(True)
            transformer.float()
            self.trainable = list(transformer.parameters())
        if cfg.optimization.enable_gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        transformer.train()
        count = sum(p.numel() for p in self.trainable)
        logger.info("trainable parameters: %s (%s)", f"{count:,}", cfg.model.training_mode)

    # ---- the loop -------------------------------------------------------------------------------------------------
    def train(self, stop_after: int | None = None) -> TrainResult:
        """Train to ``optimization.steps`` (or stop early after ``stop_after`` steps, for tests and benchmarks)."""
        cfg = self.config
        total = cfg.optimization.steps
        if self.resumed_from is not None and self.step >= total:
            weights = checkpoints.weights_path(self.checkpoint_dir, self._weights_kind(), self.step)
            logger.info("the run in %s already finished at step %d: %s", self.output_dir, self.step, weights)
            self._release_output_dir()
            return TrainResult(weights=weights if weights.is_file() else None, finished_before=True)
        with self._releasing_output_dir():
            return self._train(stop_after)

    def _train(self, stop_after: int | None) -> TrainResult:
        cfg = self.config
        total = cfg.optimization.steps
        self._write_run_files()
        accumulation = cfg.optimization.gradient_accumulation_steps
        self.batch_sampler.skip(self.batches_consumed)
        batches = iter(self.dataloader)
        result = TrainResult(weights=None)
        started = time.perf_counter()
        if self.validation is not None and self.validation.due(self.step, starting=True):
            self._validate()
        with progress_bar(not self.accelerator.is_main_process) as progress, StopRequest() as stop:
            task = progress.add_task("train", total=total, completed=self.step, loss=float("nan"), lr=0.0, sps=0.0)
            while self.step < total and (stop_after is None or result.steps < stop_after):
                step_start = time.perf_counter()
                metrics = self._optimizer_step(batches, accumulation)
                self.step += 1
                if self.ema is not None:
                    self.ema.update(self.step)
                result.steps += 1
                result.losses.append(metrics["loss"])
                result.metrics.append(metrics)
                metrics.update(
                    step=self.step, lr=self.scheduler.get_last_lr()[0], s_per_step=time.perf_counter() - step_start
                )
                self._log(metrics)
                progress.update(
                    task, completed=self.step, loss=metrics["loss"], lr=metrics["lr"], sps=metrics["s_per_step"]
                )
                if self.validation is not None and self.validation.due(self.step):
                    self._validate()
                interval = cfg.checkpoints.interval
                if self.step == total or (interval and self.step % interval == 0) or stop.signal:
                    result.weights = self.save_checkpoint()
                if stop.signal and self.step < total:
                    raise Interrupted(
                        f"stopped by {stop.signal.name} at step {self.step}; resumable checkpoint in "
                        f"{self.checkpoint_dir} ({result.weights.name}); run the same command to resume"
                    )
        result.seconds = time.perf_counter() - started
        if self.accelerator.is_main_process:
            self._write_report(result)
            self.tracker.finish()
        if self.publisher is not None:  # last: a failed push leaves every file of the run in place
            self.publisher.finish()
        return result

    def _validate(self) -> None:
        """Validation samples at this step (shared by the ranks), logged to W&B/TensorBoard; the report lists them."""
        started = time.perf_counter()
        logger.info("validation at step %d: sampling %d sample(s) ...", self.step, len(self.config.validation.samples))
        offload = self.config.acceleration.offload_optimizer_during_validation
        with self._sampling_weights():
            paths = self.validation.run_during_training(self.step, self.accelerator, self.optimizer, offload)
        logger.info(
            "validation at step %d done in %.0f s: %d file(s)",
            self.step,
            time.perf_counter() - started,
            len(paths or []),
        )
        if self.tracker is not None and paths:
            self.tracker.log_samples(paths, self.step)

    def _write_report(self, result: TrainResult) -> None:
        """The before/after comparison (when on), then the HTML report (curves, validation grid) in the output dir."""
        from ltx_trainer.training import compare  # sampling and matplotlib: only at the end

        efficacy = compare.end_of_training(self, result.weights)
        spec = self.model.spec
        last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
        summary = compare.summary_of(self.config, f"{spec.family} {spec.version}", self.step, result.weights)
        report = compare.write_run_report(self.output_dir, self.config, {**summary, "last loss": last}, efficacy)
        logger.info("report: %s%s", report, f" ({efficacy.verdict()})" if efficacy is not None else "")

    def _optimizer_step(self, batches, accumulation: int) -> dict:
        """One optimizer step over ``accumulation`` micro-batches; the schedule advances exactly once.

        Losses stay on the device until the end of the step: one host sync per step, not per micro-batch.
        """
        timer = PhaseTimer(self.device, enabled=self.profile)
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        sampler = self.batch_sampler
        losses, weights, parts_sum, sigmas, ids = [], [], {}, [], []
        for micro in range(accumulation):
            with timer("data_s"):
                batch = next(batches)
            # the global batch every rank shares: this rank's sample weights and the keys of its draws
            global_batch = sampler.global_batch(self.batches_consumed)
            shard, weight = sampler.shard(global_batch)
            ids.append(list(batch["id"]))
            self.batches_consumed += 1
            keys = distributed.positions(micro, sampler.global_batch_size, rank, sampler.batch_size, len(shard))
            draws = Draws.keyed(self.config.seed, self.step, micro, keys)
            weight = torch.tensor(weight, device=self.device)
            last = micro == accumulation - 1
            sync = nullcontext() if last else self.accelerator.no_sync(self.model.transformer)
            with sync, self.accelerator.autocast():
                with timer("forward_s"):
                    loss, parts, prepared = self._loss(batch, draws)
                with timer("backward_s"):
                    share = distributed.world_loss(loss, weight, len(global_batch), world)
                    self.accelerator.backward(share / accumulation)
            losses.append(loss.detach())
            weights.append(weight)
            for name, part in parts.items():
                parts_sum.setdefault(name, []).append(part.detach())
            generated = [p for p in prepared.values() if p.target is not None]
            if generated:
                sigmas.append(generated[0].input.sigma.detach())
        # every rank's samples: the all-reduced mean is logged, a bad sample anywhere stops every rank alike
        gathered = distributed.gather_step(self.accelerator, losses, weights, parts_sum, sigmas)
        real = gathered["weight"] > 0
        with timer("optimizer_s"):
            finite = self._finite_update([gathered["loss"][real]], [distributed.real_ids(self.accelerator, ids, real)])
            if finite:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
        metrics = {k: v[real].mean().item() for k, v in gathered.items() if k.startswith("loss")}
        if "sigma" in gathered:
            metrics.update(sigma_bucket_losses([(gathered["sigma"][real], gathered["loss"][real])]))
        metrics.update(timer.totals)
        return metrics

    def _finite_update(self, losses: list[torch.Tensor], ids: list[list[str]]) -> bool:
        """Clip gradients; False (skip) or :class:`guards.NonFiniteError` (stop) on a non-finite loss or gradient."""
        bad = guards.nonfinite_samples(losses, ids)
        norm = None
        if not bad and self.config.optimization.max_grad_norm > 0:
            norm = self.accelerator.clip_grad_norm_(self.trainable, self.config.optimization.max_grad_norm)
        if not bad and (norm is None or torch.isfinite(norm).all()):
            return True
        samples = bad or [f"{i} (gradient)" for batch in ids for i in batch]
        message = guards.nonfinite_loss_message(self.step + 1, samples)
        if self.config.optimization.nonfinite == "stop":
            self.optimizer.zero_grad(set_to_none=True)
            raise guards.NonFiniteError(message)
        logger.warning("skipped the update: %s", message)
        return False

    def _loss(self, batch: dict, draws: Draws | None = None) -> tuple[torch.Tensor, dict, dict[str, PreparedModality]]:
        draws = draws or Draws.from_generator(self.generator)
        context = self._context(batch["conditions"], draws, batch["id"])
        prepared = self.strategy.prepare(batch, self.model, self.sigma_sampler, draws)
        for item in prepared.values():
            for name in ("latent", "timesteps", "sigma", "positions"):
                setattr(item.input, name, getattr(item.input, name).to(self.device))
            if item.target is not None:
                item.target, item.loss_mask = item.target.to(self.device), item.loss_mask.to(self.device)
        video, audio = self.model.forward(
            prepared["video"].input if "video" in prepared else None,
            prepared["audio"].input if "audio" in prepared else None,
            context,
        )
        predictions = {k: v for k, v in (("video", video), ("audio", audio)) if v is not None}
        loss, parts = self.strategy.loss(predictions, prepared)
        return loss, parts, prepared

    @torch.no_grad()
    def _context(self, conditions: dict, draws: Draws | None = None, ids: list[str] | None = None) -> TextContext:
        """The batch's transformer context: cached per sample when the connectors are frozen (``ids`` given), else the
        cached pre-connector features through the connectors. Caption dropout swaps in the empty prompt."""
        draws = draws or Draws.from_generator(self.generator)
        video, audio = conditions["video_prompt_embeds"], conditions.get("audio_prompt_embeds")
        mask = conditions["prompt_attention_mask"]
        drop = None
        if self.empty_prompt is not None:
            drop = draws.rand(video.shape[0]) < self.config.optimization.caption_dropout
        if self.contexts is not None and ids is not None:
            return self.contexts.batch(ids, drop, self.device)
        video, audio, mask = with_empty_prompt(drop, video, audio, mask, self.empty_prompt)
        return self.model.text_context(features_of(video, audio, mask, self.device, self.model.dtype))

    # ---- checkpoints and resume -----------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write the weights file (and the training state) for the current step; prune old ones."""
        self.accelerator.wait_for_everyone()
        if self.config.checkpoints.save_training_state != "off" and self.accelerator.num_processes > 1:
            # every process draws its own noise: each keeps its generator and RNG state
            rank_state = {"generator": self.generator.get_state(), "rng": checkpoints.rng_state()}
            checkpoints.atomic_torch_save(rank_state, self._rank_state_path(self.step))
            self.accelerator.wait_for_everyone()  # every rank's RNG is on disk before the state that points at it
        lora = adapters.ADAPTER if self.config.model.training_mode == "lora" else None
        gathered = distributed.gathered_weights(self.accelerator, self.model.transformer, lora)  # FSDP2 / ZeRO-3
        full_state = self.config.checkpoints.save_training_state == "full"
        moments = distributed.gathered_optimizer(self.accelerator, self.model.transformer, self.optimizer, full_state)
        if not self.accelerator.is_main_process:
            return checkpoints.weights_path(self.checkpoint_dir, self._weights_kind(), self.step)
        transformer = self.accelerator.unwrap_model(self.model.transformer)
        if gathered is None:  # (a sharded model's weights are checked on the gathered copy by save_full_checkpoint)
            self._refuse_nonfinite_weights(transformer)
        path = checkpoints.weights_path(self.checkpoint_dir, self._weights_kind(), self.step)
        with self._sampling_weights(use_ema=False):  # a schedule-free optimizer's average is the exported model
            written = self._write_weights(transformer, gathered, path)
        if self.ema is not None:
            with self.ema.swapped_in() as started:
                if started:
                    self._write_weights(transformer, None, ema.ema_path(path))
        if self.config.checkpoints.save_training_state != "off":
            checkpoints.atomic_torch_save(
                self._training_state(transformer, gathered, moments),
                checkpoints.state_path(self.checkpoint_dir, self.step),
            )
        checkpoints.prune(self.checkpoint_dir, self.config.checkpoints.keep_last_n, protect={self.step})
        logger.info("saved %s", path)
        if self.publisher is not None:
            self.publisher.checkpoint_saved(self.step, written)
        return path

    def _write_weights(self, transformer: torch.nn.Module, gathered: dict | None, path: Path) -> list[Path]:
        precision = torch.bfloat16 if self.config.checkpoints.precision == "bfloat16" else torch.float32
        if self._weights_kind() == "model":
            self.model.save_full_checkpoint(path, precision, transformer.state_dict() if gathered is None else gathered)
            return [path]
        lora = self.config.lora
        weights = adapters.lora_state_dict(transformer) if gathered is None else gathered
        metadata = self.strategy.metadata()  # IC-LoRA reference scale factors, read by samplers
        args = (lora.rank, lora.alpha, lora.target_modules, path, precision, metadata, lora.adapter)
        return save_lora(self.model, weights, *args)

    @contextmanager
    def _sampling_weights(self, use_ema: bool = True):
        """The weights to sample from in place of the raw ones, restored bit for bit after (module docstring)."""
        averaged = self.ema.swapped_in() if use_ema and self.ema is not None else nullcontext()
        with evaluation_weights(self.optimizer, self.config.optimization.optimizer_type), averaged:
            yield

    def _refuse_nonfinite_weights(self, transformer: torch.nn.Module) -> None:
        """A NaN/Inf weight is never written, and so never prunes the last good checkpoint."""
        trainable = {n: p for n, p in transformer.named_parameters() if p.requires_grad}
        bad = guards.nonfinite_tensors(trainable)
        if bad:
            last = checkpoints.saved_steps(self.checkpoint_dir)
            raise guards.NonFiniteError(
                f"non-finite weights at step {self.step} ({len(bad)} tensor(s), e.g. {bad[0]}); not saved; the last "
                f"good checkpoint is step {last[-1] if last else 'none'} in {self.checkpoint_dir}"
            )

    def _weights_kind(self) -> str:
        return "lora" if self.config.model.training_mode == "lora" else "model"

    def _training_state(self, transformer: torch.nn.Module, gathered: dict | None = None, moments=None) -> dict:
        if gathered is not None:  # a sharded model's weights, gathered by distributed.gathered_weights
            weights = gathered
        elif self.config.model.training_mode == "lora":
            weights = adapters.lora_state_dict(transformer)
        else:
            weights = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
        full = self.config.checkpoints.save_training_state == "full"
        return {
            "step": self.step,
            "batches_consumed": self.batches_consumed,
            "trainable": weights,
            "optimizer": moments if moments is not None else self.optimizer.state_dict() if full else None,
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "generator": self.generator.get_state(),
            "rng": checkpoints.rng_state(),
            "wandb_run_id": self.tracker.run_id if self.tracker is not None else None,
            "config_fingerprint": self._config_fingerprint(),
            "world": distributed.world_record(self.accelerator.num_processes, self.config.optimization.batch_size),
            "settings": resume.settings_record(self.config.model_dump(mode="json")),
        }

    def _config_fingerprint(self) -> dict:
        """Settings a resumed run must share with the checkpoint."""
        return {
            "training_mode": self.config.model.training_mode,
            "lora_rank": self.config.lora.rank if self.config.lora else None,
            "optimizer_type": self.config.optimization.optimizer_type,
        }

    def _rank_state_path(self, step: int) -> Path:
        return self.checkpoint_dir / f"rng_state_step_{step:05d}_rank{self.accelerator.process_index}.pt"

    def _resume(self) -> None:
        self.resumed_from = None
        if self.config.checkpoints.no_resume:
            return
        path = checkpoints.latest_state(self.checkpoint_dir)
        if path is None:
            return
        state = checkpoints.load_state(path)
        applied = []
        rebatched = distributed.check_world(
            path, state.get("world"), self.accelerator.num_processes, self.config.optimization.batch_size
        )
        if "settings" in state:
            changes = resume.changed_settings(state["settings"], self.config.model_dump(mode="json"))
            if rebatched:  # same global batch over another number of processes
                changes = [c for c in changes if c[0] != "optimization.batch_size"]
            applied = resume.check_resume(path, changes)
        saved, current = state["config_fingerprint"], self._config_fingerprint()
        clashes = [
            f"{k}: {saved.get(k)} in the checkpoint, {v} in the config" for k, v in current.items() if saved.get(k) != v
        ]
        if clashes:
            raise UsageError(
                f"{path}: can't resume ({'; '.join(clashes)}). Use a new output_dir, or set checkpoints.no_resume: true"
            )
        transformer = self.accelerator.unwrap_model(self.model.transformer)
        lora = adapters.ADAPTER if self.config.model.training_mode == "lora" else None
        distributed.load_trained(self.accelerator, transformer, state, lora, self.optimizer)
        if state["optimizer"] is None:
            logger.warning(
                "%s has no optimizer state (checkpoints.save_training_state: minimal): AdamW moments restart at zero; "
                "use 'full' for exact resumes",
                path,
            )
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        set_peak_lr(self.optimizer, self.scheduler, self.config.optimization.learning_rate)  # a changed lr applies
        rank_path = self._rank_state_path(state["step"])
        own = checkpoints.load_state(rank_path) if rank_path.is_file() else state
        self.generator.set_state(own["generator"])
        checkpoints.set_rng_state(own["rng"])
        self.step, self.batches_consumed = state["step"], state["batches_consumed"]
        self.wandb_run_id = state.get("wandb_run_id")
        self.resumed_from = path
        logger.info("resumed from %s at step %d", path, self.step)
        for line in applied:
            logger.info("resume applies a changed setting: %s", line)
        if self.accelerator.is_main_process:  # finish a retention pass a kill interrupted
            checkpoints.prune(self.checkpoint_dir, self.config.checkpoints.keep_last_n, protect={self.step})

    def _cut_metrics(self) -> None:
        """The log holds exactly the steps the weights have seen: records past the resume point (step 0 when a run
        was killed before its first checkpoint) are trained again, so they go."""
        if self.accelerator.is_main_process:
            dropped = run_dir.truncate_metrics(self.output_dir / "metrics.jsonl", self.step)
            if dropped:
                logger.info(
                    "metrics.jsonl: dropped %d record(s) after step %d (they are trained again)", dropped, self.step
                )

    # ---- feedback -------------------------------------------------------------------------------------------------
    def _claim_output_dir(self) -> None:
        """Lock the output dir (one run at a time), clean temps of killed writers, refuse mixing two runs."""
        self.run_lock = None
        for warning in config_warnings(self.config, self.accelerator.device.type):
            logger.warning("%s", warning)
        if not self.accelerator.is_main_process:
            return
        self.run_lock = run_dir.RunLock(self.output_dir).acquire()
        try:
            run_dir.check_fresh_start(self.output_dir, self.checkpoint_dir, self.config.checkpoints.no_resume)
        except BaseException:
            self._release_output_dir()
            raise
        removed = run_dir.clean_stale_temps(self.output_dir, locked=True)
        if removed:
            logger.info("removed %d temp file(s) left by a killed run in %s", len(removed), self.output_dir)

    def _release_output_dir(self) -> None:
        if getattr(self, "run_lock", None) is not None:
            self.run_lock.release()
            self.run_lock = None

    @contextmanager
    def _releasing_output_dir(self):
        try:
            yield
        finally:
            self._release_output_dir()

    def _write_run_files(self) -> None:
        if not self.accelerator.is_main_process:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.config_source is not None and not (self.output_dir / "training_config.yaml").exists():
            # unmodified, as written
            atomic_write_bytes(self.output_dir / "training_config.yaml", Path(self.config_source).read_bytes())
        atomic_write_text(self.output_dir / "training_config.resolved.yaml", dump_config(self.config))

    def _log(self, metrics: dict) -> None:
        if self.accelerator.is_main_process:
            run_dir.append_metrics(self.output_dir / "metrics.jsonl", metrics)
            self.tracker.log(metrics, self.step)
