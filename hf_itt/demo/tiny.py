"""Tiny XLM-R-shaped checkpoints built offline (tests, the demo, benchmarks).

``build_tokenizer`` trains a SentencePiece-style Unigram vocabulary with ``tokenizers`` and wraps it
in the real ``XLMRobertaTokenizer`` class, so ``AutoTokenizer.from_pretrained`` loads the saved folder
exactly as it loads ``xlm-roberta-large``. ``build_checkpoint`` adds a randomly initialised
``XLMRobertaModel`` of a chosen size: a stand-in base model for everything that would otherwise need
the Hub.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1000):
    """Train a Unigram vocabulary on ``texts`` and return a fast ``XLMRobertaTokenizer``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import XLMRobertaTokenizer

    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="<unk>", show_progress=False
    )
    backend.train_from_iterator(list(texts), trainer)
    vocab = [tuple(piece) for piece in json.loads(backend.to_str())["model"]["vocab"]]
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=512)


def encoder_config(
    vocab_size: int,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    max_positions: int = 514,
    **overrides,
):
    """An ``XLMRobertaConfig`` with XLM-R's structure and a tiny size."""
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=hidden_size * 4,
        max_position_embeddings=max_positions,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        **overrides,
    )


def build_checkpoint(
    out_dir: str | Path, texts: Iterable[str], vocab_size: int = 1000, seed: int = 0, **config_kwargs
) -> Path:
    """Write a tokenizer + random ``XLMRobertaModel`` to ``out_dir``; return the path."""
    import torch
    from transformers import XLMRobertaModel

    out = Path(out_dir)
    tokenizer = build_tokenizer(texts, vocab_size=vocab_size)
    torch.manual_seed(seed)
    model = XLMRobertaModel(encoder_config(len(tokenizer), **config_kwargs), add_pooling_layer=False)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
