"""Playback tokens (cdn/signing.py) and the settings that configure them: pure table tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from urllib.parse import quote, urljoin

import pytest

from api.core.settings import Settings, SettingsError
from api.media.playback import playback_keyring, playback_prefix
from cdn.signing import (
    DERIVED_KID,
    EXPIRY_STEP_S,
    InvalidToken,
    Keyring,
    PlaybackKey,
    derived_key,
    expiry,
    parse_keys,
    split_token,
    token_segment,
)

NOW = 1_750_000_000
LATER = NOW + 3600
OLD = PlaybackKey("old", b"o" * 32)
NEW = PlaybackKey("new", b"n" * 32)
VIDEO = "v_0123456789abcdef"
OTHER = "v_fedcba9876543210"
VIEWER = "u_viewer00000001"


def test_sign_and_verify() -> None:
    ring = Keyring([NEW])
    token = ring.sign(VIDEO, LATER, VIEWER)
    claims = ring.verify(token, VIDEO, now=NOW)
    assert (claims.kid, claims.expires_at, claims.viewer_id) == ("new", LATER, VIEWER)
    anonymous = ring.sign(VIDEO, LATER)
    assert ring.verify(anonymous, VIDEO, now=NOW).viewer_id is None
    assert anonymous != token


def test_token_layout_and_mac_are_as_documented() -> None:
    """kid.exp[.viewer].mac; mac = HMAC-SHA256(secret, context LF video LF body)[:16], b64url."""
    token = Keyring([NEW]).sign(VIDEO, LATER, VIEWER)
    kid, exp, viewer, mac = token.split(".")
    assert (kid, int(exp, 36), viewer) == ("new", LATER, VIEWER)
    message = b"reelforge-playback-v1\n" + VIDEO.encode() + b"\n" + f"{kid}.{exp}.{viewer}".encode()
    digest = hmac.new(NEW.secret, message, hashlib.sha256).digest()[:16]
    assert mac == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert len(mac) == 22 and len(token) <= 64


def test_tokens_are_url_safe_path_segments() -> None:
    ring = Keyring([PlaybackKey("k-_9", b"s" * 16)])
    for viewer in (None, VIEWER):
        for expires in (0, 1, NOW, 2**40):
            token = ring.sign(VIDEO, expires, viewer)
            assert quote(token, safe="") == token  # nothing to percent-encode
            assert "/" not in token and not token.startswith(".")


def _flip(text: str, index: int) -> str:
    """`text` with one character changed, staying inside its field's alphabet."""
    char = text[index]
    swap = {"a": "b", "0": "1", "_": "-", "-": "_"}.get(char, "a" if char != "a" else "b")
    return text[:index] + swap + text[index + 1 :]


def _tampered(token: str) -> list[str]:
    kid, exp, viewer, mac = token.split(".")
    later = format(int(exp, 36) + 3600, "x")  # any other expiry, here in base 16
    return [
        f"{kid}.{later}.{viewer}.{mac}",  # expiry pushed
        f"{kid}.{exp}.u_someoneelse0001.{mac}",  # viewer swapped
        f"{kid}.{exp}.{mac}",  # viewer dropped
        f"{kid}.0{exp}.{viewer}.{mac}",  # same expiry, another spelling
        f"{kid}.{exp}.{viewer}.{_flip(mac, 0)}",
        f"{kid}.{exp}.{viewer}.{_flip(mac, 21)}",
        f"{kid}.{exp}.{viewer}.{mac[::-1]}",
        f"{kid}.{exp}.{viewer}.{'A' * 22}",
    ]


