"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest

from edgeai.estimation.train import num_threads


@pytest.fixture
def one_thread():
    """Tiny networks train fastest on one CPU thread, and far faster so on cores shared with other
    work (see `edgeai.estimation.train.num_threads`). Modules use it with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    with num_threads(1):
        yield
