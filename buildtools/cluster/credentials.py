"""A cluster's own TLS credentials (docs/TLS.md): made at its first start, kept in a Secret that
the cluster owns (deleted with it), read back by a handle that attaches.

One self-signed certificate and its key serve every role (scheduler, workers, clients), as
dask-gateway and `distributed.security.Security.temporary` do: Dask checks the chain, not host
names, so the certificate is the cluster's identity and whoever holds the key is its member.
The material lives in memory and in the Secret only: never in an image, a log, an annotation
or a rendered manifest.
"""

from __future__ import annotations

import base64
import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildtools.cluster import labels
from buildtools.cluster.contract import TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE
from buildtools.cluster.kinds import SECRET
from buildtools.cluster.kube import Kube
from buildtools.cluster.lifecycle import require_stored_spec
from buildtools.cluster.specs import ClusterSpec, cluster_spec
from buildtools.errors import ConfigError, DeployError

# The Secret's keys and the mounted files, in the order of Credentials' fields.
FILES = (TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE)
# Long enough to outlive any cluster; the cluster's deletion ends the key's use.
VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True, repr=False)
class Credentials:
    """PEM texts; repr=False keeps the key out of tracebacks and logs."""

    ca: str
    certificate: str
    key: str

    def files(self) -> dict[str, str]:
        """The PEM texts under the file names the pods mount (the Secret's keys)."""
        return dict(zip(FILES, (self.ca, self.certificate, self.key), strict=True))

    def secret_data(self) -> dict[str, str]:
        """The Secret's data (base64)."""
        return {name: base64.b64encode(text.encode()).decode() for name, text in self.files().items()}

    def write(self, directory: Path) -> list[Path]:
        """ca.crt, tls.crt and tls.key in `directory` (made if missing), the key mode 0600."""
        directory.mkdir(parents=True, exist_ok=True)
        files = self.files()
        for name, text in files.items():
            mode = 0o600 if name == TLS_KEY_FILE else 0o644
            # The mode from the start (and again on an existing file): the key is never readable by others.
            descriptor = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(descriptor, "w") as file:
                os.fchmod(descriptor, mode)
                file.write(text)
        return [directory / name for name in files]

    def security(self) -> Any:
        """A `distributed.security.Security` for a client of the cluster (in memory, encryption required)."""
        from distributed.security import Security

        return Security(
            tls_ca_file=self.ca,
            tls_client_cert=self.certificate,
            tls_client_key=self.key,
            require_encryption=True,
        )


def generate(cluster: str, namespace: str) -> Credentials:
    """A new key and self-signed certificate for cluster `namespace/cluster`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"dask-{namespace}-{cluster}"[:64])])
    now = datetime.datetime.now(datetime.UTC)
    service = f"{cluster}-scheduler"
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", "localhost"]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks of nodes differ a little
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return Credentials(
        ca=pem,
        certificate=pem,
        key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def from_secret(secret: dict[str, Any]) -> Credentials:
    """The credentials a cluster's Secret holds; a Secret without them is a one-line error."""
    data = secret.get("data") or {}
    name = secret["metadata"]["name"]
    missing = [file for file in FILES if not data.get(file)]
    if missing:
        raise ConfigError(f"TLS Secret {name} has no {', '.join(missing)}: it needs ca.crt, tls.crt and tls.key")
    ca, certificate, key = (base64.b64decode(data[file]).decode() for file in FILES)
    return Credentials(ca=ca, certificate=certificate, key=key)


def secret_object(spec: ClusterSpec, credentials: Credentials) -> dict[str, Any]:
    """The Secret of a cluster's own credentials, labelled as its other objects are (so it is
    adopted by the cluster's root and deleted with the cluster)."""
    return {
        "apiVersion": SECRET.api_version,
        "kind": SECRET.name,
        "metadata": {
            "name": spec.tls_secret_name,
            "namespace": spec.namespace,
            "labels": {**spec.labels, **labels.cluster_labels(spec.name)},
        },
        "type": "kubernetes.io/tls",
        "data": credentials.secret_data(),
    }


def new_secret(kube: Kube, spec: ClusterSpec) -> dict[str, Any] | None:
    """The Secret a start must create: a new one for a cluster whose own Secret does not exist
    yet; None when TLS is off, the Secret is the user's, or it exists (its key is kept: the
    running pods and clients hold it)."""
    if not spec.owns_tls_secret or kube.get(SECRET, spec.tls_secret_name, spec.namespace) is not None:
        return None
    return secret_object(spec, generate(spec.name, spec.namespace))


def of_cluster_named(kube: Kube, name: str, namespace: str) -> Credentials:
    """The credentials of running cluster `namespace/name` (its spec read from the cluster)."""
    spec = cluster_spec(require_stored_spec(kube, name, namespace))
    if not spec.tls:
        raise ConfigError(f"cluster {namespace}/{name} runs without TLS (tls: false): it has no credentials")
    return of_cluster(kube, spec)


def of_cluster(kube: Kube, spec: ClusterSpec) -> Credentials:
    """A TLS cluster's credentials, read from its Secret."""
    secret = kube.get(SECRET, spec.tls_secret_name, spec.namespace)
    if secret is None:
        raise DeployError(
            f"cluster {spec.namespace}/{spec.name} uses TLS, but its Secret {spec.tls_secret_name} does not exist"
        )
    return from_secret(secret)
