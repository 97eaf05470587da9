"""A TLS client that trusts a cluster's CA but shows no certificate of its own: what a scheduler
that requires mutual TLS answers it."""

from __future__ import annotations

import socket
import ssl


def read_without_a_client_certificate(host: str, port: int, ca: str, timeout: float = 30) -> bytes:
    """Connect and read; raises ssl.SSLError when the server demands a client certificate (with
    TLS 1.3 the server's refusal arrives after the client's side of the handshake, at the read)."""
    context = ssl.create_default_context(cadata=ca)
    context.check_hostname = False  # as Dask: the cluster's own CA, addresses rather than names
    with socket.create_connection((host, port), timeout=timeout) as raw, context.wrap_socket(raw) as conn:
        return conn.recv(1)
