"""The exporter's listening socket, which a reload can move, secure or re-certify.

A reload re-reads the certificate files (as cert-manager and ACME clients replace them in place)
and the clients' CA, switches between HTTP and HTTPS, and follows a changed ``web.listen``; only
an address given by ``--web.listen-address`` on the command line stays until a restart.
"""

from __future__ import annotations

import logging
import os

from aiohttp import web

from akv_exporter.certificates import SwappableCertificate, server_context
from akv_exporter.config import WebConfig

log = logging.getLogger(__name__)


class ListenError(OSError):
    """The socket cannot be bound; ``strerror`` says why in a few words (no errno, no tuple)."""


def listen_error(error: OSError) -> ListenError:
    """Return ``error`` (aiohttp's bind failure, a resolver's gaierror) as a plain ListenError."""
    errno = error.errno if isinstance(error.errno, int) else 0
    reason = os.strerror(errno) if errno > 0 else (error.strerror or str(error))
    return ListenError(errno, reason)


class Listener:
    """One TCP site of ``runner``; ``apply`` brings it in line with a (re)loaded web section."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, follow_config: bool):
        self.runner = runner
        self.follow_config = follow_config  # False: the address came from --listen
        self.asked = (host, port)  # port 0 stays 0 here, so that a reload does not re-bind
        self.bound = (host, port)  # with the port actually bound, kept when only TLS changes
        self.site: web.TCPSite | None = None
        self.certificate: SwappableCertificate | None = None
        self.listen: str | None = None  # web.listen of the configuration last applied
        self.handshake: tuple = ()  # _handshake of the configuration last applied

    async def start(self, config: WebConfig) -> None:
        """Bind; OSError (address in use, unknown host) or CertificateProblem when it cannot."""
        await self._bind(*self.asked, self._certificate(config))
        self.listen = config.listen
        self.handshake = self._handshake(config)

    @staticmethod
    def _certificate(config: WebConfig) -> SwappableCertificate | None:
        if config.tls_cert_file is None or config.tls_key_file is None:
            return None
        context = server_context(
            config.tls_cert_file,
            config.tls_key_file,
            client_auth_type=config.client_auth_type,
            client_ca_file=config.client_ca_file,
            min_version=config.min_version,
            max_version=config.max_version,
        )
        return SwappableCertificate(context)

    @staticmethod
    def _handshake(config: WebConfig) -> tuple:
        """Return what a handshake asks beyond the certificate (client CAs, TLS versions).

        A new certificate is swapped in while serving; a change of these re-binds the socket,
        as OpenSSL takes them from the context the socket was made with.
        """
        try:
            authorities = config.client_ca_file.read_bytes() if config.client_ca_file else None
        except OSError:
            authorities = None  # server_context has just read it, or said why not
        versions = (config.min_version, config.max_version)
        return (config.client_auth_type, authorities, versions)

    async def _bind(self, host: str, port: int, certificate: SwappableCertificate | None) -> None:
        context = certificate.serving if certificate is not None else None
        site = web.TCPSite(self.runner, host, port, ssl_context=context, reuse_address=True)
        try:
            await site.start()
        except OSError as error:
            await site.stop()
            raise listen_error(error) from None
        except BaseException:
            await site.stop()
            raise
        self.site, self.certificate, self.bound = site, certificate, (host, site.port)

    async def apply(self, config: WebConfig) -> None:
        """Serve as ``config`` says: new certificate, HTTP <-> HTTPS, new address.

        On failure (CertificateProblem, OSError) the exporter keeps serving as before.
        """
        asked = config.host_port if self.follow_config else self.asked
        if not self.follow_config and config.listen != self.listen:
            log.warning(
                "web.listen changed to %s but --listen given at start-up keeps %s:%s;"
                " restart without --listen to use it",
                config.listen,
                *self.bound,
            )
        certificate = self._certificate(config)  # re-read even when the paths did not change
        handshake = self._handshake(config)
        self.listen = config.listen
        same_tls = (certificate is None) == (self.certificate is None)
        if asked == self.asked and same_tls and handshake == self.handshake:
            if certificate is not None and self.certificate is not None:
                self.certificate.swap(certificate.current)
            return
        old = (*self.bound, self.certificate)
        if self.site is not None:
            await self.site.stop()  # first: the new address may be the same port
        try:
            await self._bind(*(self.bound if asked == self.asked else asked), certificate)
        except OSError:
            await self._bind(*old)
            raise
        self.asked, self.handshake = asked, handshake
        scheme = "https" if certificate is not None else "http"
        log.info("now listening on %s://%s:%s", scheme, *self.addresses()[0][:2])

    def addresses(self) -> list:
        return self.runner.addresses
