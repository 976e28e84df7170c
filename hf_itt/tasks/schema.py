"""Task types and the canonical row schema each type is loaded into.

Loading (``hf_itt.tasks.loading``) turns any source (a Hub dataset, local jsonl/json/csv/tsv/conllu)
into rows of exactly these columns; preprocessing (``hf_itt.task_types.features``) only ever sees these.

classification   {"text_a": str, "text_b": str | None, "label": int}
                 label indexes ``spec.labels`` (mapped by *name* from the source's labels)
multiple_choice  {"prompt": str, "choices": list[str], "label": int}
extractive_qa    {"id": str, "context": str, "question": str,
                  "answers": {"text": list[str], "answer_start": list[int]}}   (empty lists = no answer)
tagging          {"tokens": list[str], "tags": list[int]}                      tags index ``spec.labels``
mlm              {"text": str}
retrieval        {"source_id": str, "source_sentence": str, "target_id": str, "target_sentence": str}
                 one row per sentence pair; a row with an empty id on one side carries an unpaired
                 (distractor) sentence of the other side, so BUCC's mining setting fits as well as Tatoeba
answer_retrieval {"query_id": str, "query": str, "gold_ids": list[str]} queries, plus a second
                 dataset of candidates {"candidate_id": str, "text": str, "context": str}
                 (LAReQA, Mewsli-X)

Tokenized features (``hf_itt.task_types.features`` output; what collators, models and the trainer consume):

classification   input_ids, attention_mask, labels
multiple_choice  input_ids [n_choices][len], attention_mask [n_choices][len], labels
extractive_qa    train: input_ids, attention_mask, start_positions, end_positions
                 eval:  input_ids, attention_mask, example_id, offset_mapping (None outside the context)
tagging          input_ids, attention_mask, labels [len] (-100 except on each word's first sub-word)
mlm              input_ids, attention_mask, special_tokens_mask (the collator draws the masks)
retrieval        input_ids, attention_mask (one feature per sentence)
"""

CLASSIFICATION = "classification"
MULTIPLE_CHOICE = "multiple_choice"
EXTRACTIVE_QA = "extractive_qa"
TAGGING = "tagging"
MLM = "mlm"
RETRIEVAL = "retrieval"
ANSWER_RETRIEVAL = "answer_retrieval"

TASK_TYPES = (CLASSIFICATION, MULTIPLE_CHOICE, EXTRACTIVE_QA, TAGGING, MLM, RETRIEVAL, ANSWER_RETRIEVAL)
TRAINABLE_TYPES = (CLASSIFICATION, MULTIPLE_CHOICE, EXTRACTIVE_QA, TAGGING, MLM)

CANONICAL_COLUMNS = {
    CLASSIFICATION: ("text_a", "text_b", "label"),
    MULTIPLE_CHOICE: ("prompt", "choices", "label"),
    EXTRACTIVE_QA: ("id", "context", "question", "answers"),
    TAGGING: ("tokens", "tags"),
    MLM: ("text",),
    RETRIEVAL: ("source_id", "source_sentence", "target_id", "target_sentence"),
    ANSWER_RETRIEVAL: ("query_id", "query", "gold_ids"),
}

# Data roles a task spec maps to source split names (``load_split(spec, role)``).
ROLES = ("train", "validation", "test")

# Metric names a task spec may declare; ``hf_itt.metrics.scoring`` implements each of them.
METRICS = (
    "accuracy",  # classification / multiple choice; tagging: accuracy over labelled (first sub-word) positions
    "acc_and_f1",  # (accuracy + binary F1) / 2, jiant's QQP scheme
    "squad",  # SQuAD v1.1 EM / F1
    "squad_v2",  # SQuAD 2.0 EM / F1 with the best no-answer threshold
    "mlqa",  # MLQA's language-aware EM / F1
    "seqeval_f1",  # entity-level F1 (NER)
    "pos_f1",  # XTREME's POS F1 (seqeval over bare UPOS tags)
    "bucc_f1",  # BUCC bitext-mining F1 at the best dev threshold
    "tatoeba_accuracy",  # top-1 retrieval accuracy
    "map_at_20",  # mean average precision at 20 (LAReQA, Mewsli-X)
    "mlm_loss",  # masked-LM loss (and perplexity)
)

BENCHMARKS = ("xtreme", "xtreme_r")
