"""The transformer's text context per sample, computed once, so the frozen text connectors leave the hot path.

The connectors (LTX-2: 3.2 B parameters on 2.3) are frozen in every training mode here and their output depends only
on the cached text features, so running them every step (as the official trainer does) costs time and keeps them on
the GPU for nothing. At setup the context of every sample (and of the empty prompt, for caption dropout) is computed
once on the training device, before the transformer arrives there; the results stay in host memory and the connectors
go back to the CPU. Each step then only gathers its samples' contexts.

Why in memory and not on disk: the context is a pure function of files already on disk (the cached features and the
checkpoint's connectors), so a disk copy would need its own fingerprint to stay honest, and computing it is a single
batched pass at start-up (seconds). The price is host RAM: ``L x (Cv + Ca)`` values per sample in the model's dtype
(1024 x (4096 + 2048) x 2 bytes = 12 MiB per sample for LTX-2.3 in bf16).
"""

import torch

from ltx_trainer import logger
from ltx_trainer.data.cache import read_sample_file
from ltx_trainer.data.dataset import PrecomputedDataset, normalize_conditions
from ltx_trainer.models.base import LTXModel, TextContext, TextFeatures
from ltx_trainer.models.devices import on_device


def features_of(
    video: torch.Tensor, audio: torch.Tensor | None, mask: torch.Tensor, device: torch.device, dtype: torch.dtype
) -> TextFeatures:
    """Cached (batched) pre-connector tensors -> features on ``device`` in the model's ``dtype`` (the caches are often
    bf16, as the official ones are)."""
    return TextFeatures(
        video.to(device, dtype), audio.to(device, dtype) if audio is not None else None, mask.to(device)
    )


def with_empty_prompt(
    drop: torch.Tensor | None,
    video: torch.Tensor,
    audio: torch.Tensor | None,
    mask: torch.Tensor,
    empty: TextFeatures | TextContext | None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Caption dropout: the batch items where ``drop`` is True take the empty prompt's tensors (features before the
    connectors, or contexts after them)."""
    if drop is None or not drop.any():
        return video, audio, mask
    video = torch.where(drop[:, None, None], empty.video.to(video.dtype), video)
    if audio is not None:
        audio = torch.where(drop[:, None, None], empty.audio.to(audio.dtype), audio)
    return video, audio, torch.where(drop[:, None], empty.mask.to(mask.dtype), mask)


def _on_cpu(context: TextContext) -> TextContext:
    return TextContext(
        context.video.cpu(), context.audio.cpu() if context.audio is not None else None, context.mask.cpu()
    )


class ContextCache:
    """Sample id -> its transformer context (host memory); ``empty`` is the empty prompt's (caption dropout)."""

    def __init__(self, contexts: dict[str, TextContext], empty: TextContext | None):
        self.contexts = contexts
        self.empty = empty

    @classmethod
    @torch.no_grad()
    def build(
        cls, model: LTXModel, dataset: PrecomputedDataset, empty_prompt: TextFeatures | None, device: torch.device
    ) -> "ContextCache":
        """Run the connectors once per sample on ``device`` (one sample at a time, as a batch of one), then leave
        them on the CPU."""
        folder = next(f for f, key in dataset.sources.items() if key == "conditions")
        contexts = {}
        with on_device(model.connector_modules(), device):
            for sample in dataset.ids:
                conditions = normalize_conditions(read_sample_file(dataset.files[sample][folder]))
                video, audio = conditions["video_prompt_embeds"][None], conditions.get("audio_prompt_embeds")
                mask = conditions["prompt_attention_mask"][None]
                features = features_of(video, audio[None] if audio is not None else None, mask, device, model.dtype)
                contexts[sample] = _on_cpu(model.text_context(features))
            empty = None
            if empty_prompt is not None:
                e = empty_prompt
                empty = _on_cpu(model.text_context(features_of(e.video, e.audio, e.mask, device, model.dtype)))
        model.connectors_to(torch.device("cpu"))
        size = sum(t.numel() * t.element_size() for c in contexts.values() for t in vars(c).values() if t is not None)
        logger.info(
            "text context of %d sample(s) computed once (%.1f MiB in host memory); the text connectors stay on the CPU",
            len(contexts),
            size / 2**20,
        )
        return cls(contexts, empty)

    def batch(self, ids: list[str], drop: torch.Tensor | None, device: torch.device) -> TextContext:
        """The contexts of ``ids`` stacked on ``device``; items where ``drop`` is True get the empty prompt's."""
        items = [self.contexts[i] for i in ids]
        video = torch.cat([c.video for c in items])
        audio = torch.cat([c.audio for c in items]) if items[0].audio is not None else None
        mask = torch.cat([c.mask for c in items])
        video, audio, mask = with_empty_prompt(drop, video, audio, mask, self.empty)
        return TextContext(video.to(device), audio.to(device) if audio is not None else None, mask.to(device))
