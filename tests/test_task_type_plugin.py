"""A new task type is one module and one registration: a toy regression type, defined in a task folder
(tests/fixtures/plugin_tasks/regression.py), is trained and evaluated through the real run_itt.py."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from hf_itt.errors import TaskError
from hf_itt.task_types import get_type
from hf_itt.task_types.plugins import code_identity, load_plugin_file

REPO = Path(__file__).resolve().parents[1]
PLUGIN_TASKS = Path(__file__).parent / "fixtures" / "plugin_tasks"
WORDS = "the quick brown fox jumps over lazy dog near river bank".split()
XX = {word: word[::-1] + "x" for word in WORDS + ["red"]}  # a relabelled "language": every word reversed

EXPERIMENT = """
experiment: toy-regression
model: {{name_or_path: {checkpoint}}}
task_dirs: [{tasks}]
output_dir: {root}/run
defaults:
  training: {{per_device_train_batch_size: 16, learning_rate: 3.0e-3, num_train_epochs: 6, use_cpu: true,
              logging_steps: 50, save_steps: 1000, warmup_steps: 0}}
targets:
  tasks: [toy_sts]
  data_files: {{toy_sts: {data}}}
evaluation: {{splits: [validation]}}
hub: {{publisher: local, local_root: {root}/hub}}
"""


def sentence(rng: random.Random) -> tuple[str, float]:
    words = [rng.choice(WORDS) for _ in range(rng.randint(4, 8))]
    reds = rng.randint(0, 3)
    for _ in range(reds):
        words.insert(rng.randint(0, len(words)), "red")
    return " ".join(words), float(reds)


def write_data(folder: Path) -> None:
    rng = random.Random(0)
    for role, count in (("train", 240), ("validation", 60)):
        rows = [sentence(rng) for _ in range(count)]
        for lang, render in (("en", lambda text: text), ("xx", lambda text: " ".join(XX[w] for w in text.split()))):
            lines = [json.dumps({"text": render(text), "score": score}) for text, score in rows]
            (folder / f"{role}.{lang}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_a_plugin_type_trains_and_evaluates_through_run_itt(tiny_checkpoint, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_data(data)
    config = tmp_path / "toy.yaml"
    config.write_text(EXPERIMENT.format(checkpoint=tiny_checkpoint, tasks=PLUGIN_TASKS, root=tmp_path, data=data))
    done = subprocess.run(
        [sys.executable, str(REPO / "run_itt.py"), "--config", str(config), "--no-report"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "run" / "results" / "toy_sts.validation.json").read_text())
    scores = {lang: values["pearson"] for lang, values in result["languages"].items()}
    assert set(scores) == {"en", "xx"}
    assert scores["en"] > 50  # the head learned to count 'red' in English
    manifest = json.loads((tmp_path / "run" / "targets" / "toy_sts" / "checkpoint" / "stage_manifest.json").read_text())
    assert "type_code" in json.dumps(manifest["identity"])  # the plug-in's code is part of the stage hash


def test_a_plugin_file_registers_its_type_once_and_is_identified_by_content():
    load_plugin_file(PLUGIN_TASKS / "regression.py")
    load_plugin_file(PLUGIN_TASKS / "regression.py")  # idempotent: no "already registered" error
    regression = get_type("regression")
    assert regression.trainable and regression.columns == ("text", "score")
    assert len(code_identity(regression)) == 64 and code_identity(get_type("classification")) is None


def test_a_broken_plugin_names_its_file(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(TaskError, match=r"broken\.py failed to import \(RuntimeError: boom\)"):
        load_plugin_file(broken)
