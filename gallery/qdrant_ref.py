"""Where a Qdrant gallery lives: the two reference forms, parsed strictly.

- ``qdrant://HOST[:PORT]/COLLECTION``: a Qdrant server over HTTP (port 6333 by default);
  ``qdrants://…`` the same over HTTPS. An API key, if the server wants one, comes from
  ``$QDRANT_API_KEY``, never from the reference, and is only sent over HTTPS or to this machine.
- ``qdrant+local://PATH?collection=COLLECTION``: Qdrant's local mode, the storage folder
  ``PATH`` (everything between ``://`` and ``?``, taken literally but for a leading ``~``, the
  home folder: ``qdrant+local:///abs/q``, ``qdrant+local://rel/q``, ``qdrant+local://~/q``).
  One process at a time may open a local storage folder.

Anything else (a user name, a query on a server reference, an empty or odd collection name, a
control character) is a one-line ``UsageError`` that shows the form to use.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sketchsearch.data.errors import UsageError

SERVER_SCHEME = "qdrant"
TLS_SCHEME = "qdrants"
LOCAL_SCHEME = "qdrant+local"
SERVER_EXAMPLE = "qdrant://localhost:6333/photos (a Qdrant server)"
LOCAL_EXAMPLE = "qdrant+local://qdrant-data?collection=photos (Qdrant's local mode, one process)"
DEFAULT_PORT = 6333
API_KEY_ENV = "QDRANT_API_KEY"
# Qdrant refuses '/' and a few others in a collection name; we keep to a plain, portable set.
_COLLECTION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$")


@dataclass(frozen=True)
class QdrantRef:
    """A parsed reference: a server (``host``, ``port``) or a local folder (``path``)."""

    text: str  # the reference as given, for messages and ``GalleryStore.ref``
    collection: str
    host: str | None = None
    port: int = DEFAULT_PORT
    path: str | None = None  # local mode's storage folder
    https: bool = False

    @property
    def local(self) -> bool:
        return self.path is not None

    @property
    def url(self) -> str:
        """The server's URL; an IPv6 host goes in brackets there."""
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        """Whether the server is this machine (a key sent there over HTTP stays here)."""
        host = (self.host or "").lower()
        return host in ("localhost", "::1") or host.startswith("127.")


def parse_ref(text: str) -> QdrantRef:
    """The reference ``text`` names; a one-line ``UsageError`` when it is malformed."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageError(f"gallery {text!r}: control characters in a reference")
    scheme, _, rest = text.partition("://")
    if scheme.lower() == LOCAL_SCHEME:
        return _parse_local(text, rest)
    if scheme.lower() in (SERVER_SCHEME, TLS_SCHEME):
        return _parse_server(text, https=scheme.lower() == TLS_SCHEME)
    raise UsageError(f"gallery {text!r}: not a Qdrant reference; use {SERVER_EXAMPLE}")


def _parse_local(text: str, rest: str) -> QdrantRef:
    path, mark, query = rest.partition("?")
    wanted = f"use {LOCAL_EXAMPLE}"
    if not mark or not path or "#" in rest:
        raise UsageError(f"gallery {text!r}: a storage folder and ?collection=NAME; {wanted}")
    key, _, name = query.partition("=")
    if key != "collection" or "&" in name or not _COLLECTION.match(name):
        raise UsageError(
            f"gallery {text!r}: the query must be exactly collection=NAME (letters, digits, "
            f"'_', '-', '.'); {wanted}"
        )
    if path.startswith("~"):
        expanded = os.path.expanduser(path)
        if expanded.startswith("~"):
            raise UsageError(f"gallery {text!r}: no such home folder {path.split('/')[0]!r}")
        path = expanded
    return QdrantRef(text=text, collection=name, path=path)


def _parse_server(text: str, https: bool) -> QdrantRef:
    wanted = f"use {SERVER_EXAMPLE}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as err:
        raise UsageError(f"gallery {text!r}: {err}; {wanted}") from None
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            f"gallery {text!r}: no credentials in a reference (set ${API_KEY_ENV}); {wanted}"
        )
    if parts.query or parts.fragment or not parts.hostname:
        raise UsageError(f"gallery {text!r}: a host and a collection, nothing else; {wanted}")
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    name = parts.path[1:]
    if not _HOST.match(host) or not _COLLECTION.match(name):
        raise UsageError(
            f"gallery {text!r}: the collection is one name after the host (letters, digits, "
            f"'_', '-', '.'); {wanted}"
        )
    return QdrantRef(
        text=text,
        collection=name,
        host=parts.hostname,
        port=DEFAULT_PORT if port is None else port,
        https=https,
    )
