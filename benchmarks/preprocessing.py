"""QA feature building: hf_itt.task_types.features vs the HF ``run_qa.py`` example's functions, and cached re-runs.

    python benchmarks/preprocessing.py            # all 11 XTREME XQuAD languages (13,090 questions)
    python benchmarks/preprocessing.py --tiny     # CI smoke run

Both build XQuAD features (question + context windows, max length 384, doc stride 128, offsets) with
the same tokenizer through ``Dataset.map(batched=True)``:

- hf_itt: ``hf_itt.task_types.features.preprocess(rows, get_task("xquad"), tokenizer, ...)``, which also clips
  questions to 64 tokens (XTREME's max_query_length) and fingerprints the result from the data,
  settings, vocabulary and code;
- run_qa: ``prepare_train_features`` / ``prepare_validation_features`` of transformers'
  examples/pytorch/question-answering/run_qa.py written inline, with ``pad_to_max_length=False`` so both
  produce unpadded features (run_qa's default pads every window to 384).

"cold" runs recompute (``load_from_cache_file=False``); "cached" runs are the second call with
``load_from_cache_file=True`` on a dataset stored on disk, as a re-launched experiment would make it.
A cache hit means the second call returned the first call's cache file. Methods alternate, repeated;
medians reported.
"""

from __future__ import annotations

import tempfile

from harness import (
    base_parser,
    interleaved,
    load_tokenizer,
    machine_line,
    median,
    print_table,
    setup,
    shared_data,
    spread,
    timed,
)

MAX_LENGTH, DOC_STRIDE = 384, 128
ROLES = ("train", "eval")


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="questions per language (default: all 1190)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    setup(args)
    if args.tiny:
        args.limit, args.repeats = 20, 2
    return args


