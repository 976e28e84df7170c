"""XTREME-R's dual encoders (LAReQA, Mewsli-X): training pairs, the in-batch loss, and the whole target
job (fine-tune in English, then mAP@20 over the candidate pool) through the real CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from hf_itt.task_types import get_type
from hf_itt.task_types.answer_retrieval import pool_pairs, qa_pairs
from hf_itt.task_types.heads import DualEncoderHead
from hf_itt.tasks.registry import get_task

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = Path(__file__).parent / "fixtures" / "experiments" / "retrieval_targets.yaml"


def test_squad_rows_become_question_sentence_pairs():
    context = "The Normans came from Normandy. They spoke French. Rollo was their leader."
    rows = {
        "question": ["What did they speak?", "Unanswerable?"],
        "context": [context, context],
        "answers": [{"text": ["French"], "answer_start": [context.index("French")]}, {"text": [], "answer_start": []}],
    }
    assert qa_pairs(rows) == {
        "query": ["What did they speak?"],
        "candidate": ["They spoke French."],
        "context": [context],
    }


def test_pool_rows_pair_each_query_with_its_gold_candidate():
    queries = {"query": ["Paris mention", "no gold"], "gold_ids": [["Q90"], ["Q404"]]}
    candidates = {"candidate_id": ["Q90", "Q64"], "text": ["Paris", "Berlin"], "context": ["capital", "city"]}
    assert pool_pairs(queries, candidates) == {
        "query": ["Paris mention"],
        "candidate": ["Paris"],
        "context": ["capital"],
    }


def test_a_target_refuses_training_data_without_pairs():
    from hf_itt.errors import DataError

    with pytest.raises(DataError, match="neither answers nor a candidate pool"):
        get_type("answer_retrieval").adapt_training_rows(
            Dataset.from_dict({"text_a": ["x"]}), get_task("mnli"), get_task("lareqa")
        )


def test_in_batch_loss_prefers_the_diagonal():
    head = DualEncoderHead(hidden_size=8)
    states = torch.randn(4, 3, 8)
    queries = head.embed(states)
    matched = head.in_batch_loss(queries, queries)["loss"]  # every query's positive is itself
    shuffled = head.in_batch_loss(queries, queries.roll(1, dims=0))["loss"]
    assert torch.allclose(queries.norm(dim=-1), torch.ones(4)) and matched < shuffled
    assert head.logit_scale.item() == 100.0  # XTREME-R's initial scale


@pytest.mark.slow
def test_lareqa_and_mewsli_x_train_dual_encoders_and_score_map_at_20(tiny_checkpoint, tmp_path):
    command = [
        sys.executable,
        str(REPO / "run_itt.py"),
        "--config",
        str(EXPERIMENT),
        "--no-report",
        f"model.name_or_path={tiny_checkpoint}",
        f"output_dir={tmp_path}/run",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "run" / "results"
    lareqa = json.loads((results / "lareqa.validation.json").read_text())
    mewsli = json.loads((results / "mewsli_x.validation.json").read_text())
    assert len(lareqa["languages"]) == 11 and set(mewsli["languages"]) == {
        "ar",
        "de",
        "en",
        "es",
        "fa",
        "ja",
        "pl",
        "ro",
        "ta",
        "tr",
        "uk",
    } - set(mewsli.get("failed", {}))
    for result in (lareqa, mewsli):
        assert all(0 <= scores["map@20"] <= 100 for scores in result["languages"].values())
    for task, trained_on in (("lareqa", "squad_v1"), ("mewsli_x", "mewsli_x_wiki")):  # each fine-tuned its head
        manifest = json.loads((tmp_path / "run" / "targets" / task / "checkpoint" / "stage_manifest.json").read_text())
        [head] = manifest["identity"]["tasks"]
        assert (head["name"], head["type"], head["options"]["trained_on"]) == (task, "answer_retrieval", trained_on)
