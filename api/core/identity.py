"""The caller's identity as every layer sees it: a user id, handle and role."""

from __future__ import annotations

from dataclasses import dataclass

USER = "user"
MODERATOR = "moderator"
ROLES = (USER, MODERATOR)


def is_moderator(role: str | None) -> bool:
    """The one moderator rule: a user whose `users.role` is "moderator" (`reelforge moderator
    grant HANDLE` makes one)."""
    return role == MODERATOR


@dataclass(frozen=True)
class User:
    id: str
    handle: str
    role: str

    @property
    def is_moderator(self) -> bool:
        return is_moderator(self.role)
