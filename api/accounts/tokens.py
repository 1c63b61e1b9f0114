"""Accounts' secrets: argon2id password hashes, and issuing opaque bearer tokens (stored as
their SHA-256, `api.core.caller.token_digest`; looking them up is `api.core.caller`'s)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import insert

from api.core.caller import token_digest
from api.core.context import AppContext
from api.core.db import now_ms
from api.core.tables import tokens

# argon2id with RFC 9106's second recommended option scaled down for a 2-core API host.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def issue_token(ctx: AppContext, user_id: str) -> tuple[str, int]:
    token = secrets.token_urlsafe(32)
    created = now_ms()
    expires = created + ctx.settings.token_ttl_seconds * 1000
    async with ctx.db.begin() as conn:
        await conn.execute(
            insert(tokens).values(
                token_hash=token_digest(token),
                user_id=user_id,
                created_at=created,
                expires_at=expires,
            )
        )
    return token, expires
