"""Why an operation was refused, in words for people and without HTTP types.

    ServiceError
     ├── NotFound      no such task, customer, playbook or enrollment
     ├── Conflict      the thing exists but is in a state that refuses the operation
     ├── Invalid       the request names something the thing does not allow
     └── Unavailable   Temporal could not be reached (what the store holds is already done)

Each caller says what they mean to its users: the API maps them to status codes
(`engine.api.errors`), the web UI to its error display, the CLI to a message and exit code.
"""

from __future__ import annotations


class ServiceError(Exception):
    """An operation was refused; ``str(error)`` says why."""


class NotFound(ServiceError, LookupError):
    """The task, customer, playbook or enrollment does not exist."""


class Conflict(ServiceError):
    """The thing exists, but its state refuses the operation (already done, ended...)."""


class Invalid(ServiceError, ValueError):
    """The request is well-formed but not allowed for this thing (an unknown outcome...)."""


class Unavailable(ServiceError):
    """Temporal could not be reached; the store's side of the operation is done."""
