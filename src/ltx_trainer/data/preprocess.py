"""Precompute what training reads: video latents, audio latents, text features, masks and IC-LoRA references.

Input (``data/preprocess_inputs.py``): a folder of media with sidecar captions (``clip.mp4`` + ``clip.txt``), or a
CSV / JSON / JSONL dataset file read by ``data/manifest.py`` (its column names: ``media_path``/``video``/...,
``caption``, ``audio``, ``reference_video``, ``reference_audio``, ``video_mask``, ``audio_mask``), paths relative to
the file.
Buckets: ``data/buckets.py``; options, cache settings, report and summary: ``data/preprocess_options.py``.

Output: the cache layout of ``data/cache.py`` (one file per sample and source folder, named after the main media
path relative to the dataset root). Safetensors files (the default) keep the scalars and a fingerprint in the header
(``data/fingerprint.py``); ``format="pt"`` writes the official ``torch.save`` dicts (no fingerprint).

Per sample: decode up to the longest bucket's frames (optionally resampled to a target fps), pick the bucket
(:func:`choose_bucket`), take its first F frames, resize to cover and centre/random crop, encode; the audio comes from
the clip (or the ``audio`` column), stereo, trimmed or zero-padded to F / fps seconds. Everything of a sample is
computed before anything is written, so a bad sample leaves no partial files. The next sample is decoded and resized
in a background thread while the encoders work on the current one. Text features are computed once per unique
caption, after the media, for the samples whose media succeeded.

Bad input never stops a run: each bad sample is skipped with its reason, listed in ``preprocess_report.json`` in the
output folder and in a summary table. Runs resume: samples whose outputs exist and were made with the run's cache
settings are skipped unless ``overwrite`` (a changed setting re-does the files it affects); writes are atomic, stale
temporary files of killed runs are removed at start, and ``num_shards`` processes can split the work (interleaved).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ltx_trainer import logger
from ltx_trainer.data.buckets import Bucket, BucketError, choose_bucket, crop_note, parse_buckets
from ltx_trainer.data.cache import AUDIO_MISSING_KEY, FINGERPRINT_KEY, read_fingerprint, write_sample_file
from ltx_trainer.data.masks import (
    audio_mask_to_latent_steps,
    is_mask_array,
    load_mask_array,
    video_mask_to_latent_grid,
)
from ltx_trainer.data.media import MediaError, is_image_file, probe, read_audio, read_video, resize_and_crop
from ltx_trainer.data.preprocess_inputs import Item, Skipped, load_dataset
from ltx_trainer.data.preprocess_options import (
    AUDIO_DTYPE,
    REPORT_NAME,
    VIDEO_DTYPE,
    PreprocessOptions,
    PreprocessResult,
    SampleError,
    build_report,
    cache_settings,
    changed_settings,
    check_options,
    check_pt_settings,
    default_shard,
    print_summary,
    progress_bar,
    report_path,
    settings_for_folder,
)
from ltx_trainer.io import atomic_write_json, clean_stale_temps
from ltx_trainer.models.base import LTXModel
from ltx_trainer.models.devices import resolve_device
from ltx_trainer.models.errors import ModelLoadError

# re-exported: the public names of ``ltx_trainer.data.preprocess`` (cli.py, demo.py, tests) live in these modules now
__all__ = ["REPORT_NAME", "VIDEO_DTYPE", "BucketError", "default_shard", "parse_buckets", "print_summary"]


# The run
# ----------------------------------------------------------------------------------------------------------------------


def _crop_seed(seed: int, sample_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()[:8], "little") & (2**63 - 1)


@dataclass
class _Loaded:
    """One sample decoded and prepared for the encoders (CPU tensors)."""

    item: Item
    bucket: Bucket
    fps: float
    frames: torch.Tensor  # uint8 [F, H, W, 3] at the bucket size
    audio: tuple[torch.Tensor, int] | None = None  # stereo [2, S], sample rate
    reference: tuple[torch.Tensor, float] | None = None  # uint8 frames, fps
    reference_audio: tuple[torch.Tensor, int] | None = None
    video_mask: torch.Tensor | None = None  # latent grid [F', H', W']
    audio_mask: torch.Tensor | None = None  # raw values over the clip's duration
    audio_missing: bool = False  # a video-only sample kept by --allow-missing-audio


class _Run:
    """One preprocessing run over a list of items (state shared by the phases)."""

    def __init__(self, model: LTXModel, options: PreprocessOptions, output: Path, dataset: str | Path | None):
        self.model, self.options, self.output = model, options, output
        self.dataset = str(dataset) if dataset is not None else None
        self.audio_on = model.spec.has_audio if options.audio is None else bool(options.audio)
        self.suffix = ".pt" if options.format == "pt" else ".safetensors"
        self.device = resolve_device(options.device)
        self.timings: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.warnings: list[str] = []
        self._fingerprints: dict[str, dict] = {}
        self.settings = cache_settings(options, model)
        self.notes: dict[str, list[str]] = defaultdict(list)
        self._lock = threading.Lock()

    # ---- helpers ---------------------------------------------------------------------------------------------------
    def load_encoders(self) -> None:
        """Load the VAEs now (a broken model must stop the run, not skip every sample) and move them to the device."""
        vae = self.model.video_vae
        audio_vae = self.model.audio_vae if self.audio_on else None
        if audio_vae is not None:  # fp32 "for quality", as the official pipeline, whatever the video VAE runs in
            audio_vae.to(device=self.device, dtype=torch.float32)
        vae.to(self.device)

    def path(self, folder: str, sample_id: str) -> Path:
        return self.output / folder / f"{sample_id}{self.suffix}"

    def timed(self, phase: str, start: float) -> float:
        now = time.perf_counter()
        with self._lock:  # the loader thread times its phases too
            self.timings[phase] += now - start
        return now

    def media_folders(self, item: Item) -> list[str]:
        """Outputs that must exist for the media part of ``item`` to count as done."""
        folders = ["latents"]
        if self.audio_on and not self.options.allow_missing_audio and not is_image_file(item.media):
            folders.append("audio_latents")
        if item.audio is not None and self.audio_on:
            folders.append("audio_latents")
        if item.reference_video is not None:
            folders.append("reference_latents")
        if item.reference_audio is not None and self.audio_on:
            folders.append("reference_audio_latents")
        if item.video_mask is not None:
            folders.append("video_masks")
        if item.audio_mask is not None and self.audio_on:
            folders.append("audio_masks")
        return list(dict.fromkeys(folders))

    def changes(self, folder: str, sample_id: str) -> list[str]:
        """What differs between the run's settings (and encoders) and those an existing file was made with."""
        path = self.path(folder, sample_id)
        if self.suffix == ".pt":
            return []  # no fingerprint: the report's settings were compared at the start (check_pt_settings)
        try:
            recorded = read_fingerprint(path) or {}
        except Exception:  # a damaged header: rebuild the file
            return ["unreadable fingerprint"]
        if not recorded:
            return []  # made by an older version: nothing to compare
        expected = self.expected_fingerprint(folder)
        changes = changed_settings(recorded, expected, ("family", "version", *settings_for_folder(folder)))
        if recorded.get("encoders") and recorded["encoders"] != expected["encoders"]:
            changes.append("encoder weights")
        return changes

    def media_state(self, item: Item) -> tuple[bool, list[str]]:
        """``(done, changes)``: done when every media output exists and was made with the run's settings."""
        folders = self.media_folders(item)
        if not all(self.path(folder, item.sample_id).is_file() for folder in folders):
            return False, []
        changes = [c for folder in folders for c in self.changes(folder, item.sample_id)]
        return not changes, list(dict.fromkeys(changes))

    def text_state(self, item: Item) -> tuple[bool, list[str]]:
        if not self.path("conditions", item.sample_id).is_file():
            return False, []
        changes = self.changes("conditions", item.sample_id)
        return not changes, changes

    def caption(self, item: Item) -> str:
        trigger = (self.options.trigger or "").strip()
        caption = item.caption.strip()
        return f"{trigger} {caption}" if trigger else caption

    def expected_fingerprint(self, folder: str, bucket: Bucket | None = None) -> dict:
        """The fingerprint a file of ``folder`` made now gets (settings of :func:`cache_settings` included)."""
        from ltx_trainer.data.fingerprint import fingerprint_for

        key = f"{folder}:{bucket}"
        if key not in self._fingerprints:
            self._fingerprints[key] = fingerprint_for(
                self.model,
                folder,
                bucket=bucket,
                buckets=";".join(str(b) for b in self.options.buckets),
                fps=self.options.fps,
                trigger=self.options.trigger,
                crop=self.options.crop,
                dataset=self.dataset,
                extra=self.settings,
            )
        return self._fingerprints[key]

    def fingerprint(self, folder: str, bucket: Bucket | None) -> dict[str, str] | None:
        if self.suffix == ".pt":
            return None
        return {FINGERPRINT_KEY: json.dumps(self.expected_fingerprint(folder, bucket), sort_keys=True)}

    def write(self, folder: str, sample_id: str, data: dict, bucket: Bucket | None) -> None:
        start = time.perf_counter()
        metadata = self.fingerprint(folder, bucket)
        write_sample_file(self.path(folder, sample_id), data, metadata)
        self.timed("write", start)

    # ---- encoders --------------------------------------------------------------------------------------------------
    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[F, H, W, 3]`` -> latents ``[C, F', H', W']`` on the CPU."""
        start = time.perf_counter()
        pixels = frames.to(self.device).permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1.0
        with torch.no_grad():
            latents = self.model.encode_video(pixels, tiled=self.options.vae_tiling)
        self.calls["video"] += 1
        self.timed("vae", start)
        return latents[0].cpu()

    def video_record(self, latents: torch.Tensor, fps: float) -> dict:
        _, f, h, w = latents.shape
        latents = latents.to(self.options.dtype or latents.dtype).contiguous()
        return {"latents": latents, "num_frames": f, "height": h, "width": w, "fps": fps}

    def encode_audio(self, waveform: torch.Tensor, rate: int, duration: float) -> dict:
        """Stereo ``[2, S]`` -> the ``audio_latents`` record."""
        start = time.perf_counter()
        with torch.no_grad():
            latents = self.model.encode_audio(waveform.unsqueeze(0).to(self.device), rate)[0]
        self.calls["audio"] += 1
        self.timed("audio_vae", start)
        latents = latents.to("cpu", AUDIO_DTYPE).contiguous()
        return {
            "latents": latents,
            "num_time_steps": latents.shape[1],
            "frequency_bins": latents.shape[2],
            "duration": float(duration),
        }

    # ---- one sample: load (decode, resize, masks; no model) then encode --------------------------------------------
    def read_frames(self, path: Path, max_frames: int, fps: float | None) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        image = is_image_file(path)
        frames, source_fps = read_video(path, max_frames=1 if image else max_frames, fps=None if image else fps)
        self.timed("decode", start)
        return frames, (1.0 if image else source_fps)

    def read_audio(self, path: Path, duration: float) -> tuple[torch.Tensor, int]:
        start = time.perf_counter()
        waveform, rate = read_audio(path, channels=2, duration=duration)
        self.timed("audio_decode", start)
        if waveform.shape[1] == 0:
            raise SampleError(f"{path.name}: no audio samples for a {duration:.3f} s clip")
        return waveform, rate

    def fit(self, frames: torch.Tensor, bucket: Bucket, seed: int) -> torch.Tensor:
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(seed) if self.options.crop == "random" else None
        out = resize_and_crop(frames, bucket.width, bucket.height, crop=self.options.crop, generator=generator)
        self.timed("resize", start)
        return out

    def load(self, item: Item) -> _Loaded:
        """Decode and prepare everything of one sample on the CPU (runs one sample ahead, in a thread)."""
        options, spec = self.options, self.model.spec
        image = is_image_file(item.media)
        longest = max(b.frames for b in options.buckets)
        frames, fps = self.read_frames(item.media, longest + 1, options.fps)  # one more: is the clip longer?
        longer = frames.shape[0] > longest
        frames = frames[:longest]
        available, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
        bucket = choose_bucket(options.buckets, width, height, available, image=image)
        if bucket is None and image:
            raise SampleError(
                "still image, but no single-frame bucket is declared; add one to --resolution-buckets (e.g. "
                f"{options.buckets[0].width}x{options.buckets[0].height}x1) or leave images out of the dataset"
            )
        if bucket is None:
            needed = min(b.frames for b in options.buckets)
            raise SampleError(
                f"too few frames: {available} decoded{f' at {options.fps:g} fps' if options.fps else ''}, "
                f"the shortest bucket needs {needed}"
            )
        self.note_losses(item, bucket, width, height, fps, longer or available > bucket.frames)
        seed = _crop_seed(options.seed, item.sample_id)
        loaded = _Loaded(item, bucket, fps, self.fit(frames[: bucket.frames], bucket, seed))
        del frames
        duration = bucket.frames / fps

        if item.audio is not None and not self.audio_on:
            self.warnings.append(f"{item.source}: 'audio' column ignored (audio latents are off)")
        elif (self.audio_on and not image) or item.audio is not None:
            try:
                loaded.audio = self.read_audio(item.audio or item.media, duration)
            except MediaError as e:
                if item.audio is not None or not options.allow_missing_audio:
                    raise SampleError(
                        f"{e.reason} in {e.path.name if e.path else item.media.name}: audio latents are on; "
                        "pass --allow-missing-audio to keep it video-only, or --no-audio"
                    ) from e
                self.warnings.append(f"{item.source}: no audio stream, kept as a video-only sample")
                loaded.audio_missing = True

        if item.reference_video is not None:
            loaded.reference = self.load_reference(item.reference_video, bucket, fps, seed)
        if item.reference_audio is not None:
            if not self.audio_on:
                raise SampleError("reference_audio given but audio latents are off (or the model has no audio)")
            loaded.reference_audio = self.read_audio(item.reference_audio, duration)
        if item.video_mask is not None:
            start = time.perf_counter()
            mask = self.pixel_mask(item.video_mask, bucket, fps, (height, width), seed)
            loaded.video_mask = video_mask_to_latent_grid(mask, spec.temporal_compression, spec.spatial_compression)
            self.timed("masks", start)
        if item.audio_mask is not None:
            if loaded.audio is None:
                raise SampleError("audio_mask given but this sample has no audio latents")
            loaded.audio_mask = load_mask_array(item.audio_mask)
        return loaded

    def note_losses(self, item: Item, bucket: Bucket, width: int, height: int, fps: float, longer: bool) -> None:
        """Say once per file what the bucket costs it: frames beyond the bucket, a crop, an upscale."""
        notes = []
        if longer and bucket.frames > 1:
            seconds = f"{bucket.frames / fps:.2f} s"
            with contextlib.suppress(MediaError):
                seconds += f" of {probe(item.media).duration:.2f} s"
            notes.append(f"only the first {bucket.frames} frames are used ({seconds}): the bucket is {bucket}")
        if (note := crop_note(width, height, bucket)) is not None:
            notes.append(note)
        if notes:
            with self._lock:
                self.notes[item.sample_id].extend(notes)

    def encode(self, loaded: _Loaded) -> dict[str, dict]:
        """The sample's ``{folder: record}`` (everything but the text features)."""
        duration = loaded.bucket.frames / loaded.fps
        records = {"latents": self.video_record(self.encode_video(loaded.frames), loaded.fps)}
        if loaded.audio_missing:  # the dataset trains it with the audio loss masked (data/dataset.py)
            records["latents"][AUDIO_MISSING_KEY] = 1
        if loaded.audio is not None:
            records["audio_latents"] = self.encode_audio(*loaded.audio, duration)
        if loaded.reference is not None:
            frames, fps = loaded.reference
            records["reference_latents"] = self.video_record(self.encode_video(frames), fps)
        if loaded.reference_audio is not None:
            records["reference_audio_latents"] = self.encode_audio(*loaded.reference_audio, duration)
        if loaded.video_mask is not None:
            records["video_masks"] = {"mask": loaded.video_mask}
        if loaded.audio_mask is not None:
            steps = records["audio_latents"]["num_time_steps"]
            records["audio_masks"] = {"mask": audio_mask_to_latent_steps(loaded.audio_mask, steps)}
        return records

    def load_reference(self, path: Path, bucket: Bucket, fps: float, seed: int) -> tuple[torch.Tensor, float]:
        """IC-LoRA reference frames: same bucket and crop window as the target, then downscaled and subsampled."""
        k, s = self.options.reference_downscale_factor, self.options.reference_temporal_scale_factor
        frames, _ = self.read_frames(path, bucket.frames, fps)
        if frames.shape[0] < bucket.frames:
            raise SampleError(
                f"reference_video {path.name}: {frames.shape[0]} frames, the sample's bucket {bucket} "
                f"needs {bucket.frames}"
            )
        frames = self.fit(frames[: bucket.frames], bucket, seed)
        if k > 1:
            start = time.perf_counter()
            frames = resize_and_crop(frames, bucket.width // k, bucket.height // k)
            self.timed("resize", start)
        return frames[::s].contiguous(), fps / s

    def pixel_mask(self, path: Path, bucket: Bucket, fps: float, size: tuple[int, int], seed: int) -> torch.Tensor:
        """``video_mask`` file -> ``[F, H, W]`` floats in [0, 1], cropped exactly like the target frames."""
        if is_mask_array(path):
            mask = load_mask_array(path)
        else:
            frames, _ = self.read_frames(path, bucket.frames, fps)
            mask = frames.float().mean(dim=-1) / 255.0
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3:
            raise SampleError(f"video_mask {path.name}: expected [F, H, W] or [H, W], got {tuple(mask.shape)}")
        if mask.shape[0] == 1:
            mask = mask.expand(bucket.frames, -1, -1)
        elif mask.shape[0] < bucket.frames:
            raise SampleError(f"video_mask {path.name}: {mask.shape[0]} frames, the sample needs {bucket.frames}")
        mask = mask[: bucket.frames]
        if tuple(mask.shape[1:]) != size:  # bring it to the media's size so the crop window is the same
            mask = F.interpolate(mask[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        fitted = self.fit(mask[..., None].expand(-1, -1, -1, 3).contiguous(), bucket, seed)
        return fitted[..., 0].clamp(0.0, 1.0)

    # ---- text ------------------------------------------------------------------------------------------------------
    def encode_text(self, caption: str) -> dict:
        start = time.perf_counter()
        with torch.no_grad():
            features = self.model.encode_text([caption])
        self.calls["text"] += 1
        self.timed("text", start)
        dtype = self.options.dtype or features.video.dtype
        record = {
            "video_prompt_embeds": features.video[0].to("cpu", dtype).contiguous(),
            "prompt_attention_mask": features.mask[0].cpu().contiguous(),
        }
        if features.audio is not None:  # LTX-2.0 returns the same tensor twice: store a copy (no shared storage)
            record["audio_prompt_embeds"] = features.audio[0].to("cpu", dtype).clone().contiguous()
        return record


def preprocess_items(
    model: LTXModel,
    items: list[Item],
    options: PreprocessOptions,
    *,
    output: Path | None = None,
    dataset: str | Path | None = None,
    skipped: list[Skipped] | None = None,
) -> PreprocessResult:
    """Preprocess ``items`` (already validated, e.g. by :func:`load_dataset`) into the cache at ``output``.

    Args:
        model: the loaded model (its VAEs and text encoder load lazily on first use).
        items: the samples; this shard takes ``items[shard_index::num_shards]``.
        options: see :class:`PreprocessOptions`.
        output: cache root (default ``options.output``).
        dataset: the dataset path, recorded in fingerprints and the report.
        skipped: samples already rejected while loading (reported by shard 0).

    Returns:
        What was written, found done, skipped (with reasons), timings per phase and encoder call counts.
    """
    check_options(options, model)
    output = Path(output or options.output or ".precomputed")
    started = time.perf_counter()
    for stale in clean_stale_temps(output):
        logger.info("removed %s (a temporary file left by a killed run)", stale)
    run = _Run(model, options, output, dataset)
    if options.format == "pt" and not options.overwrite:
        check_pt_settings(output, run.settings)
    result = PreprocessResult(output=output)
    if options.shard_index == 0:
        result.skipped.extend(skipped or [])
    mine = items[options.shard_index :: options.num_shards]
    todo = []
    for item in mine:
        done, changes = (False, []) if options.overwrite else run.media_state(item)
        if not done:
            todo.append(item)
        if changes:
            result.redone[item.sample_id] = ", ".join(changes)
    todo_ids = {item.sample_id for item in todo}
    media_ok = [item for item in mine if item.sample_id not in todo_ids]
    written: set[str] = set()
    failed: set[str] = set()
    if todo:
        run.load_encoders()

    def skip(item: Item, reason: str) -> None:
        result.skipped.append(Skipped(item.source or str(item.media), reason, item.sample_id))
        failed.add(item.sample_id)

    try:
        with progress_bar(options.progress) as progress:
            task = progress.add_task("media", total=len(todo))
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="preprocess-load") as loader:
                # decode/resize the next sample while the encoders work on this one
                pending = [loader.submit(run.load, item) for item in todo[:1]]
                for index, item in enumerate(todo):
                    if index + 1 < len(todo):
                        pending.append(loader.submit(run.load, todo[index + 1]))
                    try:
                        loaded = pending.pop(0).result()
                        records = run.encode(loaded)
                    except (SampleError, MediaError) as e:
                        skip(item, str(e))
                    except ModelLoadError:
                        raise
                    except torch.cuda.OutOfMemoryError as e:
                        skip(item, f"out of GPU memory ({e}); try --vae-tiling or a smaller bucket")
                    except Exception as e:  # a damaged file can raise anything from deep inside a decoder
                        skip(item, f"{type(e).__name__}: {e}")
                    else:
                        for folder, record in records.items():
                            run.write(folder, item.sample_id, record, loaded.bucket)
                        written.add(item.sample_id)
                        media_ok.append(item)
                    progress.advance(task)

            captions: dict[str, list[Item]] = defaultdict(list)
            for item in media_ok:
                if options.overwrite or item.sample_id in written:
                    captions[run.caption(item)].append(item)
                    continue
                done, changes = run.text_state(item)
                if changes:
                    previous = result.redone.get(item.sample_id)
                    result.redone[item.sample_id] = ", ".join([*([previous] if previous else []), *changes])
                if not done:
                    captions[run.caption(item)].append(item)
            text_task = progress.add_task("captions", total=len(captions), unit="captions")
            for caption, group in captions.items():
                try:
                    record = run.encode_text(caption)
                except ModelLoadError:
                    raise
                except Exception as e:
                    for item in group:
                        skip(item, f"text encoder failed: {type(e).__name__}: {e}")
                else:
                    for item in group:
                        run.write("conditions", item.sample_id, record, None)
                        written.add(item.sample_id)
                progress.advance(text_task)
    finally:
        result.written = [i.sample_id for i in mine if i.sample_id in written and i.sample_id not in failed]
        result.already_done = [i.sample_id for i in mine if i.sample_id not in written | failed]
        result.redone = {k: v for k, v in result.redone.items() if k in written and k not in failed}
        result.notes = {k: v for k, v in run.notes.items() if k in written and k not in failed}
        result.warnings = run.warnings
        result.timings = {k: round(v, 4) for k, v in sorted(run.timings.items())}
        result.calls = dict(run.calls)
        result.seconds = time.perf_counter() - started
        if options.write_report:
            result.report = report_path(output, options.shard_index, options.num_shards)
            atomic_write_json(result.report, build_report(result, options, model, dataset))
    return result


def preprocess_dataset(
    dataset: str | Path,
    model: LTXModel,
    options: PreprocessOptions,
    caption_column: str | None = None,
    media_column: str | None = None,
) -> PreprocessResult:
    """Load ``dataset`` (:func:`load_dataset`) and preprocess it; the output defaults to ``<root>/.precomputed``."""
    items, skipped, root = load_dataset(dataset, caption_column, media_column)
    output = Path(options.output) if options.output else root / ".precomputed"
    logger.info("%s: %d samples (%d rows skipped while reading) -> %s", dataset, len(items), len(skipped), output)
    return preprocess_items(model, items, options, output=output, dataset=Path(dataset).absolute(), skipped=skipped)


def precompute(
    model: LTXModel,
    items: list[Item],
    out_root: Path,
    bucket: Bucket,
    with_audio: bool = True,
    suffix: str = ".safetensors",
) -> list[str]:
    """Write the cache for ``items`` at one bucket (a small programmatic entry point); returns the sample ids.

    Raises:
        SampleError: a sample could not be preprocessed (unlike the command, this entry point is strict).
    """
    options = PreprocessOptions(
        buckets=[bucket],
        output=Path(out_root),
        format="pt" if suffix == ".pt" else "safetensors",
        audio=bool(with_audio and model.spec.has_audio),
        overwrite=True,
        progress=False,
        write_report=False,
        dtype=None,  # the encoders' dtype, as this entry point always wrote
    )
    result = preprocess_items(model, items, options, dataset=out_root)
    if result.skipped:
        raise SampleError("; ".join(f"{s.source}: {s.reason}" for s in result.skipped))
    return result.written
