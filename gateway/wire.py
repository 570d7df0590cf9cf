"""Names on the wire: X-Road REST headers and the headers this node adds.

Header names are lower case here because Starlette and httpx compare them that way.
"""

from __future__ import annotations

from typing import Final

XROAD_CLIENT: Final = "x-road-client"
XROAD_ID: Final = "x-road-id"
XROAD_REQUEST_ID: Final = "x-road-request-id"
XROAD_REQUEST_HASH: Final = "x-road-request-hash"
XROAD_SERVICE: Final = "x-road-service"
XROAD_ERROR: Final = "x-road-error"
XROAD_USER_ID: Final = "x-road-userid"
XROAD_ISSUE: Final = "x-road-issue"

#: The purpose a client declares for reading data (a purpose id from config).
PURPOSE: Final = "x-road-purpose"
#: Set by the node towards the provider: the purpose id and version that allowed it.
PURPOSE_FORWARDED: Final = "x-mediator-purpose"

AUTHORIZATION: Final = "authorization"
CONTENT_TYPE: Final = "content-type"
CONTENT_LENGTH: Final = "content-length"
CONTENT_DIGEST: Final = "content-digest"
SIGNATURE: Final = "signature"
SIGNATURE_INPUT: Final = "signature-input"

#: Hop-by-hop headers (RFC 9110 section 7.6.1) and framing headers that the node
#: never copies from one side to the other: it frames every message itself.
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)

#: Request headers a client may send that reach the provider unchanged. Anything
#: else (credentials, cookies, forwarding claims, the client's own signature) stays
#: at the node.
FORWARDED_REQUEST_HEADERS: Final = frozenset(
    {
        "accept",
        "accept-language",
        "content-type",
        XROAD_CLIENT,
        XROAD_ID,
        XROAD_REQUEST_ID,
        XROAD_USER_ID,
        XROAD_ISSUE,
    }
)

#: Provider response headers that reach the client unchanged.
FORWARDED_RESPONSE_HEADERS: Final = frozenset(
    {"content-type", "content-language", "cache-control", "etag", "last-modified"}
)
