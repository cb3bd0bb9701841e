"""Never a 500 for odd input: what the sandbox accepts it can store and serve, and what it serves renders.

Why a module of its own: Python's ``json`` accepts things a PERIAN server cannot store or send
back -- lone UTF-16 surrogates (``"\\ud800"``), NUL characters, ``NaN``/``Infinity``, integers of
thousands of digits, nesting thousands of levels deep -- and FastAPI hands them to the routes as
they are. Stored, such a value poisons every later ``GET /job`` (the response cannot be encoded as
UTF-8 JSON), which is the class of bug this module closes, in two layers:

* **at the door** (:class:`StrictJsonRoute`, :func:`read_json`): a JSON body is read with a size cap
  and parsed strictly before any route sees it. What cannot be stored or served is rejected with
  FastAPI's 422 ``HTTPValidationError`` shape, the one real PERIAN clients already handle (the
  ``perian`` SDK 0.5.3's perian/models/http_validation_error.py), with ``loc`` pointing at the
  offending value. The offending value is never echoed back (``input`` is left out): it may be a
  secret, and it may be the very thing that cannot be encoded;
* **on the way out** (:class:`ServableJSONResponse`, :func:`servable`): records stored by an older
  sandbox may already hold such values. A response that cannot be rendered is rendered again with
  the bad parts repaired (a lone surrogate becomes U+FFFD, a non-finite number ``null``, nesting
  past :data:`MAX_DEPTH` ``null``): one odd job is served degraded instead of failing the whole list
  forever. The repair runs only when the fast path fails, so normal responses cost nothing extra.
"""

from __future__ import annotations

import email.message
import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body read (container files travel base64-encoded in the create body)."""
MAX_DEPTH = 64
"""Deepest JSON nesting accepted; a PERIAN create body is at most about five levels deep."""
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""Integers outside a signed 64-bit range cannot be stored by a database column or a runtime timer."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_INT_DIGITS = 20


class BodyTooLarge(Exception):
    """The request body is larger than :data:`MAX_BODY_BYTES`."""


class InvalidJson(Exception):
    """A body that cannot be accepted; ``errors`` are 422 ``detail`` items (FastAPI shape)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["msg"] if errors else "invalid JSON")
        self.errors = errors


class _BigInt(str):
    """An integer literal outside the 64-bit range, kept as text until its location is known."""


class _NonFinite(str):
    """``NaN``/``Infinity``/``-Infinity``, kept as text until its location is known."""


def _parse_int(text: str) -> int | _BigInt:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:  # never call int() on thousands of digits
        return _BigInt(text)
    value = int(text)
    return value if INT_MIN <= value <= INT_MAX else _BigInt(text)


def _decode_error(position: int | str, error: str) -> dict[str, Any]:
    # Exactly what FastAPI answers for a body it cannot decode (``input`` left out, see module doc).
    return {"type": "json_invalid", "loc": ["body", position], "msg": "JSON decode error", "ctx": {"error": error}}


def _value_error(loc: list[Any], message: str) -> dict[str, Any]:
    return {"type": "value_error", "loc": loc, "msg": f"Value error, {message}", "ctx": {"error": message}}


def _string_problem(text: str) -> str | None:
    if text.isascii():
        return "strings must not contain NUL characters" if "\x00" in text else None
    if _SURROGATE.search(text):
        return "strings must be valid Unicode (a lone UTF-16 surrogate cannot be stored)"
    if "\x00" in text:
        return "strings must not contain NUL characters"
    return None


