"""A minimal pure-Python wheel built by hand, so that container tests install a package with no index."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

WHEEL_PACKAGE = "hello_minimaldask"
GREETING = "hello"


def write_wheel(directory: Path) -> Path:
    """hello_minimaldask 1.0 (`GREETING = "hello"`), readable by any UID, in `directory`."""
    files = {
        f"{WHEEL_PACKAGE}/__init__.py": f'GREETING = "{GREETING}"\n',
        f"{WHEEL_PACKAGE}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {WHEEL_PACKAGE}\nVersion: 1.0\n",
        f"{WHEEL_PACKAGE}-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{WHEEL_PACKAGE}-1.0.dist-info/RECORD,,")
    wheel = directory / f"{WHEEL_PACKAGE}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{WHEEL_PACKAGE}-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    directory.chmod(0o755)  # the container's user is not the host's
    wheel.chmod(0o644)
    return wheel
