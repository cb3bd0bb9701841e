"""Job ids as people type them: a full UUID, or any unique prefix of one (like git or docker short ids).

The one resolver every command uses (``get``, ``delete``, ``logs``, ``watch``, ``wait`` and their
``--connector`` variants), so a prefix means the same job everywhere:

1. a full UUID (dashes optional, any case) is taken as it is -- no look-up, so an unknown full id
   still fails where it is used, with that command's own "not found";
2. a prefix is first matched against the journal (jobs this machine submitted or has seen, for the
   API URL in use): no API call for the jobs you work with;
3. a prefix the journal does not know is looked up in the API's job list, newest first, at most
   :data:`MAX_PAGES` pages of :data:`PAGE_SIZE` (a bound, so a typo never scans an account's whole
   history). Without an API (``--connector`` without PERIAN credentials) only the journal is asked.

Two or more matching jobs is a usage error (exit 2) that lists them, none is "not found" (exit 7).
Dashes never matter: ``d9a33289e2`` and ``d9a33289-e2`` are the same prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from perianctl.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from perianctl.perian.client import PerianClient

PAGE_SIZE = 100
MAX_PAGES = 10
"""At most 1,000 jobs (the newest) are searched in the API for a prefix the journal does not know."""
SHOW_CANDIDATES = 5

_HEX = re.compile(r"^[0-9a-f]+$")
_FULL = 32


@dataclass(frozen=True)
class Candidate:
    job_id: str
    status: str | None
    where: str  # "journal" | "api"

    def describe(self) -> str:
        return f"{self.job_id} ({self.status})" if self.status else self.job_id


def canonical(job_id: str) -> str:
    """A full id in the dashed, lower-case form PERIAN uses (``8-4-4-4-12``)."""
    h = job_id.replace("-", "").lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse(token: str) -> tuple[str, bool]:
    """``(hex digits without dashes, is_full_id)``; a usage error for anything that is not (a prefix of) an id."""
    text = token.strip()
    digits = text.replace("-", "").lower()
    if not digits or not _HEX.match(digits) or len(digits) > _FULL or not _dashes_fit(text):
        raise UsageError(
            f"invalid job id '{token}': expected a UUID such as 3f2c1a4e-0b1d-4c5e-9f00-1234567890ab "
            "or a unique prefix of one (e.g. 3f2c1a4e)"
        )
    return digits, len(digits) == _FULL


def _dashes_fit(text: str) -> bool:
    """Dashes, if any, sit where a UUID has them (``3f2c1a4e-0b``), so ``3f-2c`` is not silently accepted."""
    if "-" not in text:
        return True
    return canonical(text.replace("-", "").ljust(_FULL, "0")).startswith(text.lower())


def resolve(
    tokens: list[str],
    *,
    api_url: str | None,
    client: Callable[[], PerianClient] | None,
    run: Callable[..., object] | None = None,
) -> list[str]:
    """Full ids for ``tokens`` (in order, duplicates dropped); see the module doc for the rules.

    ``client`` makes a PERIAN client for the API look-up (None: journal only); ``run`` runs a
    coroutine to completion (the CLI's ``run``, which shows a "waiting" status on a terminal).
    """
    parsed = [(token, *parse(token)) for token in tokens]
    out: dict[str, None] = {}
    pending: list[tuple[str, str]] = []
    for token, digits, full in parsed:
        if full:
            out.setdefault(canonical(digits))
        else:
            pending.append((token, digits))
    if not pending:
        return list(out)
    found: dict[str, list[Candidate]] = {}
    unknown: list[tuple[str, str]] = []
    for token, digits in pending:
        matches = _journal_matches(digits, api_url)
        if matches:
            found[token] = matches
        else:
            unknown.append((token, digits))
    if unknown and client is not None:
        import asyncio

        runner = run or asyncio.run
        api_found = runner(_api_matches(client, [d for _, d in unknown]))
        assert isinstance(api_found, dict)
        for token, digits in unknown:
            found[token] = api_found.get(digits, [])
    result: dict[str, None] = {}
    for token, digits, full in parsed:
        if full:
            result.setdefault(canonical(digits))
            continue
        matches = found.get(token, [])
        if not matches:
            where = (
                f"the journal or the newest {PAGE_SIZE * MAX_PAGES} jobs of the API"
                if client is not None
                else "the journal (give the full id)"
            )
            raise NotFoundError(f"no job id starts with '{token}' in {where}", hint="'perianctl list' shows job ids")
        if len(matches) > 1:
            shown = ", ".join(m.describe() for m in matches[:SHOW_CANDIDATES])
            more = f" and {len(matches) - SHOW_CANDIDATES} more" if len(matches) > SHOW_CANDIDATES else ""
            raise UsageError(
                f"job id prefix '{token}' is ambiguous: it matches {shown}{more}", hint="type more characters of the id"
            )
        result.setdefault(matches[0].job_id)
    return list(result)


def _journal_matches(digits: str, api_url: str | None) -> list[Candidate]:
    from perianctl.errors import PerianctlError
    from perianctl.journal import open_journal

    try:
        with open_journal() as journal:
            rows = journal.ids_with_prefix(digits, api_url=api_url, limit=SHOW_CANDIDATES + 10)
    except PerianctlError:
        return []  # an unusable journal only means asking the API
    return [Candidate(job_id, status, "journal") for job_id, status in rows]


async def _api_matches(make: Callable[[], PerianClient], prefixes: list[str]) -> dict[str, list[Candidate]]:
    """One bounded scan of the job list for every prefix; stops early once each is ambiguous."""
    found: dict[str, list[Candidate]] = {p: [] for p in prefixes}
    async with make() as client:
        async for job in client.iter_jobs(page_size=PAGE_SIZE, max_pages=MAX_PAGES):
            digits = (job.id or "").replace("-", "").lower()
            for prefix in prefixes:
                if digits.startswith(prefix) and len(found[prefix]) <= SHOW_CANDIDATES:
                    found[prefix].append(Candidate(job.id or "", job.status, "api"))
            if all(len(c) > SHOW_CANDIDATES for c in found.values()):
                break
    return found
