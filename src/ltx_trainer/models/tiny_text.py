"""Tiny text encoders for the tiny models: a Gemma-3 folder (LTX-2 / LTX-2.3), a T5 folder (LTXV), and the byte-level
BPE the tiny Gemma-3 and Gemma-4 (``tiny_ltx25``) share; every tokenizer is trained here on ``TINY_CORPUS`` with
``tokenizers``, nothing is downloaded. ``tiny`` writes the models around them.
"""

import json
from pathlib import Path

import torch

from ltx_trainer.io import atomic_save_safetensors
from ltx_trainer.models.ltxv_loading import TEXT_MAX_LENGTH

GEMMA_HIDDEN = 64
GEMMA_LAYERS = 2
GEMMA_VOCAB = 512
TINY_CORPUS = [
    "A red square glides across a checkered floor while a low hum rises.",
    "A cat walks on the beach at sunset, waves crash and seagulls call.",
    "A man speaks to the camera in a quiet room. Cinematic lighting, slow dolly in.",
    "Rain falls on a neon street at night; cars pass and a siren fades away.",
]
GEMMA_SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
GEMMA_SPECIAL_TOKENS += ["<start_of_image>", "<end_of_image>", "<image_soft_token>"]


def train_byte_bpe(fast_class: type, special_tokens: list[str], vocab_size: int = GEMMA_VOCAB, **special: str):
    """The tokenizer of the tiny Gemma-3 and Gemma-4: a byte-level BPE trained here on ``TINY_CORPUS`` (nothing
    downloaded). Returns the ``tokenizers.Tokenizer`` and it wrapped in ``fast_class`` (a transformers fast tokenizer)
    with Gemma's bos/eos/pad/unk tokens and ``special`` ones, left padding, 1024 tokens at most."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=alphabet)
    tok.train_from_iterator(TINY_CORPUS * 20, trainer)
    fast = fast_class(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        **special,
        padding_side="left",
        model_max_length=1024,
    )
    return tok, fast


def write_tiny_gemma(out_dir: Path, seed: int = 0) -> Path:
    """A tiny Gemma-3 folder (config, weights, locally trained byte-level BPE tokenizer) that transformers loads."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, GemmaTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    tok, tokenizer = train_byte_bpe(GemmaTokenizerFast, GEMMA_SPECIAL_TOKENS)
    tokenizer.save_pretrained(out_dir)
    ids = {t: tok.token_to_id(t) for t in GEMMA_SPECIAL_TOKENS}
    config = Gemma3Config(
        text_config={
            "hidden_size": GEMMA_HIDDEN,
            "intermediate_size": 128,
            "num_hidden_layers": GEMMA_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "query_pre_attn_scalar": 32,
            "sliding_window": 16,
            "max_position_embeddings": 2048,
            "vocab_size": tok.get_vocab_size(),
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 4,
            "vision_use_head": False,
        },
        mm_tokens_per_image=16,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
        eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<bos>"],
    )
    torch.manual_seed(seed)
    Gemma3ForConditionalGeneration(config).eval().save_pretrained(out_dir)
    _to_legacy_gemma_layout(out_dir / "model.safetensors")
    # What a real Gemma-3 folder also carries, and ltx-core looks for: the image processor config, and a file named
    # tokenizer.model marking the tokenizer folder (the fast tokenizer itself loads from tokenizer.json).
    (out_dir / "tokenizer.model").write_text("placeholder: the tokenizer is tokenizer.json\n")
    (out_dir / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "Gemma3ImageProcessor",
                "processor_class": "Gemma3Processor",
                "do_resize": True,
                "size": {"height": 64, "width": 64},
                "resample": 2,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "image_mean": [0.5] * 3,
                "image_std": [0.5] * 3,
            },
            indent=1,
        )
    )
    tok_config_path = out_dir / "tokenizer_config.json"
    tok_config = json.loads(tok_config_path.read_text())
    tok_config["extra_special_tokens"] = {
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
        "image_token": "<image_soft_token>",
    }
    tok_config_path.write_text(json.dumps(tok_config, indent=1))
    return out_dir


def _to_legacy_gemma_layout(path: Path) -> None:
    """Rename the vision tower to the layout of the released Gemma-3 checkpoints (``vision_tower.vision_model.*``),
    which is what users have on disk and what ltx-core reads; transformers 5 drops the ``vision_model`` level."""
    from safetensors.torch import load_file

    sd = load_file(str(path))
    legacy = {}
    for key, value in sd.items():
        if key.startswith("vision_tower.") and not key.startswith("vision_tower.vision_model."):
            key = "vision_tower.vision_model." + key.removeprefix("vision_tower.")
        legacy[key] = value
    atomic_save_safetensors(legacy, Path(path), {"format": "pt"})


TINY_T5 = {
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 64,
    "num_layers": 2,
    "num_heads": 4,
    "feed_forward_proj": "gated-gelu",
    "relative_attention_num_buckets": 8,
}


def write_tiny_t5(out_dir: Path, seed: int = 0) -> Path:
    """A tiny T5 encoder folder with a Unigram tokenizer trained here with ``tokenizers`` (pad 0, eos 1, unk 2)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    tok.train_from_iterator([s.lower() for s in TINY_CORPUS] * 4, trainer)
    vocab = [(piece, float(score)) for piece, score in json.loads(tok.to_str())["model"]["vocab"]]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=TEXT_MAX_LENGTH)
    tokenizer.save_pretrained(out_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = T5Config(vocab_size=len(vocab), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **TINY_T5)
        T5EncoderModel(config).eval().save_pretrained(out_dir)
    return out_dir
