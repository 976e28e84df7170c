"""SentencePiece "precompiled charsmap": the normaliser XLM-R's tokenizer carries, built from a map.

Why: transformers 5.x builds ``XLMRobertaTokenizer(vocab=...)`` with no normaliser unless it gets
``_spm_precompiled_charsmap``, and on reload keeps only a ``Precompiled`` normaliser (any other
normaliser in tokenizer.json is dropped). So XLM-R's normalisation (nmt_nfkc: NFKC, control characters
removed, odd spaces to " ") must be shipped the way sentencepiece ships it: a darts-clone double-array
trie of UTF-8 keys whose values index NUL-terminated replacement strings.

``composition_rules`` adds what a per-code-point map cannot say: nmt_nfkc also composes decomposed
sequences (NFD "e" + U+0301 -> "é"), and the real XLM-R charsmap carries those sequences as keys.
"""

from __future__ import annotations

import itertools
import struct
import unicodedata
from collections import defaultdict

import numpy as np

from hf_itt.errors import CheckpointError

MAX_REACHABLE_KEY_BYTES = 5  # HF's Precompiled only looks up graphemes shorter than 6 bytes


def build_charsmap(norm_map: dict[int, str], *, compose: bool = True) -> bytes:
    """u32 trie size, the trie's units, then the NUL-terminated replacement strings."""
    rules = {chr(code_point): out for code_point, out in norm_map.items()}
    if compose:
        rules.update(composition_rules(norm_map))
    blob, where, entries = bytearray(), {}, {}
    for key in sorted(rules):
        out = rules[key].encode("utf-8")
        if out not in where:
            where[out] = len(blob)
            blob += out + b"\0"
        entries[key.encode("utf-8")] = where[out]
    trie = double_array(entries)
    return struct.pack("<I", trie.nbytes) + trie.tobytes() + bytes(blob)


def composition_rules(norm_map: dict[int, str]) -> dict[str, str]:
    """Sequence rules of nmt_nfkc (NFKD spelling -> NFC) that HF's ``Precompiled`` can reach.

    sentencepiece's builder maps every multi-character NFKD decomposition (and its spellings with
    un-normalised originals) to its NFC composition. ``Precompiled`` only looks at whole graphemes
    shorter than 6 bytes and takes the *shortest* matching prefix, so only keys under 6 bytes that
    start with an unmapped character and have no key as a proper prefix are kept.
    """
    single = {chr(code_point) for code_point in norm_map}
    originals, decomposed = defaultdict(list), set()
    for code_point in range(1, 0x110000):
        if 0xD800 <= code_point <= 0xDFFF:
            continue
        char = chr(code_point)
        nfkd = unicodedata.normalize("NFKD", char)
        if len(nfkd) == 1:
            originals[nfkd].append(char)
        else:
            decomposed.add(nfkd)
    rules = {}
    for nfkd in sorted(decomposed):
        nfc = unicodedata.normalize("NFC", nfkd)
        if nfc == nfkd or len(nfkd.encode()) > 12:
            continue
        choices = [[o for o in originals.get(c, [c]) if i or o not in single] for i, c in enumerate(nfkd)]
        for combination in itertools.product(*choices):
            key = "".join(combination)
            if len(key.encode()) <= MAX_REACHABLE_KEY_BYTES and key != nfc:
                rules.setdefault(key, nfc)
    keys = set(rules) | single
    return {k: v for k, v in rules.items() if not any(k[:i] in keys for i in range(1, len(k)))}


