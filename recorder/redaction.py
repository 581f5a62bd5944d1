"""Keep API keys out of log lines and stored error messages.

A secret is any key in ``llm``'s key store (``keys.json``), the value of any
environment variable whose name ends in ``_KEY`` (``_API_KEY`` included),
``_TOKEN`` or ``_SECRET``,
and anything shaped like a bearer token or a key in a URL's query string.

Limitation: log lines and stored error messages are redacted; prompts and
model answers are stored as they are, since changing them would falsify the
record.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable

import llm

REDACTED = "[REDACTED]"
SECRET_VARIABLE_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_KEY")
# Shorter values are too likely to be ordinary words or numbers.
MINIMUM_SECRET_LENGTH = 8
REFRESH_SECONDS = 5.0

SECRET_PATTERN = re.compile(
    r"(?i)(bearer\s+|[?&](?:api[_-]?key|key|token|access_token|auth)="
    r"|(?:x-)?api[_-]?key[\"']?\s*[:=]\s*[\"']?|\bsk-)"
    r"[A-Za-z0-9._~+/=%-]{8,}"
)
# Text without any of these cannot match SECRET_PATTERN, and most log lines
# have none of them: checking first keeps redaction off the hot path.
SECRET_MARKERS = ("bearer", "key", "token=", "auth=", "sk-")


class _SecretCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._secrets: tuple[str, ...] = ()

    def secrets(self) -> tuple[str, ...]:
        now = time.monotonic()
        with self._lock:
            if now - self._loaded_at > REFRESH_SECONDS:
                self._secrets = tuple(
                    sorted(set(_known_secrets()), key=len, reverse=True)
                )
                self._loaded_at = now
            return self._secrets

    def forget(self) -> None:
        with self._lock:
            self._loaded_at = 0.0


_cache = _SecretCache()


def _known_secrets() -> Iterable[str]:
    for name, value in os.environ.items():
        if name.upper().endswith(SECRET_VARIABLE_SUFFIXES) and value:
            if len(value) >= MINIMUM_SECRET_LENGTH:
                yield value
    try:
        keys_path = llm.user_dir() / "keys.json"
        if keys_path.exists():
            stored = json.loads(keys_path.read_text())
            for value in stored.values():
                if isinstance(value, str) and len(value) >= MINIMUM_SECRET_LENGTH:
                    yield value
    except (OSError, ValueError):
        pass


def redact(text: str | None) -> str | None:
    """``text`` with every known secret and secret-shaped token replaced."""
    if not text:
        return text
    for secret in _cache.secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    lowered = text.lower()
    if any(marker in lowered for marker in SECRET_MARKERS):
        text = SECRET_PATTERN.sub(_redact_match, text)
    return text


def _redact_match(match: re.Match[str]) -> str:
    prefix = match.group(1)
    return REDACTED if prefix.lower() == "sk-" else prefix + REDACTED


def forget_cached_secrets() -> None:
    """Read the key store and environment again on the next :func:`redact`."""
    _cache.forget()
