"""Shared fixtures: a real script service over a temporary home, and process hygiene.

Every script these tests start is a real process. Services made by `make_service` are closed at
teardown and every process still carrying a tracking tag from the test's home is killed, so a
failing test cannot leave sleepers behind for the next one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tentacle_manager.agent.scripts import ScriptService
from tests.api_support import Pki
from tests.support import ServiceFactory, fast_settings, kill_strays


@pytest.fixture
async def make_service(tmp_path: Path) -> AsyncIterator[ServiceFactory]:
    """Open services over a home in tmp_path (the same home unless told otherwise)."""
    opened: list[ScriptService] = []

    async def factory(home: Path | None = None, **overrides: Any) -> ScriptService:
        service = ScriptService(home or tmp_path / "home", fast_settings(**overrides))
        await service.open()
        opened.append(service)
        return service

    yield factory
    for service in opened:
        await service.close()
    kill_strays(tmp_path)


@pytest.fixture
async def service(make_service: ServiceFactory) -> ScriptService:
    return await make_service()


@pytest.fixture(scope="session")
def pki() -> Pki:
    """Certificates for the agent and its callers; RSA keys are slow, so made once."""
    return Pki.create()
