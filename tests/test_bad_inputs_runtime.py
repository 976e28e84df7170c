"""The bad-input catalogue, part 2: bad data, broken models and checkpoints, the environment, locks.

As in part 1 (tests/test_bad_inputs.py): the real CLI in process, exactly ONE line
`hf_itt error: <the message below>`, exit 2, no traceback, and a finished stage left intact.
These fail when the stage that needs the input starts (data is read per stage), never later.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from hf_itt.hub.manifest import verify_checkpoint
from tests.bad_inputs_harness import (  # noqa: F401
    BAD,
    DATA,
    experiment,
    finished,
    runner,
    task,
    then_stage,
    then_target,
)

# -------------------------------------------------------------------------------- data, after stage `nli`
DATA_CASES = {
    "missing-column": (
        then_stage(**task("mnli", train=BAD / "mnli_missing_column.jsonl")),
        "task mnli: file <bad>/mnli_missing_column.jsonl lacks columns ['hypothesis']; expected ['hypothesis', "
        "'label', 'premise'], found ['label', 'premise']",
    ),
    "wrong-label-name": (
        then_stage(**task("mnli", train=BAD / "mnli_wrong_label_names.jsonl")),
        "task mnli: file <bad>/mnli_wrong_label_names.jsonl, row 2: label 'yes' is not one of ['entailment', "
        "'neutral', 'contradiction']; fix the data or the spec's `labels` / `source_labels`",
    ),
    "empty-split": (
        then_stage(**task("mnli", train=BAD / "mnli_empty.jsonl")),
        "task mnli: the train split for 'en' is empty (after dropping rows with labels [] and applying the "
        "spec's filter None); check the data",
    ),
    "not-utf8": (
        then_stage(**task("mnli", train=BAD / "mnli_latin1.jsonl")),
        "task mnli: <bad>/mnli_latin1.jsonl is not UTF-8 text (invalid continuation byte at byte 19, line 1); "
        "re-encode it, e.g. `iconv -f <encoding> -t utf-8`",
    ),
    "broken-jsonl-line": (
        then_stage(**task("mnli", train=BAD / "mnli_broken_json.jsonl")),
        "task mnli: <bad>/mnli_broken_json.jsonl line 2 is not valid JSON (Unterminated string starting at)",
    ),
    "ragged-csv": (
        then_stage(**task("mnli", train=BAD / "mnli_ragged.csv")),
        "task mnli: <bad>/mnli_ragged.csv line 3 has a different number of fields than the header ['premise', "
        "'hypothesis', 'label']",
    ),
    "unsupported-format": (
        then_stage(**task("mnli", train=BAD / "mnli.xlsx")),
        "task mnli: cannot read <bad>/mnli.xlsx: unsupported file format '.xlsx'; supported: .jsonl .json .csv "
        ".tsv .parquet .conllu .conll .iob .txt, Tatoeba and BUCC text files",
    ),
    "data-file-missing": (
        then_stage(**task("mnli", train=BAD / "no_such_file.jsonl")),  # refused at load
        "stages[1].tasks[0].data_files.train: '<bad>/no_such_file.jsonl' does not exist (looked at "
        "<bad>/no_such_file.jsonl); fix the path (relative paths are relative to the experiment YAML) or create "
        "the data first",
    ),
    "answer-outside-context": (
        then_stage(**task("squad_v1", train=BAD / "squad_offset_outside.jsonl")),
        "task squad_v1: file <bad>/squad_offset_outside.jsonl, row 1: answer 'France' at answer_start 500 runs "
        "past the context (60 characters)",
    ),
    "answer-not-at-offset": (
        then_stage(**task("squad_v1", train=BAD / "squad_offset_mismatch.jsonl")),
        "task squad_v1: file <bad>/squad_offset_mismatch.jsonl, row 1: answer 'France' does not match the "
        "context at answer_start 4 (context has 'Norman' there)",
    ),
    "conllu-nine-columns": (
        then_stage(**task("udpos_en", train=BAD / "udpos_nine_columns.conllu")),
        "task udpos_en: <bad>/udpos_nine_columns.conllu line 2 has 9 tab-separated fields; CoNLL-U needs 10 (ID "
        "FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC)",
    ),
    "conllu-unknown-tag": (
        then_stage(**task("udpos_en", train=BAD / "udpos_unknown_tag.conllu")),
        "task udpos_en: file <bad>/udpos_unknown_tag.conllu, row 1: label 'DOGTAG' is not one of ['ADJ', 'ADP', "
        "'ADV', 'AUX', 'CCONJ', 'DET', 'INTJ', 'NOUN', 'NUM', 'PART', 'PRON', 'PROPN', 'PUNCT', 'SCONJ', 'SYM', "
        "'VERB', 'X']; fix the data or the spec's `labels` / `source_labels`",
    ),
    "wrong-number-of-choices": (
        then_stage(**task("hellaswag", train=BAD / "hellaswag_three_choices.jsonl")),
        "task hellaswag: file <bad>/hellaswag_three_choices.jsonl, row 1: fewer choices than the task's 4 "
        "(cannot fill ['{ctx_b} {endings[0]}', '{ctx_b} {endings[1]}', '{ctx_b} {endings[2]}', '{ctx_b} "
        "{endings[3]}']); give every row 4 choices",
    ),
    "validation-file-not-given": (
        then_stage(
            **task("mnli", train=DATA / "mnli" / "train.jsonl"), training={"eval_strategy": "steps", "eval_steps": 1}
        ),
        "task mnli: data_files has no entry for 'validation' (it has ['train']); add `validation: path/to/file` "
        "to data_files",
    ),
}


@pytest.mark.parametrize("config, message", DATA_CASES.values(), ids=DATA_CASES.keys())
def test_data_errors_leave_the_finished_stage_intact(runner, config, message):
    runner.assert_fails(*runner.run(config), message)
    runner.assert_stage_intact()


def test_target_language_that_fails_is_named_and_recorded(runner, tmp_path, caplog):
    """Evaluation keeps the other languages: a bad language file is a warning naming the file, recorded
    under `failed` in the result JSON, not an exit (the run's other results stay useful)."""
    folder = tmp_path / "xnli" / "en"
    folder.mkdir(parents=True)
    shutil.copy(BAD / "mnli_latin1.jsonl", folder / "validation.jsonl")
    config = then_target(
        "xnli",
        languages={"xnli": ["en"]},
        data_files={
            "mnli": {"train": str(DATA / "mnli" / "train.jsonl")},
            "xnli": {"validation": str(tmp_path / "xnli" / "{lang}" / "validation.jsonl")},
        },
    )
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
    "base-model-folder-missing": (
        lambda ck, tmp: tmp / "no-such-model",
        "model.name_or_path '<tmp>/no-such-model' is not a folder (looked at <tmp>/no-such-model); fix the "
        "path, or give a Hub id such as 'xlm-roberta-large'",
    ),
    "base-model-folder-without-config": (
        lambda ck, tmp: saved_model_copy(ck, tmp / "m", drop=("config.json",)),
        "model.name_or_path '<tmp>/m' has no config.json, so it is not a saved model; point it at a "
        "save_pretrained() folder (or a stage's checkpoint/ folder)",
    ),
    "tokenizer-files-missing": (
        lambda ck, tmp: saved_model_copy(ck, tmp / "m", drop=("tokenizer*",)),
        "the tokenizer loaded from <tmp>/m has no vocabulary (only 5 special tokens): that folder lacks its "
        "tokenizer files (tokenizer.json / sentencepiece.bpe.model); copy them from the base model, or set "
        "model.tokenizer to the base model's tokenizer",
    ),
    "truncated-safetensors": (
        truncated,
        "encoder <tmp>/truncated: model.safetensors cannot be read (Error while deserializing header: "
        "incomplete metadata, file not fully covered); the file is truncated or corrupt (an interrupted "
        "download, copy or save): copy or download it again",
    ),
    "unknown-architecture": (
        unknown_architecture,
        "encoder <tmp>/unknown-architecture: config.json has model_type 'not-a-model', which this transformers "
        "does not know; fix config.json or upgrade transformers",
    ),
    "tokenizer-larger-than-embeddings": (
        small_vocabulary,
        "the tokenizer from <tmp>/small-vocabulary has 564 tokens but the model <tmp>/small-vocabulary embeds "
        "only 100: it belongs to another model. Use the model's own tokenizer (remove model.tokenizer, or point "
        "model.tokenizer at the tokenizer it was trained with)",
    ),
    "hub-model-offline-not-cached": (
        lambda ck, tmp: "someone/never-downloaded-model",
        "tokenizer 'someone/never-downloaded-model' is not a local folder and not in the Hugging Face cache, "
        "and HF_HUB_OFFLINE=1 is set: download it once online (`hf download someone/never-downloaded-model`), "
        "unset HF_HUB_OFFLINE, or give the path of a local folder",
    ),
}


