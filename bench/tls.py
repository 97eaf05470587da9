"""What TLS costs: the same local Dask cluster over tcp:// and over tls:// in one run, and the ratio.

TLS is what a cluster with a TLS Secret runs (docs/TLS.md): mutual TLS with the cluster's own key
and self-signed certificate (`buildtools.cluster.credentials.generate`), one certificate for the
scheduler, the workers and the client, encryption required; the scheduler and workers read it from
files (as from the mounted Secret), the client gets it in memory (`Credentials.security()`).

Both clusters run side by side for the whole run, the same shape: a scheduler and two worker
processes (LocalCluster with nannies, one thread per worker, no dashboards), all on 127.0.0.1.
In every repetition the two modes take turns, the first one alternating, so that the machine's
noise falls on both. Measured (sync API, as a user's script):
- connect: a new Client until it is connected (median of --connects);
- round trip: `client.submit(inc, i).result()`, one after the other (median of --round-trips);
- transfer: --size-mb of random bytes in --chunks numpy arrays made on worker A, then one task
  pinned to worker B that takes them all: from its submission to its result (median of
  --transfers; the data is made anew and released between repetitions, not timed). MB/s = size
  over that time. Comms compression is distributed's default (off); random bytes would not
  compress anyway.
Prints a table and JSON.

usage: python -m bench.tls [--size-mb 1000] [--chunks 8] [--connects 10] [--round-trips 200] [--transfers 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import distributed
import numpy as np
from distributed import Client, LocalCluster, wait
from distributed.security import Security

from buildtools.cluster.contract import TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE
from buildtools.cluster.credentials import Credentials, generate

MODES = ("tcp", "tls")
HOST = "127.0.0.1"
TIMEOUT = 60


def inc(x: int) -> int:
    return x + 1


def random_chunk(nbytes: int) -> np.ndarray:
    """Random, so that no comms compression someone configures could shrink what moves."""
    return np.frombuffer(np.random.default_rng().bytes(nbytes), dtype=np.uint8)


def total_nbytes(*arrays: np.ndarray) -> int:
    return sum(array.nbytes for array in arrays)


def server_security(credentials: Credentials, directory: Path) -> Security:
    """What a TLS cluster's pods get (buildtools.cluster.environment.tls_env): the Secret's files,
    one certificate for every role. The client's pair is for LocalCluster's own connection to its
    scheduler, which mutual TLS also checks."""
    texts = {TLS_CA_FILE: credentials.ca, TLS_CERT_FILE: credentials.certificate, TLS_KEY_FILE: credentials.key}
    for name, text in texts.items():
        (directory / name).write_text(text)
    (directory / TLS_KEY_FILE).chmod(0o600)
    ca, cert, key = (str(directory / name) for name in texts)
    return Security(
        tls_ca_file=ca,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
        tls_client_cert=cert,
        tls_client_key=key,
        require_encryption=True,
    )


@contextmanager
def clusters() -> Iterator[dict[str, tuple[str, Security]]]:
    """Both clusters, as mode -> (scheduler address, a client's Security)."""
    credentials = generate("bench", "tls")
    client_security = {"tcp": Security(), "tls": credentials.security()}
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-tls-")))
        server = {"tcp": Security(), "tls": server_security(credentials, directory)}
        addresses = {}
        for mode in MODES:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    processes=True,
                    host=HOST,
                    protocol=f"{mode}://",
                    security=server[mode],
                    dashboard_address=None,
                    # No dashboard, but its HTTP server (health, metrics) always starts: on HOST, any free port.
                    scheduler_kwargs={"dashboard_address": f"{HOST}:0"},
                )
            )
            addresses[mode] = cluster.scheduler_address
            assert addresses[mode].startswith(f"{mode}://{HOST}:"), addresses[mode]
        yield {mode: (addresses[mode], client_security[mode]) for mode in MODES}


def connect(address: str, security: Security) -> Client:
    return Client(address, security=security, timeout=TIMEOUT, set_as_default=False)


def connect_ms(address: str, security: Security) -> float:
    started = time.perf_counter()
    client = connect(address, security)
    seconds = time.perf_counter() - started
    client.close()
    return seconds * 1000