def _problems(value: Any) -> list[dict[str, Any]]:
    """Every value in a parsed document that could not be stored or served, with its location."""
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, list[Any]]] = [(value, ["body"])]
    while stack and len(errors) < 10:
        item, loc = stack.pop()
        if len(loc) > MAX_DEPTH + 1:
            errors.append(_value_error(loc, f"JSON nested deeper than {MAX_DEPTH} levels"))
        elif isinstance(item, _BigInt):
            errors.append(_value_error(loc, "integers must fit in 64 bits"))
        elif isinstance(item, _NonFinite):
            errors.append(_value_error(loc, f"{item!s} is not a JSON number"))
        elif isinstance(item, str):
            problem = _string_problem(item)
            if problem:
                errors.append(_value_error(loc, problem))
        elif isinstance(item, float):
            if not math.isfinite(item):  # 1e400 parses to inf
                errors.append(_value_error(loc, "numbers must be finite"))
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = _string_problem(key)
                if problem:
                    errors.append(_value_error(loc, f"object keys: {problem}"))
                stack.append((child, [*loc, servable(key)]))
        elif isinstance(item, list):
            stack.extend((child, [*loc, index]) for index, child in enumerate(item))
    return errors


def parse_json(raw: bytes) -> Any:
    """Parse a request body strictly: UTF-8 JSON that can be stored and served, or :class:`InvalidJson`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJson([_decode_error(exc.start, "the body is not valid UTF-8")]) from None
    try:
        value = json.loads(text, parse_int=_parse_int, parse_constant=_NonFinite)
    except json.JSONDecodeError as exc:
        raise InvalidJson([_decode_error(exc.pos, exc.msg)]) from None
    except RecursionError:
        raise InvalidJson([_decode_error(0, f"JSON nested deeper than {MAX_DEPTH} levels")]) from None
    errors = _problems(value)
    if errors:
        raise InvalidJson(errors)
    return value


def is_json_content_type(value: str | None) -> bool:
    """Does FastAPI parse a body with this ``Content-Type`` as JSON (absent counts, as in FastAPI)?"""
    if not value:
        return True
    message = email.message.Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


async def read_body(request: Request) -> bytes:
    """The body, read at most :data:`MAX_BODY_BYTES` far (:class:`BodyTooLarge` past that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Starlette's cache: FastAPI's own ``request.body()`` returns it
    return body


async def read_json(request: Request) -> Any:
    """The body as strictly parsed JSON (see :func:`parse_json`); cached where FastAPI looks for it."""
    value = parse_json(await read_body(request))
    request._json = value  # Starlette's cache: FastAPI's own ``request.json()`` returns it
    return value


def too_large_response() -> ServableJSONResponse:
    from perianctl.sandbox.wire import failure

    detail = f"Request body too large (at most {MAX_BODY_BYTES} bytes)"
    return ServableJSONResponse(failure(413, detail), status_code=413)


def invalid_response(errors: list[dict[str, Any]]) -> ServableJSONResponse:
    return ServableJSONResponse({"detail": errors}, status_code=422)


class StrictJsonRoute(APIRoute):
    """An ``APIRoute`` whose JSON body is read with a size cap and parsed by :func:`parse_json` first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def strict_handler(request: Request) -> Response:
            try:
                if is_json_content_type(request.headers.get("content-type")):
                    body = await read_body(request)
                    if body:
                        request._json = parse_json(body)
                else:
                    await read_body(request)
            except BodyTooLarge:
                return too_large_response()
            except InvalidJson as exc:
                return invalid_response(exc.errors)
            return await handler(request)

        return strict_handler


# --------------------------------------------------------------------------- the way out


def _repair(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if not value.isascii() else value
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {_repair(str(k), depth): _repair(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_repair(v, depth + 1) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return _repair(str(value), depth)


def servable(value: Any) -> Any:
    """``value`` with everything JSON-over-UTF-8 cannot carry repaired (see the module doc)."""
    return _repair(value, 0)


class ServableJSONResponse(JSONResponse):
    """A ``JSONResponse`` that renders degraded rather than fail (a 500 would repeat forever)."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
            return super().render(servable(content))


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 ``{"detail": [...]}``, rendered safely (an ``input`` may be undecodable bytes)."""
    assert isinstance(exc, RequestValidationError)
    return ServableJSONResponse({"detail": servable(list(exc.errors()))}, status_code=422)
