"""Reading docker/ without a Docker engine: the compose file, the Dockerfiles, .dockerignore.

Each reader follows the format's own rules closely enough for what the tests check:
- compose: YAML (anchors and `<<` merge keys), then variable interpolation on every string
  value as the Compose specification's "Interpolation" section describes (`${VAR}`, `$VAR`,
  `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`,
  `${VAR+alt}`, and `$$` for a literal `$`);
- Dockerfile: the Dockerfile reference's parsing (line continuations, comment lines, the exec
  (JSON) and shell forms, `ARG` before `FROM`, one stage per `FROM`);
- .dockerignore: Go `filepath.Match` patterns with `**`, later lines win, `!` re-includes,
  a pattern matching a directory excludes what is under it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"


# -- compose -----------------------------------------------------------------------------------
class ComposeError(ValueError):
    """The compose file cannot be loaded (a required variable is unset, bad syntax)."""


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """One string with `${...}` references replaced from `env` (Compose "Interpolation")."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        unset_or_empty = value is None or (op is not None and op.startswith(":") and not value)
        if op in (":-", "-"):
            return interpolate(arg, env) if unset_or_empty else str(value)
        if op in (":?", "?"):
            if unset_or_empty:
                raise ComposeError(f"required variable {name} is missing a value: {arg}")
            return str(value)
        if op in (":+", "+"):
            return "" if unset_or_empty else interpolate(arg, env)
        return "" if value is None else value

    return _VARIABLE.sub(replace, text)


def _interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    return node


def load_compose(env: Mapping[str, str], path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as `docker compose config` would see it with these variables set."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ComposeError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ComposeError(f"{path}: not a mapping")
    loaded: dict[str, Any] = _interpolate_tree(raw, env)
    return loaded


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either the mapping or the `KEY=VALUE` list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.split("=", 1) for item in env]
        return {key: value for key, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


# -- Dockerfile --------------------------------------------------------------------------------
@dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of `CMD ["a", "b"]` / `COPY ["a", "b"]`, or None (shell form)."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
        return value

    def words(self) -> list[str]:
        form = self.exec_form()
        return form if form is not None else shlex.split(self.args)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """`ENV` values set in this stage (`ENV a=b c=d` and the legacy `ENV a b`)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            words = shlex.split(instruction.args)
            if words and "=" not in words[0]:
                values[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                key, _, value = word.partition("=")
                values[key] = value
        return values


@dataclass
class Copy:
    sources: list[str]
    destination: str
    from_stage: str | None
    line: int


@dataclass
class Dockerfile:
    path: Path
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def copies(self) -> list[Copy]:
        found = []
        for stage in self.stages:
            for instruction in stage.all("COPY") + stage.all("ADD"):
                words = instruction.words()
                flags = [w for w in words if w.startswith("--")]
                paths = [w for w in words if not w.startswith("--")]
                from_stage = next(
                    (f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None
                )
                found.append(Copy(paths[:-1], paths[-1], from_stage, instruction.line))
        return found

    def command(self) -> list[str]:
        """The final stage's `CMD`, which must be in exec form."""
        cmds = self.final.all("CMD")
        assert cmds, f"{self.path.name}: no CMD"
        form = cmds[-1].exec_form()
        assert form is not None, f"{self.path.name}:{cmds[-1].line}: CMD is not in exec form"
        return form


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions with their continuations joined; comment lines dropped (even inside one)."""
    lines: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if not current:
            start = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1].rstrip())
            continue
        current.append(stripped)
        lines.append((start, " ".join(part for part in current if part)))
        current = []
    if current:
        lines.append((start, " ".join(current)))
    return lines


def _substitute_args(text: str, args: Mapping[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m[1], m[0]), text)


def parse_dockerfile(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, text in _logical_lines(path.read_text()):
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "ARG" and not stages:
            arg, _, default = rest.partition("=")
            global_args[arg] = default
            continue
        if keyword == "FROM":
            words = _substitute_args(rest, global_args).split()
            words = [w for w in words if not w.startswith("--platform")]
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], alias))
            continue
        assert stages, f"{path.name}:{line}: {keyword} before any FROM"
        stages[-1].instructions.append(Instruction(keyword, rest, line))
    return Dockerfile(path, global_args, stages)


# -- .dockerignore -----------------------------------------------------------------------------
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


class DockerIgnore:
    def __init__(self, path: Path) -> None:
        self.rules: list[tuple[bool, re.Pattern[str], str]] = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = line[1:] if include else line
            pattern = pattern.strip().strip("/")
            self.rules.append((include, _pattern_regex(pattern), line))

    def ignored(self, relative: str) -> bool:
        """True when `relative` (a path under the build context) is left out of it."""
        relative = relative.strip("/")
        parts = relative.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for include, regex, _line in self.rules:
            if any(regex.match(candidate) for candidate in candidates):
                result = not include
        return result
