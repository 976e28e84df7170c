"""A catalogue of malformed inputs through the real CLI (`hf_itt.cli.main`, in process).

Each case must give ONE clear message that names the problem and the fix (asserted by key words),
exit 2, print no traceback, and, when it fails after a finished stage, leave that stage intact (its
checkpoint still verifies and was not rewritten). docs/troubleshooting.md carries the same table.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from hf_itt.cli import main
from hf_itt.hub.manifest import verify_checkpoint

BAD = Path(__file__).parent / "fixtures" / "bad_inputs"
DATA = Path(__file__).parent / "fixtures" / "data"
TRAINING = {"per_device_train_batch_size": 2, "max_steps": 1, "save_steps": 1, "learning_rate": 1.0e-3,
            "use_cpu": True, "disable_tqdm": True}
NLI = {"name": "nli", "tasks": [{"name": "mnli", "data_files": {"train": str(DATA / "mnli" / "train.jsonl")}}]}


def experiment(**fields) -> dict:
    """A valid one-stage experiment (stage `nli`), with ``fields`` replacing top-level keys."""
    config = {"experiment": "bad-inputs", "seed": 3, "model": {"name_or_path": "set-by-run"},
              "defaults": {"training": dict(TRAINING)}, "stages": [NLI], "hub": {"publisher": "local"}}
    config.update(fields)
    return config


def then_stage(**stage) -> dict:
    """The finished stage `nli`, then a second stage ``stage`` (named `bad`)."""
    return experiment(stages=[NLI, {"name": "bad", **stage}])


def task(name: str, **data_files) -> dict:
    return {"tasks": [{"name": name, "data_files": {role: str(path) for role, path in data_files.items()}}]}


def then_target(task_name: str, **targets) -> dict:
    return experiment(targets={"tasks": [task_name], **targets})


class Runner:
    """Runs `hf-itt run` on a config (a dict written to YAML, or a fixture file) and captures stderr."""

    def __init__(self, root: Path, checkpoint: Path, capsys, tmp_path: Path):
        self.root, self.checkpoint, self.capsys, self.tmp_path = root, checkpoint, capsys, tmp_path
        self.stage = root / "run" / "stages" / "nli" / "checkpoint"
        self.stamp = (self.stage / "model.safetensors").stat().st_mtime_ns

    def assert_stage_intact(self) -> None:
        """The finished stage still verifies and was not rewritten."""
        verify_checkpoint(self.stage)
        assert (self.stage / "model.safetensors").stat().st_mtime_ns == self.stamp

    def config_file(self, config) -> Path:
        if isinstance(config, (str, Path)):
            return Path(config)
        path = self.tmp_path / "experiment.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def run(self, config, *overrides: str, command: str = "run") -> tuple[int, str]:
        argv = [command, "--config", str(self.config_file(config)), "--no-report",
                f"model.name_or_path={self.checkpoint}", f"output_dir={self.root}/run",
                f"hub.local_root={self.root}/hub", *overrides]
        return self.call(argv)

    def call(self, argv: list[str]) -> tuple[int, str]:
        self.capsys.readouterr()
        code = main(argv)
        captured = self.capsys.readouterr()
        return code, captured.err + captured.out


@pytest.fixture(scope="module")
def finished(tiny_checkpoint, tmp_path_factory):
    """A run folder whose stage `nli` finished; every case reuses it (same stage hash) before failing."""
    root = tmp_path_factory.mktemp("bad-inputs")
    config = root / "experiment.yaml"
    config.write_text(yaml.safe_dump(experiment()), encoding="utf-8")
    code = main(["run", "--config", str(config), "--no-report", f"model.name_or_path={tiny_checkpoint}",
                 f"output_dir={root}/run", f"hub.local_root={root}/hub"])
    assert code == 0
    stage = root / "run" / "stages" / "nli" / "checkpoint"
    verify_checkpoint(stage)
    return root, stage


@pytest.fixture
def runner(finished, tiny_checkpoint, capsys, tmp_path):
    """A private copy of the finished run per case, so no case sees what another left behind."""
    root = tmp_path / "root"
    shutil.copytree(finished[0], root)
    return Runner(root, tiny_checkpoint, capsys, tmp_path)


def assert_clear_failure(code: int, output: str, keywords: tuple[str, ...]) -> None:
    assert code == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("hf_itt error:")]
    assert len(errors) == 1, output[-3000:]
    for word in keywords:
        assert word.lower() in errors[0].lower(), f"{word!r} not in: {errors[0]}"


# ------------------------------------------------------------------------------------------------ config
CONFIG_CASES = {
    "yaml-syntax": (BAD / "yaml_syntax.yaml", (), ("not valid YAML", "yaml_syntax.yaml", "line", "fix the syntax")),
    "yaml-not-a-mapping": (BAD / "yaml_list.yaml", (), ("must hold a mapping", "found list")),
    "yaml-not-utf8": (BAD / "yaml_latin1.yaml", (), ("not UTF-8", "save it as UTF-8")),
    "config-file-missing": (BAD / "no_such_experiment.yaml", (), ("config file not found", "no_such_experiment")),
    "circular-extends": (BAD / "circular_a.yaml", (), ("circular", "circular_a.yaml -> circular_b.yaml", "remove")),
    "extends-missing-file": (BAD / "extends_missing.yaml", (), ("not found", "no_such_base.yaml")),
    "unknown-top-level-key": (experiment(stagez=[]), (), ("unknown field 'stagez'", "did you mean", "stages")),
    "unknown-stage-key": (experiment(stages=[{**NLI, "learning_rate": 1e-5}]), (),
                          ("stages[0]", "unknown field 'learning_rate'", "training")),
    "seed-not-a-number": (experiment(seed="abc"), (), ("config.seed", "expected an integer", "'abc'")),
    "flag-not-a-bool": (experiment(hub={"private": "yes"}), (), ("hub.private", "expected true or false")),
    "training-key-typo": (experiment(defaults={"training": {**TRAINING, "learning_rat": 1e-5}}), (),
                          ("learning_rat", "not a TrainingArguments field", "did you mean", "learning_rate")),
    "training-key-removed-in-v5": (experiment(defaults={"training": {**TRAINING, "warmup_ratio": 0.1}}), (),
                                   ("warmup_ratio", "removed in transformers 5", "warmup_steps")),
    "training-owned-key": (experiment(defaults={"training": {**TRAINING, "output_dir": "x"}}), (),
                           ("output_dir", "hf_itt sets it")),
    "temperature-zero": (experiment(stages=[{**NLI, "sampling": {"strategy": "temperature", "temperature": 0}}]), (),
                         ("temperature must be > 0",)),
    "sampling-strategy-typo": (experiment(stages=[{**NLI, "sampling": {"strategy": "temprature"}}]), (),
                               ("'temprature' is unknown", "did you mean", "temperature")),
    "eval-batch-size-zero": (experiment(evaluation={"batch_size": 0}), (), ("evaluation.batch_size", "positive")),
    "unknown-task": (experiment(stages=[{"name": "nli", "tasks": ["mnlii"]}]), (), ("mnlii", "mnli")),
    "retrieval-task-as-stage": (experiment(stages=[{"name": "r", "tasks": ["tatoeba"]}]), (),
                                ("tatoeba", "targets.tasks")),
    "unknown-target-language": (then_target("xnli", languages={"xnli": ["xx"]}), (), ("no language 'xx'", "xnli")),
    "duplicate-stage-names": (experiment(stages=[NLI, NLI]), (), ("'nli' is used twice", "unique")),
    "stage-without-tasks": (experiment(stages=[{"name": "empty"}]), (), ("no tasks", "from")),
    "experiment-name-with-slash": (experiment(experiment="my/exp"), (), ("'my/exp'", "letters, digits")),
    "repo-template-unknown-field": (experiment(hub={"repo_template": "{namespace}/{user}-{stage}"}), (),
                                    ("repo_template", "unknown placeholder {user}", "it may use")),
    "override-not-key-value": (experiment(), ("seed",), ("'seed' is not key=value",)),
    "override-index-out-of-range": (experiment(), ("stages.5.training.learning_rate=1e-5",),
                                    ("index 5 out of range", "1 items")),
    "nothing-to-run": (experiment(stages=[]), (), ("no stages and no targets", "nothing to run")),
}


@pytest.mark.parametrize("config, overrides, keywords", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_config_errors(runner, config, overrides, keywords):
    assert_clear_failure(*runner.run(config, *overrides), keywords)
    runner.assert_stage_intact()


# -------------------------------------------------------------------------------- data, after stage `nli`
DATA_CASES = {
    "missing-column": (then_stage(**task("mnli", train=BAD / "mnli_missing_column.jsonl")),
                       ("mnli", "mnli_missing_column.jsonl", "hypothesis")),
    "wrong-label-name": (then_stage(**task("mnli", train=BAD / "mnli_wrong_label_names.jsonl")),
                         ("mnli", "row 2", "'yes'", "entailment")),
    "empty-split": (then_stage(**task("mnli", train=BAD / "mnli_empty.jsonl")), ("mnli", "empty")),
    "not-utf8": (then_stage(**task("mnli", train=BAD / "mnli_latin1.jsonl")),
                 ("mnli_latin1.jsonl", "not UTF-8", "line 1", "iconv")),
    "broken-jsonl-line": (then_stage(**task("mnli", train=BAD / "mnli_broken_json.jsonl")),
                          ("mnli_broken_json.jsonl", "line 2", "not valid JSON")),
    "ragged-csv": (then_stage(**task("mnli", train=BAD / "mnli_ragged.csv")),
                   ("mnli_ragged.csv", "line 3", "number of fields")),
    "unsupported-format": (then_stage(**task("mnli", train=BAD / "mnli.xlsx")), ("mnli.xlsx", "unsupported", ".jsonl")),
    "data-file-missing": (then_stage(**task("mnli", train=BAD / "no_such_file.jsonl")),
                          ("no_such_file.jsonl", "does not exist")),
    "answer-outside-context": (then_stage(**task("squad_v1", train=BAD / "squad_offset_outside.jsonl")),
                               ("squad_v1", "row 1", "answer_start 500", "runs past the context")),
    "answer-not-at-offset": (then_stage(**task("squad_v1", train=BAD / "squad_offset_mismatch.jsonl")),
                             ("squad_v1", "row 1", "does not match the context")),
    "conllu-nine-columns": (then_stage(**task("udpos_en", train=BAD / "udpos_nine_columns.conllu")),
                            ("udpos_nine_columns.conllu", "line 2", "9 tab-separated fields", "needs 10")),
    "conllu-unknown-tag": (then_stage(**task("udpos_en", train=BAD / "udpos_unknown_tag.conllu")),
                           ("udpos_en", "'DOGTAG'", "NOUN")),
    "wrong-number-of-choices": (then_stage(**task("hellaswag", train=BAD / "hellaswag_three_choices.jsonl")),
                                ("hellaswag", "row 1", "fewer choices than the task's 4")),
    "validation-file-not-given": (then_stage(**task("mnli", train=DATA / "mnli" / "train.jsonl"),
                                             training={"eval_strategy": "steps", "eval_steps": 1}),
                                  ("mnli", "no entry for 'validation'", "data_files")),
    "max-length-too-small": (then_stage(**task("mnli", train=DATA / "mnli" / "train.jsonl"), max_length=4),
                             ("max_length",)),
    "invalid-training-arguments": (then_stage(**task("mnli", train=DATA / "mnli" / "train.jsonl"),
                                              training={"load_best_model_at_end": True, "eval_strategy": "steps",
                                                        "save_strategy": "epoch"}),
                                   ("stages[1] (bad)", "invalid TrainingArguments", "save")),
}


@pytest.mark.parametrize("config, keywords", DATA_CASES.values(), ids=DATA_CASES.keys())
def test_data_errors_leave_the_finished_stage_intact(runner, config, keywords):
    assert_clear_failure(*runner.run(config), keywords)
    runner.assert_stage_intact()


def test_target_language_that_fails_is_named_and_recorded(runner, tmp_path, caplog):
    """Evaluation keeps the other languages: a bad language file is a warning naming the file, recorded
    under `failed` in the result JSON, not an exit (the run's other results stay useful)."""
    folder = tmp_path / "xnli" / "en"
    folder.mkdir(parents=True)
    shutil.copy(BAD / "mnli_latin1.jsonl", folder / "validation.jsonl")
    config = then_target("xnli", languages={"xnli": ["en"]},
                         data_files={"mnli": {"train": str(DATA / "mnli" / "train.jsonl")},
                                     "xnli": {"validation": str(tmp_path / "xnli" / "{lang}" / "validation.jsonl")}})
    code, output = runner.run(config)
    assert code == 0 and "Traceback" not in output
    warning = next(r.getMessage() for r in caplog.records if "xnli validation en failed" in r.getMessage())
    assert "validation.jsonl is not UTF-8" in warning and "iconv" in warning
    result = json.loads((runner.root / "run" / "results" / "xnli.validation.json").read_text())
    assert "not UTF-8" in result["failed"]["en"] and result["languages"] == {}
    runner.assert_stage_intact()


# ------------------------------------------------------------------------------------------ checkpoints
def saved_model_copy(source: Path, folder: Path, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(*drop))
    return folder


def truncated(checkpoint: Path, tmp_path: Path) -> Path:
    folder = saved_model_copy(checkpoint, tmp_path / "truncated")
    weights = folder / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    return folder


def unknown_architecture(checkpoint: Path, tmp_path: Path) -> Path:
    folder = saved_model_copy(checkpoint, tmp_path / "unknown-architecture")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "not-a-model"}))
    return folder


