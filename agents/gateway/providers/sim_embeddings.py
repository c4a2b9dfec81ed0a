"""The provider simulator's embeddings: deterministic vectors that are a stand-in, NOT a model.

Each text is hashed into ``dimensions`` buckets (the "hashing trick"): every word stem (Snowball
English, weight 1) and every character trigram of every word (weight 0.5), each to one bucket
with a sign, both from the feature's CRC-32. Texts that share words or word pieces share buckets,
so similar texts get similar vectors (cosine well above that of unrelated texts), which is enough
for a retriever's tests and the demo to behave plausibly. Nothing is learned: synonyms do not
meet, and the vectors of two dimensions are unrelated. A text with no word is a zero row.

The answer has the OpenAI shape: ``data[{object, index, embedding}]`` with the embedding as
floats, or as base64 of little-endian float32 when ``encoding_format`` is ``base64`` (what the
official SDK asks for unless told otherwise), and ``usage.prompt_tokens``.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import Stemmer

__all__ = ["DEFAULT_DIMENSIONS", "SimEmbedder", "embeddings_answer"]

DEFAULT_DIMENSIONS = 256  # whatever the model's name; the request's ``dimensions`` overrides it
_WORD = re.compile(r"\w+")
_TRIGRAM_WEIGHT = 0.5


class SimEmbedder:
    """One per simulator app: the stemmer is not thread-safe, and each app serves from one loop."""

    def __init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("english")

    def embed(self, texts: Sequence[str], dimensions: int) -> npt.NDArray[np.float32]:
        rows = np.zeros((len(texts), dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            features = [(f"w:{stem}", 1.0) for stem in self._stemmer.stemWords(words)]
            for word in words:
                padded = f"#{word}#"
                features += [(f"t:{padded[i : i + 3]}", _TRIGRAM_WEIGHT) for i in range(len(padded) - 2)]
            for feature, weight in features:
                digest = zlib.crc32(feature.encode())
                rows[row, digest % dimensions] += weight if digest & 0x80000000 else -weight
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
        return unit


def embeddings_answer(
    vectors: npt.NDArray[np.float32], model: str, prompt_tokens: int, encoding_format: str
) -> dict[str, Any]:
    def encoded(row: npt.NDArray[np.float32]) -> list[float] | str:
        if encoding_format == "base64":
            return base64.b64encode(row.astype("<f4").tobytes()).decode()
        return [float(x) for x in row]

    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encoded(row)} for i, row in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
