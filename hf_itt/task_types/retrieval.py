"""Bitext retrieval from the encoder, no fine-tuning: Tatoeba (top-1 accuracy), BUCC 2018 (mining F1).

rows       {"source_id": str, "source_sentence": str, "target_id": str, "target_sentence": str}
           one row per sentence pair; a row with an empty id on one side carries an unpaired
           (distractor) sentence of the other side, so BUCC's mining setting fits as well as Tatoeba
features   input_ids, attention_mask, side, example_id (one feature per sentence)
score      mean-pooled hidden states of a middle layer (``metrics.retrieval_search``), cosine similarity:
           Tatoeba = nearest target of each source; BUCC = ratio-margin mining, F1 at the best
           validation threshold (reused on test)
"""

from __future__ import annotations

from hf_itt.errors import DataError
from hf_itt.metrics.retrieval_search import score_bucc_rows, tatoeba_predictions
from hf_itt.metrics.scoring import tatoeba_scores
from hf_itt.predictions import ScoredSplit, index_predictions
from hf_itt.task_types.base import ScoringTools, TaskType

TATOEBA_DIRECTION = "tgt->src"  # XTREME's run_retrieval.py and jiant: each English sentence queries the others


class BitextRetrieval(TaskType):
    name = "retrieval"
    hub_task = "sentence-similarity"
    columns = ("source_id", "source_sentence", "target_id", "target_sentence")
    required_columns = ("source_sentence", "target_sentence")
    default_metric = "tatoeba_accuracy"
    default_max_length = 512
    trainable = False

    def convert_row(self, reader, row, number):
        return {
            "source_id": reader.row_id(row, "source_id", number),
            "source_sentence": reader.text(row, "source_sentence", number),
            "target_id": reader.row_id(row, "target_id", number),
            "target_sentence": reader.text(row, "target_sentence", number),
        }

    def feature_columns(self, train: bool) -> dict:
        from datasets import Value

        return {**super().feature_columns(train), "side": Value("string"), "example_id": Value("string")}

    def tokenize(self, batch, *, tokenizer, max_length, **_):
        """One feature per sentence, tagged with its side and id; an empty id marks an absent sentence."""
        sides, ids, sentences = [], [], []
        rows = zip(batch["source_id"], batch["source_sentence"], batch["target_id"], batch["target_sentence"])
        for source_id, source, target_id, target in rows:
            for side, sentence_id, sentence in (("source", source_id, source), ("target", target_id, target)):
                if sentence_id:
                    sides.append(side)
                    ids.append(sentence_id)
                    sentences.append(sentence)
        encoded = tokenizer(sentences, truncation=True, max_length=max_length)
        return {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "side": sides,
            "example_id": ids,
        }

    def score(self, spec, data, ctx: ScoringTools, lang: str) -> dict[str, float]:
        if spec.metric == "bucc_f1":
            return score_bucc(data, ctx)
        if spec.metric != "tatoeba_accuracy":
            raise DataError(
                f"task {spec.name}: retrieval tasks are scored with tatoeba_accuracy or bucc_f1, not {spec.metric!r}"
            )
        source, target = ctx.embed(list(data["source_sentence"])), ctx.embed(list(data["target_sentence"]))
        if len(source) != len(target):
            raise DataError(
                f"task {spec.name}: Tatoeba needs aligned sides, got {len(source)} source and "
                f"{len(target)} target sentences"
            )
        predicted = tatoeba_predictions(source, target, direction=TATOEBA_DIRECTION)
        return ScoredSplit(tatoeba_scores(predicted), index_predictions(predicted, TATOEBA_DIRECTION))


def score_bucc(rows, ctx: ScoringTools) -> ScoredSplit:
    """Mine candidate pairs by ratio margin (repeated sentences handled as ``bucc_duplicates`` says, XTREME's
    "drop" by default), then F1 at the best (validation) or given (test) threshold."""
    return score_bucc_rows(
        rows, ctx.embed, threshold=ctx.bucc_threshold, duplicates=ctx.options.get("bucc_duplicates", "drop")
    )
