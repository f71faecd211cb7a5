"""What every email to a customer contact carries, however it was written.

A template built on the shipped layout shows an unsubscribe link and the sender's postal
address; an inline email (``subject`` + ``body``) or a template without the layout does not.
`compliant` adds a footer with whatever is missing, to the HTML and to the plain-text part,
so no customer email leaves without them (CAN-SPAM, GDPR/ePrivacy, Gmail and Yahoo's bulk
sender rules). Emails to the team get neither: they are not marketing, and the unsubscribe
endpoint only knows contacts.
"""

from __future__ import annotations

from html import escape
from typing import NamedTuple

DEFAULT_POSTAL_ADDRESS = (
    "Acme Analytics Inc., 500 Harbor Street, Suite 300, San Francisco, CA 94107, USA"
)


class Parts(NamedTuple):
    """An email's HTML and plain-text parts."""

    html: str
    text: str


def compliant(html: str, text: str, unsubscribe_url: str, postal_address: str) -> Parts:
    """``html`` and ``text`` with a footer adding the unsubscribe link and address they lack."""
    html_lines: list[str] = []
    text_lines: list[str] = []
    if postal_address and escape(postal_address, quote=False) not in html:
        html_lines.append(escape(postal_address, quote=False))
    if postal_address and postal_address not in text:
        text_lines.append(postal_address)
    if unsubscribe_url and escape(unsubscribe_url) not in html and unsubscribe_url not in html:
        html_lines.append(f'<a href="{escape(unsubscribe_url)}">Unsubscribe</a>')
    if unsubscribe_url and unsubscribe_url not in text:
        text_lines.append(f"Unsubscribe: {unsubscribe_url}")
    if html_lines:
        footer = (
            '<p style="font-size:12px; color:#8a94a0;" data-footer="compliance">'
            + "<br>".join(html_lines)
            + "</p>"
        )
        at = html.lower().rfind("</body>")
        html = html[:at] + footer + "\n" + html[at:] if at >= 0 else f"{html}\n{footer}"
    if text_lines:
        text = text.rstrip("\n") + "\n\n--\n" + "\n".join(text_lines) + "\n"
    return Parts(html, text)
