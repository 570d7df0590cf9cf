"""C27, C29, C32 end to end: hostile bearer tokens are 401 with the fixed envelope,
``WWW-Authenticate``, no echo of the token and a record without a client id."""

from __future__ import annotations

import base64

import pytest

from tests.gateway.conftest import Harness
from tests.gateway.hostile.support import SCHOOLS, send

pytestmark = pytest.mark.anyio


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


CLAIMS = _b64(
    b'{"iss":"WB/GOV/BCW/saboojsathi","sub":"WB/GOV/BCW/saboojsathi",'
    b'"aud":"x","exp":1796378700,"iat":1796378340,"jti":"j1"}'
)


def _jws(header: str, signature: str) -> str:
    return f"{_b64(header.encode())}.{CLAIMS}.{signature}"


DEEP_HEADER = _b64(b'{"alg":"EdDSA","kid":"k","x":' + b"[" * 1500 + b"]" * 1500 + b"}")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(_jws('{"alg":"none","typ":"JWT"}', ""), id="C27-none"),
        pytest.param(_jws('{"alg":"None"}', ""), id="C27-None"),
        pytest.param(_jws('{"alg":"NONE"}', "c2ln"), id="C27-NONE-garbage-signature"),
        pytest.param(_jws('{"alg":""}', "c2ln"), id="C27-empty"),
        pytest.param(_jws('{"typ":"JWT"}', "c2ln"), id="C27-no-alg"),
        pytest.param(_jws('{"alg":"none"}', "")[:-1], id="C27-two-segments"),
        pytest.param(
            _jws('{"alg":"HS256","kid":"../../../../dev/null"}', "c2ln"),
            id="C29-kid-path",
        ),
        pytest.param(
            _jws('{"alg":"EdDSA","kid":"k","jku":"http://127.0.0.1:9/j"}', "c2ln"),
            id="C29-jku",
        ),
        pytest.param(f"{DEEP_HEADER}.{CLAIMS}.c2ln", id="C23-deep-header"),
        pytest.param("a.b.c.d.e", id="C32-jwe"),
        pytest.param('{"protected":"a","payload":"b","signature":"c"}', id="C32-json"),
    ],
)
async def test_hostile_tokens_are_401_without_echo(
    harness: Harness, token: str
) -> None:
    response = await send(
        harness,
        "GET",
        f"/{SCHOOLS}/19110900503",
        client=None,
        headers={
            "authorization": f"Bearer {token}",
            "x-road-client": "WB/GOV/BCW/saboojsathi",
        },
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert token[:40] not in response.body.decode()
    assert set(response.json()) == {"type", "message", "detail"}
    (record,) = await harness.exchanges()
    assert record["client_id"] is None
    assert record["upstream_called"] is False


async def test_an_oversized_authorization_header_is_refused_before_parsing(
    harness: Harness,
) -> None:
    response = await send(
        harness,
        "GET",
        f"/{SCHOOLS}/19110900503",
        client=None,
        headers={"authorization": "Bearer " + "a" * 200_000},
    )

    assert response.status_code in {401, 431}
    (record,) = await harness.exchanges()
    assert record["upstream_called"] is False
