"""The `processes` fixture: realrl processes that are killed if a test leaves them running."""

import pytest
from cluster import Processes


@pytest.fixture
def processes(tmp_path):
    started = Processes(tmp_path)
    yield started
    started.kill_all()
