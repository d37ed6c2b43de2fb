"""One error shape for every endpoint: ``{"error": one line, "kind": stable word, "status": N}``.

``error`` is the same one-line message the command line prints for the same problem (an
undecodable image, a bomb, a missing file), so a client can show it as is; ``kind`` is for
programs and never changes once released.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "upload_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "bad_image",
    500: "internal",
    503: "overloaded",
}


@dataclass
class ApiError(Exception):
    """An answer other than 200, raised anywhere in a request and written by the app."""

    status: int
    message: str
    kind: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if not self.kind:
            self.kind = KINDS.get(self.status, "error")

    def body(self) -> dict[str, object]:
        return error_body(self.status, self.message, self.kind)


def error_body(status: int, message: str, kind: str | None = None) -> dict[str, object]:
    """The JSON error object; a message is kept to its first line."""
    line = message.strip().splitlines()[0] if message.strip() else KINDS.get(status, "error")
    return {"error": line, "kind": kind or KINDS.get(status, "error"), "status": status}


class UploadTooLarge(Exception):
    """Raised from the request body's stream once it passes the upload limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"upload larger than the limit of {limit} bytes (--max-upload-mb)")
        self.limit = limit


class UploadStalled(Exception):
    """Raised from the request body's stream when no byte arrived for the idle limit."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the upload stalled: no data for {seconds:g} s (--upload-timeout); send it again"
        )