def small_vocabulary(checkpoint: Path, tmp_path: Path) -> Path:
    """The tiny tokenizer (600 tokens) next to a model whose embeddings hold 100: a tokenizer of another model."""
    from transformers import XLMRobertaModel

    from hf_itt.demo.tiny import encoder_config

    folder = saved_model_copy(checkpoint, tmp_path / "small-vocabulary", drop=("*.safetensors", "config.json"))
    XLMRobertaModel(encoder_config(100), add_pooling_layer=False).save_pretrained(folder)
    return folder


BASE_MODEL_CASES = {
    "base-model-folder-missing": (lambda ck, tmp: tmp / "no-such-model", ("model.name_or_path", "is not a folder")),
    "base-model-folder-without-config": (lambda ck, tmp: saved_model_copy(ck, tmp / "m", drop=("config.json",)),
                                         ("model.name_or_path", "no config.json", "save_pretrained")),
    "tokenizer-files-missing": (lambda ck, tmp: saved_model_copy(ck, tmp / "m", drop=("tokenizer*",)),
                                ("tokenizer", "no vocabulary", "tokenizer.json", "model.tokenizer")),
    "truncated-safetensors": (truncated, ("model.safetensors", "truncated")),
    "unknown-architecture": (unknown_architecture, ("not-a-model", "config.json")),
    "tokenizer-larger-than-embeddings": (small_vocabulary, ("tokens but the model", "embeds only 100", "model.tokenizer")),
    "hub-model-offline-not-cached": (lambda ck, tmp: "someone/never-downloaded-model",
                                     ("someone/never-downloaded-model", "HF_HUB_OFFLINE", "hf download")),
}


