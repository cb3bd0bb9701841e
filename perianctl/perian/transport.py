"""An ``httpx`` transport that sends requests with ``aiohttp``: same client API, 3-4x the throughput.

Measured against the sandbox on a 2-core box (``bench/bench_connector.py`` and a raw loop):
httpx's own transport (pure-Python h11 parsing plus httpcore's pool) spends about 3 ms of CPU per
request and *collapses* with concurrency -- about 350 GETs/s with 8 in flight, about 55/s and a
p99 of 3.6 s with 64 in flight -- while aiohttp (C parser) stays above 1,100/s either way. A
connector answering 64 concurrent GetTasks needs the latter, so :class:`~perianctl.perian.client.
PerianClient` keeps its httpx API (retries, typed errors, idempotent create) and only the wire
part is swapped, through httpx's public ``transport=`` hook.

What must not change is how failures are *classified*, because the client decides by the
exception type whether a POST may have reached PERIAN:

=================================================  ===========================  =================
aiohttp                                            httpx                        request sent?
=================================================  ===========================  =================
``ConnectionTimeoutError`` (connect or pool wait)  ``ConnectTimeout``           no
``ClientConnectorError`` (refused, DNS)            ``ConnectError``             no
``SocketTimeoutError`` (read)                      ``ReadTimeout``              maybe
``ServerDisconnectedError``                        ``RemoteProtocolError``      maybe
other ``ClientError`` / ``OSError``                ``ReadError``                maybe
=================================================  ===========================  =================

Why not the ``httpx-aiohttp`` package (0.2.0, its ``AiohttpTransport``), checked with
``bench/bench_transport.py`` (2-core box, median of 3 rounds of 3 s, ``get_job`` through the real
client against the canned stub): it maps every ``ClientConnectionError`` it does not know better
to ``httpx.ConnectTimeout`` -- including ``ServerDisconnectedError`` and a reset *after* the request
was written -- so for a create whose connection dropped after sending, the client would conclude
"never sent" and retry: a duplicated, paid job. (Its other gaps: exceptions outside its table, such
as a bare ``OSError``, escape unmapped; a refused connection also becomes ``ConnectTimeout``.) It is
not faster either: 1,922 vs 2,187 calls/s with 8 in flight and 1,226 vs 1,652 with 64 (0.32 vs
0.29 ms and 0.36 vs 0.32 ms of CPU per call; httpx's own transport: 557 and 160). So we keep this
one; the bench prints both transports' classification, and fails if ours goes wrong.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx

_HOP_BY_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One ``aiohttp.ClientSession``, created lazily inside the event loop that uses it."""

    def __init__(self, *, max_connections: int = 100, keepalive_timeout: float = 30.0) -> None:
        self._max_connections = max_connections
        self._keepalive_timeout = keepalive_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _proxy(self, url: httpx.URL) -> str | None:
        key = (url.scheme, url.host)
        if key not in self._proxies:
            import urllib.request

            proxies = urllib.request.getproxies()
            proxy = proxies.get(url.scheme)
            if proxy and urllib.request.proxy_bypass(url.host):
                proxy = None
            self._proxies[key] = proxy or None
        return self._proxies[key]

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ttl_dns_cache=300, keepalive_timeout=self._keepalive_timeout
            )
            # No cookies and no decompression (httpx decodes Content-Encoding itself). Proxies from the
            # environment are honoured like httpx does, but looked up once per host (_proxy):
            # aiohttp's trust_env does it in a thread for every request, a third of our CPU.
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._get_session()
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),  # aiohttp's "connect" includes waiting for a pooled connection
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
        body = await request.aread()
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                timeout=timeout,
                allow_redirects=False,
                proxy=self._proxy(request.url),
            ) as response:
                content = await response.read()
                return httpx.Response(
                    status_code=response.status,
                    headers=[(bytes(k), bytes(v)) for k, v in response.raw_headers],
                    content=content,
                    request=request,
                    extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
                )
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timeout", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc) or "connection failed", request=request) from exc
        except aiohttp.SocketTimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timeout", request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def default_transport(backend: str, *, max_connections: int) -> httpx.AsyncBaseTransport:
    """``aiohttp`` when asked for and importable, else httpx's own (``retries=0``: the client retries)."""
    if backend == "aiohttp":
        return AiohttpTransport(max_connections=max_connections)
    return httpx.AsyncHTTPTransport(
        retries=0, limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    )
