"""One place per shared data contract: the dataset-file reader, the mask loader and mask -> latent-grid rule, and the
cache index (legacy names), each used by every verb that needs it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ltx_trainer.data.cache import write_sample_file
from ltx_trainer.data.dataset import PrecomputedDataset, index_cache_folder
from ltx_trainer.data.manifest import ManifestError, caption_cell, media_cell, read_manifest, write_manifest
from ltx_trainer.data.masks import (
    MaskError,
    load_mask_array,
    video_mask_to_latent,
    video_mask_to_latent_grid,
)
from ltx_trainer.data.preprocess_inputs import load_dataset
from ltx_trainer.data.reference import collect_clips
from ltx_trainer.sampling.conditions import read_mask


def test_every_verb_reads_the_same_columns_from_a_dataset_file(tmp_path: Path) -> None:
    for name in ("a.mp4", "b.png", "c.mp4"):
        (tmp_path / name).write_bytes(b"x")
    rows = [
        {"file_name": "a.mp4", "text": "first"},  # the caption verb's names: before, preprocess refused them
        {"image": "b.png", "prompt": "second"},
        {"video": "c.mp4", "caption": "third"},
    ]
    for suffix in (".csv", ".json", ".jsonl"):
        path = write_manifest(tmp_path / f"data{suffix}", rows)
        manifest = read_manifest(path)
        assert [media_cell(row) for _, row in manifest.rows] == ["a.mp4", "b.png", "c.mp4"]
        assert [caption_cell(row) for _, row in manifest.rows] == ["first", "second", "third"]
        items, skipped, _ = load_dataset(path)  # preprocess
        assert [(i.sample_id, i.caption) for i in items] == [("a", "first"), ("b", "second"), ("c", "third")]
        assert skipped == []
        _, clips = collect_clips(path)  # compute-reference: before, "image" and "file_name" rows had no media
        assert [clip.name for clip, _ in clips] == ["a.mp4", "b.png", "c.mp4"]
    (tmp_path / "map.json").write_text(json.dumps({"a.mp4": "first"}))  # the caption verb's {media: caption} form
    assert [(media_cell(r), caption_cell(r)) for _, r in read_manifest(tmp_path / "map.json").rows] == [
        ("a.mp4", "first")
    ]
    (tmp_path / "one.json").write_text(json.dumps({"media_path": "a.mp4", "caption": "x"}))
    with pytest.raises(ManifestError, match="one object"):
        read_manifest(tmp_path / "one.json")


def test_one_mask_loader_for_preprocessing_and_sampling(tmp_path: Path) -> None:
    values = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    expected = torch.tensor(values)
    np.save(tmp_path / "m.npy", np.array(values, dtype=np.float32))
    torch.save({"mask": expected}, tmp_path / "m.pt")
    torch.save(expected, tmp_path / "m.pth")
    save_file({"mask": expected}, str(tmp_path / "m.safetensors"))
    (tmp_path / "m.json").write_text(json.dumps({"mask": values}))
    (tmp_path / "m.txt").write_text(" ".join(str(v) for v in values))
    (tmp_path / "m.csv").write_text(",".join(str(int(v * 255)) for v in values))  # 0..255 is scaled
    for suffix in (".npy", ".pt", ".pth", ".safetensors", ".json", ".txt", ".csv"):
        torch.testing.assert_close(load_mask_array(tmp_path / f"m{suffix}"), expected)
        # sampling reads the same files (before: no .json/.txt/.csv; preprocessing had no .safetensors/.pth)
        assert read_mask(tmp_path / f"m{suffix}", (6,), None, None).tolist() == [v > 0.5 for v in values]
    (tmp_path / "m.png.npy").write_bytes(b"not numpy")
    with pytest.raises(MaskError, match=r"m\.png\.npy: unreadable mask"):
        load_mask_array(tmp_path / "m.png.npy")


def test_one_pixel_mask_to_latent_grid_rule() -> None:
    mask = torch.zeros(17, 64, 128)
    mask[1:9, :32, 32:64] = 0.6  # latent frame 1, cell (0, 1): average 0.6
    mask[12, 32:, 96:] = 0.4  # latent frame 2, cell (1, 3): max over its frames 0.4
    soft = video_mask_to_latent(mask)
    assert soft.shape == (3, 2, 4)
    assert soft[1, 0, 1] == pytest.approx(0.6, abs=1e-4) and soft[2, 1, 3] == pytest.approx(0.4, abs=1e-4)
    torch.testing.assert_close(video_mask_to_latent_grid(mask), (soft > 0.5).float())


def test_the_cache_index_pairs_legacy_names_for_training(tmp_path: Path) -> None:
    root = tmp_path / ".precomputed"
    write_sample_file(
        root / "latents" / "latent_x.pt",
        {"latents": torch.randn(128, 2, 2, 2), "num_frames": 2, "height": 2, "width": 2, "fps": 24.0},
    )
    write_sample_file(
        root / "conditions" / "condition_x.pt",
        {"video_prompt_embeds": torch.randn(4, 8), "prompt_attention_mask": torch.ones(4)},
    )
    (root / "latents" / ".latent_y.pt.tmp.1.0123abcd.pt").write_bytes(b"partial")  # a temp file is no sample
    assert list(index_cache_folder(root / "latents")) == ["x"]
    dataset = PrecomputedDataset(tmp_path, {"latents": "video_latents", "conditions": "conditions"})
    assert dataset.ids == ["x"] and dataset[0]["video_latents"]["latents"].shape == (128, 2, 2, 2)
