"""pytest plugin of the GPU check (ci/gpu/on-device.sh): end a stage's run at its deadline.

The lent machine has no pytest-timeout, and a run killed from outside prints no summary. With
``GPU_CHECK_STAGE_DEADLINE`` (seconds since the epoch) set, the run stops after the test that
passes the deadline, and pytest still prints its short summary and its final line, with
"Interrupted: the stage's deadline ..." above it; the stage's ``timeout`` stays as the backstop.
Loaded with ``-p stage_deadline`` (ci/gpu on ``PYTHONPATH``).
"""

import os
import time

import pytest


def _deadline():
    value = os.environ.get("GPU_CHECK_STAGE_DEADLINE", "")
    return float(value) if value else None


@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish(nodeid, location):
    deadline = _deadline()
    if deadline is not None and time.time() >= deadline and _session is not None:
        _session.shouldstop = (f"the stage's deadline passed after {nodeid} "
                               "(the tests after it did not run)")


_session = None


def pytest_sessionstart(session):
    global _session
    _session = session