def test_tampered_tokens_fail() -> None:
    ring = Keyring([NEW])
    token = ring.sign(VIDEO, LATER, VIEWER)
    for bad in _tampered(token):
        with pytest.raises(InvalidToken) as caught:
            ring.verify(bad, VIDEO, now=NOW)
        assert caught.value.reason in ("bad signature", "malformed"), bad


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "new..AAAAAAAAAAAAAAAAAAAAAA",
        "new.abc",
        "new.abc.AAAAAAAAAAAAAAAAAAAAA",  # 21-character MAC
        "new.abc.AAAAAAAAAAAAAAAAAAAAAAA",  # 23
        "new.ABC.AAAAAAAAAAAAAAAAAAAAAA",  # upper-case base 36
        "new.abc.U_X.AAAAAAAAAAAAAAAAAAAAAA",
        "new.abc.u_x.y.AAAAAAAAAAAAAAAAAAAAAA",
        "new.abc.AAAAAAAAAAAAAAAAAAAAA=",
        "new.+1.AAAAAAAAAAAAAAAAAAAAAA",
        "new.a_b.AAAAAAAAAAAAAAAAAAAAAA",  # int() would take the underscore
        "new.abc.AAAAAAAAAAAAAAAAAAAAAA\n",
        "n%65w.abc.AAAAAAAAAAAAAAAAAAAAAA",
        "averyveryverylongkid.abc.AAAAAAAAAAAAAAAAAAAAAA",
        "new.abc." + "A" * 5000,
    ],
)
def test_malformed_tokens_fail(token: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        Keyring([NEW]).verify(token, VIDEO, now=NOW)
    assert caught.value.reason == "malformed"


def test_expired_token_fails_at_its_expiry() -> None:
    ring = Keyring([NEW])
    token = ring.sign(VIDEO, LATER)
    assert ring.verify(token, VIDEO, now=LATER - 1).expires_at == LATER
    for now in (LATER, LATER + 1, LATER + 10**6):
        with pytest.raises(InvalidToken) as caught:
            ring.verify(token, VIDEO, now=now)
        assert caught.value.reason == "expired"


def test_token_is_for_its_own_video_only() -> None:
    ring = Keyring([NEW])
    with pytest.raises(InvalidToken) as caught:
        ring.verify(ring.sign(OTHER, LATER), VIDEO, now=NOW)
    assert caught.value.reason == "bad signature"


def test_unknown_kid_fails_even_with_the_same_secret() -> None:
    token = Keyring([PlaybackKey("other", NEW.secret)]).sign(VIDEO, LATER)
    with pytest.raises(InvalidToken) as caught:
        Keyring([NEW]).verify(token, VIDEO, now=NOW)
    assert caught.value.reason == "unknown key id"
    renamed = "new" + token[len("other") :]  # the right kid, the wrong MAC for it
    with pytest.raises(InvalidToken) as caught:
        Keyring([NEW]).verify(renamed, VIDEO, now=NOW)
    assert caught.value.reason == "bad signature"


def test_rotation() -> None:
    """The first key signs, every listed key verifies; a removed key's tokens fail."""
    before = Keyring([OLD])
    during = Keyring([NEW, OLD])
    after = Keyring([NEW])
    old_token = before.sign(VIDEO, LATER)
    new_token = during.sign(VIDEO, LATER)
    assert new_token.startswith("new.")
    assert during.verify(old_token, VIDEO, now=NOW).kid == "old"
    assert during.verify(new_token, VIDEO, now=NOW).kid == "new"
    assert after.verify(new_token, VIDEO, now=NOW).kid == "new"
    with pytest.raises(InvalidToken, match="unknown key id"):
        after.verify(old_token, VIDEO, now=NOW)


def test_derived_key() -> None:
    key = derived_key("the service secret")
    assert key.kid == DERIVED_KID
    assert key.secret != b"the service secret" and len(key.secret) == 32
    assert derived_key("the service secret") == key
    assert derived_key("another secret").secret != key.secret
    token = Keyring([key]).sign(VIDEO, LATER)
    with pytest.raises(InvalidToken):
        Keyring([derived_key("another secret")]).verify(token, VIDEO, now=NOW)


@pytest.mark.parametrize(
    ("entries", "kids"),
    [
        ((), []),
        (("k1:0123456789abcdef",), ["k1"]),
        (("k2:0123456789abcdef-two", " k1:0123456789abcdef:with:colons "), ["k2", "k1"]),
    ],
)
def test_parse_keys(entries: tuple[str, ...], kids: list[str]) -> None:
    assert [key.kid for key in parse_keys(entries)] == kids


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (("nokey",), "entry 1"),
        ((":0123456789abcdef",), "entry 1"),
        (("k1:0123456789abcdef", "bad kid:0123456789abcdef"), "entry 2"),
        (("k1:tiny-secret",), "shorter than 16"),
        (("k1:0123456789abcdef", "k1:fedcba9876543210"), "listed twice"),
        (("k" * 17 + ":0123456789abcdef",), "entry 1"),
    ],
)
def test_parse_keys_refuses_bad_entries_without_echoing_secrets(
    entries: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_keys(entries)
    for entry in entries:
        secret = entry.partition(":")[2]
        assert not secret or secret not in str(caught.value)


def test_settings_read_playback_keys(tmp_path: Path) -> None:
    env = {
        "REELFORGE_DATA_DIR": str(tmp_path),
        "REELFORGE_PLAYBACK_KEYS": "k2:second-secret-0123456789,k1:first-secret-0123456789",
        "REELFORGE_PLAYBACK_TOKEN_TTL_SECONDS": "600",
        "REELFORGE_S3_REDIRECT_PRIVATE": "true",
    }
    settings = Settings.from_env(env)
    assert settings.playback_token_ttl_seconds == 600 and settings.s3_redirect_private
    ring = playback_keyring(settings)
    assert ring.signing.kid == "k2" and set(ring.keys) == {"k1", "k2"}
    assert "second-secret" not in repr(settings)

    default = Settings.from_env({"REELFORGE_DATA_DIR": str(tmp_path)})
    assert default.playback_token_ttl_seconds == 6 * 3600 and not default.s3_redirect_private
    assert list(playback_keyring(default).keys) == [DERIVED_KID]
    assert playback_keyring(default).signing == derived_key(default.secret_key)


@pytest.mark.parametrize(
    "env",
    [
        {"REELFORGE_PLAYBACK_KEYS": "k1:short"},
        {"REELFORGE_PLAYBACK_KEYS": "k1"},
        {"REELFORGE_PLAYBACK_TOKEN_TTL_SECONDS": "0"},
        {"REELFORGE_S3_REDIRECT_PRIVATE": "maybe"},
    ],
)
def test_settings_refuse_bad_playback_values(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="REELFORGE_"):
        Settings.from_env({"REELFORGE_DATA_DIR": str(tmp_path), **env})


def test_expiry_rounds_up_to_the_step() -> None:
    assert expiry(NOW, 3600) % EXPIRY_STEP_S == 0
    assert NOW + 3600 <= expiry(NOW, 3600) < NOW + 3600 + EXPIRY_STEP_S
    assert expiry(NOW, 3600) == expiry(NOW + 1, 3600)  # the same URL within a step
    assert expiry(1000, 200, step_s=300) == 1200


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("master.m3u8", (None, "master.m3u8")),
        ("~tok/master.m3u8", ("tok", "master.m3u8")),
        ("~tok/v360/00001.m4s", ("tok", "v360/00001.m4s")),
        ("~tok", ("tok", "")),
        ("v360/~tok/init.mp4", (None, "v360/~tok/init.mp4")),
    ],
)
def test_split_token(path: str, expected: tuple[str | None, str]) -> None:
    assert split_token(path) == expected
    if expected[0] is not None and expected[1]:
        assert f"{token_segment(expected[0])}/{expected[1]}" == path


