"""Shared fixtures: every test leaves the process-wide runtime (kernel path
and thread count) as it found it, and tests that take an ``isa`` argument run
once per instruction-set path this CPU and build support."""
import zlib

import numpy as np
import pytest

import fastnn


def pytest_generate_tests(metafunc):
    if "isa" in metafunc.fixturenames:
        metafunc.parametrize("isa", list(fastnn.available_isas()))


@pytest.fixture(autouse=True)
def _restore_runtime():
    isa, threads = fastnn.get_isa(), fastnn.get_num_threads()
    yield
    fastnn.set_isa(isa)
    fastnn.set_num_threads(threads)


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's id, so each test draws its own
    numbers and a failure reproduces when the test is run alone."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)
