"""The server-rendered web UI: CSM inbox, enrollments, customer timelines and the outbox.

`pages.router` (one module per screen) is included by `engine.api.app.create_app`. Pages
are Jinja2 templates with autoescaping, plain CSS and a few lines of vanilla JS, all served
from this package (no external assets). Who may see what is decided in `security.py`; see
docs/ui.md.
"""
