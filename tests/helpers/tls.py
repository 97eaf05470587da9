"""TLS helpers: a client that trusts a cluster's CA but shows no certificate of its own (what a
scheduler that requires mutual TLS answers it), and throwaway credentials in files."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from buildtools.cluster.credentials import generate


def write_credentials(directory: Path) -> list[str]:
    """CERT, KEY, CA of a throwaway cluster, readable by any container user (unlike a real
    cluster's key, 0600)."""
    credentials = generate("throwaway", "tests")
    paths = {"tls.crt": credentials.certificate, "tls.key": credentials.key, "ca.crt": credentials.ca}
    for name, text in paths.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o644)
    return [str(directory / name) for name in paths]


def read_without_a_client_certificate(host: str, port: int, ca: str, timeout: float = 30) -> bytes:
    """Connect and read; raises ssl.SSLError when the server demands a client certificate (with
    TLS 1.3 the server's refusal arrives after the client's side of the handshake, at the read)."""
    context = ssl.create_default_context(cadata=ca)
    context.check_hostname = False  # as Dask: the cluster's own CA, addresses rather than names
    with socket.create_connection((host, port), timeout=timeout) as raw, context.wrap_socket(raw) as conn:
        return conn.recv(1)
