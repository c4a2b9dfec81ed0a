import pytest

from streams.errors import ConfigError
from streams.kafka.principals import PODIUM, kafka_principal, stage_principal


def test_a_stage_authenticates_as_stage_dash_its_name() -> None:
    assert stage_principal("classify") == "stage-classify"
    assert stage_principal("tool.search_2") == "stage-tool.search_2"
    assert kafka_principal(stage_principal("classify")) == "User:stage-classify"
    assert kafka_principal(PODIUM) == "User:podium"


@pytest.mark.parametrize("name", ["", "a,b", "a=b", "a b", "[x]", "-lead"])
def test_a_name_that_cannot_be_a_scram_user_is_refused_with_what_is_allowed(name: str) -> None:
    with pytest.raises(ConfigError, match="letters, digits"):
        stage_principal(name)
