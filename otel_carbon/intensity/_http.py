"""A tiny JSON-over-HTTP GET for the live providers (urllib only, no new dependency).

Every failure becomes a :class:`ProviderError` with a short ``kind`` (``timeout``,
``network``, ``request`` (we could not send it), ``http_401``, ``http_403``, ``http_429``,
``http_5xx``, ``http_4xx``, ``http_3xx``, ``malformed``) so the refresher can log once per kind and choose a retry delay.

Decisions:

* Messages carry our own words, the status code and exception *type* names, never an
  exception's text, request headers, URLs with query strings, the server's reason phrase
  or response bodies: http.client quotes header values (a token) in its errors, and a
  token must not reach a log line.
* Redirects are refused. urllib would forward our headers (``auth-token``,
  ``Authorization``) to whatever host a redirect names.
* Proxies from the environment are honoured (``build_opener`` reads them when the opener
  is built), as users behind a corporate proxy expect.
* ``timeout_s`` is an overall deadline per request, connect to last byte. urllib's own
  timeout bounds each socket operation only, so a server that drips one byte every few
  seconds would hold the request forever: our connection classes arm a timer when they
  connect that shuts the socket down at the deadline (the blocked read then returns and
  the request fails as ``timeout``). The body is read with a size cap so a hostile server
  cannot fill memory.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
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


class _Deadline:
    """One request's deadline; the connection arms it, :func:`get_json` disarms it."""

    def __init__(self, timeout_s: float) -> None:
        self.at = time.monotonic() + timeout_s
        self.expired = False
        self._timer: Optional[threading.Timer] = None

    def arm(self, sock: socket.socket) -> None:
        def expire() -> None:
            self.expired = True
            try:  # the plain socket's shutdown, also under TLS: the reader sees EOF
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

        self._timer = threading.Timer(max(self.at - time.monotonic(), 0.0), expire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


_request = threading.local()  # the calling thread's current _Deadline


def _with_deadline(base: Any) -> Any:
    class Connection(base):  # type: ignore[misc,valid-type]
        def connect(self) -> None:
            deadline: Optional[_Deadline] = getattr(_request, "deadline", None)
            if deadline is not None:
                self.timeout = max(min(self.timeout, deadline.at - time.monotonic()), 0.001)
            super().connect()
            if deadline is not None:
                deadline.arm(self.sock)

    return Connection


_HTTPConnection = _with_deadline(http.client.HTTPConnection)
_HTTPSConnection = _with_deadline(http.client.HTTPSConnection)


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_HTTPSConnection, req, context=self._context)


def build_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect(), _HTTPHandler(), _HTTPSHandler())


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
    deadline = _request.deadline = _Deadline(timeout_s)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body = response.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        retry_after = _retry_after_s(exc.headers) if exc.code in (429, 503) else None
        exc.close()
        raise ProviderError(_http_kind(exc.code), f"HTTP {exc.code}", retry_after) from None
    except Exception as exc:  # noqa: BLE001 - only the type is kept: the text may quote a header
        if deadline.expired or _is_timeout(exc):
            raise ProviderError("timeout", f"no answer within {timeout_s:g} s") from None
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        kind = "request" if isinstance(reason, ValueError) else "network"
        raise ProviderError(kind, type(reason).__name__) from None
    finally:
        deadline.disarm()
        _request.deadline = None
    if deadline.expired:
        raise ProviderError("timeout", f"no answer within {timeout_s:g} s")
    if len(body) > MAX_BODY_BYTES:
        raise ProviderError("malformed", f"response larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProviderError("malformed", "response is not JSON") from None


def _is_timeout(exc: BaseException) -> bool:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, (socket.timeout, TimeoutError))
