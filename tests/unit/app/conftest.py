"""A scripted-model server shared by the app's transport tests (one per module: starting one costs time)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from tests.support.server import RunningServer, running_server
from tests.unit.app.scripted_backend import Journal, scripted_registry, write_model


@pytest.fixture(scope="module")
def journal() -> Journal:
    return Journal()


@pytest.fixture(scope="module")
def scripted_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("scripted")
    write_model(repo, "plain")
    write_model(repo, "dec", decoupled=True)
    write_model(repo, "batched", max_batch_size=4, versions=(1, 2))
    return repo


@pytest.fixture(scope="module")
def server(scripted_repo: Path, journal: Journal) -> Iterator[RunningServer]:
    with running_server(scripted_repo, registry=scripted_registry(journal)) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[grpcclient.InferenceServerClient]:
    c = grpcclient.InferenceServerClient(server.url)
    try:
        yield c
    finally:
        c.close()
