import streams


def test_public_names_are_a_decision() -> None:
    # Adding or removing a public name is an API change: update this list on purpose.
    assert sorted(streams.__all__) == [
        "Catalog",
        "Codec",
        "CodecError",
        "ConfluentCodec",
        "DeadlineExceeded",
        "Emit",
        "PermanentError",
        "PodiumError",
        "Project",
        "Publisher",
        "Record",
        "RequestHeaders",
        "RetryPolicy",
        "SchemaStore",
        "Settings",
        "SharedResource",
        "SingleObjectCodec",
        "Stage",
        "StageContext",
        "StageEnv",
        "StageWorker",
        "TopicSpec",
        "TransientError",
        "dlq_topic",
        "load_catalog",
        "load_settings",
        "retry_topic",
    ]
    for name in streams.__all__:
        assert getattr(streams, name) is not None
