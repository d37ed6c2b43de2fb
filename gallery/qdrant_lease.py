"""One writer per Qdrant gallery: a lease recorded on the manifest point.

A server has no lock a client can hold, so a writer records ``{"owner", "expires"}`` in the
manifest point's payload, renews it while it writes (past half its life) and at every commit,
and removes it at close. A commit first reads the lease back: a writer whose lease lapsed and
was taken by another gets ``GalleryBusyError`` instead of committing over it. A second writer
waits for the lease up to its timeout, then gets ``GalleryBusyError`` (exit 5); a lease whose
writer died expires after ``LEASE_SECONDS``. Qdrant has no compare-and-set, so the taker reads
the lease back: two writers starting within the same instant can still both pass (ADR 0008).
Local mode needs none of this: its storage folder is locked by the one process that opened it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sketchsearch.gallery.errors import GalleryBusyError
from sketchsearch.gallery.qdrant_ref import QdrantRef

LEASE_SECONDS = 600.0  # a crashed writer blocks others this long at most
POLL_SECONDS = 0.25


@dataclass
class Lease:
    client: Any
    ref: QdrantRef
    point: str
    owner: str
    expires: float

    @classmethod
    def take(
        cls,
        client: Any,
        ref: QdrantRef,
        point: str,
        timeout: float,
        exists: bool = True,
        enforce: bool | None = None,
    ) -> Lease | None:
        """The lease on ``point`` (None in local mode unless ``enforce``); waits up to
        ``timeout`` seconds for another writer's lease to end or expire."""
        if not (not ref.local if enforce is None else enforce):
            return None
        lease = cls(client, ref, point, uuid.uuid4().hex, time.time() + LEASE_SECONDS)
        if not exists:  # a new collection: the first commit writes the lease with the point
            return lease
        deadline = time.monotonic() + timeout
        while (holder := lease.holder()) is not None:
            if time.monotonic() >= deadline:
                raise GalleryBusyError(
                    f"{ref.text}: another writer holds the gallery (lease {holder[:8]}…, "
                    f"until {time.strftime('%H:%M:%S', time.localtime(lease.held_until()))}); "
                    "try again when it is done"
                )
            time.sleep(POLL_SECONDS)
        client.set_payload(ref.collection, cls.payload_of(lease), points=[point], wait=True)
        if lease.holder() is not None:  # another writer wrote its lease just after ours
            raise GalleryBusyError(f"{ref.text}: another writer took the gallery just now")
        return lease

    @staticmethod
    def payload_of(lease: Lease | None) -> dict[str, Any]:
        if lease is None:
            return {}
        lease.expires = time.time() + LEASE_SECONDS
        return {"lease": {"owner": lease.owner, "expires": lease.expires}}

    def check(self) -> None:
        """Still ours (expired or not: nobody else took it), or ``GalleryBusyError``."""
        owner = self._recorded().get("owner")
        if owner != self.owner:
            raise GalleryBusyError(
                f"{self.ref.text}: this writer's lease lapsed and "
                f"{'another writer took it' if owner else 'it was removed'}; nothing was "
                "committed: open the gallery again and redo the change"
            )

    def renew_if_due(self) -> None:
        """During a long write: past half its life, check the lease and extend it."""
        if self.expires - time.time() > LEASE_SECONDS / 2:
            return
        self.check()
        payload = self.payload_of(self)
        self.client.set_payload(self.ref.collection, payload, points=[self.point], wait=True)

    def _recorded(self) -> dict[str, Any]:
        found = self.client.retrieve(self.ref.collection, [self.point], with_payload=True)
        raw = (found[0].payload or {}).get("lease") if found else None
        return raw if isinstance(raw, dict) else {}

    def holder(self) -> str | None:
        """Another writer's live lease on the point, or None."""
        raw = self._recorded()
        owner, expires = raw.get("owner"), raw.get("expires")
        if not isinstance(owner, str) or owner == self.owner:
            return None
        return owner if isinstance(expires, int | float) and expires > time.time() else None

    def held_until(self) -> float:
        expires = self._recorded().get("expires")
        return float(expires) if isinstance(expires, int | float) else 0.0

    def release(self) -> None:
        if self._recorded().get("owner") == self.owner:
            self.client.delete_payload(self.ref.collection, ["lease"], points=[self.point])
