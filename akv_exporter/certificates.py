"""The exporter's own HTTPS certificate: loaded and checked in one place, swappable while serving.

``check-config``, start-up and every reload load the files through ``server_context``, so a key
that does not match its certificate, an encrypted key or a file that is not PEM is one line
naming the key, never a traceback or a passphrase prompt on the terminal.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class CertificateProblem(ValueError):
    """The certificate or key cannot serve; ``key`` is the configuration key to blame."""

    def __init__(self, key: str, reason: str):
        super().__init__(reason)
        self.key = key


def _refuse_passphrase() -> str:
    # Without a callback OpenSSL would prompt "Enter PEM pass phrase:" on the terminal.
    raise CertificateProblem(
        "tls_key_file", "the key is encrypted (passphrase-protected); give an unencrypted key"
    )


def _looks_like(path: Path, marker: bytes) -> bool:
    try:
        return marker in path.read_bytes()
    except OSError:
        return False


# The exporter-toolkit's client_auth_type values that verify what a client presents. Its
# RequestClientCert and RequireAnyClientCert accept a certificate nobody verified: not offered.
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


def server_context(
    cert: Path,
    key: Path,
    *,
    client_auth_type: str = "NoClientCert",
    client_ca_file: Path | None = None,
    min_version: str | None = None,
    max_version: str | None = None,
) -> ssl.SSLContext:
    """Return a server TLS context serving ``cert`` with ``key``; CertificateProblem if not.

    With ``client_ca_file`` and a verifying ``client_auth_type``, a client must present (or,
    VerifyClientCertIfGiven, may present) a certificate that CA signed: mutual TLS.
    """
    context = _serving(cert, key)
    if client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(client_ca_file))
        except ssl.SSLError:
            raise CertificateProblem(
                "client_ca_file", f"{client_ca_file} holds no PEM CA certificate"
            ) from None
        except OSError as error:
            raise CertificateProblem(
                "client_ca_file", f"cannot read {client_ca_file}: {error.strerror}"
            ) from None
    context.verify_mode = CLIENT_AUTH_TYPES[client_auth_type]
    if min_version is not None:
        context.minimum_version = TLS_VERSIONS[min_version]
    if max_version is not None:
        context.maximum_version = TLS_VERSIONS[max_version]
    return context


def _serving(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key), password=_refuse_passphrase)
    except CertificateProblem:
        raise
    except OSError as error:
        if isinstance(error, ssl.SSLError):
            if error.reason == "KEY_VALUES_MISMATCH":
                raise CertificateProblem(
                    "tls_key_file", f"{key} is not the private key of {cert}"
                ) from None
            if not _looks_like(cert, b"-----BEGIN CERTIFICATE-----"):
                raise CertificateProblem(
                    "tls_cert_file", f"{cert} is not a PEM certificate"
                ) from None
            if not _looks_like(key, b"PRIVATE KEY-----"):
                raise CertificateProblem(
                    "tls_key_file", f"{key} is not a PEM private key"
                ) from None
            raise CertificateProblem(
                "tls_cert_file", f"cannot load {cert} with {key}: {error.reason or error}"
            ) from None
        which = "tls_key_file" if error.filename == str(key) else "tls_cert_file"
        raise CertificateProblem(which, f"cannot read {error.filename}: {error.strerror}") from None
    return context


class SwappableCertificate:
    """The context a listening socket was given; new handshakes use the latest loaded one.

    OpenSSL calls the server-name callback on every handshake (with no name when a client sends
    none, as for an IP address), so swapping ``current`` takes effect without re-binding.
    """

    def __init__(self, context: ssl.SSLContext):
        self.current = context
        self.serving = context
        context.sni_callback = self._choose

    def _choose(self, connection: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext):
        if self.current is not self.serving:
            connection.context = self.current
        return None

    def swap(self, context: ssl.SSLContext) -> None:
        self.current = context
