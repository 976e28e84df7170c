"""The offline demo's synthetic world (hf_itt.demo): files, schemas, languages, base model, planted effect."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from hf_itt.demo.build import build, main
from hf_itt.demo.lexicon import LANGUAGES, Lexicon, is_anchor
from hf_itt.demo.world import NLI_LABELS, build_world, load_world

SMALL = {
    "mlm_per_language": 200,
    "mlm_code_switched": 200,
    "mlm_parallel": 200,
    "mnli_train": 300,
    "mnli_validation": 30,
    "commonsenseqa_train": 50,
    "commonsenseqa_validation": 20,
    "xnli_train": 60,
    "xnli_validation": 120,
    "xnli_test": 40,
    "tatoeba": 50,
}
SYNTHETIC = [lang for lang in LANGUAGES if lang != "en"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    return build_world(tmp_path_factory.mktemp("world"), seed=0, sizes=SMALL)


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def read_lines(path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").splitlines()


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_other_data(world, tmp_path):
    again = build_world(tmp_path / "again", seed=0, sizes=SMALL)
    assert file_bytes(Path(again["root"])) == file_bytes(Path(world["root"]))
    other = build_world(tmp_path / "other", seed=1, sizes=SMALL)
    assert read_jsonl(other["tasks"]["xnli"]["test"]["qa"]) != read_jsonl(world["tasks"]["xnli"]["test"]["qa"])
    assert load_world(world["root"]) == world


def test_unknown_size_names_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="mnli_trian"):
        build_world(tmp_path, sizes={"mnli_trian": 10})


# ---------------------------------------------------------------------------------------- schemas


def test_rows_have_the_hub_schemas(world):
    tasks = world["tasks"]
    mnli = read_jsonl(tasks["mnli"]["train"])
    assert len(mnli) == SMALL["mnli_train"]
    assert {tuple(row) for row in mnli} == {("premise", "hypothesis", "label", "idx")}  # nyu-mll/glue mnli
    assert [row["idx"] for row in mnli] == list(range(len(mnli)))
    for split, langs in (("train", ["en"]), ("validation", list(LANGUAGES)), ("test", list(LANGUAGES))):
        assert sorted(tasks["xnli"][split]) == sorted(langs)
        for lang in langs:
            rows = read_jsonl(tasks["xnli"][split][lang])
            assert {tuple(row) for row in rows} == {("premise", "hypothesis", "label")}  # facebook/xnli
            assert {row["label"] for row in rows} == {0, 1, 2}
    csqa = read_jsonl(tasks["commonsenseqa"]["train"])
    assert {tuple(row) for row in csqa} == {("id", "question", "question_concept", "choices", "answerKey")}
    for row in csqa:
        assert row["choices"]["label"] == ["A", "B", "C", "D", "E"] and len(row["choices"]["text"]) == 5
        assert row["answerKey"] in row["choices"]["label"]
    for lang in SYNTHETIC:
        pair = tasks["tatoeba"]["validation"][lang]
        code = LANGUAGES[lang]
        assert Path(pair["source"]).name == f"tatoeba.{code}-eng.{code}"
        assert Path(pair["target"]).name == f"tatoeba.{code}-eng.eng"
        assert len(read_lines(pair["source"])) == len(read_lines(pair["target"])) == SMALL["tatoeba"]


def test_files_load_through_the_project_loaders(world):
    from hf_itt.tasks.loading import load_split
    from hf_itt.tasks.registry import get_task

    tasks = world["tasks"]
    mnli = load_split(get_task("mnli"), "train", data_files={"train": tasks["mnli"]["train"]})
    assert len(mnli) == SMALL["mnli_train"] and set(mnli.column_names) >= {"text_a", "text_b", "label"}
    csqa = load_split(get_task("commonsenseqa"), "train", data_files={"train": tasks["commonsenseqa"]["train"]})
    assert all(len(choices) == 5 for choices in csqa["choices"])
    xnli = get_task("xnli").with_overrides(languages=list(LANGUAGES))
    dev_files = {"validation": str(Path(world["root"]) / "xnli" / "{lang}" / "validation.jsonl")}
    assert len(load_split(xnli, "validation", lang="qc", data_files=dev_files)) == SMALL["xnli_validation"]
    tatoeba = get_task("tatoeba").with_overrides(
        languages=SYNTHETIC, lang_codes={lang: LANGUAGES[lang] for lang in SYNTHETIC}
    )
    pairs = load_split(tatoeba, "validation", lang="qb", data_files=str(Path(world["root"]) / "tatoeba"))
    assert len(pairs) == SMALL["tatoeba"]


# -------------------------------------------------------------------------------------- languages


def parallel_sentences(world) -> dict[str, list[str]]:
    rows = {lang: read_jsonl(path) for lang, path in world["tasks"]["xnli"]["validation"].items()}
    return {lang: [r[key] for r in lang_rows for key in ("premise", "hypothesis")] for lang, lang_rows in rows.items()}


def test_same_word_order_language_is_a_word_by_word_relabeling(world):
    sentences = parallel_sentences(world)
    forward: dict[str, set[str]] = {}
    backward: dict[str, set[str]] = {}
    for english, synthetic in zip(sentences["en"], sentences["qa"]):
        assert len(english.split()) == len(synthetic.split())
        for en_word, qa_word in zip(english.split(), synthetic.split()):
            forward.setdefault(en_word, set()).add(qa_word)
            backward.setdefault(qa_word, set()).add(en_word)
    assert all(len(words) == 1 for words in forward.values())  # one qa word per English word
    for words in backward.values():  # one concept per qa word (qa has no plural)
        lemmas = {re.sub(r"s$", "", word) for word in words}
        assert len(lemmas) == 1, words
    changed = [en for en, qa in forward.items() if qa != {en}]
    assert "has" in changed and "at" in changed and "Anna" not in changed


def test_every_language_says_the_same_with_its_own_words_and_order(world):
    lexicon = Lexicon(0)
    sentences = parallel_sentences(world)
    to_lang = {lang: {lexicon.word(c, "en"): lexicon.word(c, lang) for c in lexicon.words["en"]} for lang in LANGUAGES}
    vocab = {lang: {w for s in sentences[lang] for w in s.split()} for lang in LANGUAGES}
    anchors = {lexicon.word(c, "en") for c in lexicon.words["en"] if is_anchor(c)}
    for lang in SYNTHETIC:
        reordered = 0
        for english, synthetic in zip(sentences["en"], sentences[lang]):
            translated = [to_lang[lang][word] for word in english.split()]
            assert Counter(translated) == Counter(synthetic.split())  # same words, relabeled
            reordered += translated != synthetic.split()
        assert (reordered > 0) == (lang != "qa")  # qb, qc reorder; qa keeps English order
        for other in LANGUAGES:
            if other != lang:
                assert vocab[lang] & vocab[other] <= anchors  # only names, digits, punctuation shared


def test_nli_labels_follow_the_stated_rule(world):
    rows = read_jsonl(world["tasks"]["mnli"]["train"]) + read_jsonl(world["tasks"]["xnli"]["test"]["en"])
    for row in rows:
        person, claim = re.match(r"(\w+) \w+ at least (\d)", row["hypothesis"]).groups()
        count = re.search(rf"\b{person} \w+ (\w+)", row["premise"]).group(1)
        expected = "neutral" if count == "some" else "entailment" if int(claim) <= int(count) else "contradiction"
        assert NLI_LABELS[row["label"]] == expected, row


# ------------------------------------------------------------------------------------- base model


def test_build_writes_a_loadable_base_and_skips_when_done(tmp_path, capsys):
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / "demo"
    main(["--out", str(out), "--mlm-steps", "2"])
    assert "base model:" in capsys.readouterr().out
    base = out / "base"
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModel.from_pretrained(base)
    assert model.config.model_type == "xlm-roberta" and model.config.hidden_dropout_prob == 0.0
    assert tokenizer.tokenize("Anna sells 4 yellow lemons .")[:2] == ["▁Anna", "▁sells"]  # words stay whole
    weights = (base / "model.safetensors").stat().st_mtime_ns
    again = build(out, mlm_steps=2)
    assert again["base_model"] == str(base) and (base / "model.safetensors").stat().st_mtime_ns == weights


# --------------------------------------------------------------------------------- planted effect


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The README's main job, through the real pipeline (run_itt.py, MultiTaskTrainer, evaluation), on three
    of its experiments (~3 min): (run folder, finished process)."""
    import os
    import shutil
    import subprocess
    import sys

    tmp_path = tmp_path_factory.mktemp("demo")
    repo = Path(__file__).resolve().parents[1]
    scripts = tmp_path / "run_scripts"  # the shipped config, with its relative paths landing in tmp_path
    shutil.copytree(repo / "run_scripts" / "demo_tasks", scripts / "demo_tasks")
    shutil.copy(repo / "run_scripts" / "demo.yaml", scripts / "demo.yaml")
    command = [
        sys.executable,
        str(repo / "run_itt.py"),
        "--config",
        str(scripts / "demo.yaml"),
        "--no-report",
        "--experiments",
        "baseline,itt-related,itt-unrelated",
        "targets.tasks=[demo_xnli]",
    ]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path, done


