"""BUCC through the evaluation driver: threshold provenance, dev threshold reuse, the oracle only on
request, gold-only data refused, repeated sentences, predictions saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_itt.errors import ConfigError, DataError
from hf_itt.evaluation.bucc import BuccSettings
from hf_itt.evaluation.results import TaskResult
from hf_itt.evaluation.scorers import ScoringContext
from hf_itt.evaluation.zero_shot import EvaluationRequest, ResultMeta, evaluate_task
from hf_itt.metrics.retrieval import bucc_f1, bucc_optimize
from hf_itt.metrics.retrieval_search import bucc_mine, embed_sentences
from hf_itt.predictions import extracted_pairs, load_predictions

CORPUS = [line for line in (Path(__file__).parent / "fixtures" / "corpus.txt").read_text().splitlines() if line]


def write_bucc(
    folder: Path, split: str, gold_lines: list[str], extra_src: list[str], extra_tgt: list[str], lang: str = "de"
) -> None:
    """BUCC shared-task files: ``id<TAB>sentence`` per side and the gold pairs. A gold pair's two
    sentences are the same text, so even a random encoder finds it; extra sentences are distractors."""
    src = [(f"{lang}-{split}-{i}", text) for i, text in enumerate(gold_lines + extra_src)]
    tgt = [(f"en-{split}-{i}", text) for i, text in enumerate(gold_lines + extra_tgt)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{lang}-en.{split}.{lang}").write_text("".join(f"{i}\t{t}\n" for i, t in src), encoding="utf-8")
    (folder / f"{lang}-en.{split}.en").write_text("".join(f"{i}\t{t}\n" for i, t in tgt), encoding="utf-8")
    gold = "".join(f"{src[i][0]}\t{tgt[i][0]}\n" for i in range(len(gold_lines)))
    (folder / f"{lang}-en.{split}.gold").write_text(gold, encoding="utf-8")


@pytest.fixture(scope="module")
def bucc_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bucc") / "de-en"
    write_bucc(folder, "sample", CORPUS[:10], CORPUS[20:26], CORPUS[26:34])
    # test: a repeated gold sentence on the source side and a repeated distractor on the target side
    write_bucc(folder, "training", CORPUS[10:20] + [CORPUS[10]], CORPUS[34:37], CORPUS[37:40] + [CORPUS[37]])
    return folder


@pytest.fixture(scope="module")
def encoder(tiny_checkpoint):
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_checkpoint)


def context(encoder, tokenizer):
    return ScoringContext(
        model=encoder, tokenizer=tokenizer, batch_size=8, retrieval_max_length=64, show_progress=False
    )


def request(bucc_dir, *splits):
    return EvaluationRequest("bucc2018", ["de"], list(splits), str(bucc_dir.parent / "{lang}-en"))


def test_validation_threshold_is_reused_on_test_and_both_record_their_source(
    encoder, tiny_tokenizer, bucc_dir, tmp_path
):
    ctx = context(encoder, tiny_tokenizer)
    dev, test = evaluate_task(ctx, request(bucc_dir, "test", "validation"), ResultMeta(checkpoint="m"), tmp_path)
    assert (dev.split, test.split) == ("validation", "test")
    assert (
        dev.protocol
        == test.protocol | {"threshold_source": {"de": "dev"}}
        == {
            "bucc_duplicates": "drop",
            "retrieval_layer": None,
            "retrieval_max_length": 64,
            "threshold_source": {"de": "dev"},
        }
    )
    assert test.languages["de"]["threshold"] == dev.languages["de"]["threshold"]
    assert 0 < dev.languages["de"]["f1"] <= 100
    saved = TaskResult.load(tmp_path / "bucc2018.test.json")
    assert saved.protocol["threshold_source"] == {"de": "dev"}


def test_test_alone_reuses_the_saved_dev_threshold_of_the_same_model(encoder, tiny_tokenizer, bucc_dir, tmp_path):
    ctx = context(encoder, tiny_tokenizer)
    [dev] = evaluate_task(ctx, request(bucc_dir, "validation"), ResultMeta(checkpoint="m"), tmp_path)
    [test] = evaluate_task(ctx, request(bucc_dir, "test"), ResultMeta(checkpoint="m"), tmp_path)
    assert test.languages["de"]["threshold"] == dev.languages["de"]["threshold"]
    assert test.protocol["threshold_source"] == {"de": "dev"}
    # a saved result of another checkpoint, or of other BUCC settings, is not reused
    with pytest.raises(DataError, match=r"no validation threshold .*\(--bucc-test-oracle\)"):
        evaluate_task(ctx, request(bucc_dir, "test"), ResultMeta(checkpoint="other"), tmp_path)
    ctx.retrieval_max_length = 32
    with pytest.raises(DataError, match="no validation threshold"):
        evaluate_task(ctx, request(bucc_dir, "test"), ResultMeta(checkpoint="m"), tmp_path)


def test_test_alone_without_dev_threshold_is_refused_unless_the_oracle_is_asked_for(
    encoder, tiny_tokenizer, bucc_dir, tmp_path
):
    ctx = context(encoder, tiny_tokenizer)
    with pytest.raises(DataError, match="bucc2018 test: no validation threshold"):
        evaluate_task(ctx, request(bucc_dir, "test"), ResultMeta(), tmp_path)
    assert not (tmp_path / "bucc2018.test.json").exists()
    [oracle] = evaluate_task(
        ctx, request(bucc_dir, "test"), ResultMeta(), tmp_path, bucc=BuccSettings(test_oracle=True)
    )
    assert oracle.protocol["threshold_source"] == {"de": "test-oracle"}
    # the oracle threshold is the best one on the test gold itself
    from hf_itt.tasks.loading import load_split

    test_rows = load_split("bucc2018", "test", lang="de", data_files=str(bucc_dir.parent / "{lang}-en"))
    candidates = _mine(encoder, tiny_tokenizer, test_rows)
    gold = {(s, t) for s, t in zip(test_rows["source_id"], test_rows["target_id"]) if s and t}
    assert oracle.languages["de"]["threshold"] == pytest.approx(bucc_optimize(candidates, gold))
    best = bucc_f1(candidates, gold, bucc_optimize(candidates, gold))
    assert oracle.languages["de"]["f1"] == pytest.approx(best["f1"])


def _mine(encoder, tokenizer, rows, duplicates="drop"):
    src = {i: s for i, s in zip(rows["source_id"], rows["source_sentence"]) if i}
    tgt = {i: s for i, s in zip(rows["target_id"], rows["target_sentence"]) if i}

    def embed(texts):
        return embed_sentences(encoder, tokenizer, texts, layer=1, batch_size=8, max_length=64, show_progress=False)

    return bucc_mine(
        list(src),
        embed(list(src.values())),
        list(tgt),
        embed(list(tgt.values())),
        src_texts=list(src.values()),
        tgt_texts=list(tgt.values()),
        duplicates=duplicates,
    )


def test_gold_only_rows_are_refused_unless_allowed(encoder, tiny_tokenizer, tmp_path):
    # The Hub schema (google/xtreme bucc18.<lang>): one gold pair per row, no distractors.
    hub_like = tmp_path / "de.jsonl"
    hub_like.write_text(
        "".join(json.dumps({"source_sentence": line, "target_sentence": line}) + "\n" for line in CORPUS[:8]),
        encoding="utf-8",
    )
    ctx = context(encoder, tiny_tokenizer)
    gold_only = EvaluationRequest("bucc2018", ["de"], ["validation"], str(tmp_path / "{lang}.jsonl"))
    [refused] = evaluate_task(ctx, gold_only, ResultMeta())
    reason = refused.failed["de"]
    assert refused.languages == {} and "every sentence is in a gold pair" in reason
    assert "BUCC 2018 shared-task files" in reason and "<lang>-en.sample.gold" in reason
    assert "--data-files bucc2018=/path/bucc2018/{lang}-en" in reason and "bucc_allow_gold_only" in reason
    [allowed] = evaluate_task(ctx, gold_only, ResultMeta(), bucc=BuccSettings(allow_gold_only=True))
    assert allowed.failed == {} and allowed.languages["de"]["f1"] > 0


def test_unknown_duplicates_rule_is_refused():
    with pytest.raises(ConfigError, match="'first' is not one of drop, keep"):
        BuccSettings(duplicates="first")


@pytest.mark.parametrize("duplicates", ["drop", "keep"])
def test_the_scorer_honours_duplicates_and_saves_the_mined_pairs(
    encoder, tiny_tokenizer, bucc_dir, tmp_path, duplicates
):
    ctx = context(encoder, tiny_tokenizer)
    dev, test = evaluate_task(
        ctx, request(bucc_dir, "validation", "test"), ResultMeta(), tmp_path, bucc=BuccSettings(duplicates=duplicates)
    )
    assert test.protocol["bucc_duplicates"] == duplicates
    header, predictions = load_predictions(tmp_path / test.predictions["de"])
    assert (header["task"], header["split"], header["language"], header["kind"]) == ("bucc2018", "test", "de", "pairs")
    assert predictions.meta == {"threshold": dev.languages["de"]["threshold"], "threshold_source": "dev"}
    from hf_itt.tasks.loading import load_split

    rows = load_split("bucc2018", "test", lang="de", data_files=str(bucc_dir.parent / "{lang}-en"))
    gold = {(s, t) for s, t in zip(rows["source_id"], rows["target_id"]) if s and t}
    mined = {(r["source_id"], r["target_id"]) for r in predictions.records}
    assert mined == set(_mine(encoder, tiny_tokenizer, rows, duplicates))
    repeated_gold = {"de-training-0", "de-training-10"}  # the same sentence twice on the source side
    assert bool(repeated_gold & {s for s, _ in mined}) == (duplicates == "keep")
    # the saved file re-scores to the recorded numbers
    pairs = set(extracted_pairs(predictions))
    correct = len(pairs & gold)
    assert test.languages["de"]["precision"] == pytest.approx(100 * correct / len(pairs))
    assert test.languages["de"]["recall"] == pytest.approx(100 * correct / len(gold))


def test_a_run_rescores_bucc_when_its_settings_changed():
    from hf_itt.config.experiment import EvaluationConfig
    from hf_itt.evaluation.bucc import stale_protocol

    record = TaskResult(
        experiment="e",
        seed=0,
        base_model="b",
        metric_version="2",
        itt={},
        checkpoint="c",
        task="bucc2018",
        split="validation",
        primary_metric="f1",
        languages={},
        protocol={
            "bucc_duplicates": "drop",
            "retrieval_layer": None,
            "retrieval_max_length": 512,
            "threshold_source": {},
        },
    )
    assert not stale_protocol(record, EvaluationConfig())
    assert stale_protocol(record, EvaluationConfig(bucc_duplicates="keep"))
    assert stale_protocol(record, EvaluationConfig(retrieval_layer=7))
    record.protocol = {}  # other tasks record no BUCC settings
    assert not stale_protocol(record, EvaluationConfig(bucc_duplicates="keep"))


def test_experiment_yaml_carries_the_bucc_options_and_rejects_unknown_rules(tmp_path):
    from hf_itt.config.loading import load_experiment

    path = tmp_path / "exp.yaml"
    path.write_text(
        "experiment: e\nmodel: {name_or_path: xlm-roberta-large}\ntargets: {tasks: [bucc2018]}\n"
        "evaluation: {bucc_duplicates: keep, bucc_test_oracle: true, save_predictions: false}\n"
    )
    evaluation = load_experiment(path).evaluation
    assert (
        evaluation.bucc_duplicates,
        evaluation.bucc_test_oracle,
        evaluation.bucc_allow_gold_only,
        evaluation.save_predictions,
    ) == ("keep", True, False, False)
    with pytest.raises(ConfigError, match="evaluation.bucc_duplicates 'first' is not one of drop, keep"):
        load_experiment(path, ["evaluation.bucc_duplicates=first"])


def test_cli_scores_test_alone_only_with_the_oracle_flag(tiny_checkpoint, bucc_dir, tmp_path, capsys):
    from hf_itt.cli import main

    args = [
        "evaluate",
        "--model",
        str(tiny_checkpoint),
        "--tasks",
        "bucc2018",
        "--languages",
        "de",
        "--splits",
        "test",
        "--data-files",
        f"bucc2018={bucc_dir.parent}/{{lang}}-en",
        "--out",
        str(tmp_path),
        "--batch-size",
        "8",
    ]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.startswith("hf_itt error: task bucc2018 test: no validation threshold") and error.count("\n") == 1
    assert main([*args, "--bucc-test-oracle"]) == 0
    saved = TaskResult.load(tmp_path / "bucc2018.test.json")
    assert saved.protocol["threshold_source"] == {"de": "test-oracle"} and saved.protocol["bucc_duplicates"] == "drop"
