"""The real ``deepspeed`` launcher with 2 CPU ranks: a plain HF Trainer on the shipped ZeRO configs,
and the GPU check script in its tiny CPU mode.

Runs the ``deepspeed`` command (tests/deepspeed_launch.py) with ``DS_ACCELERATOR=cpu``. The first run
on a machine compiles two small C++ ops (shm_comm, fused_adam) into torch's extension cache
(``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``); later runs load them. Needs a C++ compiler, ninja and the Python headers; see docs/deepspeed.md.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from hf_itt.config.deepspeed import check_world_size_on_resume
from hf_itt.errors import ConfigError
from tests.deepspeed_launch import REPO_ROOT, launch

pytest.importorskip("deepspeed", reason="the [deepspeed] extra is not installed")

SCRIPT = REPO_ROOT / "tests" / "ds_scripts" / "train_tiny.py"
STEPS = 3


def _train(tiny_checkpoint: Path, config: str, out: Path) -> dict:
    launch(
        SCRIPT,
        "--model_dir",
        str(tiny_checkpoint),
        "--ds_config",
        config,
        "--output_dir",
        str(out),
        "--steps",
        str(STEPS),
    )
    return json.loads((out / "probe.json").read_text())


def _logits(model_dir: Path, probe_ids: list) -> torch.Tensor:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    ids = torch.tensor(probe_ids)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def _probe_ids(vocab_size: int) -> list:
    sys.path.insert(0, str(SCRIPT.parent))
    from train_tiny import random_dataset

    return random_dataset(vocab_size)[:4]["input_ids"]


def _assert_round_trip(tiny_checkpoint: Path, out: Path, summary: dict, stage: int) -> None:
    from transformers import AutoConfig, XLMRobertaModel

    assert summary["world_size"] == 2 and summary["global_step"] == STEPS and summary["zero_stage"] == stage
    probe_ids = _probe_ids(AutoConfig.from_pretrained(tiny_checkpoint).vocab_size)
    # The saved files reproduce the live engine's outputs: ZeRO shards were gathered, not left empty.
    torch.testing.assert_close(_logits(out, probe_ids), torch.tensor(summary["probe_logits"]), rtol=1e-4, atol=1e-5)
    before = XLMRobertaModel.from_pretrained(tiny_checkpoint).embeddings.word_embeddings.weight
    after = XLMRobertaModel.from_pretrained(out).embeddings.word_embeddings.weight
    assert not torch.equal(before, after), "training did not change the encoder"


@pytest.mark.deepspeed
def test_zero2_trainer_run_saves_a_loadable_model(tiny_checkpoint, tmp_path):
    out = tmp_path / "zero2"
    summary = _train(tiny_checkpoint, "ds_configs/zero2.json", out)
    _assert_round_trip(tiny_checkpoint, out, summary, stage=2)
    # A real 2-rank ZeRO checkpoint: resuming it with another world size is refused up front.
    assert check_world_size_on_resume(out / f"checkpoint-{STEPS}", 2) == 2
    with pytest.raises(ConfigError, match="saved by 2 ranks but this run has 1"):
        check_world_size_on_resume(out / f"checkpoint-{STEPS}", 1)


@pytest.mark.deepspeed
def test_zero3_save_load_round_trip(tiny_checkpoint, tmp_path):
    out = tmp_path / "zero3"
    summary = _train(tiny_checkpoint, "ds_configs/zero3.json", out)
    _assert_round_trip(tiny_checkpoint, out, summary, stage=3)
    assert check_world_size_on_resume(out / f"checkpoint-{STEPS}", 2) == 2


# --- the GPU check --------------------------------------------------------------------------------------


@pytest.mark.deepspeed
def test_gpu_check_tiny_runs_on_two_cpu_ranks(tmp_path):
    steps = 4
    launch(
        REPO_ROOT / "scripts" / "gpu_check.py",
        "--tiny",
        "--steps",
        str(steps),
        "--json-out",
        str(tmp_path / "gpu_check.json"),
    )
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["world_size"] == 2 and result["timed_steps"] == steps and result["device"] == "cpu"
    assert result["parameters"] > 70_000  # the tiny encoder + heads, counted before ZeRO partitions them
    assert sum(result["tasks_seen"].values()) == steps
    assert result["samples_per_s"] > 0 and result["tokens_per_s"] == pytest.approx(
        result["samples_per_s"] * result["seq_len"], rel=1e-3
    )
    assert 0 < result["mfu"] < 1 and math.isfinite(result["last_loss"])


def test_task_schedule_is_a_pure_function_of_seed_and_step():
    from scripts.gpu_check import TASKS, task_for_step

    schedule = [task_for_step(0, step) for step in range(300)]
    assert schedule == [task_for_step(0, step) for step in range(300)]
    assert set(schedule) == set(TASKS)
    assert schedule != [task_for_step(1, step) for step in range(300)]


def test_flops_formula_for_xlmr_large():
    from scripts import gpu_check

    config = gpu_check.encoder_config(tiny=False)
    with torch.device("meta"):
        model = gpu_check.JointModel(config)
    layers = config.num_hidden_layers * (4 * 1024 * 1024 + 2 * 1024 * 4096)  # weight matrices only
    n = gpu_check.matmul_parameters(model, "qa")
    assert layers < n < layers * 1.01  # + biases, LayerNorms and the 2-output QA head
    tokens = 32 * 256
    assert gpu_check.step_flops(n, config, 32, 256) == tokens * (6 * n + 12 * 24 * 1024 * 256)
