"""Bad input 12 (the part not covered elsewhere): API tokens are stored hashed.

Every text column of every table is searched for the token (and its secret part) after it
was created and used; only its SHA-256 is there. (A CSM seeing or completing only their own
tasks is tests/web/test_access.py; the /api routes refusing requests without a token is
tests/api/test_api_auth.py and the schemathesis pass of test_api_fuzz.py.)
"""

from __future__ import annotations

import hashlib

from sqlalchemy import inspect, text

from engine.api.auth import check_api_token, create_api_token
from engine.store.models import ApiToken


def test_api_tokens_are_stored_only_as_hashes(sessions, figures):
    with sessions.begin() as session:
        token = create_api_token(session, "ci", ["ingest"])
    with sessions.begin() as session:
        assert check_api_token(session, token) is not None  # usable ...
        assert check_api_token(session, token + "x") is None

    secret = token.removeprefix("pbk_")
    found, cells = [], 0
    with sessions() as session:
        for table in inspect(session.get_bind()).get_table_names():
            for row in session.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    cells += 1
                    if isinstance(value, str | bytes) and secret in str(value):
                        found.append(table)
        [stored] = session.query(ApiToken).all()
    assert not found, f"the token is stored in clear in {found}"
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    figures.update(cells_searched=cells, plaintext_tokens_found=0)
