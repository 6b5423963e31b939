"""The config schema: official YAML loads unchanged, deprecated forms migrate, and errors read as one line each."""

import copy
import logging
from pathlib import Path

import pydantic
import pytest
import yaml

from ltx_trainer import logger
from ltx_trainer.config import (
    ConfigError,
    FirstFrameCondition,
    FlexibleStrategyConfig,
    LtxTrainerConfig,
    ModalityConfig,
    ReferenceCondition,
    TextToVideoConfig,
    VideoToVideoConfig,
    check_paths,
    dump_config,
    load_config,
    parse_config,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LEGACY = CONFIGS / "official_t2v_legacy.yaml"


def _minimal(**sections: object) -> dict:
    data = {
        "model": {"model_path": "/nonexistent/ltx.safetensors"},
        "lora": {"rank": 8, "alpha": 8},
        "data": {"preprocessed_data_root": "/nonexistent/data"},
        "training_strategy": {"name": "flexible", "video": {"is_generated": True, "latents_dir": "latents"}},
    }
    data.update(sections)
    return data


def _problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "cfg.yaml")
    assert str(info.value).startswith("cfg.yaml")
    return info.value.problems


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, LtxTrainerConfig)


def test_official_legacy_config_loads_and_migrates() -> None:
    records = _Records()
    logger.addHandler(records)
    try:
        cfg = load_config(LEGACY)
    finally:
        logger.removeHandler(records)
    raw = yaml.safe_load(LEGACY.read_text())
    assert isinstance(cfg.training_strategy, TextToVideoConfig)
    assert [s.prompt for s in cfg.validation.samples] == raw["validation"]["prompts"]
    assert all(s.conditions == [] for s in cfg.validation.samples)
    assert cfg.validation.video_cfg_scale == cfg.validation.audio_cfg_scale == 4.0
    # stg_mode: stg_v perturbs video only
    assert (cfg.validation.video_stg_scale, cfg.validation.audio_stg_scale) == (1.0, 0.0)
    assert cfg.validation.stg_blocks == [29]
    assert cfg.optimization.learning_rate == pytest.approx(1e-4)
    assert any("guidance_scale" in m and "deprecated" in m for m in records.messages)
    assert any("text_to_video" in m and "deprecated" in m for m in records.messages)


def test_legacy_images_and_reference_videos_become_sample_conditions() -> None:
    validation = {
        "prompts": ["a", "b"],
        "images": ["a.png", "b.png"],
        "reference_videos": ["a.mp4", "b.mp4"],
        "reference_downscale_factor": 2,
        "include_reference_in_output": True,
        "stg_scale": 0.5,
    }
    data = _minimal(validation=validation)
    original = copy.deepcopy(data)
    cfg = parse_config(data)
    assert data == original  # migration works on a copy
    second = cfg.validation.samples[1]
    assert second.prompt == "b"
    assert [c.type for c in second.conditions] == ["first_frame", "reference"]
    assert second.conditions[0].image_or_video == "b.png"
    reference = second.conditions[1]
    assert (reference.video, reference.downscale_factor, reference.include_in_output) == ("b.mp4", 2, True)
    assert cfg.validation.video_stg_scale == cfg.validation.audio_stg_scale == 0.5


def test_legacy_images_count_must_match_prompts() -> None:
    problems = _problems(_minimal(validation={"prompts": ["a", "b"], "images": ["a.png"]}))
    assert problems == ["validation.images: 1 given for 2 prompts; give exactly one per prompt"]


def test_unknown_key_lists_allowed_keys() -> None:
    data = _minimal()
    data["model"]["foo"] = 1
    assert _problems(data) == [
        "model.foo: unknown key (allowed: model_path, text_encoder_path, video_vae_path, audio_vae_path, "
        "training_mode, load_checkpoint)"
    ]


def test_unknown_key_inside_strategy_drops_union_tag() -> None:
    data = _minimal()
    data["training_strategy"]["video"]["lr"] = 1
    (line,) = _problems(data)
    assert line.startswith("training_strategy.video.lr: unknown key (allowed: is_generated, latents_dir,")


def test_bad_literal_names_key_and_allowed_values() -> None:
    assert _problems(_minimal(optimization={"optimizer_type": "adam"})) == [
        "optimization.optimizer_type: 'adam' is not one of adamw, adamw8bit, prodigy, adamw_schedulefree, came"
    ]


