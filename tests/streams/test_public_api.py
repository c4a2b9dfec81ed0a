import importlib

import pytest

import streams

# Adding or removing a public name is an API change: update these lists on purpose.
FACES = {
    "streams": [
        "Catalog",
        "Codec",
        "CodecError",
        "ConfigError",
        "DeadlineExceeded",
        "Emit",
        "PermanentError",
        "PodiumError",
        "Project",
        "Publisher",
        "Record",
        "RequestHeaders",
        "RetryPolicy",
        "Settings",
        "SharedResource",
        "Stage",
        "StageContext",
        "StageEnv",
        "Table",
        "Telemetry",
        "TopicSpec",
        "TransientError",
        "WindowStage",
        "WindowState",
        "dlq_topic",
        "load_settings",
        "now_ms",
        "retry_topic",
    ],
}


@pytest.mark.parametrize("face", sorted(FACES))
def test_public_names_are_a_decision(face: str) -> None:
    module = importlib.import_module(face)
    assert sorted(module.__all__) == FACES[face]
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_the_face_leaves_out_the_workers_internals() -> None:
    # Workers and schema stores are the runtime's business, reached through streams.runtime
    # and streams.contracts by the commands that need them, not by pipelines.
    assert "StageWorker" not in streams.__all__
    assert "SchemaStore" not in streams.__all__
