"""The convergence rules (perianctl.connector.convergence): pure decisions from PERIAN data alone."""

from __future__ import annotations

from perianctl.connector import convergence as cv
from perianctl.connector.convergence import JobFacts


def job(
    job_id: str,
    *,
    key: str | None = "k",
    tag: str | None = "n",
    attempt: int | None = 0,
    created: float = 100.0,
    claim: float | None = 105.0,
    live: bool = True,
    create_id: str | None = None,
) -> JobFacts:
    return JobFacts(
        id=job_id,
        key=key,
        node_tag=tag,
        attempt=attempt,
        create_id=create_id or f"c-{job_id}",
        claim_until=claim,
        created_at=created,
        live=live,
    )


def reaped(jobs: list[JobFacts], now: float = 1000.0) -> set[str]:
    return {r.job_id for r in cv.plan_sweep(jobs, now=now)}


def test_a_create_that_outlived_its_call_is_reaped_even_without_a_later_attempt() -> None:
    late = job("late", created=109.0, claim=108.0)  # retries=0: nothing else exists
    assert reaped([late]) == {"late"}
    assert reaped([job("in-time", created=107.9, claim=108.0)]) == set()
    assert reaped([job("skew", created=108.2, claim=108.0)]) == set()  # within the tolerated clock skew


def test_jobs_of_earlier_attempts_are_reaped_once_a_later_attempt_exists() -> None:
    jobs = [
        job("a0", attempt=0, key="k0"),
        job("a1", attempt=1, key="k1", live=False),
        job("other-node", tag="m", attempt=0, key="m0"),
    ]
    assert reaped(jobs) == {"a0"}


def test_duplicates_keep_the_one_sent_last_at_once() -> None:
    older, newer = job("old", created=100.0, claim=105.0), job("new", created=101.0, claim=106.0)
    assert reaped([older, newer], now=101.5) == {"old"}  # before a finished duplicate has cost money
    adopted = cv.adoptable([older, newer], "k")
    assert adopted is not None and adopted.id == "new"  # a re-send returns the one sweepers keep


def test_adoption_never_returns_a_job_nobody_can_have_returned() -> None:
    assert cv.adoptable([job("late", created=109.0, claim=108.0)], "k") is None
    done = job("done", live=False)  # the attempt's job already ran: a re-send gets it, not a new one
    assert cv.adoptable([done], "k") is done
    assert cv.adoptable([job("x", key="other")], "k") is None
    legacy = job("legacy", claim=None)  # an older connector's job: no stamp, claimable
    assert cv.adoptable([legacy], "k") is legacy
    assert reaped([legacy]) == set()


def test_jobs_without_the_connector_stamps_are_never_touched() -> None:
    assert reaped([job("user", key=None, tag=None, attempt=None, claim=None)]) == set()


def test_duplicates_keep_the_one_sent_last_even_when_it_was_created_first() -> None:
    """Propeller holds the answer to its latest call: the job with the latest stamp, whatever order
    PERIAN committed them in."""
    sent_last = job("sent-last", created=100.0, claim=106.0)
    sent_first = job("sent-first", created=101.0, claim=105.0)
    assert reaped([sent_last, sent_first], now=200.0) == {"sent-first"}
    adopted = cv.adoptable([sent_last, sent_first], "k")
    assert adopted is not None and adopted.id == "sent-last"


def test_a_duplicate_is_reaped_even_when_the_kept_job_has_already_finished() -> None:
    sent_first = job("sent-first", created=100.0, claim=105.0)
    finished = job("sent-last", created=101.0, claim=106.0, live=False)
    assert reaped([sent_first, finished]) == {"sent-first"}
    assert cv.adoptable([sent_first, finished], "k") is finished
