"""Shared fixtures of the test suite."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def root() -> Path:
    "The project's top folder."
    return ROOT


@pytest.fixture(scope="session")
def cli():
    """Run `digits-tutorial` as a user would: the script installed beside this Python (not whichever one `PATH`
    finds first, which may be a stale install); return a function of the arguments giving the completed process."""
    script = Path(sys.executable).with_name("digits-tutorial")
    if not script.is_file():
        pytest.fail(f"no digits-tutorial script beside {sys.executable}: install the package in this environment "
                    "(pip install -e .)", pytrace=False)

    def run(*args, cwd=None):
        return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)
    return run
