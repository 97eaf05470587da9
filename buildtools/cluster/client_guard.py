"""The scheduler refuses a client whose Python minor is not its own.

A function defined in a client's script is pickled by value, as that Python's bytecode: a
scheduler or worker on another minor fails on it (an IndexError in `dis`, workers that die
one after the other), and the whole cluster is lost. The entrypoint preloads this file into
every scheduler (`dask scheduler --preload`; PYTHON_MISMATCH=allow leaves it out), so a plain
`distributed.Client` of another minor is refused at `register-client`, before it can send a
task: Dask's Client raises the scheduler's message as an ImportError at connect.

Only the standard library and distributed: this one file is copied into every image, and the
cluster handle (handle.py) words its own, earlier check with `mismatch_message`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import distributed

# Under "distributed": the scheduler's log configuration formats and shows it.
logger = logging.getLogger("distributed.minimaldask.client_guard")

ALLOW_VARIABLE = "PYTHON_MISMATCH"


def own_minor() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def python_minor(versions: dict[str, Any] | None) -> str | None:
    """ "3.13" from a `get_versions()` answer ({"host": {"python": "3.13.5.final.0", ...}})."""
    python = ((versions or {}).get("host") or {}).get("python")
    return ".".join(str(python).split(".")[:2]) if python else None


def mismatch_message(where: str, server: str, client: str, skip: str) -> str:
    """One wording for the scheduler's refusal and the handle's check."""
    return (
        f"{where} runs Python {server}, this client Python {client}: functions pickled here can crash "
        f"its scheduler. Use the image of your Python (tag {distributed.__version__}-py{client}), "
        f"or a client on Python {server}; {skip}"
    )


def dask_setup(scheduler: Any) -> None:
    """Wrap the scheduler's `register-client` handler with the check."""
    register = scheduler.handlers["register-client"]

    # `comm` first: distributed's server passes the connection to handlers that name it so.
    async def add_client(comm: Any, client: str, versions: dict[str, Any], **kwargs: Any) -> None:
        theirs = python_minor(versions)
        if theirs is None or theirs == own_minor():
            await register(comm, client=client, versions=versions, **kwargs)
            return
        message = mismatch_message(
            "this Dask scheduler", own_minor(), theirs, f"{ALLOW_VARIABLE}=allow on the scheduler lets such clients in"
        )
        logger.warning("refused client %s from %s: Python %s", client, comm.peer_address, theirs)
        # The first message a Client reads; its "error" is raised at connect.
        await comm.write([{"op": "stream-start", "error": message}])
        await comm.close()

    scheduler.handlers["register-client"] = add_client
    logger.info("clients must run Python %s (%s=allow lifts this)", own_minor(), ALLOW_VARIABLE)
