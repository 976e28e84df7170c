"""Build the offline demo: the synthetic world's task files and a tiny MLM-warmed XLM-R base model.

    python -m hf_itt.demo.build --out runs/demo_world

writes ``<out>/world.json`` + task files (see ``hf_itt.demo.world``) and ``<out>/base`` (tokenizer +
``XLMRobertaForMaskedLM``, loadable with ``AutoModel.from_pretrained`` like ``xlm-roberta-large``).
Both steps are skipped when their output already exists for the same settings (``--force`` rebuilds).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from hf_itt.demo.tiny import build_tokenizer, encoder_config
from hf_itt.demo.world import INDEX_FILE, build_world, load_world
from hf_itt.fileio import atomic_write_text

BASE_DIR = "base"
BUILD_INFO = "demo_build.json"
# A tiny encoder; no dropout: at this size it only slows learning down (the NLI skill appears in a
# few hundred steps without it, not within a thousand with it).
MODEL_SIZE = {"hidden_size": 64, "num_layers": 3, "num_heads": 4}
# 1000 x 64 is the warm-up validated end to end (3 world seeds); 600 x 32 built a base on which the
# related ITT stage did not pick the skill up within its 1000 updates.
MLM_DEFAULTS = {"steps": 1000, "batch_size": 64, "learning_rate": 1e-3, "warmup": 0.05, "max_length": 64}


def tokenizer_texts(lines: list[str]) -> list[str]:
    """The corpus plus every distinct word glued to punctuation marks.

    ``tokenizers``' Unigram trainer seeds its vocabulary with substrings that occur in at least two
    *distinct* pre-tokenized words, so on a small, repetitive corpus whole words never become pieces
    and text is cut into characters. Writing each word also as ``word.``, ``word,`` ... makes every
    word a seed, so the demo's words are single tokens, as frequent words are in XLM-R.
    """
    words = sorted({word for line in lines for word in line.split()})
    return lines + [" ".join(word + mark for word in words) for mark in ".,;:!"]


def build_base_model(
    out_dir: str | Path,
    world: dict,
    steps: int = MLM_DEFAULTS["steps"],
    seed: int = 0,
    vocab_size: int = 1000,
    **mlm_options,
) -> Path:
    """Train a tokenizer on the world's MLM corpus and warm up a tiny XLM-R with MLM; save to ``out_dir``."""
    import torch
    from transformers import (
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
        XLMRobertaForMaskedLM,
    )

    options = {**MLM_DEFAULTS, "steps": steps, **mlm_options}
    lines = Path(world["tasks"]["mlm"]["train"]).read_text(encoding="utf-8").splitlines()
    tokenizer = build_tokenizer(tokenizer_texts(lines), vocab_size=vocab_size)
    encoded = tokenizer(lines, truncation=True, max_length=options["max_length"], return_special_tokens_mask=True)
    features = [dict(zip(encoded.keys(), values)) for values in zip(*encoded.values())]

    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            max_steps=options["steps"],
            per_device_train_batch_size=options["batch_size"],
            learning_rate=options["learning_rate"],
            warmup_steps=options["warmup"],
            weight_decay=0.01,
            max_grad_norm=1.0,
            lr_scheduler_type="linear",
            save_strategy="no",
            report_to="none",
            logging_steps=max(1, options["steps"] // 5),
            seed=seed,
            disable_tqdm=True,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        torch.manual_seed(seed)
        config = encoder_config(len(tokenizer), **MODEL_SIZE, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        model = XLMRobertaForMaskedLM(config)
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=seed)
        Trainer(model=model, args=args, train_dataset=features, data_collator=collator).train()

    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build(out_dir: str | Path, seed: int = 0, mlm_steps: int = MLM_DEFAULTS["steps"], force: bool = False) -> dict:
    """World + base model under ``out_dir`` (each skipped when already built with these settings)."""
    out = Path(out_dir)
    info_path = out / BUILD_INFO
    wanted = {"seed": seed, "mlm_steps": mlm_steps, "model": MODEL_SIZE}
    done = json.loads(info_path.read_text()) if info_path.exists() else {}
    if force or done.get("seed") != seed or not (out / INDEX_FILE).exists():
        world, done = build_world(out, seed=seed), {}
    else:
        world = load_world(out)
    base = out / BASE_DIR
    if force or done != wanted or not (base / "config.json").exists():
        build_base_model(base, world, steps=mlm_steps, seed=seed)
        atomic_write_text(info_path, json.dumps(wanted, indent=2) + "\n")
    return {**world, "base_model": str(base)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the offline demo's synthetic world and tiny base model.")
    parser.add_argument("--out", required=True, help="output folder (world.json, task files, base/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mlm-steps", type=int, default=MLM_DEFAULTS["steps"])
    parser.add_argument("--force", action="store_true", help="rebuild even if the outputs exist")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the model is tiny, and on a busy CPU more threads "
        "spin-wait against each other and run several times slower)",
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    result = build(args.out, seed=args.seed, mlm_steps=args.mlm_steps, force=args.force)
    print(f"world: {Path(result['root']) / INDEX_FILE}\nbase model: {result['base_model']}")


if __name__ == "__main__":
    main()
