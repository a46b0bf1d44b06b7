import os

import pytest
import torch

torch.set_num_threads(2)


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="run the long variants of tests that have one (e.g. the fault campaign's 200+ trials)")


@pytest.fixture(autouse=True)
def _isolated_homes(tmp_path_factory, monkeypatch):
    """Runs and data caches of a test never touch the user's ~/.losspath."""
    monkeypatch.setenv("LOSSPATH_HOME", str(tmp_path_factory.mktemp("runs")))
    monkeypatch.setenv("LOSSPATH_DATA", os.environ.get("LOSSPATH_TEST_DATA", str(tmp_path_factory.getbasetemp() / "data")))


@pytest.fixture
def one_torch_thread():
    """Small nets: one torch thread is faster than two waiting on each other when other work shares the cores
    (a test module uses it with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_dataset():
    """A small real classification problem held in memory (see helpers.make_blobs)."""
    from helpers import make_blobs

    return make_blobs()
