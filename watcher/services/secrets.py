"""Secrets (passwords, tokens): a value that never shows itself, read from a file or the environment."""

from __future__ import annotations

import hmac
import os
import pathlib
import stat
from collections.abc import Mapping
from typing import Any, Final, final

import pydantic_core.core_schema as core_schema

MASK: Final = "**********"
_SHARED_BITS: Final = stat.S_IRWXG | stat.S_IRWXO


class SecretError(ValueError):
    """A secret that cannot be read; the message names where it was looked for, never its value."""


@final
class Secret:
    """A secret string: `repr`, `str` and serialisation show a mask; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("a Secret is not pickled")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        """Accept a string (or a Secret) in a pydantic model; serialise as the mask."""
        from_str = core_schema.no_info_after_validator_function(cls, core_schema.str_schema())
        return core_schema.union_schema(
            [core_schema.is_instance_schema(cls), from_str],
            serialization=core_schema.plain_serializer_function_ser_schema(lambda _: MASK),
        )


def from_file(path: pathlib.Path) -> Secret:
    """The secret held in a file (surrounding whitespace and the final newline removed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretError(f"cannot read {path}: no such file") from None
    except PermissionError:
        raise SecretError(f"cannot read {path}: permission denied") from None
    except IsADirectoryError:
        raise SecretError(f"cannot read {path}: it is a directory") from None
    except UnicodeDecodeError:
        raise SecretError(f"cannot read {path}: not UTF-8 text") from None
    except OSError as exc:
        raise SecretError(f"cannot read {path}: {exc.strerror}") from None
    value = text.strip()
    if not value:
        raise SecretError(f"{path} is empty")
    return Secret(value)


def from_env(name: str, environ: Mapping[str, str] | None = None) -> Secret:
    """The secret held in an environment variable."""
    env = os.environ if environ is None else environ
    value = env.get(name, "").strip()
    if name not in env:
        raise SecretError(f"environment variable {name} is not set")
    if not value:
        raise SecretError(f"environment variable {name} is empty")
    return Secret(value)


def owner_only(path: pathlib.Path) -> bool:
    """True when neither group nor others have any access to the file (mode & 0o077 == 0)."""
    return path.stat().st_mode & _SHARED_BITS == 0
