"""The shared option groups reach the library as given: the seven plan options through `plan`
(pure, no engine), and the spec options through `up` with the deploy replaced by a fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from buildtools.cli import app


def test_every_plan_option_reaches_the_plan() -> None:
    argv = ["plan", "debian", "--registry", "r.example:5000", "-p", "linux/arm64", "--tag", "latest"]
    argv += ["--python", "3.13", "--base", "mirror", "--compression", "gzip"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    (target,) = plan["targets"]
    assert (plan["registry"], plan["base"], plan["compression"]) == ("r.example:5000", "mirror", "gzip")
    assert (target["image"], target["python"], target["platforms"]) == ("debian", "3.13", ["linux/arm64"])
    assert target["refs"][-1] == "r.example:5000/minimaldask/debian:latest-gzip"
    assert target["build_args"]["BASE_IMAGE"] == "r.example:5000/minimaldask/debian-base:trixie"


@pytest.mark.parametrize(("tls", "scheme"), [([], "tls"), (["--spec", "tcp.yaml"], "tcp")], ids=["tls", "tcp"])
def test_up_prints_the_in_cluster_addresses_of_the_spec_it_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tls: list[str], scheme: str
) -> None:
    from buildtools.cluster import deploy

    started: list[Any] = []

    @contextmanager
    def start_dask_cluster(spec: Any, **options: Any) -> Iterator[SimpleNamespace]:
        started.append(spec)
        yield SimpleNamespace(spec=spec)

    monkeypatch.setattr(deploy, "start_dask_cluster", start_dask_cluster)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tcp.yaml").write_text("tls: false\n")
    result = CliRunner().invoke(app, ["up", "demo", "-n", "ns", "--workers", "3", *tls])
    assert result.exit_code == 0, result.output
    ((spec,),) = [started]
    assert (spec.name, spec.namespace, spec.n_workers) == ("demo", "ns", 3)
    assert f"{scheme}://demo-scheduler.ns.svc:8786" in result.stdout
    assert "http://demo-scheduler.ns.svc:8787" in result.stdout
