"""One request, one tenant: every support stage reads whose request it is from the same place
(the podium-tenant header, else the record's field), so its budgets and caches agree."""

from __future__ import annotations

from typing import Any

from agents.offline.classifier import Prediction
from agents.offline.safety import Verdict
from agents.support.stages import SupportStages, tenant_of
from streams.contracts.headers import RequestHeaders
from streams.runtime import StageContext


def _ctx(tenant: str | None) -> StageContext:
    return StageContext(
        "classify", "support.requests", 0, 0, RequestHeaders(request_id="r", tenant=tenant), 1
    )


def test_the_header_wins_over_the_body_and_the_body_serves_without_one() -> None:
    assert tenant_of({"tenant": "body"}, _ctx("header")) == "header"
    assert tenant_of({"tenant": "body"}, _ctx(None)) == "body"
    assert tenant_of({"tenant": ""}, _ctx(None)) is None and tenant_of({}, _ctx(None)) is None


class _Services:
    """What classify asks of the support services, recording whose request each lookup is for."""

    class config:
        direct_at = 0.5

    def __init__(self) -> None:
        self.tenants: list[str | None] = []

    async def screen_ticket(self, text: str) -> Verdict:
        return Verdict("pass", (), text, {})

    async def predict_intent(self, text: str) -> Prediction:
        return Prediction("cancellation", 0.9)

    def cached_reply(self, body: str, tenant: str | None) -> None:
        self.tenants.append(tenant)

    async def similar_reply(self, body: str, tenant: str | None, intent: str, spent: float) -> Any:
        self.tenants.append(tenant)  # the embedding reserved against this tenant's budget
        return None, "", 0.0


async def test_classify_charges_and_caches_under_the_headers_tenant_and_passes_it_on() -> None:
    services = _Services()
    stages = SupportStages(services)  # type: ignore[arg-type]
    emit = await stages.classify({"body": "cancel my plan", "tenant": "globex"}, _ctx("umbrella"))
    assert services.tenants == ["umbrella", "umbrella"]
    assert emit.value["tenant"] == "umbrella"  # what retrieve, generate and guard read next
