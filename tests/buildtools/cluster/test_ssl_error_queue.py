"""ssl_error_queue: installed in a fresh interpreter (not this one), each TLS call wrapped once,
and the reproduction of python/cpython#148594 answers correctly with it. The images' own Python
(where the bug shows) is tested in tests/images/test_debian_container.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from buildtools.cluster import ssl_error_queue
from buildtools.settings import REPO_ROOT
from tests.helpers import ssl_error_queue as reproduction
from tests.helpers.tls import write_credentials

MODULE = REPO_ROOT / "buildtools" / "cluster" / "ssl_error_queue.py"


def python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_install_wraps_each_tls_call_once_and_only_once() -> None:
    calls = [f"ssl.{cls.__name__}.{name}" for cls, names in ssl_error_queue.TLS_CALLS.items() for name in names]
    listed = ", ".join(calls)
    code = (
        "import ssl; from buildtools.cluster.ssl_error_queue import install\n"
        f"before = [{listed}]\n"
        f"install(); once = [{listed}]; install()\n"
        f"after = [{listed}]\n"
        "print(all(w.__wrapped__ is b for w, b in zip(after, before)), once == after)"
    )
    assert python(code) == "True True"


def test_the_reproduction_reads_would_block_with_the_queue_cleared(tmp_path: Path) -> None:
    command = [sys.executable, reproduction.SCRIPT, *write_credentials(tmp_path), str(MODULE)]
    answer = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    assert answer == reproduction.CORRECT
