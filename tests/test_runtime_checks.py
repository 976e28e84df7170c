"""What a run will need later is checked when the config loads (validate / --dry-run), not at the first stage."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import EvalPrediction

from hf_itt.config.experiment import DEFAULT_MAX_DEV_EXAMPLES
from hf_itt.config.loading import load_experiment
from hf_itt.config.runtime_checks import dev_metric_names
from hf_itt.errors import ConfigError
from hf_itt.task_types import get_type
from hf_itt.task_types.classification import accuracy_over_labelled
from hf_itt.task_types.extractive_qa import QADevMetrics

EXPERIMENT = """\
experiment: checks
stages:
  - name: joint
    tasks: [{name: mnli}, squad_v1]
targets:
  tasks: [xnli]
"""


def load(tmp_path, *overrides):
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT)
    return load_experiment(path, list(overrides))


@pytest.mark.parametrize(
    "override, message",
    [
        ("defaults.training.report_to=[wandb]", "report_to 'wandb' needs its package.*pip install wandb"),
        ("targets.training.report_to=tensorbord", "did you mean 'tensorboard'"),
        ("stages.0.training.push_to_hub=true", "push_to_hub is replaced by the `hub:` section.*hub.publisher: hub"),
        (
            "stages.0.training.metric_for_best_model=accuracy",
            "use one of loss, average, mnli_loss, mnli_accuracy, squad_v1_loss, squad_v1_exact_match, squad_v1_f1",
        ),
        ("targets.per_task_training.xnli.metric_for_best_model=mnli_accuracy", r"targets \(xnli\).*xnli_accuracy"),
    ],
)
def test_run_time_needs_fail_at_load_with_the_fix(tmp_path, override, message):
    from transformers.integrations.integration_utils import (
        get_available_reporting_integrations,
    )

    if "wandb" in override and "wandb" in get_available_reporting_integrations():
        pytest.skip("wandb is installed here: the missing-package message cannot be shown")
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, override)


def test_metrics_that_will_exist_pass(tmp_path):
    for metric in ("average", "eval_average", "squad_v1_f1", "eval_mnli_accuracy", "loss"):
        load(tmp_path, f"stages.0.training.metric_for_best_model={metric}")
    load(tmp_path, "defaults.training.report_to=none", "targets.training.report_to=[]")


def test_average_needs_a_dev_metric_for_every_task():
    assert "average" not in dev_metric_names({"squad_v1": "extractive_qa", "wiki": "mlm"})
    assert dev_metric_names({"wiki": "mlm"}) == ["loss", "wiki_loss"]


def test_names_the_checks_know_are_the_names_the_dev_metrics_return():
    logits = np.array([[0.1, 2.0, 0.3], [1.0, 0.0, 0.5]])
    accuracy = accuracy_over_labelled(EvalPrediction(logits, np.array([1, 0])))
    assert set(accuracy) == set(get_type("classification").dev_metric_names)
    rows = {"id": ["q1"], "context": ["the cat sat"], "answers": [{"text": ["cat"], "answer_start": [4]}]}
    features = {"example_id": ["q1"], "offset_mapping": [[None, (0, 3), (4, 7), (8, 11), None]]}
    start, end = np.array([[0, 0, 5.0, 0, 0]]), np.array([[0, 0, 5.0, 0, 0]])
    scores = QADevMetrics(rows, features)(EvalPrediction((start, end), (np.array([2]), np.array([2]))))
    assert (
        set(get_type("extractive_qa").dev_metric_names) <= set(scores)
        and scores["exact_match"] == scores["f1"] == 100.0
    )


def test_the_dev_cap_is_an_explicit_setting(tmp_path):
    config = load(tmp_path)
    assert config.stages[0].tasks[0].max_eval_examples == DEFAULT_MAX_DEV_EXAMPLES == 500
    assert config.targets.max_eval_examples == 500
    uncapped = load(tmp_path, "stages.0.tasks.0.max_eval_examples=null", "targets.max_eval_examples=null")
    assert uncapped.stages[0].tasks[0].max_eval_examples is None and uncapped.targets.max_eval_examples is None
    from hf_itt.pipeline.jobs import build_jobs

    jobs = build_jobs(uncapped)
    assert [plan.max_dev for job in jobs for plan in job.tasks] == [None, 500, None]  # per task: squad_v1 kept
    assert [plan.max_dev for job in build_jobs(config) for plan in job.tasks] == [500, 500, 500]


def test_reference_documents_the_dev_cap_default():
    from pathlib import Path

    reference = (Path(__file__).resolve().parents[1] / "docs" / "reference.md").read_text()
    row = next(line for line in reference.splitlines() if line.startswith("| `stages[].tasks[].max_eval_examples`"))
    assert "`500`" in row and "null: all of them" in row
