"""The offline embedding model: real WordLlama weights from the wheel, no download."""

from __future__ import annotations

import numpy as np
import pytest

from agents.offline.embedder import EMBEDDING_MODEL, WordLlamaEmbedder


@pytest.fixture(scope="module")
def embedder() -> WordLlamaEmbedder:
    return WordLlamaEmbedder.load()


def test_rows_are_unit_vectors_of_the_model_dimension(embedder: WordLlamaEmbedder) -> None:
    vectors = embedder.embed(["Resetting your password", "Exporting a dashboard as PDF"])
    assert vectors.shape == (2, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert EMBEDDING_MODEL == embedder.name == "local-wordllama"


def test_similar_meanings_are_closer_than_unrelated_ones(embedder: WordLlamaEmbedder) -> None:
    question, paraphrase, unrelated = embedder.embed(
        ["How do I reset my password?", "I forgot my password and need a new one", "Export a chart to CSV"]
    )
    assert float(question @ paraphrase) > float(question @ unrelated) + 0.1


def test_the_same_text_gets_the_same_vector_alone_or_in_a_batch(embedder: WordLlamaEmbedder) -> None:
    alone = embedder.embed(["invite a teammate"])[0]
    batched = embedder.embed(["something else first", "invite a teammate"])[1]
    assert np.allclose(alone, batched, atol=1e-6)


def test_a_text_with_no_known_token_is_a_zero_row_not_nan(embedder: WordLlamaEmbedder) -> None:
    vectors = embedder.embed(["", "a real sentence"])
    assert not np.isnan(vectors).any()
    assert float(np.linalg.norm(vectors[0])) == 0.0
    assert embedder.embed([]).shape == (0, 256)
