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
def tiny_dataset():
    """A small real classification problem held in memory (see helpers.make_blobs)."""
    from helpers import make_blobs

    return make_blobs()
