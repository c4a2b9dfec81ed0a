"""The project of the pipelines' tests: the repository's catalog applied to the session broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streams.config import Settings
from streams.kafka.admin import TopicAdmin
from streams.runtime.project import Project


@pytest.fixture(scope="module")
async def project(broker_settings: Settings, bootstrap: str) -> AsyncIterator[Project]:
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": bootstrap}))
    async with TopicAdmin(bootstrap) as admin:
        await admin.apply(project.catalog)
    yield project
