"""Which index versions a document goes to: the pure decision the embed stage reads per record."""

from __future__ import annotations

from agents.kb.targets import Targets, targets
from agents.rag.store import ACTIVE, BUILDING, RETIRED, IndexVersion

A = IndexVersion("local-wordllama-256", "local", "local-wordllama", 256, ACTIVE, 1)
B = IndexVersion("text-embedding-3-small-256", "sim-openai", "text-embedding-3-small", 256, BUILDING, 2)


def _as(version: IndexVersion, state: str) -> IndexVersion:
    return IndexVersion(
        version.name, version.provider, version.model, version.dimensions, state, version.created_ms
    )


def test_an_empty_store_learns_the_configured_models_version() -> None:
    assert targets([], "local-wordllama") == Targets((), learn=True)


def test_the_active_version_of_the_configured_model_alone() -> None:
    assert targets([A], "local-wordllama") == Targets((A,), learn=False)


def test_a_changed_model_feeds_the_active_one_and_learns_the_new_one() -> None:
    # Before the reindex made B: the old one keeps being written, the new one named by its embedding.
    assert targets([A], "text-embedding-3-small") == Targets((A,), learn=True)


def test_while_a_version_builds_both_get_every_document_active_first() -> None:
    assert targets([B, A], "text-embedding-3-small") == Targets((A, B), learn=False)
    # A building version is fed even when the configuration went back to the active model.
    assert targets([B, A], "local-wordllama") == Targets((A, B), learn=False)


def test_once_switched_the_retired_version_gets_nothing() -> None:
    retired, active = _as(A, RETIRED), _as(B, ACTIVE)
    assert targets([retired, active], "text-embedding-3-small") == Targets((active,), learn=False)


def test_a_retired_version_of_the_configured_model_is_fed_again_a_rollback() -> None:
    retired, active = _as(A, RETIRED), _as(B, ACTIVE)
    assert targets([retired, active], "local-wordllama") == Targets((active, retired), learn=False)


def test_dimensions_the_policy_asks_for_pick_the_version_of_that_size() -> None:
    small = IndexVersion("text-embedding-3-small-64", "sim-openai", "text-embedding-3-small", 64, RETIRED, 3)
    assert targets([A, small], "text-embedding-3-small", 256) == Targets((A,), learn=True)
    assert targets([A, small], "text-embedding-3-small", 64) == Targets((A, small), learn=False)
