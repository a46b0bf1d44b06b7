import os

import pytest
import torch

torch.set_num_threads(2)


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
