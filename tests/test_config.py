"""Experiment YAML: loading, `extends:`, overrides and validation errors (no model is built)."""

from pathlib import Path

import pytest

from hf_itt.config.loading import load_experiment
from hf_itt.config.overrides import apply_overrides
from hf_itt.errors import ConfigError

BASE = """
experiment: squad-mnli
seed: 3
model: {name_or_path: xlm-roberta-large}
stages:
  - name: squad
    tasks: [squad_v1]
    training: {learning_rate: 1.0e-5, num_train_epochs: 2}
  - name: mnli
    tasks:
      - {name: mnli, lang: de, max_train_examples: 1000}
    sampling: {strategy: temperature, temperature: 3}
targets:
  tasks: [xnli, tatoeba]
  languages: {xnli: [en, de, sw]}
"""


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_stages_tasks_and_targets(tmp_path):
    config = load_experiment(write(tmp_path, BASE))
    assert [s.name for s in config.stages] == ["squad", "mnli"]
    assert config.stages[0].tasks[0].name == "squad_v1"
    assert config.stages[1].tasks[0].lang == "de"
    assert config.stages[1].sampling.strategy == "temperature"
    assert config.stages[1].sampling.temperature == 3.0
    assert config.targets.languages == {"xnli": ["en", "de", "sw"]}
    assert str(config.run_dir) == "runs/squad-mnli/seed3"


def test_overrides_reach_nested_lists(tmp_path):
    config = load_experiment(
        write(tmp_path, BASE),
        ["stages.0.training.learning_rate=2e-5", "seed=7", "targets.tasks=[xnli]", "hub.publisher=none"],
    )
    assert config.stages[0].training["learning_rate"] == 2e-5
    assert config.seed == 7 and config.targets.tasks == ["xnli"] and config.hub.publisher == "none"


def test_extends_merges_over_base(tmp_path):
    write(tmp_path, BASE, "base.yaml")
    config = load_experiment(write(tmp_path, "extends: base.yaml\nexperiment: child\nseed: 9\n"))
    assert config.experiment == "child" and config.seed == 9 and len(config.stages) == 2


@pytest.mark.parametrize(
    "override, message",
    [
        ("stages.0.tasks=[squad_v11]", "squad_v1"),  # unknown task, nearest name
        ("stages.0.trainig={}", "did you mean 'training'"),  # unknown field
        ("stages.0.training.learning_rat=1", "learning_rate"),  # unknown TrainingArguments field
        ("stages.0.training.warmup_ratio=0.1", "warmup_steps"),  # removed in transformers 5
        ("stages.0.training.output_dir=x", "hf_itt sets it"),
        ("stages.1.sampling.strategy=temprature", "temperature"),
        ("stages.1.sampling.strategy=capped", "needs cap"),
        ("stages.1.name=squad", "used twice"),
        ("stages.5.name=x", "out of range"),
        ("targets.tasks=[mnli]", "cannot be a target"),
        ("targets.languages={xnli: [en, xx]}", "no language 'xx'"),
        ("seed=abc", "expected an integer"),
        ("hub.publisher=s3", "not one of"),
        ("hub.repo_template={namespace}/{user}", "unknown placeholder {user}"),
        ("evaluation.splits=[dev]", "validation"),
        ("experiment=my exp", "letters, digits"),
        ("stages.0.preset=xlmr-huge", "unknown preset"),
        ("stages.0.from=a@b@c", "namespace/repo@revision"),
        ("stages.0.tasks=[tatoeba]", "no training data"),
    ],
)
def test_bad_values_get_one_clear_error(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("[", r"\[")):
        load_experiment(write(tmp_path, BASE), [override])


def test_malformed_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(write(tmp_path, "stages: [\n  - name: a\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_experiment(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="circular"):
        load_experiment(write(tmp_path, "extends: exp.yaml\n"))


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["learning_rate"])
    with pytest.raises(ConfigError, match="list index"):
        apply_overrides({"stages": [{}]}, ["stages.first.name=x"])


def test_one_file_can_hold_several_experiments(tmp_path):
    from hf_itt.config.loading import load_experiments

    path = write(tmp_path, BASE + "experiments:\n  - {experiment: a}\n  - {experiment: b, seed: 4, stages: null}\n")
    first, second = load_experiments(path, ["hub.publisher=none"])
    assert (first.experiment, len(first.stages), first.seed) == ("a", 2, 3)
    assert (second.experiment, second.stages, second.seed) == ("b", [], 4)
    assert first.hub.publisher == second.hub.publisher == "none"
    with pytest.raises(ConfigError, match="load_experiments"):
        load_experiment(path)
    with pytest.raises(ConfigError, match="non-empty list"):
        load_experiments(write(tmp_path, BASE + "experiments: []\n", "empty.yaml"))


def test_the_demo_config_validates_before_its_prepare_hook_ran():
    from hf_itt.config.loading import load_experiments

    demo = Path(__file__).resolve().parents[1] / "run_scripts" / "demo.yaml"
    configs = load_experiments(demo)
    assert [c.experiment for c in configs] == ["baseline", "itt-related", "itt-unrelated", "joint", "sequential"]
    assert all(c.prepare == "hf_itt.demo.prepare:prepare" for c in configs)
