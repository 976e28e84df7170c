"""Model selection under the grid's own launcher setup: run_scripts/paper/itt_mnli.yaml (its ZeRO-2 config
and preset) on 2 CPU ranks with a tiny model. Early stopping ends both ranks at the same evaluation, the
best checkpoint is restored through DeepSpeed, and the budget counts both ranks' examples."""

import json
from pathlib import Path

import pytest

from hf_itt.hub.manifest import read_manifest
from tests.deepspeed_launch import launch

pytestmark = [pytest.mark.deepspeed, pytest.mark.slow]
pytest.importorskip("deepspeed", reason="the [deepspeed] extra is not installed")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "fixtures" / "data"


def test_two_rank_zero2_run_stops_early_and_exports_the_best_evaluation(tiny_checkpoint, tmp_path):
    launch(
        REPO / "run_itt.py",
        "--config",
        str(REPO / "run_scripts" / "paper" / "itt_mnli.yaml"),
        f"model.name_or_path={tiny_checkpoint}",
        f"output_dir={tmp_path}/run",
        "hub.publisher=local",
        f"hub.local_root={tmp_path}/hub",
        f"report_dir={tmp_path}/report",
        "targets.tasks=[]",
        "targets.per_task_training={}",
        "targets.data_files={}",
        "stages.0.early_stopping_patience=2",
        (
            f"stages.0.tasks=[{{name: mnli, data_files: {{train: '{DATA}/mnli/train.jsonl', "
            f"validation: '{DATA}/mnli/validation_matched.jsonl'}}}}]"
        ),
        (
            "stages.0.training={bf16: false, use_cpu: true, disable_tqdm: true, per_device_train_batch_size: 2, "
            "gradient_accumulation_steps: 1, max_steps: 12, eval_steps: 2, save_steps: 2, logging_steps: 2, "
            "learning_rate: 0.0}"
        ),
        timeout=1500,
    )
    stage = tmp_path / "run" / "stages" / "mnli"
    manifest = read_manifest(stage / "checkpoint")
    assert manifest.config["deepspeed"].endswith("zero2.json")
    budget = manifest.budget
    assert (budget["updates"], budget["effective_batch_size"], budget["examples_seen"]) == (6, 4, 24)
    assert budget["stopped_early"] and budget["selected_step"] == 2
    state = json.loads((stage / "trainer" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"].endswith("checkpoint-2")
