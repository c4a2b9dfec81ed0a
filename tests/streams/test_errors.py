from streams.errors import (
    CodecError,
    HandlerTimeout,
    PayloadTooLarge,
    PermanentError,
    TransientError,
    UnknownSchema,
    error_type,
    is_retryable,
)


def test_flags_drive_decisions_not_classes() -> None:
    assert is_retryable(TransientError("x"))
    assert is_retryable(HandlerTimeout("x"))
    assert not is_retryable(PermanentError("x"))
    assert not is_retryable(CodecError("x"))
    assert not is_retryable(UnknownSchema("x"))


def test_foreign_errors_are_retried_so_bugs_reach_the_dlq_not_the_floor() -> None:
    assert is_retryable(KeyError("x"))
    assert error_type(KeyError("x")) == "unhandled:KeyError"


def test_dead_letter_reasons_are_stable_names() -> None:
    assert error_type(PayloadTooLarge("x")) == "payload_too_large"
    assert error_type(UnknownSchema("x")) == "unknown_schema"
    assert error_type(CodecError("x")) == "undecodable"