def round_trip_ms(client: Client, i: int) -> float:
    started = time.perf_counter()
    assert client.submit(inc, i, pure=False).result(timeout=TIMEOUT) == i + 1
    return (time.perf_counter() - started) * 1000


def transfer_s(client: Client, size: int, chunks: int) -> float:
    """Seconds for worker B to fetch `size` bytes from worker A and run a task on them."""
    a, b = sorted(client.scheduler_info()["workers"])
    parts = [client.submit(random_chunk, size // chunks, workers=[a], pure=False) for _ in range(chunks)]
    with client.as_current():  # wait() takes the current client, and none is the default
        wait(parts, timeout=TIMEOUT)
    started = time.perf_counter()
    moved = client.submit(total_nbytes, *parts, workers=[b], pure=False).result(timeout=TIMEOUT)
    seconds = time.perf_counter() - started
    assert moved == size // chunks * chunks, moved
    del parts
    # Both workers drop their copies before the next repetition, so that memory stays flat.
    deadline = time.monotonic() + TIMEOUT
    while any(client.has_what().values()):
        if time.monotonic() > deadline:
            raise TimeoutError("the workers still hold the transferred data")
        time.sleep(0.05)
    return seconds


def interleaved(repetitions: int, measure: Callable[[str, int], float]) -> dict[str, list[float]]:
    """measure(mode, i) for both modes in each repetition, the first mode alternating."""
    runs: dict[str, list[float]] = {mode: [] for mode in MODES}
    for i in range(repetitions):
        for mode in MODES if i % 2 == 0 else MODES[::-1]:
            runs[mode].append(measure(mode, i))
    return runs


def figure(runs: dict[str, list[float]], digits: int) -> dict[str, object]:
    medians = {mode: statistics.median(runs[mode]) for mode in MODES}
    return {
        **{mode: round(medians[mode], digits) for mode in MODES},
        "ratio": round(medians["tls"] / medians["tcp"], 2),
        "runs": {mode: [round(value, digits) for value in runs[mode]] for mode in MODES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000, help="moved from worker A to B (MB = 10^6 bytes)")
    parser.add_argument("--chunks", type=int, default=8, help="numpy arrays adding up to --size-mb")
    parser.add_argument("--connects", type=int, default=10)
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--transfers", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mb * 10**6

    with clusters() as endpoints, ExitStack() as stack:
        clients = {mode: stack.enter_context(connect(*endpoints[mode])) for mode in MODES}
        for client in clients.values():
            client.wait_for_workers(2, timeout=TIMEOUT)
        connects = interleaved(args.connects, lambda mode, _: connect_ms(*endpoints[mode]))
        trips = interleaved(args.round_trips, lambda mode, i: round_trip_ms(clients[mode], i))
        transfers = interleaved(args.transfers, lambda mode, _: transfer_s(clients[mode], size, args.chunks))

    rates = {mode: [args.size_mb / seconds for seconds in transfers[mode]] for mode in MODES}
    results = {
        "connect_ms": figure(connects, 2),
        "round_trip_ms": figure(trips, 3),
        "transfer_s": figure(transfers, 3),
        "transfer_mb_s": figure(rates, 1),
    }
    rows = (
        (f"connect, ms (median of {args.connects})", "connect_ms"),
        (f"task round trip, ms (median of {args.round_trips})", "round_trip_ms"),
        (f"{args.size_mb} MB worker to worker, s (median of {args.transfers})", "transfer_s"),
        (f"{args.size_mb} MB worker to worker, MB/s", "transfer_mb_s"),
    )
    width = max(len(label) for label, _ in rows)
    print(f"distributed {distributed.__version__}; 1 scheduler + 2 worker processes on {HOST} for each mode")
    print(f"{'figure':<{width}} | {'tcp':>8} | {'tls':>8} | {'tls/tcp':>7}")
    for label, key in rows:
        row = results[key]
        print(f"{label:<{width}} | {row['tcp']:>8} | {row['tls']:>8} | {row['ratio']:>7}")
    print(
        json.dumps(
            {
                "distributed": distributed.__version__,
                "size_mb": args.size_mb,
                "chunks": args.chunks,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