def decode_charsmap(charsmap: bytes, max_key_bytes: int | None = None) -> dict[str, str]:
    """The inverse of ``build_charsmap`` (walks the trie), for tests and for reading sentencepiece's own
    charsmaps; ``max_key_bytes`` limits the walk to short keys (5: what HF can reach)."""
    size = struct.unpack_from("<I", charsmap)[0]
    units = np.frombuffer(charsmap, "<u4", size // 4, 4).astype(np.int64)
    outputs = charsmap[4 + size :]
    labels = np.arange(1, 256)
    found_rules, stack = {}, [(0, b"")]
    while stack:
        position, key = stack.pop()
        unit = int(units[position])
        base = position ^ ((unit >> 10) << ((unit & (1 << 9)) >> 6))
        if key and (unit >> 8) & 1:
            value = int(units[base] & 0x7FFFFFFF)
            found_rules[key.decode("utf-8")] = outputs[value : outputs.index(b"\0", value)].decode("utf-8")
        if max_key_bytes is not None and len(key) >= max_key_bytes:
            continue
        children = base ^ labels
        inside = children < len(units)
        present = labels[inside][(units[children[inside]] & 0x800000FF) == labels[inside]]
        stack.extend((base ^ int(label), key + bytes([int(label)])) for label in present)
    return found_rules


def double_array(entries: dict[bytes, int]) -> np.ndarray:
    """A darts-clone double array over byte keys (the trie inside a SentencePiece charsmap).

    Unit layout (darts-clone ``DoubleArrayUnit``): bits 0-7 label, bit 8 has_leaf, bits 10-30 offset
    (the children of node p live at p ^ offset ^ label); leaf units hold ``value | 1 << 31``. Every node
    gets its own base, which keeps the label check unambiguous. Breadth-first, vectorised first fit.
    """
    keys = sorted(entries)
    trie = _Units()
    first_free = 1
    queue = [(0, 0, len(keys), 0)]  # (unit position, key range lo..hi, depth); grows while iterating
    for position, lo, hi, depth in queue:
        terminal, groups = _children(keys, entries, lo, hi, depth)
        labels = ([0] if terminal is not None else []) + [label for label, _ in groups]
        if not labels:
            continue
        while not trie.free[first_free]:
            first_free += 1
            trie.ensure(first_free + 1)
        base = trie.find_base(first_free, labels)
        trie.units[position] |= np.uint32((position ^ base) << 10)
        if terminal is not None:
            trie.units[position] |= np.uint32(1 << 8)
            trie.units[base] = np.uint32(terminal | (1 << 31))
            trie.free[base] = False
        for label, (a, b) in groups:
            trie.free[base ^ label] = False
            trie.units[base ^ label] = label
            queue.append((base ^ label, a, b, depth + 1))
    used = (int(np.flatnonzero(~trie.free).max()) | 0xFF) + 1  # whole 256-blocks: lookups stay in range
    if used >= 1 << 21:
        raise CheckpointError("the normalisation trie is too large for 21-bit offsets")
    return trie.units[:used].copy()


def _children(keys: list[bytes], entries: dict[bytes, int], lo: int, hi: int, depth: int):
    """(value of the key ending here or None, [(next byte, key range)]) for the keys lo..hi."""
    terminal, groups, i = None, [], lo
    while i < hi:
        if len(keys[i]) == depth:
            terminal, i = entries[keys[i]], i + 1
            continue
        label, j = keys[i][depth], i + 1
        while j < hi and keys[j][depth] == label:
            j += 1
        groups.append((label, (i, j)))
        i = j
    return terminal, groups


class _Units:
    """The growing unit array with its free and used-base bitmaps."""

    def __init__(self, size: int = 1024):
        self.units = np.zeros(size, np.uint32)
        self.free = np.ones(size, bool)
        self.base_used = np.zeros(size, bool)
        self.free[0] = False

    def ensure(self, n: int) -> None:
        size = len(self.units)
        if n > size:
            new = (max(n, 2 * size) + 255) & ~255
            self.units = np.concatenate([self.units, np.zeros(new - size, np.uint32)])
            self.free = np.concatenate([self.free, np.ones(new - size, bool)])
            self.base_used = np.concatenate([self.base_used, np.zeros(new - size, bool)])

    def find_base(self, first_free: int, labels: list[int]) -> int:
        """The first unused base whose child slots (base ^ label) are all free."""
        start = (first_free ^ labels[0]) & ~0xFF
        while True:
            end = start + 2048
            self.ensure(end + 256)
            candidates = np.arange(start, end)
            fits = ~self.base_used[start:end]
            for label in labels:
                fits &= self.free[candidates ^ label]
            hits = np.flatnonzero(fits)
            if hits.size:
                base = int(start + hits[0])
                self.base_used[base] = True
                return base
            start = end