def test_relative_manifest_uris_carry_the_token(tmp_path: Path) -> None:
    """RFC 3986 §5.2 resolution (what hls.js and dash.js do) keeps the token segment."""
    settings = Settings(data_dir=tmp_path).resolved()
    base = playback_prefix(settings, VIDEO, "r_0001", "unlisted", "u_owner", now=NOW)
    master = f"{base}/master.m3u8"
    token = base.rsplit("/", 1)[1].removeprefix("~")
    for relative in ("v360/index.m3u8", "audio/init.mp4", "poster.jpg"):
        resolved = urljoin(master, relative)
        assert resolved == f"{base}/{relative}"
        assert split_token(resolved.split("/r_0001/", 1)[1]) == (token, relative)
    playlist = urljoin(master, "v360/index.m3u8")
    assert urljoin(playlist, "00001.m4s") == f"{base}/v360/00001.m4s"


def test_playback_prefix(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, playback_token_ttl_seconds=7200).resolved()
    plain = f"{settings.media_url}/{VIDEO}/r_0001"
    ring = playback_keyring(settings)

    assert playback_prefix(settings, VIDEO, "r_0001", "public", "u_owner", VIEWER) == plain

    for privacy, viewer, bound in (
        ("unlisted", None, None),
        ("unlisted", VIEWER, VIEWER),
        ("private", None, "u_owner"),  # a private video's only reader is its owner
        ("private", VIEWER, "u_owner"),
    ):
        base = playback_prefix(settings, VIDEO, "r_0001", privacy, "u_owner", viewer, now=NOW)
        assert base.startswith(plain + "/~")
        claims = ring.verify(base.rsplit("/~", 1)[1], VIDEO, now=NOW)
        assert claims.viewer_id == bound
        assert NOW + 7200 <= claims.expires_at < NOW + 7200 + EXPIRY_STEP_S
