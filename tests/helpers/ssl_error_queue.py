"""python/cpython#148594, reproduced in one process: two TLS connections served by one thread;
a write on the first fails (its peer reset it), then a read on the second, which has nothing
to read yet, must say "would block" (ssl.SSLWantReadError). Prints what it said instead.

Run as a script (`python - CERT KEY CA [PRELOAD]`, standard library only, so that it runs in
the images): PRELOAD is a path to buildtools/cluster/ssl_error_queue.py to install first."""

from __future__ import annotations

import runpy
import socket
import ssl
import struct
import sys
import threading

SCRIPT = __file__
CORRECT = "SSLWantReadError"


def connected_pair(
    listener: socket.socket, server: ssl.SSLContext, client: ssl.SSLContext
) -> tuple[ssl.SSLSocket, ...]:
    """(server side, client side) of one TLS connection over loopback, handshake done."""
    accepted: list[ssl.SSLSocket] = []
    thread = threading.Thread(
        target=lambda: accepted.append(server.wrap_socket(listener.accept()[0], server_side=True))
    )
    thread.start()
    client_side = client.wrap_socket(socket.create_connection(listener.getsockname()), server_hostname="localhost")
    thread.join()
    return accepted[0], client_side


def second_read_after_first_write_failed(cert: str, key: str, ca: str) -> str:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(ca)
    client.check_hostname = False
    with socket.create_server(("127.0.0.1", 0)) as listener:
        first, first_peer = connected_pair(listener, server, client)
        second, second_peer = connected_pair(listener, server, client)  # kept open to the end
        first_peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        first_peer.close()  # a reset, as a nanny that went away
        try:
            for _ in range(100):
                first.send(b"x" * 65536)
        except OSError:
            pass
        second.setblocking(False)
        try:
            second.recv(10)
        except OSError as error:  # SSLWantReadError is one
            return type(error).__name__
        finally:
            second_peer.close()
        return "data"


if __name__ == "__main__":
    if len(sys.argv) > 4:
        runpy.run_path(sys.argv[4])["install"]()
    print(second_read_after_first_write_failed(*sys.argv[1:4]))
