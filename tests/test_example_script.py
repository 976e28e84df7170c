"""examples/multitask_in_your_script.py runs end to end offline, as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from transformers import AutoModel

from hf_itt.training.modeling import MultiTaskModel

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "multitask_in_your_script.py"


def test_example_script_trains_evaluates_saves_and_exports(tmp_path):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--output_dir",
            str(tmp_path),
            "--max_steps",
            "6",
            "--train_size",
            "24",
            "--sampler",
            "proportional",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(done.stdout[done.stdout.rindex("{\n") :])
    for task in ("sentiment", "facts", "pos"):
        assert 0 <= metrics[f"eval_{task}_accuracy"] <= 1 and metrics[f"eval_{task}_loss"] > 0
    assert set(metrics) >= {"eval_average", "eval_loss"}

    encoder = AutoModel.from_pretrained(tmp_path / "encoder")
    assert encoder.config.model_type == "xlm-roberta"
    model = AutoModel.from_pretrained(tmp_path)  # the whole multi-task model
    assert isinstance(model, MultiTaskModel) and model.task_names == ["sentiment", "facts", "pos"]
    assert model.config.tasks["pos"]["labels"] == ["DET", "NOUN", "VERB", "ADJ"]
    assert (tmp_path / "checkpoint-6" / "sampler_state.json").is_file()


def test_example_script_under_accelerate_launch_with_two_processes(tmp_path):
    """`accelerate launch --num_processes 2`, as the README says: every rank trains, rank 0 reports. On CPU
    accelerate spawns torch.distributed (gloo) processes with --multi_gpu and use_cpu (its --cpu flag alone
    starts one process)."""
    import pytest

    launcher = Path(sys.executable).with_name("accelerate")
    if not launcher.is_file():
        pytest.skip(f"no accelerate launcher next to {sys.executable}")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(SCRIPT.parents[1]),
    }
    done = subprocess.run(
        [
            str(launcher),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            str(29500 + os.getpid() % 2000),
            str(SCRIPT),
            "--output_dir",
            str(tmp_path),
            "--max_steps",
            "6",
            "--train_size",
            "24",
            "--sampler",
            "proportional",
            "--use_cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count('"eval_average"') == 1  # printed by rank 0 only
    assert json.loads((tmp_path / "checkpoint-6" / "sampler_state.json").read_text())["schedule"]["world_size"] == 2
    assert "pin_memory" not in done.stderr
