"""The caller's identity as every layer sees it: a user id, handle and role."""

from __future__ import annotations

from dataclasses import dataclass

USER = "user"
MODERATOR = "moderator"
ROLES = (USER, MODERATOR)


@dataclass(frozen=True)
class User:
    id: str
    handle: str
    role: str

    @property
    def is_moderator(self) -> bool:
        return self.role == MODERATOR
