"""Exit codes of `leo`, and the one-line message for each error."""

from __future__ import annotations

import enum

from leo_client.errors import (
    AlreadyExists,
    ApiError,
    AuthError,
    CallCancelled,
    ConfigurationError,
    ConnectionLost,
    DeadlineExceeded,
    FailedPrecondition,
    GenerationError,
    InvalidArgument,
    LeoError,
    MissingApiKey,
    NotFound,
    RateLimited,
    Unavailable,
    WaitTimeout,
)


class CliFailure(LeoError):
    """A failure of the command line itself (not of the API), with its exit code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = code


class ExitCode(enum.IntEnum):
    """What `leo` exits with; the same numbers are listed in `leo --help`."""

    OK = 0
    GENERATION_FAILED = 1
    """The generation ended FAILED or CANCELLED."""
    USAGE = 2
    """Bad arguments or settings, or the server refused a field."""
    AUTH = 3
    """No API key, or the key is unknown, revoked or not allowed."""
    NOT_FOUND = 4
    UNAVAILABLE = 5
    """The API could not be reached in time, or a wait could not get its lost connection back."""
    RATE_LIMITED = 6
    """Too many requests, or too many PENDING generations."""
    CONFLICT = 7
    """The generation's state does not allow it, or a request_id was reused."""
    TIMEOUT = 8
    """--wait gave up; the generation goes on."""
    ERROR = 9
    """Any other error of the server."""
    INTERRUPTED = 130


HELP = """\b
Exit codes:
  0  success
  1  the generation ended FAILED or CANCELLED
  2  bad arguments or settings, or a field the server refused
  3  no API key, or the key is not valid
  4  not found
  5  the API cannot be reached, or a wait lost it for longer than --reconnect-timeout
  6  rate limited, or too many PENDING generations
  7  conflict: not allowed in the generation's state, or a reused request_id
  8  gave up waiting (--timeout); the generation goes on
  9  any other server error
  130 interrupted (Ctrl-C)"""

_CODES: list[tuple[type[LeoError], ExitCode]] = [
    (GenerationError, ExitCode.GENERATION_FAILED),
    (WaitTimeout, ExitCode.TIMEOUT),
    (MissingApiKey, ExitCode.AUTH),
    (ConfigurationError, ExitCode.USAGE),
    (InvalidArgument, ExitCode.USAGE),
    (AuthError, ExitCode.AUTH),
    (NotFound, ExitCode.NOT_FOUND),
    (Unavailable, ExitCode.UNAVAILABLE),
    (DeadlineExceeded, ExitCode.UNAVAILABLE),
    (CallCancelled, ExitCode.UNAVAILABLE),
    (RateLimited, ExitCode.RATE_LIMITED),
    (FailedPrecondition, ExitCode.CONFLICT),
    (AlreadyExists, ExitCode.CONFLICT),
]


def exit_code(error: LeoError) -> ExitCode:
    """The exit code for an error of the client."""
    if isinstance(error, CliFailure):
        return error.exit_code
    return next((code for kind, code in _CODES if isinstance(error, kind)), ExitCode.ERROR)


def one_line(error: LeoError) -> str:
    """The error as one line naming what was wrong (each bad field and its rule)."""
    if isinstance(error, InvalidArgument) and error.violations:
        text = "invalid request: " + "; ".join(map(str, error.violations))
    elif isinstance(error, AuthError):
        text = f"{error} (check LEO_API_KEY or --api-key)"
    elif isinstance(error, ConnectionLost):
        text = f"{error} (the generation goes on; follow it with: leo watch {error.generation.id})"
    elif isinstance(error, Unavailable):
        text = f"the API cannot be reached: {error} (check LEO_API_TARGET or --target)"
    elif isinstance(error, DeadlineExceeded):
        text = f"the API did not answer in time: {error} (check LEO_API_TARGET or --target)"
    else:
        text = str(error)
    if isinstance(error, ApiError) and error.retry_after is not None:
        text += f" (retry after {error.retry_after:g} s)"
    return " ".join(text.split())