@pytest.mark.parametrize("make, message", BASE_MODEL_CASES.values(), ids=BASE_MODEL_CASES.keys())
def test_broken_base_models(runner, tiny_checkpoint, tmp_path, monkeypatch, make, message):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    model = make(tiny_checkpoint, tmp_path)
    runner.assert_fails(
        *runner.run(experiment(), f"model.name_or_path={model}", f"output_dir={tmp_path}/fresh"), message
    )


def test_from_a_missing_folder(runner):
    config = then_stage(**{"from": "./no-such-stage-folder"})
    runner.assert_fails(
        *runner.run(config),
        "'./no-such-stage-folder' is neither an existing folder nor a Hub reference "
        "'namespace/name@revision'; fix the path or the reference",
    )
    runner.assert_stage_intact()


def test_from_a_hub_repo_offline_and_not_cached(runner, monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    config = then_stage(**{"from": "someone/never-downloaded@main"})
    runner.assert_fails(
        *runner.run(config),
        "someone/never-downloaded@main is not in the Hugging Face cache and HF_HUB_OFFLINE=1 is "
        "set: download it once online (`hf download someone/never-downloaded --revision main`) "
        "or unset HF_HUB_OFFLINE",
    )
    runner.assert_stage_intact()


def test_from_a_trainer_checkpoint_instead_of_an_export(runner):
    trainer_checkpoint = runner.root / "run" / "stages" / "nli" / "trainer" / "checkpoint-1"
    config = then_stage(
        **{"from": str(trainer_checkpoint)},
    )
    config["stages"].append({"name": "after", **task("mnli", train=DATA / "mnli" / "train.jsonl")})
    runner.assert_fails(
        *runner.run(config),
        "<root>/run/stages/nli/trainer/checkpoint-1 is a multi-task checkpoint; start from its "
        "exported encoder (<stage dir>/checkpoint) or load it with "
        "MultiTaskModel.from_pretrained",
    )
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
    runner.assert_fails(
        *runner.run(second_stage_ok()),
        "no space left on the device while writing "
        "<root>/run/stages/bad/trainer/checkpoint-1/sampler_state.json (No space left on "
        "device): free disk space or point output_dir (and HF_HOME for caches) at a larger "
        "disk, then rerun the same command: finished stages are kept and training resumes from "
        "its last checkpoint",
    )
    assert not (runner.root / "run" / "stages" / "bad" / "checkpoint").exists()
    runner.assert_stage_intact()


def test_disk_full_while_saving_a_trainer_checkpoint(runner, monkeypatch):
    import torch

    def save(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    monkeypatch.setattr(torch, "save", save)
    runner.assert_fails(
        *runner.run(second_stage_ok()),
        "no space left on the device while writing "
        "<root>/run/stages/bad/trainer/checkpoint-1/training_args.bin (No space left on "
        "device): free disk space or point output_dir (and HF_HOME for caches) at a larger "
        "disk, then rerun the same command: finished stages are kept and training resumes from "
        "its last checkpoint",
    )
    assert not (runner.root / "run" / "stages" / "bad" / "checkpoint").exists()
    runner.assert_stage_intact()


def test_output_dir_below_a_file(runner, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, output = runner.call(
        [
            "run",
            "--config",
            str(runner.config_file(experiment())),
            f"model.name_or_path={runner.checkpoint}",
            f"output_dir={blocker}/run",
            f"hub.local_root={tmp_path}/hub",
        ]
    )
    runner.assert_fails(
        code,
        output,
        "output_dir <tmp>/a-file/run is not writable (Not a directory); choose another folder "
        "(output_dir=...) or fix its permissions",
    )


def test_output_dir_without_permission(runner, tmp_path, monkeypatch):
    real_mkdir = Path.mkdir
    locked = tmp_path / "locked"

    def mkdir(self, *args, **kwargs):
        if self == locked or locked in self.parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, output = runner.call(
        [
            "run",
            "--config",
            str(runner.config_file(experiment())),
            f"model.name_or_path={runner.checkpoint}",
            f"output_dir={locked}/run",
            f"hub.local_root={tmp_path}/hub",
        ]
    )
    runner.assert_fails(
        code,
        output,
        "output_dir <tmp>/locked/run is not writable (Permission denied); choose another folder "
        "(output_dir=...) or fix its permissions",
    )


def without_token(monkeypatch, tmp_path) -> None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-token"))


def test_hub_publisher_without_a_token(runner, monkeypatch, tmp_path):
    without_token(monkeypatch, tmp_path)
    runner.assert_fails(
        *runner.run(experiment(hub={"publisher": "hub", "namespace": "me"})),
        "hub.publisher is 'hub' but no Hugging Face token was found: log in with `hf auth "
        "login` or set HF_TOKEN to a token with write access; or set hub.publisher: local (or "
        "none) and publish later with `hf-itt publish RUN_DIR --publisher hub`",
    )


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
    runner.assert_fails(
        code,
        output,
        "1 of 1 stage(s) could not be published (they stay on disk, marked finished; rerun this "
        "command once fixed): <root>/run/stages/nli/checkpoint: cannot create the repo "
        "me/bad-inputs-nli: HF_HUB_OFFLINE=1 is set; unset it to publish, or use the local "
        "publisher (hub.publisher: local)",
    )
    assert "hf_xxxx" not in output
    verify_checkpoint(run / "stages" / "nli" / "checkpoint")


def test_publish_later_without_a_token(runner, monkeypatch, tmp_path):
    without_token(monkeypatch, tmp_path)
    code, output = runner.call(["publish", str(unpublished_copy(runner)), "--publisher", "hub"])
    runner.assert_fails(
        code,
        output,
        "hub.publisher is 'hub' but no Hugging Face token was found: log in with `hf auth "
        "login` or set HF_TOKEN to a token with write access; or set hub.publisher: local (or "
        "none) and publish later with `hf-itt publish RUN_DIR --publisher hub`",
    )


def test_publish_a_missing_run_folder(runner, tmp_path):
    runner.assert_fails(
        *runner.call(["publish", str(tmp_path / "nope")]),
        "run folder <tmp>/nope not found; pass the output_dir of the experiment",
    )


# ------------------------------------------------------------------------------------------------ locks
def holder_of(lock: Path) -> dict:
    from hf_itt.pipeline.locks import read_holder

    holder = read_holder(lock)
    assert holder["pid"] == os.getpid()
    return holder


def test_a_run_folder_in_use(runner):
    from hf_itt.pipeline.locks import RUN_LOCK_NAME, run_lock

    with run_lock(runner.root / "run"):  # this test process plays the other run
        holder = holder_of(runner.root / "run" / RUN_LOCK_NAME)
        code, output = runner.run(then_stage(**task("mnli", train=DATA / "mnli" / "train.jsonl")))
    runner.assert_fails(
        code,
        output,
        f"run folder <root>/run is in use by another hf_itt run (pid <pid> on host <host>, started "
        f"{holder['started']}: {holder['command']}); wait for it to finish, or rerun with "
        f"--wait-for-lock to start when it does",
    )
    assert not list((runner.root / "run" / "stages").glob("bad"))  # nothing was touched


def test_a_stage_in_training_elsewhere_under_a_launcher(runner, monkeypatch):
    """Under a launcher rank 0 cannot wait for another run's stage (its other ranks would time out)."""
    from hf_itt.config.loading import load_experiment
    from hf_itt.pipeline.jobs import build_jobs
    from hf_itt.pipeline.locks import stage_lock

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    config = runner.config_file(experiment())
    loaded = load_experiment(config, [f"model.name_or_path={runner.checkpoint}", f"output_dir={runner.root}/run"])
    stage_hash = build_jobs(loaded, 2)[0].stage_hash
    with stage_lock(runner.root / "hub", stage_hash, wait=False, stage="nli"):
        holder = holder_of(runner.root / "hub" / ".locks" / f"{stage_hash}.lock")
        code, output = runner.run(config)
    runner.assert_fails(
        code,
        output,
        f"stage nli (hash {stage_hash}) is being trained by another run sharing <root>/hub (pid "
        f"<pid> on host <host>, started {holder['started']}: {holder['command']}); rerun when it "
        f"has finished and the stage will be reused",
    )


def test_wait_for_lock_under_a_launcher(runner, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    runner.assert_fails(
        *runner.run(experiment(), "--wait-for-lock"),
        "--wait-for-lock works in single-process runs only (under a launcher the other ranks "
        "would time out waiting for rank 0); start the launch once the other run has finished",
    )


def test_publish_while_the_run_is_going(runner):
    from hf_itt.pipeline.locks import RUN_LOCK_NAME, run_lock

    run = unpublished_copy(runner)
    with run_lock(run):
        holder = holder_of(run / RUN_LOCK_NAME)
        code, output = runner.call(
            ["publish", str(run), "--publisher", "local", "--local-root", str(runner.root / "hub")]
        )
    runner.assert_fails(
        code,
        output,
        f"run folder <root>/run is in use by another hf_itt run (pid <pid> on host <host>, started "
        f"{holder['started']}: {holder['command']}); a run still going publishes its own stages; "
        f"publish once it has finished",
    )
