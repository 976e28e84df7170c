"""DeepSpeed presets and the checks that run before any model is built (no launcher, no model)."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from hf_itt.config import deepspeed as dsc
from hf_itt.config.deepspeed import (
    BUILTIN_CONFIGS,
    builtin_config,
    check_world_size_on_resume,
    fill_auto_values,
    load_deepspeed_config,
    resolve_deepspeed_config,
    saved_world_size,
    validate_deepspeed_config,
)
from hf_itt.errors import ConfigError

pytest.importorskip("deepspeed", reason="the [deepspeed] extra is not installed")

ARGS = {
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 2,
    "learning_rate": 1e-5,
    "max_steps": 10,
    "warmup_steps": 3,
    "bf16": True,
}


def _auto_leaves(node, prefix=""):
    if isinstance(node, dict):
        return [key for k, v in node.items() for key in _auto_leaves(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")] if node == "auto" else []


def _hf_filled(config: dict, args: dict, hidden_size: int = 32, num_training_steps: int = 10) -> dict:
    """The config after transformers' own HfTrainerDeepSpeedConfig filled it (process + finalize)."""
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import (
        HfTrainerDeepSpeedConfig,
        unset_hf_deepspeed_config,
    )

    training_args = TrainingArguments(output_dir="unused", report_to=[], use_cpu=True, **args)
    hf_config = HfTrainerDeepSpeedConfig(json.loads(json.dumps(config)))
    try:  # the constructor registers a process-wide weakref that turns on ZeRO-3 init; always undo it
        hf_config.trainer_config_process(training_args)
        model = SimpleNamespace(config=SimpleNamespace(hidden_size=hidden_size))
        hf_config.trainer_config_finalize(training_args, model, num_training_steps)
        return hf_config.config
    finally:
        unset_hf_deepspeed_config()


# --- presets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN_CONFIGS))
def test_repo_files_equal_the_builtin_presets(name):
    on_disk = json.loads((dsc.REPO_ROOT / "ds_configs" / f"{name}.json").read_text())
    assert on_disk == builtin_config(name), (
        f"ds_configs/{name}.json drifted: python -m hf_itt.config.deepspeed --write ds_configs"
    )


@pytest.mark.parametrize("name", sorted(BUILTIN_CONFIGS))
def test_every_trainer_owned_value_is_auto(name):
    config = builtin_config(name)
    assert "scheduler" not in config  # the Trainer builds lr_scheduler_type's schedule itself
    for key in dsc.trainer_owned_values(ARGS):
        if not key.startswith("scheduler."):
            assert dsc._lookup(config, key) == "auto", key


@pytest.mark.parametrize("name", sorted(BUILTIN_CONFIGS))
def test_transformers_fills_every_auto_value(name):
    filled = _hf_filled(builtin_config(name), ARGS)
    assert _auto_leaves(filled) == []
    assert filled["train_micro_batch_size_per_gpu"] == 8 and filled["gradient_accumulation_steps"] == 2
    assert filled["bf16"]["enabled"] is True and filled["fp16"]["enabled"] is False


def test_stage_offload_and_gather_settings():
    assert builtin_config("zero2")["zero_optimization"]["stage"] == 2
    assert "offload_optimizer" not in builtin_config("zero2")["zero_optimization"]
    assert builtin_config("zero2_offload")["zero_optimization"]["offload_optimizer"] == {
        "device": "cpu",
        "pin_memory": True,
    }
    for name in ("zero3", "zero3_offload"):
        assert builtin_config(name)["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_fill_auto_values_matches_transformers():
    config = builtin_config("zero3")
    ours = fill_auto_values(config, {**ARGS, "world_size": 1}, num_training_steps=10, hidden_size=32, warmup_steps=3)
    assert _auto_leaves(ours) == []
    assert ours == _hf_filled(config, ARGS)


# --- loading ------------------------------------------------------------------------------------------


def test_relative_path_resolves_from_repo_root_outside_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_deepspeed_config("ds_configs/zero2_offload.json") == builtin_config("zero2_offload")


def test_preset_path_falls_back_to_builtin_when_installed_without_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dsc, "REPO_ROOT", tmp_path)
    assert load_deepspeed_config("ds_configs/zero3.json") == builtin_config("zero3")
    assert load_deepspeed_config("zero3") == builtin_config("zero3")


def test_missing_file_names_the_path_and_the_presets(tmp_path):
    with pytest.raises(ConfigError, match=r"not found: .*nope\.json.*zero2"):
        resolve_deepspeed_config(tmp_path / "nope.json", ARGS)


def test_invalid_json_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "zero_optimization": {"stage": 2,}\n}')
    with pytest.raises(ConfigError, match=r"bad\.json is not valid JSON \(line 2"):
        resolve_deepspeed_config(bad, ARGS)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        resolve_deepspeed_config(bad, ARGS)


def test_unknown_preset_name():
    with pytest.raises(ConfigError, match="zero2_offload"):
        builtin_config("zero4")


# --- validation ---------------------------------------------------------------------------------------


def _with(config: dict, dotted_key: str, value) -> dict:
    *parents, leaf = dotted_key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return config


