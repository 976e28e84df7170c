"""Model selection as jiant does it (evaluate every N updates on the English dev subset, early stopping
with patience, best weights exported), the collapse alarm at those evaluations, and the budget each
stage records (updates, examples seen) - on the paper grid's own config (run_scripts/paper/itt_mnli.yaml)
with a tiny model, fixture data and a short cadence."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from hf_itt.config.loading import load_experiment
from hf_itt.errors import CheckpointError
from hf_itt.hub.manifest import StageManifest, read_manifest, write_manifest
from hf_itt.training.budget import check_budget, training_budget
from hf_itt.training.early_stopping import evaluations_without_improvement

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "run_scripts" / "paper"
DATA = Path(__file__).parent / "fixtures" / "data"
MNLI_TRAIN, MNLI_DEV = DATA / "mnli" / "train.jsonl", DATA / "mnli" / "validation_matched.jsonl"


# ---- units ---------------------------------------------------------------------------------------
def test_evaluations_without_improvement_counts_as_jiant_and_the_trainer_do():
    history = [
        {"loss": 1.0},
        {"eval_average": 0.4},
        {"eval_average": 0.4},
        {"eval_average": 0.6},
        {"eval_average": 0.5},
        {"eval_average": 0.6},
        {"eval_loss": 0.1},
    ]
    assert evaluations_without_improvement(history, "average", True) == 2  # a tie is no improvement
    assert evaluations_without_improvement(history[:4], "eval_average", True) == 0
    assert evaluations_without_improvement([], "average", True) == 0
    losses = [{"eval_loss": 2.0}, {"eval_loss": 1.0}, {"eval_loss": 1.5}]
    assert evaluations_without_improvement(losses, "loss", False) == 1  # lower is better


def test_training_budget_from_the_trainer_state():
    args = SimpleNamespace(
        per_device_train_batch_size=4,
        gradient_accumulation_steps=8,
        world_size=2,
        load_best_model_at_end=True,
        metric_for_best_model="average",
    )
    state = SimpleNamespace(global_step=3000, max_steps=9000, epoch=1.25, best_global_step=2000, best_metric=0.81)
    budget = training_budget(args, state)
    assert budget == {
        "updates": 3000,
        "effective_batch_size": 64,
        "examples_seen": 192_000,
        "planned_updates": 9000,
        "epochs": 1.25,
        "stopped_early": True,
        "selected_step": 2000,
        "metric_for_best_model": "average",
        "best_metric": 0.81,
    }
    check_budget(budget)
    no_selection = training_budget(
        SimpleNamespace(**{**vars(args), "load_best_model_at_end": False}),
        SimpleNamespace(**{**vars(state), "global_step": 9000}),
    )
    assert no_selection["selected_step"] == 9000 and no_selection["best_metric"] is None
    assert not no_selection["stopped_early"]


@pytest.mark.parametrize(
    "budget", [{"updates": "many"}, {"updates": -1}, {"stopped_early": "no"}, {"steps": 3}, {"examples_seen": True}]
)
def test_a_manifest_with_a_malformed_budget_is_refused(tmp_path, budget):
    manifest = StageManifest(experiment="e", stage="s", stage_hash="h", status="finished", budget=budget)
    write_manifest(tmp_path, manifest)
    with pytest.raises(CheckpointError, match="invalid manifest.*budget"):
        read_manifest(tmp_path)


def test_a_manifest_without_a_budget_still_reads(tmp_path):
    """Manifests written before budgets were recorded: same schema version, empty budget."""
    manifest = StageManifest(experiment="e", stage="s", stage_hash="h", status="finished")
    data = {k: v for k, v in manifest.to_dict().items() if k != "budget"}
    from hf_itt.hub.manifest import MANIFEST_NAME, manifest_digest

    data["manifest_sha256"] = manifest_digest(data)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    assert read_manifest(tmp_path).budget == {}


# ---- the paper grid's config on a tiny model -------------------------------------------------------
def paper_config(tiny_checkpoint, root: Path, *overrides: str, training: str = ""):
    """itt_mnli.yaml as shipped (preset xlmr-large-itt: its selection settings) with a tiny model, fixture
    data, no targets and a cadence of 2 updates instead of 1,000."""
    return load_experiment(
        PAPER / "itt_mnli.yaml",
        [
            f"model.name_or_path={tiny_checkpoint}",
            f"output_dir={root}/run",
            "hub.publisher=local",
            f"hub.local_root={root}/hub",
            "defaults.deepspeed=",
            "targets.tasks=[]",
            "targets.per_task_training={}",
            "targets.data_files={}",
            f"stages.0.tasks=[{{name: mnli, data_files: {{train: '{MNLI_TRAIN}', validation: '{MNLI_DEV}'}}}}]",
            (
                "stages.0.training={bf16: false, use_cpu: true, disable_tqdm: true, per_device_train_batch_size: 2, "
                f"gradient_accumulation_steps: 1, max_steps: 12, eval_steps: 2, save_steps: 2, logging_steps: 2{training}}}"
            ),
            *overrides,
        ],
    )


def trainer_state(stage_dir: Path) -> dict:
    last = max((stage_dir / "trainer").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return json.loads((last / "trainer_state.json").read_text())


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


@pytest.mark.slow
def test_the_grid_config_stops_early_records_its_budget_and_runs_the_collapse_alarm(tiny_checkpoint, tmp_path):
    """learning rate 0: the dev average never improves after the first evaluation, so patience 2 stops the
    run at the third evaluation (step 6 of 12); the alarm (thresholds at 0: every evaluation "collapses")
    reports at the first evaluation, step 2."""
    from hf_itt.pipeline.runner import StageRunner

    config = paper_config(
        tiny_checkpoint,
        tmp_path,
        "stages.0.early_stopping_patience=2",
        "health.collapse_threshold=0",
        "health.collapse_margin=0",
        "health.collapse_min_examples=1",
        training=", learning_rate: 0.0",
    )
    job = StageRunner(config).run(report=False)[0].job
    assert job.training["load_best_model_at_end"] and job.training["metric_for_best_model"] == "average"
    manifest = read_manifest(job.checkpoint_dir)
    assert manifest.budget == {
        "updates": 6,
        "effective_batch_size": 2,
        "examples_seen": 12,
        "planned_updates": 12,
        "epochs": manifest.budget["epochs"],
        "stopped_early": True,
        "selected_step": 2,
        "metric_for_best_model": "average",
        "best_metric": manifest.budget["best_metric"],
    }
    assert manifest.lineage[-1]["budget"] == manifest.budget and manifest.config["early_stopping_patience"] == 2
    evaluations = [entry["step"] for entry in trainer_state(job.stage_dir)["log_history"] if "eval_average" in entry]
    assert evaluations == [2, 4, 6]
    events = manifest.health["attempts"][0]["events"]
    assert [(e["kind"], e["step"], e["task"]) for e in events] == [("collapse", 2, "mnli")]
    assert manifest.health["outcome"] == "ok"  # the grid's on_collapse is 'warn'


@pytest.mark.slow
def test_the_grid_config_exports_the_best_evaluation_not_the_last(tiny_checkpoint, tmp_path):
    from hf_itt.pipeline.runner import StageRunner

    config = paper_config(tiny_checkpoint, tmp_path, training=", learning_rate: 0.003")
    job = StageRunner(config).run(report=False)[0].job
    state = trainer_state(job.stage_dir)
    best, last = state["best_global_step"], state["global_step"]
    assert last == 12 and best < last, "precondition: the best dev average is not at the last evaluation"
    exported = weights(job.stage_dir / "full")
    assert same_weights(exported, weights(job.stage_dir / "trainer" / f"checkpoint-{best}"))
    assert not same_weights(exported, weights(job.stage_dir / "trainer" / f"checkpoint-{last}"))
    budget = read_manifest(job.checkpoint_dir).budget
    assert (budget["selected_step"], budget["updates"], budget["stopped_early"]) == (best, 12, False)
    assert budget["best_metric"] == max(e["eval_average"] for e in state["log_history"] if "eval_average" in e)


@pytest.mark.slow
@pytest.mark.parametrize("callback, stops_at", [("hf_itt", 6), ("transformers", 8)])
def test_early_stopping_resumes_its_count(tiny_checkpoint, tmp_path, callback, stops_at):
    """Killed after the evaluation of step 4 (one without improvement), a resumed run stops at step 6, as
    the uninterrupted run does; the stock callback would count afresh and train on to step 8."""
    from transformers import EarlyStoppingCallback, TrainerCallback

    from hf_itt.pipeline.checkpoints import last_checkpoint
    from hf_itt.pipeline.jobs import build_jobs
    from hf_itt.pipeline.train import build_trainer
    from hf_itt.training.early_stopping import ResumableEarlyStopping

    class StopAfter4(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = control.should_training_stop or state.global_step >= 4

    def trainer():
        built, _ = build_trainer(job, job.phases()[0], None, None, config, seed=config.seed)
        if callback == "transformers":
            built.remove_callback(ResumableEarlyStopping)
            built.add_callback(EarlyStoppingCallback(2))
        return built

    config = paper_config(
        tiny_checkpoint, tmp_path, "stages.0.early_stopping_patience=2", training=", learning_rate: 0.0"
    )
    job = build_jobs(config)[0]
    first = trainer()
    first.add_callback(StopAfter4())
    first.train()
    assert first.state.global_step == 4
    resumed = trainer()
    resumed.train(resume_from_checkpoint=last_checkpoint(job.trainer_dir))
    assert resumed.state.global_step == stops_at
