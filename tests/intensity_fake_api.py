"""A loopback HTTP server that answers like the live intensity APIs (for tests).

Built on ``http.server`` in the test process, bound to 127.0.0.1 on an OS-assigned port.
Each route returns a configurable :class:`Reply` (status, JSON or raw body, headers, a
delay to provoke client timeouts, a reason phrase, or a slow drip: the whole response, status
line included, one byte every ``drip_s``) and every request is recorded (path, query,
headers), so tests can check what the client sent.

The ``*_body`` helpers build responses in each API's documented shape:

* Electricity Maps v3 ``GET /v3/carbon-intensity/latest?zone=..`` (header ``auth-token``);
* WattTime v3 ``GET /login`` (basic auth) -> ``{"token"}``, and
  ``GET /v3/forecast?region=..&signal_type=co2_moer`` (``Authorization: Bearer``);
* UK Carbon Intensity ``GET /intensity``.

The servers also enforce the credentials, the way the real APIs do (401 otherwise), so a
client that forgets a header fails its test.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Union
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless ``raw`` is set
    raw: Optional[bytes] = None
    headers: Dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drip_s: float = 0.0  # > 0: send the response one byte at a time, this far apart
    reason: Optional[str] = None  # the status line's reason phrase (default: the standard one)


@dataclass
class Seen:
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]


Route = Union[Reply, Callable[[Seen], Reply]]


class FakeApi:
    """``with FakeApi() as api: api.route("/intensity", Reply(body=...)); api.url``"""

    def __init__(self) -> None:
        self.routes: Dict[str, Route] = {}
        self.requests: List[Seen] = []
        #: (bytes sent, bytes in the response) of each dripped response, once it ended
        self.dripped: List["tuple[int, int]"] = []
        self._stopping = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                parts = urlsplit(self.path)
                seen = Seen(
                    parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                )
                api.requests.append(seen)
                route = api.routes.get(parts.path)
                reply = route(seen) if callable(route) else route
                if reply is None:
                    reply = Reply(404, {"error": "not found"})
                if reply.delay_s and api._stopping.wait(reply.delay_s):
                    return
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                if reply.drip_s:
                    self._drip(reply, payload)
                    return
                try:
                    self.send_response(reply.status, reply.reason)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout tests)

            def _drip(self, reply: Reply, payload: bytes) -> None:
                head = f"HTTP/1.1 {reply.status} {reply.reason or 'OK'}\r\nContent-Type: application/json\r\n"
                head += f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
                data = head.encode("latin-1") + payload
                sent = 0
                try:
                    for i in range(len(data)):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        sent += 1
                        if api._stopping.wait(reply.drip_s):
                            break
                except OSError:
                    pass  # the client hung up
                api.dripped.append((sent, len(data)))
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, path: str, reply: Route) -> None:
        self.routes[path] = reply

    def paths(self) -> List[str]:
        return [seen.path for seen in self.requests]

    def __enter__(self) -> "FakeApi":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)


# -- documented response shapes ---------------------------------------------------------


def electricitymaps_body(zone: str, value: float, when: str) -> Dict[str, Any]:
    return {
        "zone": zone,
        "carbonIntensity": value,
        "datetime": when,
        "updatedAt": when,
        "createdAt": when,
        "emissionFactorType": "lifecycle",
        "isEstimated": False,
        "estimationMethod": None,
    }


def watttime_login_body(token: str) -> Dict[str, Any]:
    return {"token": token}


def watttime_forecast_body(region: str, points: List[tuple], units: str = "lbs_co2_per_mwh") -> Dict[str, Any]:
    return {
        "data": [{"point_time": when, "value": value} for when, value in points],
        "meta": {
            "data_point_period_seconds": 300,
            "region": region,
            "warnings": [],
            "signal_type": "co2_moer",
            "model": {"date": "2023-03-01"},
            "units": units,
            "generated_at_period_seconds": 300,
            "generated_at": points[0][0] if points else None,
        },
    }


def uk_body(start: str, end: str, forecast: Optional[int], actual: Optional[int], index: str = "moderate") -> Dict[str, Any]:
    return {"data": [{"from": start, "to": end, "intensity": {"forecast": forecast, "actual": actual, "index": index}}]}


# -- credential-checking routes -----------------------------------------------------------


def require_header(name: str, expected: str, reply: Route) -> Callable[[Seen], Reply]:
    """A route that answers 401 unless header ``name`` equals ``expected``."""

    def route(seen: Seen) -> Reply:
        if seen.headers.get(name.lower()) != expected:
            return Reply(401, {"message": "unauthorized"})
        return reply(seen) if callable(reply) else reply

    return route


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
