"""The TLS side of talking to ONTAP: one shared SSLContext per setting, a small read buffer.

Both matter at fleet scale: a context holds its own copy of the CA bundle, and asyncio's default
read buffer is sixteen times what an ONTAP answer needs (see below).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import os
import ssl
import weakref

from akv_exporter.config import TlsConfig

# asyncio gives every TLS connection a read buffer of SSLProtocol.max_size (256 KiB) the moment it
# opens: a thousand kept-alive ONTAP connections held 250 MiB of it, more than all the rest of
# the exporter. ONTAP's answers are a few KiB and TLS records hold 16 KiB at most, so a buffer of
# one record reads them in as few steps. (A class attribute read when a connection opens; other
# event loops, such as uvloop, keep their own buffers.)
TLS_READ_BUFFER = 16 * 1024
if getattr(asyncio.sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER

# One SSLContext per distinct TLS setting, shared by every cluster using it: each context holds its
# own copy of the CA bundle (about 0.8 MiB and milliseconds of CPU to load), which at a thousand
# clusters was most of the exporter's memory. Weak values: a setting no client uses any more is
# freed with its last client.
_TLS_CONTEXTS: weakref.WeakValueDictionary[tuple, ssl.SSLContext] = weakref.WeakValueDictionary()


def _file_version(path: os.PathLike | None) -> tuple | None:
    """Return what identifies a file's content cheaply, so a replaced file is read afresh."""
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return (str(path),)  # loading it raises the clear error
    return (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def tls_context(
    tls: TlsConfig, cert_file: os.PathLike | None = None, key_file: os.PathLike | None = None
) -> ssl.SSLContext:
    """Return the client SSLContext for these settings, shared with every cluster using them.

    Raises OSError or ssl.SSLError when a CA, certificate or key file cannot be loaded.
    """
    key = (tls, _file_version(tls.ca_file), _file_version(cert_file), _file_version(key_file))
    context = _TLS_CONTEXTS.get(key)
    if context is None:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if not tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cert_file:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        _TLS_CONTEXTS[key] = context
    return context
