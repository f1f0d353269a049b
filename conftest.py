"""Test-suite configuration shared by tests/ and the doctests in symgen/.

Every state built during the tests is value-checked (finite values, prefix mask), computed
states included, and so are the example scripts the tests start as subprocesses.
"""

import os

os.environ["SYMGEN_STRICT_VALIDATION"] = "1"

from symgen.state import set_strict_validation  # noqa: E402

set_strict_validation(True)

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors: one intra-op thread is faster than several on a shared 2-core machine.

    Use it in a module with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
