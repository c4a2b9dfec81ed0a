"""The offline embedding model: WordLlama ``l2_supercat`` at 256 dimensions, a real (small) text
embedding model whose weights ship inside the ``wordllama`` wheel, so nothing is downloaded.

WordLlama averages learned token embeddings (taken from a large model's input layer and trained
for similarity), so it is fast (tens of thousands of texts a second on one core) and weaker than
a transformer encoder: good enough for dense retrieval beside BM25, not a replacement for a
hosted embedding model. Rows are L2-normalised, so a dot product is the cosine similarity.

:data:`EMBEDDING_MODELS` is what the gateway's local provider serves (``local-wordllama``, via
:func:`agents.local_models`): the weights are loaded on the first call, once, whichever thread
makes it, so a process that never embeds never loads them.

The files are read with the library's own tokenizer and safetensors loaders rather than
``WordLlama.load()``: in wordllama 0.4 that looks for the tokenizer under ``tokenizer/`` while
the wheel ships it under ``tokenizers/``, and then tries to download it from Hugging Face.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import wordllama
from safetensors import safe_open
from tokenizers import Tokenizer
from wordllama.inference import WordLlamaInference

__all__ = ["EMBEDDING_MODEL", "EMBEDDING_MODELS", "LazyEmbedder", "WordLlamaEmbedder"]

EMBEDDING_MODEL = "local-wordllama"

_PACKAGE = Path(wordllama.__file__).parent
_WEIGHTS = _PACKAGE / "weights" / "l2_supercat_256.safetensors"
_TOKENIZER = _PACKAGE / "tokenizers" / "l2_supercat_tokenizer_config.json"


class WordLlamaEmbedder:
    """Texts in, one L2-normalised float32 row of ``dimensions`` per text out."""

    name = EMBEDDING_MODEL
    dimensions = 256

    def __init__(self, inference: WordLlamaInference) -> None:
        self._inference = inference

    @classmethod
    def load(cls) -> WordLlamaEmbedder:
        """About 0.1 s: a 32,000 x 256 float16 table and a tokenizer, both from the wheel."""
        if not _WEIGHTS.exists() or not _TOKENIZER.exists():
            raise FileNotFoundError(
                f"the wordllama wheel has no {_WEIGHTS.name} or {_TOKENIZER.name} under {_PACKAGE}: "
                "reinstall podium (`make install`) so that wordllama>=0.4 is installed whole"
            )
        tokenizer = Tokenizer.from_file(str(_TOKENIZER))
        with safe_open(str(_WEIGHTS), framework="np", device="cpu") as weights:
            table = weights.get_tensor("embedding.weight")
        return cls(WordLlamaInference(table, tokenizer))

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        raw = np.asarray(self._inference.embed(list(texts), norm=False), dtype=np.float32)
        raw = raw.reshape(len(texts), self.dimensions)
        # Normalised here, not by the library: a text with no known token (empty, only symbols)
        # is a zero row, where the library's own division would make it NaN.
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)
        return unit


class LazyEmbedder:
    """The WordLlama embedder, loaded on its first call (once, under a lock: calls may come from
    the gateway's worker threads). A local embedding model for the gateway's local provider."""

    dimensions = WordLlamaEmbedder.dimensions

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: WordLlamaEmbedder | None = None

    def _embedder(self) -> WordLlamaEmbedder:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = WordLlamaEmbedder.load()
        return self._loaded

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self._embedder().embed(texts)


EMBEDDING_MODELS: Mapping[str, LazyEmbedder] = MappingProxyType({EMBEDDING_MODEL: LazyEmbedder()})
