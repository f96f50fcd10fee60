"""HTTP statuses of domain errors, one table for every route (the application's
error handler and the legal router, which can also be mounted on its own)."""

from letterlock.errors import (
    AlreadyExists,
    AuthenticationFailed,
    Busy,
    InvalidInput,
    LetterlockError,
    NotFound,
    Refused,
    StorageError,
)

_STATUSES: tuple[tuple[type[LetterlockError], int], ...] = (
    (InvalidInput, 422), (NotFound, 404), (AlreadyExists, 409), (Refused, 409),
    (AuthenticationFailed, 401), (StorageError, 503), (Busy, 503))


def status_for(exc: LetterlockError) -> int:
    """The HTTP status of a domain error (500 for one with no status of its own)."""
    for cls, status in _STATUSES:
        if isinstance(exc, cls):
            return status
    return 500