@pytest.mark.parametrize("make, keywords", BASE_MODEL_CASES.values(), ids=BASE_MODEL_CASES.keys())
def test_broken_base_models(runner, tiny_checkpoint, tmp_path, monkeypatch, make, keywords):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    model = make(tiny_checkpoint, tmp_path)
    assert_clear_failure(*runner.run(experiment(), f"model.name_or_path={model}", f"output_dir={tmp_path}/fresh"),
                         keywords)


def test_from_a_missing_folder(runner):
    config = then_stage(**{"from": "./no-such-stage-folder"})
    assert_clear_failure(*runner.run(config), ("'./no-such-stage-folder'", "neither an existing folder", "fix the path"))
    runner.assert_stage_intact()


def test_from_a_hub_repo_offline_and_not_cached(runner, monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    config = then_stage(**{"from": "someone/never-downloaded@main"})
    assert_clear_failure(*runner.run(config), ("someone/never-downloaded@main", "not in the Hugging Face cache",
                                               "HF_HUB_OFFLINE=1", "hf download"))
    runner.assert_stage_intact()


def test_from_a_trainer_checkpoint_instead_of_an_export(runner):
    trainer_checkpoint = runner.root / "run" / "stages" / "nli" / "trainer" / "checkpoint-1"
    config = then_stage(**{"from": str(trainer_checkpoint)}, )
    config["stages"].append({"name": "after", **task("mnli", train=DATA / "mnli" / "train.jsonl")})
    assert_clear_failure(*runner.run(config), ("checkpoint-1", "multi-task checkpoint", "exported encoder"))
    runner.assert_stage_intact()


# ------------------------------------------------------------------------------------------ environment
def second_stage_ok() -> dict:
    return then_stage(**task("mnli", train=DATA / "mnli" / "train.jsonl"), training={"learning_rate": 2e-3})


def test_disk_full_while_exporting_a_stage(runner, monkeypatch):
    real_replace = os.replace

    def replace(source, dest, *args, **kwargs):
        if "/stages/bad/" in str(dest):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest))
        return real_replace(source, dest, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    assert_clear_failure(*runner.run(second_stage_ok()), ("no space left", "stages/bad", "free disk space",
                                                          "rerun the same command"))
    assert not (runner.root / "run" / "stages" / "bad" / "checkpoint").exists()
    runner.assert_stage_intact()


def test_disk_full_while_saving_a_trainer_checkpoint(runner, monkeypatch):
    import torch

    def save(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    monkeypatch.setattr(torch, "save", save)
    assert_clear_failure(*runner.run(second_stage_ok()), ("no space left", "free disk space"))
    assert not (runner.root / "run" / "stages" / "bad" / "checkpoint").exists()
    runner.assert_stage_intact()


def test_output_dir_below_a_file(runner, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, output = runner.call(["run", "--config", str(runner.config_file(experiment())),
                                f"model.name_or_path={runner.checkpoint}", f"output_dir={blocker}/run",
                                f"hub.local_root={tmp_path}/hub"])
    assert_clear_failure(code, output, ("output_dir", "a-file/run", "not writable", "choose another folder"))


def test_output_dir_without_permission(runner, tmp_path, monkeypatch):
    real_mkdir = Path.mkdir
    locked = tmp_path / "locked"

    def mkdir(self, *args, **kwargs):
        if self == locked or locked in self.parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, output = runner.call(["run", "--config", str(runner.config_file(experiment())),
                                f"model.name_or_path={runner.checkpoint}", f"output_dir={locked}/run",
                                f"hub.local_root={tmp_path}/hub"])
    assert_clear_failure(code, output, ("output_dir", "locked/run", "not writable", "Permission denied"))


def without_token(monkeypatch, tmp_path) -> None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-token"))


def test_hub_publisher_without_a_token(runner, monkeypatch, tmp_path):
    without_token(monkeypatch, tmp_path)
    assert_clear_failure(*runner.run(experiment(hub={"publisher": "hub", "namespace": "me"})),
                         ("no Hugging Face token", "hf auth login", "HF_TOKEN", "hf-itt publish"))


def unpublished_copy(runner) -> Path:
    """The run of ``runner`` with its stage marked 'finished, not published'."""
    from hf_itt.hub.manifest import read_manifest, write_manifest

    run = runner.root / "run"
    stage = run / "stages" / "nli" / "checkpoint"
    manifest = read_manifest(stage)
    manifest.status, manifest.publish.repo_id = "finished", "me/bad-inputs-nli"
    write_manifest(stage, manifest)
    return run


def test_publish_later_while_offline(runner, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    run = unpublished_copy(runner)
    code, output = runner.call(["publish", str(run), "--publisher", "hub"])
    assert_clear_failure(code, output, ("could not be published", "HF_HUB_OFFLINE=1", "unset it"))
    assert "hf_xxxx" not in output
    verify_checkpoint(run / "stages" / "nli" / "checkpoint")


def test_publish_later_without_a_token(runner, monkeypatch, tmp_path):
    without_token(monkeypatch, tmp_path)
    code, output = runner.call(["publish", str(unpublished_copy(runner)), "--publisher", "hub"])
    assert_clear_failure(code, output, ("no Hugging Face token", "hf auth login"))


def test_publish_a_missing_run_folder(runner, tmp_path):
    assert_clear_failure(*runner.call(["publish", str(tmp_path / "nope")]), ("run folder", "nope", "not found"))
