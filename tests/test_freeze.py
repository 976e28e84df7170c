"""`model.freeze`: frozen encoder parameters stay bit-identical through a stage, the rest trains, the
stage hash changes with it (and only when it is set), and a prefix matching nothing is a ConfigError."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_itt.config.loading import load_experiment
from hf_itt.errors import ConfigError
from hf_itt.pipeline.jobs import build_jobs
from hf_itt.pipeline.runner import StageRunner

CHAIN = Path(__file__).parent / "fixtures" / "experiments" / "tiny_chain.yaml"
ONE_STAGE = [
    "stages=[{name: pos, tasks: [{name: udpos_en, data_files: {train: ../data/udpos/en/train.jsonl}}]}]",
    "targets.tasks=[tatoeba]",
    "targets.languages={tatoeba: [de]}",
]


def config(tiny_checkpoint, root, *overrides):
    return load_experiment(
        CHAIN,
        [
            f"model.name_or_path={tiny_checkpoint}",
            f"output_dir={root}/run",
            "hub.publisher=none",
            *ONE_STAGE,
            *overrides,
        ],
    )


def test_frozen_parameters_do_not_move_and_the_rest_trains(tiny_checkpoint, tmp_path):
    frozen = ["embeddings.", "encoder.layer.0."]
    stage = StageRunner(config(tiny_checkpoint, tmp_path, f"model.freeze=[{','.join(frozen)}]")).run()[0]
    before = load_file(str(Path(tiny_checkpoint) / "model.safetensors"))
    after = load_file(str(stage.checkpoint / "model.safetensors"))
    prefix = "roberta." if any(k.startswith("roberta.") for k in before) else ""
    moved = {
        name: not torch.equal(before[prefix + name], tensor)
        for name, tensor in after.items()
        if prefix + name in before
    }
    assert moved and all(not moved[name] for name in moved if name.startswith(tuple(frozen)))
    assert any(moved[name] for name in moved if name.startswith("encoder.layer.1."))


def test_freeze_is_in_the_stage_hash_only_when_set(tiny_checkpoint, tmp_path):
    plain = build_jobs(config(tiny_checkpoint, tmp_path))[0]
    frozen = build_jobs(config(tiny_checkpoint, tmp_path, "model.freeze=[embeddings.]"))[0]
    reordered = build_jobs(config(tiny_checkpoint, tmp_path, "model.freeze=[encoder.layer.0.,embeddings.]"))[0]
    same = build_jobs(config(tiny_checkpoint, tmp_path, "model.freeze=[embeddings.,encoder.layer.0.]"))[0]
    assert "frozen" not in plain.identity and frozen.identity["frozen"] == ["embeddings."]
    assert len({plain.stage_hash, frozen.stage_hash, same.stage_hash}) == 3 and reordered.stage_hash == same.stage_hash


def test_a_prefix_that_matches_nothing_names_the_real_ones(tiny_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="model.freeze 'embedding.word' matches no parameter.*embeddings."):
        StageRunner(config(tiny_checkpoint, tmp_path, "model.freeze=[embedding.word]")).run()


def test_a_blank_prefix_is_refused_at_load(tiny_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match=r"model.freeze\[0\]"):
        config(tiny_checkpoint, tmp_path, "model.freeze=[' ']")
