"""The precomputed dataset and a bucketed batch sampler.

A sample is the set of files sharing one relative path across the source folders a strategy needs (``latents/``,
``conditions/``, ``audio_latents/``, ...). Samples missing a source are skipped and counted in one warning, except
video-only samples kept by ``preprocess --allow-missing-audio`` (their video latents carry ``audio_missing``): they
get silent audio latents and ``audio_present = 0`` so the strategy masks their audio loss. Every sample with an audio
source carries ``audio_present`` (1 or 0) in its audio latents. Each loaded file is checked (dtype, shape against the
model's spec, finite values: ``data/checks.py``, the check ``verify`` runs) and a bad one raises a ``CacheError``
naming it. The bucketed sampler groups samples of equal latent shape, so ``batch_size > 1`` works on
mixed-resolution data.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset, Sampler

from ltx_trainer import logger
from ltx_trainer.data.cache import AUDIO_MISSING_KEY, CACHE_SUFFIXES, CacheError, read_sample_file, read_scalars
from ltx_trainer.data.checks import SampleCheckError, check_sample_data, guess_kind
from ltx_trainer.errors import DataError

if TYPE_CHECKING:
    from ltx_trainer.models.base import FamilySpec

AUDIO_PRESENT_KEY = "audio_present"  # in a sample's audio latents: 1.0, or 0.0 for a video-only sample
# batch keys of the strategies (config.data_source_keys) -> the kind of cache file they hold
_KIND_OF_KEY = {
    "latents": "video_latents",
    "video_latents": "video_latents",
    "audio_latents": "audio_latents",
    "conditions": "conditions",
    "ref_latents": "video_reference",
}


class CacheIncomplete(DataError, FileNotFoundError):
    """A source folder the strategy needs is missing, or no sample has every source."""


def precomputed_root(data_root: str | Path) -> Path:
    """``data.preprocessed_data_root`` or its ``.precomputed/`` subfolder when present (official convention)."""
    root = Path(data_root)
    return root / ".precomputed" if (root / ".precomputed").is_dir() else root


def index_cache_folder(folder: Path) -> dict[str, Path]:
    """Relative sample id (path without suffix) -> file, for every cache file under ``folder``.

    The one cache index (training, verify, decode): hidden and temporary files are left out, and legacy LVT names
    pair up (``latents/latent_X.pt`` with ``conditions/condition_X.pt`` as sample ``X``). A ``.safetensors`` file
    wins over a ``.pt`` twin.
    """
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix in CACHE_SUFFIXES and path.is_file() and not path.name.startswith("."):
            rel = path.relative_to(folder).with_suffix("").as_posix()
            # legacy LVT names: latents/latent_X.pt pairs with conditions/condition_X.pt
            for legacy in ("latent_", "condition_"):
                head, _, name = rel.rpartition("/")
                if name.startswith(legacy):
                    rel = f"{head}/{name.removeprefix(legacy)}".lstrip("/")
            found.setdefault(rel, path)
    return found


def normalize_video_latents(data: dict) -> dict:
    """Accept legacy patchified ``[F'*H'*W', C]`` latents and return ``[C, F', H', W']``."""
    latents = data["latents"]
    if latents.ndim == 2:
        frames, height, width = (int(data[k]) for k in ("num_frames", "height", "width"))
        latents = latents.T.reshape(latents.shape[1], frames, height, width)
    return {**data, "latents": latents}


def normalize_conditions(data: dict) -> dict:
    """Legacy single ``prompt_embeds`` serves both modalities."""
    if "video_prompt_embeds" not in data and "prompt_embeds" in data:
        data = {**data, "video_prompt_embeds": data["prompt_embeds"], "audio_prompt_embeds": data["prompt_embeds"]}
    if "audio_prompt_embeds" not in data:
        data = {**data, "audio_prompt_embeds": data["video_prompt_embeds"]}
    return data


class PrecomputedDataset(Dataset):
    """Samples present in every source folder (video-only samples: see the module docstring).

    Args:
        data_root: ``data.preprocessed_data_root``.
        sources: source folder (relative to the root) -> batch key, e.g. ``{"latents": "video_latents",
            "conditions": "conditions"}``. The first entry is the primary source.
        spec: the model's spec (``model.spec``): loaded files are checked against its latent channels, audio layout
            and text feature width, and video-only samples get silent audio latents of its layout. Without it, files
            are checked on their own and video-only samples are skipped as incomplete.
    """

    def __init__(self, data_root: str | Path, sources: dict[str, str], spec: FamilySpec | None = None):
        self.root = precomputed_root(data_root)
        self.sources = dict(sources)
        self.spec = spec
        self._text_width: dict[str, tuple] = {}
        self.kinds = {folder: _KIND_OF_KEY.get(key) or guess_kind(folder) for folder, key in self.sources.items()}
        indexes = {}
        for folder in self.sources:
            path = self.root / folder
            if not path.is_dir():
                raise CacheIncomplete(
                    f"{path}: source folder missing (needed by the training strategy); run preprocessing or fix "
                    "training_strategy's *_dir / latents_dir keys"
                )
            indexes[folder] = index_cache_folder(path)
        ids = set.union(*(set(ix) for ix in indexes.values()))
        complete = sorted(i for i in ids if all(i in ix for ix in indexes.values()))
        self.video_only = self._video_only(sorted(set(ids) - set(complete)), indexes)
        complete = sorted({*complete, *self.video_only})
        incomplete = {folder: sorted(ids - set(ix) - self.video_only) for folder, ix in indexes.items()}
        incomplete = {folder: missing for folder, missing in incomplete.items() if missing}
        if incomplete:
            lines = [f"{f}/ lacks {len(missing)} (e.g. {', '.join(missing[:3])})" for f, missing in incomplete.items()]
            logger.warning(
                "%d of %d samples are incomplete and skipped: %s", len(ids) - len(complete), len(ids), "; ".join(lines)
            )
        if self.video_only:
            logger.info("%d video-only sample(s): trained with their audio loss masked", len(self.video_only))
        if not complete:
            raise CacheIncomplete(f"{self.root}: no sample has every source {list(self.sources)}; nothing to train on")
        self.ids = complete
        self.files = {i: {folder: indexes[folder].get(i) for folder in self.sources} for i in complete}
        self._audio_steps = self._real_audio_lengths() if self.video_only else {}

    def _video_only(self, candidates: list[str], indexes: dict[str, dict[str, Path]]) -> set[str]:
        """Samples that lack only audio sources and whose video latents say they have no audio."""
        audio = {f for f, k in self.kinds.items() if k in ("audio_latents", "audio_mask")}
        video = next((f for f, k in self.kinds.items() if k == "video_latents"), None)
        if not audio or video is None or self.spec is None or not self.spec.has_audio:
            return set()
        found = set()
        for sample in candidates:
            missing = {f for f, ix in indexes.items() if sample not in ix}
            if not missing <= audio or sample not in indexes[video]:
                continue
            try:
                if read_scalars(indexes[video][sample]).get(AUDIO_MISSING_KEY):
                    found.add(sample)
            except CacheError:
                continue  # unreadable: skipped as incomplete, and verify names it
        return found

    def _real_audio_lengths(self) -> dict[tuple, int]:
        """(video latent frames, fps) -> audio latent steps of a real sample of that length (header reads only), so
        a video-only sample's silent audio is exactly as long as the audio VAE makes it for such a clip."""
        video = next(f for f, k in self.kinds.items() if k == "video_latents")
        audio = next(f for f, k in self.kinds.items() if k == "audio_latents")
        wanted = {self._video_key(self.files[i][video]) for i in self.video_only}
        found: dict[tuple, int] = {}
        for sample in self.ids:
            if sample in self.video_only or not wanted - set(found):
                continue
            key = self._video_key(self.files[sample][video])
            if key in wanted and key not in found:
                steps = read_scalars(self.files[sample][audio]).get("num_time_steps")
                if steps is not None:
                    found[key] = int(steps)
        return found

    @staticmethod
    def _video_key(path: Path) -> tuple:
        scalars = read_scalars(path)
        return scalars.get("num_frames"), scalars.get("fps")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        sample_id = self.ids[index]
        item: dict = {"id": sample_id}
        for folder, key in self.sources.items():
            path = self.files[sample_id][folder]
            if path is None:  # a video-only sample's audio source: filled in below
                continue
            data = read_sample_file(path)
            info = check_sample_data(data, self.kinds[folder], self.spec, path)
            if "width" in info:  # every sample's text features must be as wide as the first one's
                first = self._text_width.setdefault(folder, (info["width"], path))
                if first[0] != info["width"]:
                    raise SampleCheckError(
                        "shape",
                        f"{path}: text features {info['width'][0]} wide, but {first[1]} has {first[0][0]}: made by "
                        "another text encoder; re-run preprocessing (ltx-trainer verify lists every such file)",
                    )
            if key == "conditions":
                data = normalize_conditions(data)
            elif "latents" in data and data["latents"].ndim == 2 and "num_frames" in data:
                data = normalize_video_latents(data)
            data.pop(AUDIO_MISSING_KEY, None)
            item[key] = data
        present = sample_id not in self.video_only
        for folder, key in self.sources.items():
            kind = self.kinds[folder]
            if kind == "audio_latents":
                item[key] = item[key] if present else self._silent_audio(item)
                item[key][AUDIO_PRESENT_KEY] = float(present)
            elif kind == "audio_mask" and not present:
                steps = next(
                    item[k]["latents"].shape[1] for f, k in self.sources.items() if self.kinds[f] == "audio_latents"
                )
                item[key] = {"mask": torch.zeros(steps)}
        return item

    def _silent_audio(self, item: dict) -> dict:
        """Zero audio latents as long as the sample's video (the length preprocessing gives real audio)."""
        from ltx_trainer.models.latents import audio_latent_steps

        spec = self.spec
        video = next(item[k] for f, k in self.sources.items() if self.kinds[f] == "video_latents")
        frames = (int(video["latents"].shape[1]) - 1) * spec.temporal_compression + 1
        duration = frames / float(video.get("fps", 25.0))
        steps = self._audio_steps.get((video.get("num_frames"), video.get("fps")))
        if steps is None:  # no real sample of this length: the ltx-core rule
            steps = audio_latent_steps(duration, spec.audio_latents_per_second)
        latents = torch.zeros(spec.audio_latent_channels, steps, spec.audio_mel_bins)
        return {
            "latents": latents,
            "num_time_steps": steps,
            "frequency_bins": spec.audio_mel_bins,
            "duration": duration,
        }

    def shape_key(self, index: int) -> tuple:
        """Tensor shapes of a sample: samples with equal keys can share a batch."""
        item = self[index]
        return tuple(
            (key, name, tuple(t.shape))
            for key in self.sources.values()
            for name, t in sorted(item[key].items())
            if isinstance(t, torch.Tensor)
        )


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of equal-shape samples, in a seeded order that can resume mid-epoch, sharded between processes.

    Each epoch shuffles samples within buckets, cuts them into *global* batches of ``batch_size * num_replicas``
    samples, and shuffles the batches; the order depends only on ``(seed, epoch)``, so every rank computes the same
    global batches (same buckets) and the number of batches consumed is enough to resume exactly (``skip``). Rank
    ``r`` trains slice ``[r * batch_size, (r + 1) * batch_size)`` of each global batch: the ranks' shards of an epoch
    are disjoint, and N processes with ``batch_size`` b see exactly the batches of 1 process with ``batch_size`` N*b.
    A short global batch (the end of a bucket) is padded on the ranks it does not reach with repeats of its own
    samples, which :meth:`shard` marks with weight 0 (they keep the collectives in step and add nothing to the loss).
    """

    def __init__(
        self,
        shape_keys: list,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        self.batch_size, self.seed, self.shuffle, self.drop_last = batch_size, seed, shuffle, drop_last
        self.num_replicas, self.rank = num_replicas, rank
        self.global_batch_size = batch_size * num_replicas
        buckets: dict = defaultdict(list)
        for index, key in enumerate(shape_keys):
            buckets[key].append(index)
        self.buckets = list(buckets.values())
        self.epoch = 0
        self.position = 0
        self._cached: tuple[int, list[list[int]]] | None = None

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The epoch's global batches (identical on every rank)."""
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1]
        rng = random.Random(self.seed * 1_000_003 + epoch)
        batches = []
        for bucket in self.buckets:
            order = list(bucket)
            if self.shuffle:
                rng.shuffle(order)
            for start in range(0, len(order), self.global_batch_size):
                batch = order[start : start + self.global_batch_size]
                if len(batch) == self.global_batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        self._cached = (epoch, batches)
        return batches

    def global_batch(self, batches_consumed: int) -> list[int]:
        """The global batch that comes after ``batches_consumed`` batches."""
        epoch, position = divmod(batches_consumed, len(self))
        return self.epoch_batches(epoch)[position]

    def shard(self, batch: list[int]) -> tuple[list[int], list[float]]:
        """This rank's slice of a global batch and its sample weights (0 for padding repeats)."""
        if self.num_replicas == 1:
            return list(batch), [1.0] * len(batch)
        start = self.rank * self.batch_size
        mine = batch[start : start + self.batch_size]
        weights = [1.0] * len(mine)
        for j in range(len(mine), self.batch_size):
            mine.append(batch[(start + j) % len(batch)])
            weights.append(0.0)
        return mine, weights

    def __len__(self) -> int:
        return len(self.epoch_batches(0))

    def __iter__(self) -> Iterator[list[int]]:
        """Endless: epochs follow each other. The trainer counts consumed batches (DataLoader workers read ahead)."""
        while True:
            batches = self.epoch_batches(self.epoch)
            while self.position < len(batches):
                batch = batches[self.position]
                self.position += 1
                yield self.shard(batch)[0]
            self.epoch, self.position = self.epoch + 1, 0

    def skip(self, batches_consumed: int) -> None:
        """Resume after ``batches_consumed`` batches (every epoch has the same number of batches)."""
        self.epoch, self.position = divmod(batches_consumed, len(self))


def collate(items: list[dict]) -> dict:
    """Stack equal-shape tensors key by key; scalars become lists (ids) or tensors (numbers)."""
    out: dict = {"id": [it["id"] for it in items]}
    for key in items[0]:
        if key == "id":
            continue
        group = {}
        for name, value in items[0][key].items():
            values = [it[key][name] for it in items]
            if isinstance(value, torch.Tensor):
                group[name] = torch.stack(values)
            elif isinstance(value, int | float):
                group[name] = torch.tensor(values)
            else:
                group[name] = values
        out[key] = group
    return out
