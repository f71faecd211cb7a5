"""The HTTP status of each refusal of `engine.services`: the one place they are mapped.

`create_app` answers every `ServiceError` a route lets through as ``{"detail": message}``
with the status below; the web UI uses the same codes for its error pages.
"""

from __future__ import annotations

from fastapi import Request, status
from fastapi.responses import JSONResponse

from engine.errors import Conflict, Invalid, NotFound, ServiceError, Unavailable

STATUS_CODES: dict[type[ServiceError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Invalid: status.HTTP_422_UNPROCESSABLE_CONTENT,
    Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def status_code(error: ServiceError) -> int:
    """The status for ``error``: that of its nearest mapped class, else 400."""
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return status.HTTP_400_BAD_REQUEST


async def service_error_response(request: Request, exc: Exception) -> JSONResponse:
    """The exception handler for `ServiceError`: the same body as an `HTTPException`."""
    assert isinstance(exc, ServiceError)
    return JSONResponse({"detail": str(exc)}, status_code=status_code(exc))
