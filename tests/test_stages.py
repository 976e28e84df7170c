"""The stage runner end to end on a tiny 3-stage chain: handover, reuse, publishing, kill + resume."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from hf_itt.config.loading import load_experiment
from hf_itt.hub.manifest import read_manifest
from hf_itt.pipeline.runner import StageRunner

CHAIN = Path(__file__).parent / "fixtures" / "experiments" / "tiny_chain.yaml"
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def chain_config(tiny_checkpoint, root: Path, *overrides: str):
    return load_experiment(
        CHAIN,
        [f"model.name_or_path={tiny_checkpoint}", f"output_dir={root}/run", f"hub.local_root={root}/hub", *overrides],
    )


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = weights(a), weights(b)
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name


@pytest.fixture(scope="module")
def chain(tiny_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    config = chain_config(tiny_checkpoint, root)
    stages = StageRunner(config).run()
    return root, config, stages


def test_chain_runs_end_to_end_and_publishes(chain):
    root, config, stages = chain
    assert [(s.job.name, s.status) for s in stages] == [
        ("joint", "trained"),
        ("squad", "trained"),
        ("pos", "trained"),
        ("xnli", "trained"),
        ("tatoeba", "evaluated"),
    ]
    for name in ("joint", "squad", "pos"):
        manifest = read_manifest(config.run_dir / "stages" / name / "checkpoint")
        assert manifest.status == "published" and manifest.publish.repo_id == f"local/tiny-chain-{name}"
        published = root / "hub" / "local" / f"tiny-chain-{name}" / "main"
        assert (published / "model.safetensors").is_file() and (published / "heads.safetensors").is_file()
    assert {p.name for p in (config.run_dir / "results").iterdir()} == {
        "xnli.validation.json",
        "tatoeba.validation.json",
        "predictions",
    }
    assert {p.name for p in (config.run_dir / "results" / "predictions").iterdir()} == {
        "xnli.validation",
        "tatoeba.validation",
    }
    assert (config.run_dir / "report" / "report.md").is_file()


def test_each_stage_starts_from_the_previous_export(chain):
    _, config, stages = chain
    squad = read_manifest(config.run_dir / "stages" / "squad" / "checkpoint")
    assert squad.source == str(config.run_dir / "stages" / "joint" / "checkpoint")
    assert [entry["stage"] for entry in squad.lineage] == ["base", "joint", "squad"]
    assert squad.identity["previous_stage_hash"] == stages[0].job.stage_hash


def test_results_state_what_every_stage_of_their_chain_ran(chain):
    """Each stage records its updates and examples seen (4 updates x batch 2 here); the results carry them."""
    _, config, _ = chain
    ran = {
        "updates": 4,
        "effective_batch_size": 2,
        "examples_seen": 8,
        "planned_updates": 4,
        "stopped_early": False,
        "selected_step": 4,
        "metric_for_best_model": None,
        "best_metric": None,
    }
    assert {
        k: v
        for k, v in read_manifest(config.run_dir / "stages" / "squad" / "checkpoint").budget.items()
        if k != "epochs"
    } == ran
    for target in ("xnli", "tatoeba"):
        training = json.loads((config.run_dir / "results" / f"{target}.validation.json").read_text())["training"]
        assert [(entry["stage"], entry["tasks"]) for entry in training["itt"]] == [
            ("joint", ["mnli", "hellaswag"]),
            ("squad", ["squad_v1"]),
            ("pos", ["udpos_en"]),
        ]
        assert all({k: v for k, v in entry["budget"].items() if k != "epochs"} == ran for entry in training["itt"])
        target_entry = training["target"]
        assert (target_entry and target_entry["stage"], target_entry and target_entry["budget"]["updates"]) == (
            ("xnli", 4) if target == "xnli" else (None, None)
        )


def test_model_card_parses_with_lineage_and_metrics(chain):
    _, config, _ = chain
    card = ModelCard.load(config.run_dir / "stages" / "joint" / "checkpoint" / "README.md")
    assert "hf_itt" in card.data.tags
    lineage = card.data.to_dict()["hf_itt"]["lineage"]
    assert [entry["stage"] for entry in lineage] == ["base", "joint"]
    assert "**joint** [mnli+hellaswag]" in card.text
    results = card.data.eval_results
    assert {(r.dataset_name, r.metric_type) for r in results} >= {("mnli", "accuracy"), ("hellaswag", "accuracy")}


def test_qa_stage_reports_exact_match_and_f1_on_dev(chain):
    _, config, stages = chain
    squad = read_manifest(config.run_dir / "stages" / "squad" / "checkpoint")
    assert {"exact_match", "f1", "loss"} <= set(squad.metrics["squad_v1"])
    assert all(0 <= squad.metrics["squad_v1"][key] <= 100 for key in ("exact_match", "f1"))


def test_cards_pass_the_hub_metadata_checks_and_targets_carry_their_results(chain):
    from tests.test_model_card import assert_hub_valid_card

    _, config, _ = chain
    for stage in ("joint", "squad", "pos"):
        assert_hub_valid_card((config.run_dir / "stages" / stage / "checkpoint" / "README.md").read_text())
    target = config.run_dir / "targets" / "xnli" / "checkpoint"
    card = assert_hub_valid_card((target / "README.md").read_text())
    found = {(r.dataset_name, r.dataset_split) for r in card.data.eval_results}
    assert ("xnli (en)", "validation") in found and card.data.base_model == "local/tiny-chain-pos"
    labels = json.loads((target / "config.json").read_text())["id2label"]
    assert labels == {"0": "entailment", "1": "neutral", "2": "contradiction"}  # names, not LABEL_0


def test_rerun_retrains_nothing(chain):
    _, config, _ = chain
    checkpoint = config.run_dir / "stages" / "squad" / "checkpoint" / "model.safetensors"
    before = checkpoint.stat().st_mtime_ns
    runner = StageRunner(config)
    assert {p.action for p in runner.plan()} == {"reuse", "evaluate-only"}
    stages = runner.run(report=False)
    assert [s.status for s in stages] == ["reused", "reused", "reused", "reused", "reused"]
    assert checkpoint.stat().st_mtime_ns == before


def test_results_of_another_chain_or_a_crash_are_evaluated_again(chain):
    _, config, stages = chain
    results = config.run_dir / "results"
    assert json.loads((results / "tatoeba.validation.json").read_text())["stage_hash"] == stages[-1].job.stage_hash
    stale = json.loads((results / "tatoeba.validation.json").read_text())
    (results / "tatoeba.validation.json").write_text(json.dumps({**stale, "stage_hash": "another-chain"}))
    crashed = json.loads((results / "xnli.validation.json").read_text())
    (results / "xnli.validation.json").write_text(json.dumps({**crashed, "failed": {"de": "CUDA out of memory"}}))
    stages = StageRunner(config).run(report=False)
    assert [s.status for s in stages][-2:] == ["reused", "evaluated"]  # xnli: model reused, results redone
    for name in ("tatoeba", "xnli"):
        redone = json.loads((results / f"{name}.validation.json").read_text())
        assert redone["failed"] == {} and redone["stage_hash"] == stages[-1 if name == "tatoeba" else -2].job.stage_hash


def test_second_experiment_reuses_the_shared_prefix(chain, tiny_checkpoint, tmp_path):
    root, _, _ = chain
    other = load_experiment(
        CHAIN,
        [
            f"model.name_or_path={tiny_checkpoint}",
            f"output_dir={tmp_path}/other",
            f"hub.local_root={root}/hub",
            "experiment=tiny-other",
            "stages.1.training.learning_rate=0.0",
            "stages=[null, null]",
        ][:5],
    )
    other.stages = other.stages[:2]
    other.targets.tasks = []
    plans = {p.name: p.action for p in StageRunner(other).plan()}
    assert plans == {"joint": "reuse", "squad": "train"}
    stages = StageRunner(other).run(report=False)
    assert [s.status for s in stages] == ["reused", "trained"]
    # learning rate 0: stage 2's weights are exactly the weights it started from (stage 1's export)
    assert_same_weights(stages[0].checkpoint, stages[1].checkpoint)


def run_cli(tiny_checkpoint, root: Path, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    command = [
        sys.executable,
        str(REPO / "run_itt.py"),
        "--config",
        str(CHAIN),
        "--no-report",
        f"model.name_or_path={tiny_checkpoint}",
        f"output_dir={root}/run",
        f"hub.local_root={root}/hub",
    ]
    return subprocess.Popen(
        command,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
    )  # as in-process


def test_killed_run_resumes_to_identical_weights(chain, tiny_checkpoint, tmp_path):
    _, config, _ = chain
    process = run_cli(tiny_checkpoint, tmp_path)
    resume_point = tmp_path / "run" / "stages" / "squad" / "trainer" / "checkpoint-2" / "trainer_state.json"
    deadline = time.time() + 240
    while not resume_point.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert resume_point.exists(), "the run never reached stage 2's first checkpoint"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "run" / "stages" / "squad" / "checkpoint").exists() or process.returncode == 0
    rerun = run_cli(tiny_checkpoint, tmp_path, stdout=subprocess.PIPE)
    stdout, stderr = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, stderr[-3000:]
    assert "[itt] joint: reused" in stdout  # one line per stage; the resumed one says where it resumes from
    assert re.search(r"^\[itt\] squad: resuming from \S+/stages/squad/trainer/checkpoint-\d+ \(hash", stdout, re.M)
    for stage in ("joint", "squad", "pos"):
        assert_same_weights(
            tmp_path / "run" / "stages" / stage / "checkpoint", config.run_dir / "stages" / stage / "checkpoint"
        )
    assert_same_weights(
        tmp_path / "run" / "targets" / "xnli" / "checkpoint", config.run_dir / "targets" / "xnli" / "checkpoint"
    )


def test_health_restarts_a_collapsed_stage_then_stops_it(tiny_checkpoint, tmp_path):
    from hf_itt.errors import TrainingHealthError

    config = chain_config(
        tiny_checkpoint,
        tmp_path,
        "stages.0.training.learning_rate=1.0",
        "stages.0.training.eval_steps=2",
        "health.on_collapse=restart",
        "health.max_restarts=1",
        "health.collapse_min_examples=1",
        "targets.tasks=[]",
        "targets.languages={}",
    )
    with pytest.raises(TrainingHealthError, match="stage 'joint' was stopped.*dev predictions are.*no restarts left"):
        StageRunner(config).run(report=False)
    stage = config.run_dir / "stages" / "joint"
    assert (stage / "trainer.attempt0").is_dir()  # the first attempt (seed 7) is kept for inspection
    assert json_attempt(stage) == 1  # the rerun used seed 8 and was stopped
    assert not (stage / "checkpoint").exists()  # nothing exported


def json_attempt(stage: Path) -> int:
    import json

    return json.loads((stage / "attempt.json").read_text())["attempt"]


def test_healthy_stages_record_their_health(chain):
    _, config, _ = chain
    health = read_manifest(config.run_dir / "stages" / "joint" / "checkpoint").health
    assert health["outcome"] == "ok" and health["seed"] == 7 and health["attempts"][0]["events"] == []
