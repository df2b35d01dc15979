"""A tiny JSON-over-HTTP GET for the live providers (urllib only, no new dependency).

Every failure becomes a :class:`ProviderError` with a short ``kind`` (``timeout``,
``network``, ``http_401``, ``http_429``, ``http_5xx``, ``http_4xx``, ``http_3xx``,
``malformed``) so the refresher can log once per kind and choose a retry delay.

Decisions:

* Messages carry the status and a short reason, never request headers, URLs with query
  strings or response bodies: a token must not reach a log line.
* Redirects are refused. urllib would forward our headers (``auth-token``,
  ``Authorization``) to whatever host a redirect names.
* Proxies from the environment are honoured (``build_opener`` reads them when the opener
  is built), as users behind a corporate proxy expect.
* ``timeout_s`` bounds each socket operation (connect, each read), which is what urllib
  offers; the body is read with a size cap so a hostile server cannot fill memory.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from http.client import HTTPException
from typing import Any, Dict, Mapping, Optional

MAX_BODY_BYTES = 1 << 20
USER_AGENT = "otel-carbon (+https://github.com/otel-carbon/otel-carbon)"


class ProviderError(Exception):
    """A live request failed; ``kind`` groups failures for logging and retry policy."""

    def __init__(self, kind: str, detail: str, retry_after_s: Optional[float] = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.retry_after_s = retry_after_s


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None  # urllib then raises HTTPError for the 3xx response


def build_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect())


def _retry_after_s(headers: Any) -> Optional[float]:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None  # an HTTP-date: ignored, the regular backoff applies


def _http_kind(code: int) -> str:
    if code in (401, 403, 429):
        return f"http_{code}"
    return f"http_{code // 100}xx"


def get_json(
    opener: urllib.request.OpenerDirector,
    url: str,
    headers: Mapping[str, str],
    timeout_s: float,
) -> Any:
    """GET ``url`` and return its decoded JSON body, or raise :class:`ProviderError`."""
    all_headers: Dict[str, str] = {"Accept": "application/json", "User-Agent": USER_AGENT}
    all_headers.update(headers)
    request = urllib.request.Request(url, headers=all_headers, method="GET")
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body = response.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        retry_after = _retry_after_s(exc.headers) if exc.code in (429, 503) else None
        exc.close()
        raise ProviderError(_http_kind(exc.code), f"HTTP {exc.code} {exc.reason}", retry_after) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (socket.timeout, TimeoutError)):
            raise ProviderError("timeout", f"no answer within {timeout_s:g} s") from None
        raise ProviderError("network", f"{type(exc.reason).__name__}: {exc.reason}") from None
    except (socket.timeout, TimeoutError):
        raise ProviderError("timeout", f"no answer within {timeout_s:g} s") from None
    except (OSError, HTTPException) as exc:
        raise ProviderError("network", type(exc).__name__) from None
    if len(body) > MAX_BODY_BYTES:
        raise ProviderError("malformed", f"response larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProviderError("malformed", "response is not JSON") from None