def test_bad_strategy_name_and_condition_type() -> None:
    assert _problems(_minimal(training_strategy={"name": "t2v"})) == [
        "training_strategy.name: 't2v' is not one of text_to_video, video_to_video, flexible"
    ]
    strategy = {"name": "flexible", "video": {"is_generated": True, "latents_dir": "l", "conditions": [{"type": "x"}]}}
    (line,) = _problems(_minimal(training_strategy=strategy))
    assert line.startswith("training_strategy.video.conditions[0].type: 'x' is not one of first_frame, prefix,")


def test_missing_data_section_is_required() -> None:
    data = _minimal()
    del data["data"]
    assert _problems(data) == ["data: required"]


def test_missing_nested_required_key() -> None:
    assert _problems(_minimal(data={"num_dataloader_workers": 1})) == ["data.preprocessed_data_root: required"]


def test_every_problem_is_reported_once() -> None:
    data = _minimal(optimization={"steps": "many", "optimizer_type": "sgd"})
    data["model"]["model_path"] = 5
    problems = _problems(data)
    assert len(problems) == 3
    assert "model.model_path: expected str | Path, got 5" in problems
    assert any(p.startswith("optimization.steps: ") for p in problems)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  model_path: [unclosed\ndata: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "invalid YAML at line" in message


def test_missing_file_and_non_mapping_top_level(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping") as info:
        load_config(_write(tmp_path, ["model", "data"]))
    assert str(info.value).startswith(str(tmp_path / "cfg.yaml"))


def test_lora_mode_without_lora_section() -> None:
    data = _minimal()
    del data["lora"]
    (line,) = _problems(data)
    assert line.startswith("lora: required when model.training_mode is 'lora'")
    data["model"]["training_mode"] = "full"
    assert parse_config(data).lora is None


def test_video_to_video_requires_lora_mode_and_a_reference_sample() -> None:
    data = _minimal(training_strategy={"name": "video_to_video"})
    data["model"]["training_mode"] = "full"
    problems = _problems(data)
    assert any(p.startswith("model.training_mode: video_to_video needs 'lora'") for p in problems)
    assert any(p.startswith("validation.samples: video_to_video needs a sample with a reference") for p in problems)


def test_mixing_guidance_scale_with_new_cfg_keys_errors() -> None:
    (line,) = _problems(_minimal(validation={"guidance_scale": 4.0, "video_cfg_scale": 3.0}))
    assert line.startswith("validation.guidance_scale: deprecated and cannot be combined with video_cfg_scale")
    (line,) = _problems(_minimal(validation={"stg_mode": "stg_v", "audio_stg_scale": 0.0}))
    assert line.startswith("validation.stg_scale: ")


def test_flexible_strategy_rules() -> None:
    no_target = {"name": "flexible", "video": {"is_generated": False, "latents_dir": "latents"}}
    assert _problems(_minimal(training_strategy=no_target)) == [
        "training_strategy: at least one of video or audio must set is_generated: true"
    ]
    audio_first_frame = {
        "name": "flexible",
        "audio": {"is_generated": True, "latents_dir": "audio_latents", "conditions": [{"type": "first_frame"}]},
    }
    (line,) = _problems(_minimal(training_strategy=audio_first_frame))
    assert line.startswith("training_strategy.audio.conditions[0].type: 'first_frame' is video-only")


def test_validation_sample_cannot_freeze_both_modalities() -> None:
    conditions = [{"type": "video_to_audio", "video": "v.mp4"}, {"type": "audio_to_video", "audio": "a.wav"}]
    (line,) = _problems(_minimal(validation={"samples": [{"prompt": "p", "conditions": conditions}]}))
    assert line.startswith("validation.samples[0].conditions: video_to_audio and audio_to_video together")


def test_strategy_without_name_is_text_to_video() -> None:
    cfg = parse_config(_minimal(training_strategy={"first_frame_conditioning_p": 0.3}))
    assert isinstance(cfg.training_strategy, TextToVideoConfig)
    assert cfg.training_strategy.first_frame_conditioning_p == 0.3


def test_text_to_video_as_flexible() -> None:
    flexible = TextToVideoConfig(
        first_frame_conditioning_p=0.25, with_audio=True, audio_latents_dir="aud"
    ).as_flexible()
    assert flexible == FlexibleStrategyConfig(
        video=ModalityConfig(
            is_generated=True, latents_dir="latents", conditions=[FirstFrameCondition(probability=0.25)]
        ),
        audio=ModalityConfig(is_generated=True, latents_dir="aud"),
    )
    assert TextToVideoConfig().as_flexible().audio is None
    assert set(flexible.get_data_sources()) == set(
        TextToVideoConfig(with_audio=True, audio_latents_dir="aud").get_data_sources()
    )


def test_video_to_video_as_flexible() -> None:
    flexible = VideoToVideoConfig(first_frame_conditioning_p=0.0, reference_latents_dir="refs").as_flexible()
    assert flexible.audio is None
    assert flexible.video.conditions == [FirstFrameCondition(probability=0.0), ReferenceCondition(latents_dir="refs")]
    assert set(flexible.get_data_sources()) == {"conditions", "latents", "refs"}


def test_check_paths_reports_missing_data_root(tmp_path: Path) -> None:
    model = tmp_path / "ltx.safetensors"
    model.touch()
    data = _minimal(data={"preprocessed_data_root": str(tmp_path / "missing")})
    data["model"]["model_path"] = str(model)
    problems = check_paths(parse_config(data))
    assert len(problems) == 1
    assert problems[0].startswith("data.preprocessed_data_root: ")
    assert "does not exist" in problems[0]


def test_check_paths_reports_missing_strategy_dirs(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "conditions").mkdir(parents=True)
    (root / "latents").mkdir()
    strategy = {
        "name": "flexible",
        "video": {
            "is_generated": True,
            "latents_dir": "latents",
            "conditions": [{"type": "reference", "latents_dir": "reference_latents"}],
        },
        "audio": {"is_generated": True, "latents_dir": "audio_latents"},
    }
    cfg = parse_config(_minimal(data={"preprocessed_data_root": str(root)}, training_strategy=strategy))
    problems = check_paths(cfg)
    assert problems[0].startswith("model.model_path: ")
    keys = {p.split(":")[0] for p in problems[1:]}
    assert keys == {"training_strategy.video.conditions[0].latents_dir", "training_strategy.audio.latents_dir"}
    for name in ("reference_latents", "audio_latents"):
        (root / name).mkdir()
    assert check_paths(cfg) == problems[:1]


def test_check_paths_uses_precomputed_subfolder_and_validation_files(tmp_path: Path) -> None:
    precomputed = tmp_path / ".precomputed"
    for name in ("conditions", "latents"):
        (precomputed / name).mkdir(parents=True)
    model = tmp_path / "ltx.safetensors"
    model.touch()
    samples = [{"prompt": "p", "conditions": [{"type": "first_frame", "image_or_video": str(tmp_path / "x.png")}]}]
    data = _minimal(data={"preprocessed_data_root": str(tmp_path)}, validation={"samples": samples})
    data["model"]["model_path"] = str(model)
    (line,) = check_paths(parse_config(data))
    assert line.startswith("validation.samples[0].conditions[0].image_or_video: ")


def test_dump_load_round_trip(tmp_path: Path) -> None:
    for source in (CONFIGS / "t2v_lora.yaml", LEGACY):
        cfg = load_config(source)
        path = tmp_path / f"dumped_{source.name}"
        path.write_text(dump_config(cfg))
        assert load_config(path) == cfg


def test_config_is_frozen() -> None:
    cfg = load_config(CONFIGS / "t2v_lora.yaml")
    with pytest.raises(pydantic.ValidationError):
        cfg.seed = 1
    with pytest.raises(pydantic.ValidationError):
        cfg.optimization.learning_rate = 1.0
    variant = cfg.model_copy(update={"seed": 7})
    assert (variant.seed, cfg.seed) == (7, 42)


def test_new_fields_default_to_official_behaviour() -> None:
    cfg = parse_config(_minimal())
    assert cfg.optimization.warmup_steps == 0
    assert cfg.optimization.caption_dropout == 0.0
    assert cfg.training_strategy.video.loss_weight == 1.0
    assert cfg.wandb.mode == "online"
    assert cfg.tensorboard.enabled is False
    assert _problems(_minimal(optimization={"caption_dropout": 1.5}))[0].startswith("optimization.caption_dropout: ")


def test_legacy_prompts_must_be_a_list() -> None:
    assert _problems(_minimal(validation={"prompts": "a cat"})) == ["validation.prompts: expected a list, got 'a cat'"]


def _fuzz_base(tmp_path: Path) -> dict:
    return _minimal(output_dir=str(tmp_path / "out"), validation={"interval": None})


def _set(data: dict, dotted: str, value: object) -> dict:
    data = copy.deepcopy(data)
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return data


FUZZ = [
    ("lora.target_modules", []),
    ("lora.target_modules", [""]),
    ("optimization.scheduler_params", {"T_max": 10}),
    ("flow_matching.timestep_sampling_params", {"mean": 0.5}),
    ("validation.video_dims", [100, 64, 9]),
    ("validation.video_dims", [96, 64, 10]),
    ("optimization.steps", True),
    ("optimization.learning_rate", float("inf")),
    ("optimization.learning_rate", float("nan")),
    ("training_strategy.video.conditions", [{"type": "prefix", "temporal_boundary": 1000}]),
    ("optimization.warmup_steps", 3000),
    ("wandb", {"enabled": True, "mode": "online"}),
]


@pytest.mark.parametrize(
    ("case", "key"),
    [
        *((f"{k}={v!r}", k.split(".")[-1]) for k, v in FUZZ),
        ("output_dir_is_a_file", "output_dir"),
        ("binary_file", "binary"),
        ("duplicated_key", "duplicated key 'lora'"),
    ],
)
def test_bad_config_fails_at_load_with_one_line_naming_the_key(tmp_path: Path, monkeypatch, case: str, key: str):
    """Issue 9 item 19: every fuzzed config fails in load_config (no torch needed) with one line naming the key."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    path = tmp_path / "cfg.yaml"
    base = _fuzz_base(tmp_path)
    if case == "output_dir_is_a_file":
        (tmp_path / "taken").write_text("x")
        path.write_text(yaml.safe_dump(_set(base, "output_dir", str(tmp_path / "taken"))))
    elif case == "binary_file":
        path.write_bytes(bytes(range(256)) * 4)
    elif case == "duplicated_key":
        path.write_text(yaml.safe_dump(base) + "lora:\n  rank: 4\n")
    else:
        dotted, value = FUZZ[[f"{k}={v!r}" for k, v in FUZZ].index(case)]
        text = yaml.safe_dump(_set(base, dotted, value))
        path.write_text(text.replace(".inf", ".inf").replace(".nan", ".nan"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(str(path)) and key in message, message


def test_unmatched_target_modules_fail_at_model_load_in_one_line(tmp_path: Path, tiny_ltx2) -> None:
    from ltx_trainer.errors import UsageError
    from ltx_trainer.models.families import load_model
    from ltx_trainer.training.adapters import add_lora

    cfg = parse_config(_minimal(lora={"rank": 4, "alpha": 4, "target_modules": ["no_such_layer"]}))
    model = load_model(tiny_ltx2["2.0"]["single_file"])
    with pytest.raises(UsageError, match=r"lora.target_modules \['no_such_layer'\] matched no layer"):
        add_lora(model.transformer, cfg.lora)


def test_warmup_must_end_before_the_run_and_shipped_configs_warm_up_less() -> None:
    problems = _problems(_minimal(optimization={"steps": 30, "warmup_steps": 100}))
    assert problems == [
        "optimization.warmup_steps: 100 is not below steps (30), so the learning rate never reaches learning_rate; "
        "use at most 3 (about 10% of steps) or 0"
    ]
    for path in sorted(CONFIGS.glob("*.yaml")):
        opt = load_config(path).optimization
        assert opt.warmup_steps < opt.steps, path


def test_slow_validation_is_warned_with_an_estimate(tmp_path: Path) -> None:
    from ltx_trainer.config import config_warnings

    sample = {"prompt": "a cat", "conditions": []}
    slow = parse_config(_minimal(validation={"samples": [sample], "interval": 100}))
    (warning,) = config_warnings(slow, device="cpu")
    assert warning.startswith("validation: about ") and "per sample on cpu (960x544x89, 30 steps" in warning
    quick = parse_config(
        _minimal(validation={"samples": [sample], "interval": 100, "video_dims": [64, 64, 9], "inference_steps": 4})
    )
    assert config_warnings(quick, device="cuda") == []


def test_exact_resume_is_the_default_training_state() -> None:
    assert parse_config(_minimal()).checkpoints.save_training_state == "full"
