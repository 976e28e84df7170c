"""An independent reader and re-scorer of XTREME / XTREME-R submission folders (test helper).

Written from the official format description (google-research/xtreme README "Leaderboard
Submission", ``evaluate.py``'s readers and metrics as summarised in docs/tasks.md), not from
hf_itt: it imports nothing from the package, so a test that compares its numbers with hf_itt's
result files checks the export and the metrics against a second implementation.

    detailed, overall = score_folder(prediction_folder, label_folder, "xtreme")

``detailed[task][metric][lang]`` in percent, ``detailed[task]["avg_metric"]`` the task score;
``overall`` has ``all_task`` only when every task of the version is present (never for XTREME-R).
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections import Counter
from pathlib import Path

XTREME_LANGS = {
    "pawsx": "de en es fr ja ko zh",
    "xnli": "ar bg de el en es fr hi ru sw th tr ur vi zh",
    "panx": "ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw yo my "
    "zh kk tr et fi hu",
    "udpos": "af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te th tl tr ur vi yo zh",
    "bucc2018": "de fr ru zh",
    "tatoeba": "ar he vi id jv tl eu ml ta te af nl de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw zh kk tr "
    "et fi hu",
    "xquad": "en es de el ru tr ar vi th zh hi",
    "mlqa": "en es de ar hi vi zh",
    "tydiqa": "en ar bn fi id ko ru sw te",
}
VERSIONS = {
    "xtreme": {task: langs.split() for task, langs in XTREME_LANGS.items()},
    "xtreme-r": {
        "xnli": XTREME_LANGS["xnli"].split(),
        "xcopa": "et ht id it qu sw ta th tr vi zh".split(),
        "udpos": (XTREME_LANGS["udpos"] + " lt pl uk wo ro").split(),
        "panx": (XTREME_LANGS["panx"] + " qu pl uk az lt pa gu ro").split(),
        "xquad": (XTREME_LANGS["xquad"] + " ro").split(),
        "mlqa": XTREME_LANGS["mlqa"].split(),
        "tydiqa": XTREME_LANGS["tydiqa"].split(),
        "tatoeba": (XTREME_LANGS["tatoeba"] + " az lt pl uk ro").split(),
        "mewslix": "ar de en es fa ja pl ro ta tr uk".split(),
        "lareqa": [],
    },
}
QA = ("xquad", "mlqa", "tydiqa")


def extension(task: str) -> str:
    return "json" if task in QA or task == "mewslix" else "jsonl" if task == "xcopa" else "tsv"


# ---------------------------------------------------------------------------- reading


def lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]


def tag_sentences(path: Path) -> list[list[str]]:
    """One tag per line; a blank line ends a sentence; a last unterminated sentence counts."""
    sentences, current = [], []
    for line in lines(path):
        if line:
            current.append(line)
        else:
            sentences.append(current)
            current = []
    return sentences + ([current] if current else [])


def squad_json(path: Path):
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["data"] if isinstance(data, dict) and "data" in data else data


# ---------------------------------------------------------------------------- metrics


def accuracy(pred: list, gold: list) -> dict[str, float]:
    return {"accuracy": 100.0 * sum(p == g for p, g in zip(pred, gold)) / len(pred)}


def prf(correct: int, n_pred: int, n_gold: int) -> dict[str, float]:
    p = correct / n_pred if n_pred else 0
    r = correct / n_gold if n_gold else 0
    f = 2 * p * r / (p + r) if p + r else 0
    return {"f1": 100 * f, "precision": 100 * p, "recall": 100 * r}


def chunks(sentences: list[list[str]]) -> set[tuple[str, int, int]]:
    """seqeval 0.0.12: sentences joined with "O"; prefix = first char, type = text after the last "-"."""
    stream = [tag for sentence in sentences for tag in sentence + ["O"]] + ["O"]
    found, begin, prev_p, prev_t = set(), 0, "O", ""
    for i, tag in enumerate(stream):
        p, t = tag[0], tag.split("-")[-1]
        ends = prev_p in "ES" or (prev_p in "BI" and p in "BSO") or (prev_p not in "O." and prev_t != t)
        starts = p in "BS" or (prev_p in "ESO" and p in "EI") or (p not in "O." and prev_t != t)
        if ends:
            found.add((prev_t, begin, i - 1))
        if starts:
            begin = i
        prev_p, prev_t = p, t
    return found


def tag_f1(pred: list[list[str]], gold: list[list[str]]) -> dict[str, float]:
    p, g = chunks(pred), chunks(gold)
    return prf(len(p & g), len(p), len(g))


def bucc_f1(pred_lines: list[str], gold_lines: list[str]) -> dict[str, float]:
    pred = {tuple(line.split("\t")) for line in pred_lines if line}
    gold = {tuple(line.split("\t")) for line in gold_lines if line}
    correct = len(pred & gold)
    return prf(correct, len(pred), len(gold)) if correct else {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def overlap_f1(pred: list[str], gold: list[str]) -> float:
    common = sum((Counter(pred) & Counter(gold)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_normal(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "ar": "ال",
    "hi": None,
    "zh": None,
}


def mlqa_normal(text: str, lang: str) -> str:
    text = "".join(
        ch for ch in text.lower() if not (unicodedata.category(ch).startswith("P") or ch in string.punctuation)
    )
    if MLQA_ARTICLES[lang]:
        text = re.sub(MLQA_ARTICLES[lang], " ", text)
    if lang != "zh":
        return " ".join(text.split())
    tokens, run = [], ""
    for ch in text:
        if "\u4e00" <= ch <= "\u9fa5":
            tokens += run.split() + [ch]
            run = ""
        else:
            run += ch
    return " ".join(tokens + run.split())


def qa_scores(articles, predictions: dict, normal) -> dict[str, float]:
    total = exact = f1 = 0.0
    for article in articles:
        for paragraph in article["paragraphs"]:
            for question in paragraph["qas"]:
                total += 1
                if question["id"] not in predictions:
                    continue  # unanswered: scores 0
                pred = normal(predictions[question["id"]])
                golds = [normal(answer["text"]) for answer in question["answers"]]
                exact += max(float(pred == gold) for gold in golds)
                f1 += max(overlap_f1(pred.split(), gold.split()) for gold in golds)
    return {"exact_match": 100 * exact / total, "f1": 100 * f1 / total}


def mrr_at_20(gold: dict, predictions: dict) -> dict[str, float]:
    ranks = []
    for example_id, entities in gold.items():
        top = predictions.get(example_id, [])[:20]
        ranks.append(next((1 / rank for rank, e in enumerate(top, 1) if e == entities[0].strip()), 0.0))
    return {"map@20": 100.0 * sum(ranks) / len(ranks)}


# ---------------------------------------------------------------------------- scoring


def score_language(task: str, pred: Path, gold: Path, lang: str) -> dict[str, float]:
    if task in ("udpos", "panx"):
        p, g = tag_sentences(pred), tag_sentences(gold)
        assert len(p) == len(g), f"{task}/{lang}: {len(p)} predicted sentences for {len(g)}"
        return tag_f1(p, g)
    if task in ("xnli", "pawsx", "tatoeba"):
        p, g = lines(pred), lines(gold)
        assert len(p) == len(g), f"{task}/{lang}: {len(p)} predictions for {len(g)} labels"
        return accuracy(p, g)
    if task == "xcopa":
        p, g = ([json.loads(line)["label"] for line in lines(path) if line] for path in (pred, gold))
        assert len(p) == len(g)
        return accuracy(p, g)
    if task == "bucc2018":
        return bucc_f1(lines(pred), lines(gold))
    if task == "mlqa":
        return qa_scores(squad_json(gold), squad_json(pred), lambda text: mlqa_normal(text, lang))
    if task in QA:
        return qa_scores(squad_json(gold), squad_json(pred), squad_normal)
    if task == "mewslix":
        return mrr_at_20(squad_json(gold), squad_json(pred))
    raise ValueError(f"{task} has no submission format")


def score_folder(pred_folder, label_folder, version: str = "xtreme") -> tuple[dict, dict]:
    pred_folder, label_folder = Path(pred_folder), Path(label_folder)
    present = {p.name for p in pred_folder.iterdir() if p.is_dir()}
    present &= {p.name for p in label_folder.iterdir() if p.is_dir()}
    detailed = {}
    for task, langs in VERSIONS[version].items():
        if task not in present or not langs:
            continue
        per_metric: dict[str, dict[str, float]] = {}
        for lang in langs:
            name = f"test-{lang}.{extension(task)}"
            pred, gold = pred_folder / task / name, label_folder / task / name
            if not pred.is_file():
                raise FileNotFoundError(f"{pred} is not available.")
            for metric, value in score_language(task, pred, gold, lang).items():
                per_metric.setdefault(metric, {})[lang] = value
        scores = dict(per_metric)
        for metric, values in per_metric.items():
            scores[f"avg_{metric}"] = sum(values.values()) / len(values)
        scores["avg_metric"] = (
            (scores["avg_exact_match"] + scores["avg_f1"]) / 2
            if task in QA
            else next(scores[k] for k in ("avg_f1", "avg_accuracy", "avg_map@20") if k in scores)
        )
        detailed[task] = scores
    overall = {}
    if set(VERSIONS[version]) == set(detailed):
        overall["all_task"] = sum(s["avg_metric"] for s in detailed.values()) / len(detailed)
    return detailed, overall