@pytest.mark.slow
def test_the_demo_recovers_the_planted_effect(demo_run):
    """Related ITT raises zero-shot accuracy in the synthetic languages, unrelated ITT does not."""
    tmp_path, _ = demo_run

    def zero_shot(experiment):
        result = json.loads(
            (tmp_path / "runs" / "demo" / experiment / "results" / "demo_xnli.validation.json").read_text()
        )
        assert set(result["languages"]) == {"en", *SYNTHETIC}
        return result["summary"]["mean_non_en"]

    baseline, related, unrelated = map(zero_shot, ("baseline", "itt-related", "itt-unrelated"))
    assert related >= baseline + 10, (baseline, related)  # measured: 55.9 -> 78.9
    assert unrelated <= baseline + 5, (baseline, unrelated)  # measured: 49.0

    # the demo report's headline table: the related ITT wins on validation and is reported on test
    from hf_itt.report.build import build_report

    report = build_report([tmp_path / "runs" / "demo"], tmp_path / "report").read_text()
    assert "### Best intermediate task per target (selected on validation, reported on test)" in report
    assert "| demo_xnli | itt-related | mnli | " in report and "| test |" in report


def console_lines(done) -> list[str]:
    """What the user saw, progress bars (carriage-return redraws) left out."""
    text = (done.stdout + "\n" + done.stderr).replace("\r", "\n")
    return [line for line in text.splitlines() if line.strip() and not re.search(r"\d+/\d+ \[", line)]


