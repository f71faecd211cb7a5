"""The engine's exceptions, in one tree, and the error types activities report to workflows.

Exception hierarchy (classes that also derive from a built-in say so, so an existing
``except ValueError`` or ``except LookupError`` still catches them)::

    EngineError
    ├── LanguageError                 a playbook, expression, template or duration is wrong
    │   ├── PlaybookError             a playbook (or a set of them) has errors: diagnostics
    │   ├── YamlSourceError           not YAML this engine accepts: diagnostics
    │   ├── DurationError             (ValueError) not a duration such as '3d'
    │   ├── ExpressionError           (ValueError) does not parse, or fails to evaluate
    │   ├── TemplateRenderError       (ValueError) a template failed to render
    │   └── RenderBudgetExceeded      a render or expression passed its CPU or size budget
    ├── StoreError                    the repository refused a change
    │   ├── NotFoundError             (LookupError) the row does not exist
    │   └── ConflictError             (ValueError) the change contradicts what is stored
    ├── ProviderError                 the mail provider did not take an email
    │   ├── ProviderRetryable         not accepted; safe to try again
    │   ├── ProviderRejected          rejected for good
    │   └── ProviderUnconfirmed       sent, answer lost: must not be sent again
    ├── ServiceError                  an operation of `engine.services` was refused
    │   ├── NotFound                  (LookupError) no such task, customer, playbook, enrollment
    │   ├── Conflict                  its state refuses the operation (already done, ended)
    │   ├── Invalid                   (ValueError) not allowed for this thing (an outcome...)
    │   ├── Unavailable               Temporal unreachable; the store's side is done
    │   └── TokenRefused              an API token that is unknown, expired or revoked
    ├── AlreadyEnrolled               the customer is (or was) enrolled in the playbook
    ├── SimulationInputError          (ValueError) a simulator input that cannot be used
    ├── ImportFileError               (ValueError) a customer or events file that cannot be read
    ├── BadToken                      (ValueError) a malformed or forged signed token
    └── ConfigError                   a setting cannot be used (a short signing secret)

Private control-flow exceptions (the interpreter's `_Finish`, the YAML loader's limits)
stay in their modules. Standard library only, safe to import from workflow code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from engine.language.diagnostics import Diagnostic


class ErrorType:
    """`ApplicationError.type` values activities raise and retry policies name."""

    CUSTOMER_NOT_FOUND: Final = "CustomerNotFound"
    INVALID_INPUT: Final = "InvalidInput"
    PROVIDER_RETRYABLE: Final = "ProviderRetryable"


# Retrying an effect activity that failed with one of these cannot help.
NON_RETRYABLE_ERROR_TYPES: Final = (ErrorType.CUSTOMER_NOT_FOUND, ErrorType.INVALID_INPUT)


class EngineError(Exception):
    """Base class of every exception the engine raises on purpose."""


# -- the language ----------------------------------------------------------------------------
class LanguageError(EngineError):
    """A playbook, an expression, a template or a duration is wrong."""


class PlaybookError(LanguageError):
    """Raised when a playbook (or a set of them) has errors; carries every diagnostic."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


class YamlSourceError(LanguageError):
    """The text is not YAML this engine accepts; carries the diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(map(str, diagnostics)))


class DurationError(LanguageError, ValueError):
    """The text is not a duration this language accepts."""


class ExpressionError(LanguageError, ValueError):
    """An expression that does not parse, names something unknown, or fails to evaluate."""


class TemplateRenderError(LanguageError, ValueError):
    """A template failed to render (bad data, sandbox violation, output cap)."""


# -- the store -------------------------------------------------------------------------------
class RenderBudgetExceeded(LanguageError):
    """A render or an expression used more CPU time or produced more than its budget allows;
    rendering turns it into a `TemplateRenderError` or an `ExpressionError` with the place."""


class StoreError(EngineError):
    """Base class of the errors raised by the repository."""


class NotFoundError(StoreError, LookupError):
    """The row a function was asked to change does not exist."""


class ConflictError(StoreError, ValueError):
    """The change contradicts what is stored (e.g. completing a cancelled task)."""


# -- the mail provider -----------------------------------------------------------------------
class ProviderError(EngineError):
    """The mail provider did not take an email; the subclass says what the caller may do."""


class ProviderRetryable(ProviderError):
    """Not accepted; safe to try again (after ``delay_seconds`` when the provider said)."""

    def __init__(self, message: str, delay_seconds: float | None = None) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds


class ProviderRejected(ProviderError):
    """Rejected for good (a 4xx other than 429); the message says why."""


class ProviderUnconfirmed(ProviderError):
    """The request was sent but its answer never came (timeout, connection dropped).

    The provider may have accepted the message: the caller must not send it again.
    """


# -- operations shared by the API, the web UI and the CLI (engine.services) ------------------
class ServiceError(EngineError):
    """An operation was refused; ``str(error)`` says why, in words for people.

    Each caller says what it means to its users: the API maps the subclasses to status
    codes (`engine.api.errors`), the web UI to its error display, the CLI to exit code 1.
    """


class NotFound(ServiceError, LookupError):
    """The task, customer, playbook or enrollment does not exist."""


class Conflict(ServiceError):
    """The thing exists, but its state refuses the operation (already done, ended...)."""


class Invalid(ServiceError, ValueError):
    """The request is well-formed but not allowed for this thing (an unknown outcome...)."""


class Unavailable(ServiceError):
    """Temporal could not be reached; the store's side of the operation is done."""


class TokenRefused(ServiceError):
    """The API token is unknown, expired or revoked (the message says which)."""


# -- enrollments, inputs, tokens -------------------------------------------------------------
class AlreadyEnrolled(EngineError):
    """The customer is (or, with ``reenroll: never``, was) enrolled in this playbook."""


class SimulationInputError(EngineError, ValueError):
    """A customer file, event or completion the simulator cannot use; says what and where."""


class ImportFileError(EngineError, ValueError):
    """The file as a whole cannot be imported (not CSV/JSON, unknown columns...): a
    customers file (`playbook customers import`) or an events file (``events send --file``)."""


class BadToken(EngineError, ValueError):
    """The token is malformed or its signature does not match."""


class ConfigError(EngineError):
    """A setting cannot be used: the process refuses to start (not a ValueError, so that
    pydantic-settings lets it through unwrapped, with its own message)."""
