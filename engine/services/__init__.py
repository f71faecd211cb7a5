"""The operations the API, the web UI and the CLI share, with no HTTP types.

Each operation takes a `Services` (settings, store, Temporal client, project), does its
work in the store and Temporal, and raises a `ServiceError` (`engine.errors`) when
it is refused; the caller turns that into a status code, an error page or an exit code.

- `engine.services.container`: `Services`.
- `engine.services.tasks`: complete a task and signal its enrollment, reassign a task.
- `engine.services.enrollments`: enroll and record, the status query, pause, resume, skip,
  cancel.
- `engine.services.customers`: save a customer and tell its running enrollments when a date
  field changed (the API's `PUT /api/customers` and the import).
- `engine.services.customers_import`: bulk customer import from CSV or JSON (needs only
  the store's sessions, so it takes those rather than a `Services`).
- `engine.services.event_input`: what an incoming event must be (`EventIn`), for the API
  and the CLI alike; `engine.services.events_file`: a file of events read, checked and sent
  in batches (`playbook events send --file`).
- `engine.services.tokens`: API tokens: issue, list, revoke, authenticate (needs only a
  store session).
- `engine.services.team`: create, update, disable, enable and remove team members, ending
  their web sessions when that takes something away (store sessions only, too).
"""

from engine.errors import Conflict, Invalid, NotFound, ServiceError, Unavailable
from engine.services.container import Services

__all__ = ["Conflict", "Invalid", "NotFound", "ServiceError", "Services", "Unavailable"]