@pytest.mark.slow
def test_the_demo_console_holds_no_warning_the_user_cannot_act_on(demo_run):
    _, done = demo_run
    lines = console_lines(done)
    noise = [line for line in lines if re.search(r"warn|LOAD REPORT|UNEXPECTED|find_unused|Traceback|…", line, re.I)]
    assert not noise, noise
    for stage in ("nli", "categories"):  # one line when a stage starts training, one when it ends
        assert sum(line.startswith(f"[itt] {stage}: training (hash") for line in lines) == 1
        assert sum(line.startswith(f"[itt] {stage}: trained (hash") for line in lines) == 1


@pytest.mark.slow
def test_the_demo_cards_pass_the_hub_metadata_checks(demo_run):
    from tests.test_model_card import assert_hub_valid_card

    tmp_path, _ = demo_run
    runs = tmp_path / "runs" / "demo"
    stage = assert_hub_valid_card((runs / "itt-related" / "stages" / "nli" / "checkpoint" / "README.md").read_text())
    assert stage.data.license == "apache-2.0" and stage.data.pipeline_tag == "feature-extraction"
    target = assert_hub_valid_card(
        (runs / "itt-related" / "targets" / "demo_xnli" / "checkpoint" / "README.md").read_text()
    )
    assert target.data.base_model == "demo/itt-related-nli" and target.data.license == "apache-2.0"
    assert target.data.language == ["en"] and "demo_xnli" in target.data.tags
    assert {r.dataset_type for r in target.data.eval_results} == {"demo_xnli"}  # local files: no Hub dataset named
    scored = {(r.dataset_config, r.dataset_split) for r in target.data.eval_results}
    assert {(lang, split) for lang in ("en", *SYNTHETIC) for split in ("validation", "test")} <= scored
    config = json.loads((runs / "itt-related" / "targets" / "demo_xnli" / "checkpoint" / "config.json").read_text())
    assert config["id2label"] == {"0": "entailment", "1": "neutral", "2": "contradiction"}
