"""The project of the pipelines' tests: the repository's catalog applied to the session broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streams.admin import TopicAdmin
from streams.config import Settings
from streams.project import Project


@pytest.fixture(scope="module")
async def project(broker_settings: Settings, bootstrap: str) -> AsyncIterator[Project]:
    project = Project(broker_settings.model_copy(update={"bootstrap_servers": bootstrap}))
    async with TopicAdmin(bootstrap) as admin:
        await admin.apply(project.catalog)
    yield project
