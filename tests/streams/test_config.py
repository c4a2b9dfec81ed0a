import pytest

from streams.config import load_settings
from streams.errors import ConfigError


def test_environment_names_configure(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PODIUM_HOME", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    settings = load_settings()
    assert settings.home == tmp_path
    assert settings.bootstrap_servers == "k1:9092,k2:9092"


def test_home_is_not_confused_with_the_users_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODIUM_HOME", raising=False)
    monkeypatch.setenv("HOME", "/somewhere/else")
    assert load_settings().home.name == ".podium"


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_BROKER_PORT", "ninety")
    with pytest.raises(ConfigError, match="PODIUM_BROKER_PORT"):
        load_settings()


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError):
        settings.broker_port = 1  # type: ignore[misc]


def test_provider_keys_are_read_once_and_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTED_KEY", "sk-planted-9d2e")
    monkeypatch.setenv("PLANTED_NAME", "not a key")
    settings = load_settings()
    monkeypatch.setenv("PLANTED_KEY", "sk-changed-later")
    monkeypatch.setenv("LATER_KEY", "sk-later")
    keys = settings.provider_keys
    assert keys["PLANTED_KEY"].get_secret_value() == "sk-planted-9d2e"  # a snapshot, taken once
    assert "PLANTED_NAME" not in keys and "LATER_KEY" not in keys
    with pytest.raises(TypeError):
        keys["OTHER_KEY"] = keys["PLANTED_KEY"]  # type: ignore[index]
    shown = repr(settings) + str(settings) + settings.model_dump_json() + repr(keys)
    assert "sk-planted" not in shown
    assert settings.model_copy(update={"broker_port": 1}).provider_keys == keys


def test_otlp_metrics_can_be_turned_off_by_the_standard_variable() -> None:
    from streams.config import load_settings

    assert load_settings().otel_metrics_exporter == "otlp"
    assert load_settings(OTEL_METRICS_EXPORTER="none").otel_metrics_exporter == "none"


@pytest.mark.parametrize("value", ["prometheus", "console"])
def test_the_standard_metrics_exporters_are_accepted(value: str) -> None:
    assert load_settings(OTEL_METRICS_EXPORTER=value).otel_metrics_exporter == value


def test_an_unknown_metrics_exporter_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="OTEL_METRICS_EXPORTER"):
        load_settings(OTEL_METRICS_EXPORTER="zipkin")


def test_the_vector_url_is_read_and_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODIUM_VECTOR_URL", raising=False)
    assert load_settings().vector_url is None
    monkeypatch.setenv("PODIUM_VECTOR_URL", "postgresql://podium:pw-planted-77@db:5432/podium")
    settings = load_settings()
    assert settings.vector_url is not None
    assert settings.vector_url.get_secret_value() == "postgresql://podium:pw-planted-77@db:5432/podium"
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "pw-planted" not in shown


def test_tenant_weights_are_read_as_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_TENANT_WEIGHTS", " gold=3, free=0.5 ,")
    assert dict(load_settings().tenant_weights) == {"gold": 3.0, "free": 0.5}
    monkeypatch.delenv("PODIUM_TENANT_WEIGHTS")
    assert dict(load_settings().tenant_weights) == {}


@pytest.mark.parametrize(
    "value", ["gold", "gold=", "=3", "gold=0", "gold=-1", "gold=nan", "gold=inf", "a=1,a=2"]
)
def test_a_bad_tenant_weight_names_the_variable_and_the_format(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PODIUM_TENANT_WEIGHTS", value)
    with pytest.raises(ConfigError, match=r"PODIUM_TENANT_WEIGHTS.*(tenant=weight|named twice)"):
        load_settings()
