"""LTX-2.5 text encoder: the packed text-encoder file <-> transformers' Gemma-4 "unified" model, and 2.5's tokenization.

The released ``text_encoders/gemma4-*-with-proj-ltx-2.5-*.safetensors`` holds, in one file:

- the Gemma-4 unified weights in "Comfy-flat" names: ``model.{embed_tokens,layers.<i>,norm}.*`` (the language model),
  ``vision_model.*``, ``multi_modal_projector.embedding_projection.weight`` and
  ``audio_projector.embedding_projection.weight``; no ``lm_head`` (tied to the embeddings);
- the text projection of feature extractor V2, ``text_embedding_projection.{video,audio}_aggregate_embed.*``
  (``ltx2_text`` reads it, with the transformer file's connectors);
- the tokenizer and processor files as uint8 tensors: ``tokenizer_json`` (``tokenizer.json``) and
  ``hf_asset__<name>`` (every other ``*.json`` / ``*.jinja`` of the Hugging Face folder but ``config.json``);
- ``__metadata__["gemma_config"]``: the Hugging Face ``config.json`` (``model_type: gemma4_unified``) with an extra
  ``gemma_version`` that must equal the transformer file's ``gemma_source_checkpoint.gemma_version``.

``to_hf`` / ``to_packed`` rename between those names and the names transformers saves (``model.language_model.*``,
``model.vision_embedder.*``, ``model.embed_vision.*``, ``model.embed_audio.*``); transformers maps those onto its
in-memory modules itself, so the model loads through ``from_pretrained`` with every tensor accounted for.

Tokenization (ltx-core's ``LTXGemmaTokenizer`` for 2.5): the prompt is stripped, BOS is put first when the tokenizer
did not add it (Gemma-4's does not), no EOS is added, and the ids are left-padded with the pad id to 1024.
"""

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch

from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats.common import StateDict

TOKENIZER_KEY = "tokenizer_json"
ASSET_PREFIX = "hf_asset__"
PROJECTION_PREFIX = "text_embedding_projection."
REQUIRED_ASSETS = ("tokenizer_config.json", "processor_config.json")
# Comfy-flat file prefix -> the prefix transformers saves (Gemma4UnifiedForConditionalGeneration)
_PREFIXES = {
    "model.": "model.language_model.",
    "vision_model.": "model.vision_embedder.",
    "multi_modal_projector.": "model.embed_vision.",
    "audio_projector.": "model.embed_audio.",
}
GEMMA_PREFIXES = (*_PREFIXES, *_PREFIXES.values())  # every Gemma tensor of a packed file, in either naming
# the key ltx-core looks for to pick the Comfy-flat mapping
COMFY_MARKER = "model.layers.0.post_feedforward_layernorm.weight"
MODEL_TYPE = "gemma4_unified"


def is_packed_text_encoder(keys: list[str]) -> bool:
    """Whether a safetensors file's keys are a packed LTX-2.5 text encoder (Gemma weights + projection + tokenizer)."""
    return TOKENIZER_KEY in keys and any(k.startswith(PROJECTION_PREFIX) for k in keys)


def to_hf(sd: StateDict) -> StateDict:
    """Gemma keys of the packed file -> transformers' saved names (projection and assets are skipped). Files in
    Comfy-flat names (ltx-core's packer default) are renamed; files already in the saved names pass through."""
    out = {}
    hf_prefixes = tuple(_PREFIXES.values())
    for key, value in sd.items():
        if key == TOKENIZER_KEY or key.startswith((ASSET_PREFIX, PROJECTION_PREFIX)):
            continue
        if key.startswith(hf_prefixes) and COMFY_MARKER not in sd:
            out[key] = value
            continue
        new = _swap_prefix(key, _PREFIXES.items())
        if new is None:
            raise ModelLoadError(f"unknown tensor {key!r} in the packed text encoder (expected {sorted(_PREFIXES)})")
        out[new] = value
    return out


def to_packed(sd: StateDict) -> StateDict:
    """transformers' saved Gemma-4 unified names -> the Comfy-flat names of the packed file (``lm_head`` dropped)."""
    out = {}
    for key, value in sd.items():
        if key.startswith("lm_head."):
            continue
        new = _swap_prefix(key, ((hf, flat) for flat, hf in _PREFIXES.items()))
        if new is None:
            raise ValueError(f"unknown Gemma-4 unified tensor {key!r}")
        out[new] = value
    return out


def _swap_prefix(key: str, pairs: Iterable[tuple[str, str]]) -> str | None:
    """``key`` with the first ``old`` prefix of ``pairs`` that it starts with replaced by its ``new``; ``None`` when
    none matches."""
    for old, new in pairs:
        if key.startswith(old):
            return new + key.removeprefix(old)
    return None


