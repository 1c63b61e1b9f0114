"""The moderator role (issue 5, "Human review and reports"): a moderator is a user whose
`users.role` is "moderator"; `reelforge moderator grant HANDLE` is the only way to make one."""

from __future__ import annotations

from sqlalchemy import Connection, update

from api.core.identity import ROLES
from api.core.tables import users


def set_role(conn: Connection, handle: str, role: str) -> bool:
    """Give the user `handle` the role (`reelforge moderator grant|revoke`); False if no such
    user."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    result = conn.execute(update(users).where(users.c.handle == handle).values(role=role))
    return bool(result.rowcount)
