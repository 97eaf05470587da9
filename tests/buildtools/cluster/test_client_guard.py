"""The scheduler's Python-minor guard (client_guard.py), preloaded into a real in-process
scheduler. The real cross-minor case (this host's Python 3.11 client against the 3.13 image)
is tests/images/test_debian_container.py and tests/e2e; here the other minor is simulated."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from distributed import Client, Scheduler, Worker, versions

from buildtools.cluster import client_guard
from buildtools.cluster.client_guard import mismatch_message, own_minor, python_minor

GUARD = client_guard.__file__


def test_python_minor_of_a_versions_answer() -> None:
    assert python_minor({"host": {"python": "3.13.5.final.0", "OS": "Linux"}}) == "3.13"
    assert python_minor({"host": {}}) is None


def test_the_message_names_both_minors_the_tag_and_the_way_out() -> None:
    message = mismatch_message("this Dask scheduler", "3.13", "3.11", "PYTHON_MISMATCH=allow lets it in")
    assert "runs Python 3.13, this client Python 3.11" in message
    assert "-py3.11)" in message and message.endswith("PYTHON_MISMATCH=allow lets it in")


def guarded_scheduler() -> Scheduler:
    return Scheduler(host="127.0.0.1", port=0, dashboard=False, preload=[GUARD])


def test_a_client_of_the_schedulers_minor_computes() -> None:
    async def compute() -> int:
        async with (
            guarded_scheduler() as scheduler,
            Worker(scheduler.address, nthreads=1),
            Client(scheduler.address, asynchronous=True, timeout=30) as client,
        ):
            return int(await client.submit(sum, [20, 22]))

    assert asyncio.run(compute()) == 42


def test_a_client_of_another_minor_is_refused_at_connect_before_any_task_and_no_worker_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = "3.99"
    real = versions.get_versions

    def reported() -> dict[str, Any]:  # a SIMULATED client of another minor: only its versions answer differs
        answer = real()
        return {**answer, "host": {**answer["host"], "python": f"{other}.0.final.0"}}

    async def refused() -> tuple[str, int, list[str], int]:
        async with guarded_scheduler() as scheduler, Worker(scheduler.address, nthreads=1):
            monkeypatch.setattr(versions, "get_versions", reported)
            with pytest.raises(ImportError) as refusal:
                await Client(scheduler.address, asynchronous=True, timeout=30)
            return str(refusal.value), len(scheduler.tasks), list(scheduler.clients), len(scheduler.workers)

    message, tasks, clients, workers = asyncio.run(refused())
    assert f"runs Python {own_minor()}, this client Python {other}:" in message and "PYTHON_MISMATCH=allow" in message
    assert (tasks, clients, workers) == (0, ["fire-and-forget"], 1)