def assets(sd: StateDict) -> dict[str, bytes]:
    """The tokenizer / processor files stored as uint8 tensors: file name -> bytes."""
    out = {}
    for key, value in sd.items():
        if key == TOKENIZER_KEY:
            out["tokenizer.json"] = bytes(value.to(torch.uint8).tolist())
        elif key.startswith(ASSET_PREFIX):
            out[key.removeprefix(ASSET_PREFIX)] = bytes(value.to(torch.uint8).tolist())
    return out


def pack_assets(folder: Path) -> StateDict:
    """A Hugging Face Gemma folder's tokenizer/processor files -> the packed file's uint8 tensors."""
    folder = Path(folder)
    out = {TOKENIZER_KEY: _bytes_tensor((folder / "tokenizer.json").read_bytes())}
    for path in sorted([*folder.glob("*.json"), *folder.glob("*.jinja")]):
        if path.name not in ("config.json", "tokenizer.json"):
            out[ASSET_PREFIX + path.name] = _bytes_tensor(path.read_bytes())
    return out


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def check_assets(files: dict[str, bytes], where: str) -> None:
    missing = [name for name in ("tokenizer.json", *REQUIRED_ASSETS) if name not in files]
    if missing:
        raise ModelLoadError(
            f"{where}: the packed text encoder lacks {missing} (tokenizer_json / hf_asset__<name> tensors); "
            "re-download the text-encoder file"
        )


def load_tokenizer(files: dict[str, bytes]) -> object:
    """A transformers tokenizer from the packed file's asset bytes (left padding)."""
    import transformers

    with tempfile.TemporaryDirectory(prefix="ltx25-tokenizer-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        tokenizer = transformers.AutoTokenizer.from_pretrained(tmp, local_files_only=True)
    tokenizer.padding_side = "left"
    return tokenizer


def load_gemma(hf_sd: StateDict, gemma_config: dict, where: str, dtype: torch.dtype) -> torch.nn.Module:
    """Gemma-4 unified (``Gemma4UnifiedForConditionalGeneration``) from tensors in transformers' saved names, every
    tensor matched (the tied ``lm_head`` aside), frozen, in eval mode.

    Raises:
        ModelLoadError: not a Gemma-4 unified config, or tensors missing / unexpected / misshaped.
    """
    import transformers

    if gemma_config.get("model_type") != MODEL_TYPE:
        raise ModelLoadError(
            f"{where}: gemma_config model_type is {gemma_config.get('model_type')!r}; LTX-2.5 needs its Gemma-4 "
            f"'{MODEL_TYPE}' text encoder"
        )
    config = transformers.Gemma4UnifiedConfig.from_dict(gemma_config)
    model, info = transformers.Gemma4UnifiedForConditionalGeneration.from_pretrained(
        None, config=config, state_dict=hf_sd, output_loading_info=True, dtype=dtype
    )
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith("lm_head.")]
    problems = {
        "missing": missing,
        "unexpected": sorted(info.get("unexpected_keys", ())),
        "misshaped": sorted(str(m) for m in info.get("mismatched_keys", ())),
    }
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        listing = "; ".join(f"{len(v)} {k}, e.g. {sorted(v)[:3]}" for k, v in problems.items())
        raise ModelLoadError(f"{where}: the Gemma-4 weights don't match its config: {listing}")
    still_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if still_meta:
        raise ModelLoadError(f"{where}: the Gemma-4 text encoder has tensors left uninitialised: {still_meta[:5]}")
    return model.eval().requires_grad_(False)


def tokenize(tokenizer: object, prompts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> (input ids ``[B, max_length]``, attention mask ``[B, max_length]``), LTX-2.5's rules: stripped text,
    BOS first, no EOS, truncated to ``max_length``, left-padded with the pad id."""
    bos, pad = tokenizer.bos_token_id, tokenizer.pad_token_id
    if bos is None or pad is None:
        raise ModelLoadError("the Gemma-4 tokenizer has no bos/pad token; the packed text encoder is incomplete")
    ids = torch.full((len(prompts), max_length), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), max_length), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        tokens = list(tokenizer(prompt.strip(), add_special_tokens=True)["input_ids"])
        if not tokens or tokens[0] != bos:
            tokens = [bos, *tokens]
        tokens = tokens[:max_length]
        ids[row, max_length - len(tokens) :] = torch.tensor(tokens)
        mask[row, max_length - len(tokens) :] = 1
    return ids, mask


def gemma_version(config: dict) -> str | None:
    """The ``gemma_version`` a Gemma config declares (None when absent)."""
    value = config.get("gemma_version")
    return None if value is None else str(value)


def gemma_config_of(metadata: dict, where: str) -> dict:
    """``__metadata__["gemma_config"]`` of a packed text encoder, parsed."""
    try:
        return json.loads(metadata["gemma_config"])
    except KeyError as e:
        raise ModelLoadError(f"{where}: no __metadata__['gemma_config']; not a packed LTX-2.5 text encoder") from e
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{where}: __metadata__['gemma_config'] is not valid JSON ({e})") from e
