"""A cluster's own TLS credentials: a real scheduler and worker in this process speak tls://
with them; a client without them, or with another cluster's, is refused."""

from __future__ import annotations

import asyncio
import base64
import ssl

import pytest
from distributed import Client, Scheduler, Worker
from distributed.security import Security

from buildtools.cluster.credentials import Credentials, from_secret, generate
from buildtools.errors import ConfigError
from tests.helpers.tls import read_without_a_client_certificate

CREDENTIALS = generate("demo", "data")


def server_security(credentials: Credentials) -> Security:
    return Security(
        tls_ca_file=credentials.ca,
        tls_scheduler_cert=credentials.certificate,
        tls_scheduler_key=credentials.key,
        tls_worker_cert=credentials.certificate,
        tls_worker_key=credentials.key,
        require_encryption=True,
    )


def tls_cluster() -> Scheduler:
    return Scheduler(host="tls://127.0.0.1", port=0, dashboard=False, security=server_security(CREDENTIALS))


async def compute_as(client_security: Security, timeout: float) -> int:
    async with (
        tls_cluster() as scheduler,
        Worker(scheduler.address, nthreads=1, security=server_security(CREDENTIALS)),
        Client(scheduler.address, asynchronous=True, timeout=timeout, security=client_security) as client,
    ):
        assert scheduler.address.startswith("tls://")
        return int(await client.submit(sum, [20, 22]))


def test_a_client_with_the_clusters_credentials_computes_over_tls() -> None:
    assert asyncio.run(compute_as(CREDENTIALS.security(), timeout=60)) == 42


def test_a_client_with_another_clusters_certificate_is_refused() -> None:
    with pytest.raises((OSError, TimeoutError)):
        asyncio.run(compute_as(generate("other", "data").security(), timeout=5))  # retried until then


def test_a_connection_without_a_client_certificate_or_without_tls_gets_nothing() -> None:
    async def attempts() -> tuple[str, str]:
        async with tls_cluster() as scheduler:
            port = int(scheduler.address.rsplit(":", 1)[1])
            with pytest.raises(ssl.SSLError) as no_certificate:
                await asyncio.to_thread(read_without_a_client_certificate, "127.0.0.1", port, CREDENTIALS.ca)
            with pytest.raises((OSError, TimeoutError)) as plain_tcp:
                await Client(f"tcp://127.0.0.1:{port}", asynchronous=True, timeout=3)
            return str(no_certificate.value), type(plain_tcp.value).__name__

    no_certificate, plain_tcp = asyncio.run(attempts())
    assert "CERTIFICATE_REQUIRED" in no_certificate.upper(), no_certificate
    print(f"without a client certificate: {no_certificate}; over tcp://: {plain_tcp}")


def test_the_secret_holds_the_credentials_and_gives_them_back_with_nothing_in_their_repr() -> None:
    secret = {"metadata": {"name": "demo-tls"}, "data": CREDENTIALS.secret_data()}
    back = from_secret(secret)
    assert (back.ca, back.certificate, back.key) == (CREDENTIALS.ca, CREDENTIALS.certificate, CREDENTIALS.key)
    assert base64.b64decode(secret["data"]["tls.key"]).decode().startswith("-----BEGIN PRIVATE KEY-----")
    assert "PRIVATE" not in repr(back) and "CERTIFICATE" not in repr(back)


def test_a_secret_without_the_files_is_a_one_line_error() -> None:
    with pytest.raises(
        ConfigError, match=r"^TLS Secret mine has no tls\.key: it needs ca\.crt, tls\.crt and tls\.key$"
    ):
        from_secret({"metadata": {"name": "mine"}, "data": {"ca.crt": "eA==", "tls.crt": "eA=="}})
