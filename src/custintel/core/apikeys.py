"""API keys: made once, shown once, stored only as a hash, each with one role.

A key reads ``cik_<id>_<secret>``: the id finds the record without scanning, the secret
is 32 random bytes. Because the secret is random and long, a plain SHA-256 is the right
hash (a slow password hash guards guessable secrets and would cost every request
milliseconds). The records live in a small JSON file beside the project, not in the
warehouse: the service must read them while ``custintel run`` holds the warehouse's one
writer lock, and it re-reads the file when it changes, so a revoked key stops working on
the next request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from custintel.core.errors import ConfigError
from custintel.core.roles import Role, parse_role

PREFIX = "cik"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    name: str
    role: str
    sha256: str
    created_at: str
    revoked_at: str | None = None


def keys_path(project_dir: Path) -> Path:
    return project_dir / "serving" / "api_keys.json"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def read(path: Path) -> list[KeyRecord]:
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [KeyRecord(**r) for r in rows]
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a custintel key file ({exc})") from None


def _write(path: Path, records: list[KeyRecord]) -> None:
    """Write through a temporary file and a rename, so a reader sees the old file or the
    new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps([asdict(r) for r in records], indent=1), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def create(path: Path, name: str, role: str | Role) -> tuple[str, KeyRecord]:
    """A new key and its record; the key itself is returned here and nowhere else."""
    role = parse_role(str(role))
    name = name.strip()
    if not name:
        raise ConfigError("apikey: give the key a name (what uses it, such as 'website')")
    records = read(path)
    if any(r.name == name and r.revoked_at is None for r in records):
        raise ConfigError(
            f"apikey: a key named {name!r} exists; revoke it first or pick another name"
        )
    key_id = secrets.token_hex(4)
    while any(r.key_id == key_id for r in records):
        key_id = secrets.token_hex(4)
    key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    record = KeyRecord(
        key_id=key_id,
        name=name,
        role=role.value,
        sha256=digest(key),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    _write(path, [*records, record])
    return key, record


def revoke(path: Path, name_or_id: str) -> KeyRecord:
    records = read(path)
    hits = [r for r in records if r.revoked_at is None and name_or_id in (r.name, r.key_id)]
    if not hits:
        raise ConfigError(f"apikey: no active key named or with id {name_or_id!r}")
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out = [KeyRecord(**{**asdict(r), "revoked_at": when}) if r in hits else r for r in records]
    _write(path, out)
    return hits[0]


class KeyRing:
    """The active keys by id, verified in constant time."""

    def __init__(self, records: list[KeyRecord]) -> None:
        self._by_id = {r.key_id: r for r in records if r.revoked_at is None}

    def verify(self, key: str) -> KeyRecord | None:
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        record = self._by_id.get(parts[1])
        if record is None or not hmac.compare_digest(record.sha256, digest(key)):
            return None
        return record
