"""Typed errors and the stable exit-code contract.

Every failure a user can cause or meet is one of these classes. The CLI's top level turns them
into a single line on stderr and the documented exit code, so scripts can branch on the code and
people never see a traceback for an expected failure.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes (README "Exit codes"). Never renumber: CI scripts depend on them."""

    OK = 0
    ERROR = 1
    USAGE = 2
    JOB_FAILED = 3
    JOB_CANCELLED = 4
    TIMEOUT = 5
    AUTH = 6
    NOT_FOUND = 7
    UNAVAILABLE = 8
    DECLINED = 10
    """Answered "no" at a confirmation prompt (``delete``): nothing was done."""


class PerianctlError(Exception):
    """Base class: an expected failure with a one-line message and an exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(PerianctlError):
    """Bad flags, arguments, input files or config values."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A config file that cannot be read or a missing required setting."""


class TemplateError(UsageError):
    """A task template that cannot be loaded or translated."""


class InputError(UsageError):
    """Task inputs that do not match the template's interface."""


class NoOfferError(UsageError):
    """No instance type matches the requirements (within ``--max-price-per-hour``): exit 2, not "not found"."""


class BudgetError(UsageError):
    """A ``--max-cost`` budget that buys no billed unit, or that credits / the usage limit cannot cover."""


class ApiError(PerianctlError):
    """The PERIAN API answered with an error.

    ``status`` is the HTTP status, ``detail`` the envelope's ``detail`` string (PERIAN clients
    branch on that text, not on the status, because "not found" is an HTTP 400).
    """

    def __init__(
        self, message: str, *, status: int | None = None, detail: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.detail = detail


class AuthError(ApiError):
    exit_code = ExitCode.AUTH


class NotFoundError(ApiError):
    exit_code = ExitCode.NOT_FOUND


class NoInstanceTypeMatchError(NoOfferError, ApiError):
    """The PERIAN API refused a create because no instance type matches its requirements.

    The same domain rule as :class:`NoOfferError` (catch either as ``NoOfferError``), said by the
    API instead of found by a local check, so it also carries ``status`` and ``detail``. Exit 2:
    the requirements are the user's input and must change; it is not "not found" (exit 7 means an
    unknown job id). The connector answers FAILED_PRECONDITION (docs/connector.md).
    """


class JobAlreadyDoneError(ApiError):
    """Cancel of a job that is already terminal. Commands treat it as an idempotent success."""


class ValidationFailed(ApiError):
    """HTTP 422: the API rejected the request body or parameters."""

    exit_code = ExitCode.USAGE


class BadRequestError(ApiError):
    """Any other HTTP 400 with a detail we do not special-case (insufficient credit, ...)."""

    exit_code = ExitCode.USAGE


class InsufficientCreditsError(BadRequestError):
    """HTTP 400: the organization's credits (or its usage limit) cannot pay for a new job."""


class UnavailableError(ApiError):
    """Network failure, timeout or 5xx after all retries (or the call's budget) were used.

    ``reason`` says what happened: ``refused`` (connection refused or never established),
    ``no-answer`` (no connection or no reply within the time left), ``status`` (5xx/429 on every
    attempt), ``budget`` (the call's budget was spent after ``attempts`` attempts), ``transport``
    (reset or broken connection). ``never_sent`` is true only when no byte of the request can have
    reached the server: a create that never left created nothing.
    """

    exit_code = ExitCode.UNAVAILABLE

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        hint: str | None = None,
        reason: str | None = None,
        attempts: int | None = None,
        never_sent: bool = False,
    ) -> None:
        super().__init__(message, status=status, detail=detail, hint=hint)
        self.reason = reason
        self.attempts = attempts
        self.never_sent = never_sent


class ProtocolError(ApiError):
    """The API answered with something that is not the PERIAN wire format."""

    exit_code = ExitCode.UNAVAILABLE


class DeclinedError(PerianctlError):
    """The user answered "no" when asked to confirm; nothing was changed."""

    exit_code = ExitCode.DECLINED


class JobOutcome(PerianctlError):
    """A waited-for job ended in a non-success outcome; carries the matching exit code."""

    def __init__(self, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = exit_code
