"""What the web UI's handlers take from a request: the app's services, its signing keys,
the logged-in viewer and form fields."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request

from engine.services import Services
from engine.signing import Keyring
from engine.web.security import Viewer, require_viewer

ViewerDep = Annotated[Viewer, Depends(require_viewer)]
FormStr = Annotated[str, Form()]
FormList = Annotated[list[str], Form()]  # a field repeated, e.g. checked boxes


def services_of(request: Request) -> Services:
    """The `Services` that `engine.api.app.create_app` put on the app."""
    return request.app.state.services


def signing_keys(request: Request) -> Keyring:
    """The keyring that signs flashes, sessions and form tokens."""
    return services_of(request).settings.signing_keys()