@pytest.mark.parametrize(
    "key, value, named",
    [
        ("train_micro_batch_size_per_gpu", 4, "train_micro_batch_size_per_gpu=4 vs per_device_train_batch_size=8"),
        ("gradient_accumulation_steps", 1, "gradient_accumulation_steps=1 vs gradient_accumulation_steps=2"),
        ("optimizer.params.lr", 3e-4, "optimizer.params.lr=0.0003 vs learning_rate=1e-05"),
        ("fp16.enabled", True, "fp16.enabled=True vs fp16=False"),
        ("bf16.enabled", False, "bf16.enabled=False vs bf16=True"),
        ("train_batch_size", 64, "train_batch_size=64 vs world_size"),
        ("gradient_clipping", 0.5, "gradient_clipping=0.5 vs max_grad_norm=1.0"),
    ],
)
def test_concrete_value_contradicting_training_arguments(key, value, named):
    config = _with(builtin_config("zero2"), key, value)
    with pytest.raises(ConfigError, match="auto") as err:
        resolve_deepspeed_config(config, {**ARGS, "world_size": 2})
    assert named in str(err.value)


def test_matching_concrete_values_pass():
    config = _with(_with(builtin_config("zero2"), "train_micro_batch_size_per_gpu", 8), "optimizer.params.lr", 1e-5)
    assert resolve_deepspeed_config(config, ARGS)["train_micro_batch_size_per_gpu"] == 8


def test_training_arguments_object_is_accepted(tmp_path):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, report_to=[], use_cpu=True)
    with pytest.raises(ConfigError, match="per_device_train_batch_size=8"):
        validate_deepspeed_config(_with(builtin_config("zero2"), "train_micro_batch_size_per_gpu", 4), args)


def test_both_half_precisions_enabled():
    config = _with(_with(builtin_config("zero2"), "fp16.enabled", True), "bf16.enabled", True)
    with pytest.raises(ConfigError, match="both fp16 and bf16"):
        validate_deepspeed_config(config, ARGS)


@pytest.mark.parametrize("gather", [None, False])
def test_zero3_without_gathered_save(gather):
    config = builtin_config("zero3")
    config["zero_optimization"].pop("stage3_gather_16bit_weights_on_model_save")
    if gather is not None:
        config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = gather
    with pytest.raises(ConfigError, match="stage3_gather_16bit_weights_on_model_save"):
        validate_deepspeed_config(config, ARGS)


def test_bad_zero_stage():
    with pytest.raises(ConfigError, match="stage must be"):
        validate_deepspeed_config(_with(builtin_config("zero2"), "zero_optimization.stage", 4), ARGS)


def test_config_scheduler_would_silently_replace_a_non_linear_schedule():
    validate_deepspeed_config(builtin_config("zero2"), {**ARGS, "lr_scheduler_type": "cosine"})  # no block
    with_scheduler = {**builtin_config("zero2"), "scheduler": {"type": "WarmupDecayLR", "params": {}}}
    with pytest.raises(ConfigError, match="lr_scheduler_type"):
        validate_deepspeed_config(with_scheduler, {**ARGS, "lr_scheduler_type": "cosine"})
    validate_deepspeed_config(with_scheduler, {**ARGS, "lr_scheduler_type": "linear"})


def test_deepspeed_not_importable(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # makes `import deepspeed` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'hf_itt\[deepspeed\]'"):
        resolve_deepspeed_config("zero2", ARGS)


def test_several_cpu_ranks_need_use_cpu(monkeypatch):
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() != "cpu":
        pytest.skip("this machine has an accelerator; the check only concerns CPU-only launches")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="use_cpu=True"):
        validate_deepspeed_config(builtin_config("zero2"), ARGS)
    validate_deepspeed_config(builtin_config("zero2"), {**ARGS, "use_cpu": True})


# --- resume -------------------------------------------------------------------------------------------


def _fake_checkpoint(root, ranks: int, prefix: str = "bf16_"):
    tag = root / "global_step7"
    tag.mkdir(parents=True)
    (root / "latest").write_text("global_step7")
    (tag / "mp_rank_00_model_states.pt").write_bytes(b"")
    for rank in range(ranks):
        (tag / f"{prefix}zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").write_bytes(b"")
    return root


@pytest.mark.parametrize("prefix", ["", "bf16_"])
def test_world_size_mismatch_on_resume(tmp_path, prefix):
    checkpoint = _fake_checkpoint(tmp_path / "checkpoint-7", ranks=4, prefix=prefix)
    assert check_world_size_on_resume(checkpoint, 4) == 4
    with pytest.raises(ConfigError, match=r"saved by 4 ranks but this run has 2") as err:
        check_world_size_on_resume(checkpoint, 2)
    message = str(err.value)
    assert "ds_to_universal" in message and "load_universal" in message and "--force" in message


def test_resume_check_ignores_non_zero_and_universal_checkpoints(tmp_path):
    assert saved_world_size(tmp_path) is None
    checkpoint = _fake_checkpoint(tmp_path / "checkpoint-7", ranks=2)
    (checkpoint / "global_step7_universal" / "zero").mkdir(parents=True)
    (checkpoint / "latest").write_text("global_step7_universal")
    assert check_world_size_on_resume(checkpoint, 1) is None
