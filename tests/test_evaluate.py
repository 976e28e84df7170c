"""Zero-shot evaluation: length-sorted prediction, per-language results, failures kept apart, CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_itt.errors import CheckpointError
from hf_itt.evaluation.predict import predict_features
from hf_itt.evaluation.results import TaskResult
from hf_itt.evaluation.scorers import ScoringContext
from hf_itt.evaluation.zero_shot import EvaluationRequest, ResultMeta, evaluate_task
from hf_itt.task_types.features import preprocess
from hf_itt.tasks.loading import load_split
from hf_itt.tasks.registry import get_task
from hf_itt.training.modeling import MultiTaskModel

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    torch.manual_seed(0)
    return MultiTaskModel.from_encoder(tiny_checkpoint, {name: get_task(name) for name in ("xnli", "xquad", "udpos")})


def test_length_sorted_prediction_keeps_feature_order(model, tiny_tokenizer):
    rows = load_split("xnli", "validation", data_files=str(FIXTURES / "xnli/en/validation.jsonl"))
    features = preprocess(rows, get_task("xnli"), tiny_tokenizer, split_role="eval")
    batched = predict_features(model, tiny_tokenizer, features, "xnli", batch_size=3)["logits"]
    model.eval()
    with torch.no_grad():
        for index, feature in enumerate(features):
            single = model(
                input_ids=torch.tensor([feature["input_ids"]]), task_ids=torch.tensor([model.task_id("xnli")])
            )
            np.testing.assert_allclose(batched[index], single.logits[0].numpy(), atol=1e-5)


def test_classification_scores_match_argmax_accuracy(model, tiny_tokenizer, tmp_path):
    ctx = ScoringContext(model=model, tokenizer=tiny_tokenizer, batch_size=4, show_progress=False)
    request = EvaluationRequest("xnli", ["en"], ["validation"], str(FIXTURES / "xnli/{lang}/validation.jsonl"))
    [result] = evaluate_task(ctx, request, ResultMeta(experiment="t"), out_dir=tmp_path)
    rows = load_split("xnli", "validation", data_files=str(FIXTURES / "xnli/en/validation.jsonl"))
    features = preprocess(rows, get_task("xnli"), tiny_tokenizer, split_role="eval")
    logits = predict_features(model, tiny_tokenizer, features, "xnli")["logits"]
    expected = 100 * np.mean(np.argmax(np.stack(logits), -1) == np.array(rows["label"]))
    assert result.languages["en"]["accuracy"] == pytest.approx(expected)
    saved = TaskResult.load(tmp_path / "xnli.validation.json")
    assert saved.languages == result.languages and saved.summary["en"] == pytest.approx(expected)


def test_failed_language_is_recorded_and_others_kept(model, tiny_tokenizer):
    ctx = ScoringContext(model=model, tokenizer=tiny_tokenizer, show_progress=False)
    request = EvaluationRequest("xnli", ["en", "de"], ["validation"], str(FIXTURES / "xnli/{lang}/validation.jsonl"))
    [result] = evaluate_task(ctx, request, ResultMeta())
    assert set(result.languages) == {"en"}
    assert "does not exist" in result.failed["de"]


def test_task_without_head_names_the_fix(tiny_checkpoint, tiny_tokenizer):
    bare = MultiTaskModel.from_encoder(tiny_checkpoint, {"xquad": get_task("xquad")})
    ctx = ScoringContext(model=bare, tokenizer=tiny_tokenizer, show_progress=False)
    rows = load_split("xnli", "validation", data_files=str(FIXTURES / "xnli/en/validation.jsonl"))
    from hf_itt.evaluation.scorers import score_split

    with pytest.raises(CheckpointError, match="no head for task 'xnli'.*targets.tasks"):
        score_split(get_task("xnli"), rows, ctx, "en", "xnli")


def test_qa_and_tagging_produce_official_metric_keys(model, tiny_tokenizer):
    ctx = ScoringContext(model=model, tokenizer=tiny_tokenizer, show_progress=False)
    [qa] = evaluate_task(
        ctx,
        EvaluationRequest("xquad", ["en"], ["validation"], str(FIXTURES / "xquad/en/validation.jsonl")),
        ResultMeta(),
    )
    assert {"exact_match", "f1", "avg"} <= set(qa.languages["en"]) and qa.primary_metric == "avg"
    [pos] = evaluate_task(
        ctx,
        EvaluationRequest("udpos", ["en"], ["validation"], {"validation": str(FIXTURES / "udpos/en/validation.jsonl")}),
        ResultMeta(),
    )
    assert {"f1", "accuracy"} <= set(pos.languages["en"])


def test_unknown_language_is_a_clear_error(model, tiny_tokenizer):
    from hf_itt.errors import ConfigError

    ctx = ScoringContext(model=model, tokenizer=tiny_tokenizer, show_progress=False)
    with pytest.raises(ConfigError, match="no language 'xx'"):
        evaluate_task(ctx, EvaluationRequest("xnli", ["xx"]), ResultMeta())


def test_cli_scores_real_tatoeba_from_an_encoder_checkpoint(tiny_checkpoint, shared_data, tmp_path):
    command = [
        sys.executable,
        "-m",
        "hf_itt.evaluate",
        "--model",
        str(tiny_checkpoint),
        "--tasks",
        "tatoeba",
        "--languages",
        "de,th",
        "--data-files",
        f"tatoeba={shared_data / 'tatoeba'}",
        "--max-examples",
        "200",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "tatoeba.validation.json").read_text())
    assert set(record["languages"]) == {"de", "th"}
    assert all(0 <= scores["accuracy"] <= 100 for scores in record["languages"].values())
    assert "tatoeba" in done.stdout


def test_answer_retrieval_ranks_candidates_by_embedding(model, tiny_tokenizer, monkeypatch):
    """With embeddings that put each query on its first gold candidate, mAP@20 is exactly 100·AP of that rank."""
    import hf_itt.evaluation.scorers as scorers
    from hf_itt.tasks.loading import load_answer_retrieval

    queries, candidates = load_answer_retrieval("mewsli_x", "validation", "en", str(FIXTURES / "mewsli_x"))
    ids = list(candidates["candidate_id"])
    lookup = {text: i for i, text in enumerate(candidates["text"])}
    gold_index = {q: ids.index(g[0]) for q, g in zip(queries["query"], queries["gold_ids"])}

    def fake_embed(sentences, max_length=None):
        vectors = np.zeros((len(sentences), len(ids)), dtype=np.float32)
        for row, sentence in enumerate(sentences):
            vectors[row, lookup[sentence] if sentence in lookup else gold_index[sentence]] = 1.0
        return vectors

    monkeypatch.setattr(scorers, "_embedder", lambda ctx, desc: fake_embed)
    ctx = ScoringContext(model=model, tokenizer=tiny_tokenizer, show_progress=False)
    [result] = evaluate_task(
        ctx, EvaluationRequest("mewsli_x", ["en"], ["validation"], str(FIXTURES / "mewsli_x")), ResultMeta()
    )
    assert result.languages["en"]["map@20"] == pytest.approx(100.0)


def test_multiple_choice_target_scores_xcopa(tiny_checkpoint, tiny_tokenizer):
    mc = MultiTaskModel.from_encoder(tiny_checkpoint, {"xcopa": get_task("xcopa")})
    ctx = ScoringContext(model=mc, tokenizer=tiny_tokenizer, show_progress=False)
    [result] = evaluate_task(
        ctx,
        EvaluationRequest("xcopa", ["et"], ["validation"], str(FIXTURES / "xcopa/{lang}/val.{lang}.jsonl")),
        ResultMeta(),
    )
    assert 0 <= result.languages["et"]["accuracy"] <= 100 and not result.failed