def run_qa_functions(tokenizer, max_seq_length: int, doc_stride: int):
    """run_qa.py's two preparation functions (question first: pad_on_right=True for XLM-R)."""

    def prepare_train_features(examples):
        examples["question"] = [q.lstrip() for q in examples["question"]]
        tokenized = tokenizer(
            examples["question"],
            examples["context"],
            truncation="only_second",
            max_length=max_seq_length,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        sample_mapping = tokenized.pop("overflow_to_sample_mapping")
        offset_mapping = tokenized.pop("offset_mapping")
        tokenized["start_positions"], tokenized["end_positions"] = [], []
        for i, offsets in enumerate(offset_mapping):
            input_ids = tokenized["input_ids"][i]
            cls_index = input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0
            sequence_ids = tokenized.sequence_ids(i)
            answers = examples["answers"][sample_mapping[i]]
            if len(answers["answer_start"]) == 0:
                tokenized["start_positions"].append(cls_index)
                tokenized["end_positions"].append(cls_index)
                continue
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            token_start_index = 0
            while sequence_ids[token_start_index] != 1:
                token_start_index += 1
            token_end_index = len(input_ids) - 1
            while sequence_ids[token_end_index] != 1:
                token_end_index -= 1
            if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
                tokenized["start_positions"].append(cls_index)
                tokenized["end_positions"].append(cls_index)
            else:
                while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
                    token_start_index += 1
                tokenized["start_positions"].append(token_start_index - 1)
                while offsets[token_end_index][1] >= end_char:
                    token_end_index -= 1
                tokenized["end_positions"].append(token_end_index + 1)
        return tokenized

    def prepare_validation_features(examples):
        examples["question"] = [q.lstrip() for q in examples["question"]]
        tokenized = tokenizer(
            examples["question"],
            examples["context"],
            truncation="only_second",
            max_length=max_seq_length,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        sample_mapping = tokenized.pop("overflow_to_sample_mapping")
        tokenized["example_id"] = []
        for i in range(len(tokenized["input_ids"])):
            sequence_ids = tokenized.sequence_ids(i)
            tokenized["example_id"].append(examples["id"][sample_mapping[i]])
            tokenized["offset_mapping"][i] = [
                (o if sequence_ids[k] == 1 else None) for k, o in enumerate(tokenized["offset_mapping"][i])
            ]
        return tokenized

    return {"train": prepare_train_features, "eval": prepare_validation_features}


class Method:
    """One way of building features; remembers each call's result to check cache hits."""

    def __init__(self, name, build):
        self.name, self.build, self.cache_hits, self.features = name, build, [], {}

    def measure(self, role: str, dataset, cached: bool):
        def run():
            self.features[(role, cached)] = self.build(dataset, role, cached)

        seconds = timed(run)
        if cached:
            first, second = self.features[(role, False)], self.features[(role, True)]
            self.cache_hits.append(bool(first.cache_files) and first.cache_files == second.cache_files)
        return seconds


def methods(tokenizer) -> list[Method]:
    from hf_itt.task_types.features import preprocess
    from hf_itt.tasks.registry import get_task

    spec = get_task("xquad")
    functions = run_qa_functions(tokenizer, MAX_LENGTH, DOC_STRIDE)

    def ours(dataset, role, cached):
        return preprocess(
            dataset,
            spec,
            tokenizer,
            split_role=role,
            max_length=MAX_LENGTH,
            doc_stride=DOC_STRIDE,
            load_from_cache_file=cached,
        )

    def run_qa(dataset, role, cached):
        return dataset.map(
            functions[role], batched=True, remove_columns=dataset.column_names, load_from_cache_file=cached
        )

    return [Method("hf_itt.task_types.features", ours), Method("run_qa.py (inline)", run_qa)]


def agreement(ours, theirs, role: str) -> str:
    """hf_itt windows equal to one of run_qa's, aligned in order (same tokens; train: same answer span;
    eval: same offsets); windows of questions hf_itt clipped cannot match and only shift the alignment."""
    from difflib import SequenceMatcher

    columns = ["input_ids"] + (["start_positions", "end_positions"] if role == "train" else ["offset_mapping"])
    key = lambda features: [hash(repr(row)) for row in zip(*(features[c] for c in columns))]  # noqa: E731
    matcher = SequenceMatcher(None, key(ours), key(theirs), autojunk=False)
    same = sum(block.size for block in matcher.get_matching_blocks())
    return f"{same}/{len(ours)}"


def main(argv=None) -> int:
    import real_data
    from datasets import load_from_disk

    args = parse_args(argv)
    tokenizer = load_tokenizer(args.tiny)
    languages = ["en", "th"] if args.tiny else None
    rows = real_data.concat(real_data.xquad(shared_data(), languages, args.limit))
    candidates = methods(tokenizer)
    with tempfile.TemporaryDirectory() as folder:
        rows.save_to_disk(f"{folder}/rows")
        dataset = load_from_disk(f"{folder}/rows")  # on disk, so Dataset.map writes and reuses cache files
        measurements = {
            (m.name, role, cached): (lambda m=m, role=role, cached=cached: m.measure(role, dataset, cached))
            for m in candidates
            for role in ROLES
            for cached in (False, True)
        }
        times = interleaved(measurements, args.repeats)
        table = []
        for role in ROLES:
            reference = median(times[(candidates[1].name, role, False)])
            for m in candidates:
                cold, warm = times[(m.name, role, False)], times[(m.name, role, True)]
                hits = m.cache_hits[ROLES.index(role) :: len(ROLES)]
                table.append(
                    [
                        role,
                        m.name,
                        len(m.features[(role, False)]),
                        median(cold),
                        spread(cold),
                        len(dataset) / median(cold),
                        f"{reference / median(cold):.2f}x",
                        median(warm),
                        f"{sum(hits)}/{len(hits)}",
                    ]
                )
            table[-2].append(
                agreement(candidates[0].features[(role, False)], candidates[1].features[(role, False)], role)
            )
            table[-1].append("-")
    print_table(
        "QA preprocessing: hf_itt.task_types.features vs run_qa.py, XQuAD",
        [
            "features",
            "method",
            "windows",
            "cold median (s)",
            "cold range (s)",
            "examples/s",
            "speed vs run_qa",
            "cached re-run (s)",
            "cache hits",
            "windows equal to run_qa's",
        ],
        table,
        [
            machine_line(args),
            f"{len(dataset):,} XQuAD questions ({'2' if args.tiny else '11'} languages), max length {MAX_LENGTH}, "
            f"doc stride {DOC_STRIDE}, tokenizer: {len(tokenizer):,}-piece offline XLM-R Unigram; {args.repeats} rounds",
            "window counts can differ: hf_itt clips questions to 64 tokens (XTREME's max_query_length), run_qa does not",
            "equal windows: same tokens and, for train, the same answer span (hf_itt maps XLM-R's bare '▁' token "
            "differently, see hf_itt/task_types/qa_features.py); eval: same offsets",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
