"""Clears OpenSSL's error queue before every TLS call of this process's `ssl` module.

OpenSSL keeps one error queue per thread and asks the caller to empty it before each TLS call
(SSL_get_error(3)); CPython's `ssl` does not (python/cpython#148594). With OpenSSL 3.5 (Debian
trixie's Python 3.13, the default image) one failed write leaves an entry behind, and the next
read on ANOTHER connection of that thread that has nothing to read yet fails with the first
one's error (reproduced in tests/buildtools/cluster/test_ssl_error_queue.py). A Dask scheduler
serves every connection from one thread: on the test node, each nanny that closed its
connection before the scheduler's answer to `register_nanny` (EPIPE) took down whichever
client or worker connection read next, and TLS clusters lost their clients when a worker
joined. Emptying the queue first is what OpenSSL documents, and costs one C call.

The images' entrypoint preloads this file (as /usr/local/lib/minimaldask-ssl-error-queue.py)
into every scheduler, nanny and worker; the handle calls `install` in the client's process
before it connects over TLS.
"""

from __future__ import annotations

import _ssl
import ctypes
import functools
import ssl
from collections.abc import Callable
from typing import Any

# The calls that run SSL_read, SSL_write, SSL_do_handshake or SSL_shutdown (SSLSocket.send
# and SSLSocket.write call SSL_write directly; recv and recv_into go through read).
TLS_CALLS: dict[type, tuple[str, ...]] = {
    ssl.SSLSocket: ("read", "write", "send", "do_handshake", "unwrap"),
    ssl.SSLObject: ("read", "write", "do_handshake", "unwrap"),
}
INSTALLED = "_minimaldask_clears_error_queue"


def err_clear_error() -> Callable[[], None]:
    """OpenSSL's ERR_clear_error, from the libcrypto that _ssl is linked with (or that the
    interpreter itself holds, when _ssl is built in)."""
    function = ctypes.CDLL(getattr(_ssl, "__file__", None)).ERR_clear_error
    function.argtypes, function.restype = [], None
    return function  # type: ignore[no-any-return]


def clearing_first(method: Callable[..., Any], clear: Callable[[], None]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        clear()
        return method(self, *args, **kwargs)

    return call


def install() -> None:
    """Wrap the TLS calls of this process (once; later calls do nothing)."""
    if getattr(ssl.SSLSocket, INSTALLED, False):
        return
    clear = err_clear_error()
    for cls, names in TLS_CALLS.items():
        for name in names:
            setattr(cls, name, clearing_first(getattr(cls, name), clear))
    setattr(ssl.SSLSocket, INSTALLED, True)


def dask_setup(server: object) -> None:
    """As a Dask preload: before the server's first connection is served (the wrapped calls are
    the classes', so connections made earlier are covered from then on)."""
    install()
