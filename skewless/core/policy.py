"""The privacy policy (conf/privacy.yaml): access classes, per-field actions, roles, keys, retention.

Loaded once, validated like the rest of the configuration: an unknown key, a bad action or a
declared feature without a policy fails with the file and the key's path before any job runs.
Field paths are the log format's: `request_id`, `entity.email`, `features.amount`, `context.*`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from skewless.core.errors import ConfigError
from skewless.core.names import FeatureType
from skewless.core.yamlconf import LOADED, build, read_yaml

Access = Literal["public", "internal", "restricted"]
Action = Literal["keep", "hash", "drop", "truncate", "generalize"]
ACCESS_ORDER: tuple[Access, ...] = ("public", "internal", "restricted")

# Logged fields that are whole columns. Their action must be `keep`: they are keys and partitions.
TOP_LEVEL = ("request_id", "logged_at", "schema_version", "model", "feature_status", "sample_rate",
             "prediction.score")
# Logged objects whose members each need a policy (a `section.*` entry covers members not named).
SECTIONS = ("entity", "features", "context", "prediction")
TRUNCATIONS = ("ip_24", "ip_16", "day", "hour", "prefix")
DEMO_KEY = b"skewless-demo-key: not a secret, for the demo and test profiles only"
DEMO_PROFILES = ("demo", "test")
KEY_DIR_ENV = "SKEWLESS_KEY_DIR"


@dataclass(frozen=True)
class FieldPolicy:
    access: Access
    action: Action
    to: Literal["ip_24", "ip_16", "day", "hour", "prefix"] | None = None  # truncate: what to keep
    length: int | None = None                                           # truncate to: prefix
    width: float | None = None                                          # generalize: bucket width


@dataclass(frozen=True)
class KeySource:
    version: str = "k1"
    env: str | None = "SKEWLESS_PII_KEY"   # the secret, as text
    file: str | None = None                # or a file holding it (outside the repository)


@dataclass(frozen=True)
class Retention:
    quarantine_days: int = 30       # quarantine rows (raw text) older than this are purged
    vacuum_retain_hours: int = 168  # VACUUM after forget/purge keeps files this long (0: physical now)


@dataclass(frozen=True)
class PrivacyPolicy:
    version: int = 1
    key: KeySource = field(default_factory=KeySource)
    previous_keys: tuple[KeySource, ...] = ()
    roles: dict[str, tuple[Access, ...]] = field(default_factory=dict)
    default_role: str = "analyst"
    retention: Retention = field(default_factory=Retention)
    fields: dict[str, FieldPolicy] = field(default_factory=dict)
    source: str = field(default="<defaults>", metadata=LOADED)

    def lookup(self, path: str) -> FieldPolicy | None:
        """The policy of a field path: its own entry, else its section's `*` entry."""
        if path in self.fields:
            return self.fields[path]
        section = path.split(".", 1)[0]
        return self.fields.get(f"{section}.*") if "." in path else None

    def clearance(self, role: str) -> tuple[Access, ...]:
        if role not in self.roles:
            raise ConfigError(self.source, "roles", f"unknown role {role!r} (known: {', '.join(sorted(self.roles))})")
        return self.roles[role]

    @property
    def tag(self) -> str:
        """The version recorded with each write: the declared number and a hash of the content."""
        return f"v{self.version}-{self._digest[:12]}"

    @property
    def _digest(self) -> str:
        return hashlib.sha256(repr((self.version, sorted(self.fields.items()))).encode()).hexdigest()


@dataclass(frozen=True)
class HashKey:
    version: str
    secret: bytes
    demo: bool


def load_policy(path: Path, declared: dict[str, FeatureType]) -> PrivacyPolicy:
    policy = build(PrivacyPolicy, read_yaml(path), str(path))
    policy = dataclasses.replace(policy, source=str(path))
    _validate(policy, declared)
    return policy


def _validate(p: PrivacyPolicy, declared: dict[str, FeatureType]) -> None:
    src = p.source
    for path in TOP_LEVEL:
        if path not in p.fields:
            raise ConfigError(src, f"fields.{path}", "missing: every logged field needs a policy (none defaults)")
    for path, fp in p.fields.items():
        where = f"fields.{path}"
        section = path.split(".", 1)[0]
        if path not in TOP_LEVEL and (section not in SECTIONS or "." not in path):
            raise ConfigError(src, where, f"not a logged field (top level: {', '.join(TOP_LEVEL)}; "
                                          f"members of: {', '.join(SECTIONS)})")
        if path in TOP_LEVEL and fp.action != "keep":
            raise ConfigError(src, f"{where}.action", "must be keep: this field is a key, a partition or a "
                                                      "contract column (restrict it by access class instead)")
        _validate_params(src, where, fp)
        ftype = declared.get(path.split(".", 1)[1]) if section == "features" else None
        if ftype is not None and not _fits(fp.action, ftype):
            raise ConfigError(src, f"{where}.action", f"{fp.action} does not apply to a {ftype} feature")
    for name in sorted(declared):
        if p.lookup(f"features.{name}") is None:
            raise ConfigError(src, f"fields.features.{name}", "declared feature has no policy (add it or features.*)")
    for role, classes in p.roles.items():
        if len(set(classes)) != len(classes):
            raise ConfigError(src, f"roles.{role}", "lists a class twice")
    if p.default_role not in p.roles:
        raise ConfigError(src, "default_role", f"{p.default_role!r} is not a role in roles")
    for i, k in enumerate((p.key, *p.previous_keys)):
        if not (k.env or k.file):
            raise ConfigError(src, "key" if i == 0 else f"previous_keys[{i - 1}]", "give env or file")
    versions = [k.version for k in (p.key, *p.previous_keys)]
    if len(set(versions)) != len(versions):
        raise ConfigError(src, "previous_keys", "key versions must be distinct")


def _validate_params(src: str, where: str, fp: FieldPolicy) -> None:
    if fp.action == "truncate":
        if fp.to is None:
            raise ConfigError(src, f"{where}.to", f"truncate needs `to` ({', '.join(TRUNCATIONS)})")
        if (fp.to == "prefix") != (fp.length is not None and fp.length > 0):
            raise ConfigError(src, f"{where}.length", "a positive length goes with to: prefix, and only there")
    elif fp.to is not None or fp.length is not None:
        raise ConfigError(src, f"{where}.to", "only a truncate action takes `to` and `length`")
    if fp.action == "generalize":
        if fp.width is None or fp.width <= 0:
            raise ConfigError(src, f"{where}.width", "generalize needs a bucket width > 0")
    elif fp.width is not None:
        raise ConfigError(src, f"{where}.width", "only a generalize action takes `width`")


def _fits(action: Action, ftype: FeatureType) -> bool:
    allowed = {"numeric": ("keep", "drop", "generalize"), "categorical": ("keep", "drop", "hash", "truncate"),
               "boolean": ("keep", "drop")}
    return action in allowed[ftype]


def resolve_key(source: KeySource, profile: str, policy_source: str, *, current: bool = True,
                warehouse: str | None = None) -> HashKey:
    """The secret for `source`, from its file or environment variable.

    Without one: the `demo` and `test` profiles hash with the public demo key and say so on every run;
    `dev` uses a random key of its own per warehouse, kept outside the repository (created once, mode
    0600, its path printed then); `prod` refuses. The public demo key is refused outside demo and test,
    so no real identifier is ever hashed with a key anyone can read."""
    where = "key" if current else f"previous_keys[{source.version}]"
    secret: bytes | None = None
    if source.file:
        path = Path(os.path.expanduser(source.file))
        if profile in ("prod", "dev") and _inside_repository(path):
            raise ConfigError(policy_source, f"{where}.file",
                              f"{path} is inside the repository (a git checkout); keep keys outside it")
        if path.is_file():
            secret = path.read_bytes().strip()
    if secret is None and source.env:
        value = os.environ.get(source.env)
        secret = value.encode() if value else None
    if secret == DEMO_KEY and profile not in DEMO_PROFILES:
        raise ConfigError(policy_source, where, f"the public demo key is for the {'/'.join(DEMO_PROFILES)} profiles "
                                                f"only; profile {profile} refuses to hash with the demo key")
    if secret is None:
        if profile in DEMO_PROFILES:
            if current:
                print(f"skewless: WARNING profile {profile}: hashing with the public demo key ({source.version}); "
                      "pseudonyms are NOT secret: demo data only", file=sys.stderr)
            return HashKey(source.version, DEMO_KEY, demo=True)
        if profile == "dev" and warehouse is not None:
            return HashKey(source.version, _dev_key(warehouse, source.version, create=current), demo=False)
        raise ConfigError(policy_source, where, f"no key for version {source.version} (env {source.env}, file "
                                                f"{source.file}); profile {profile} refuses to hash with the demo key")
    if profile == "prod" and len(secret) < 32:
        raise ConfigError(policy_source, where, "a production key must be at least 32 bytes")
    return HashKey(source.version, secret, demo=False)


def dev_key_path(warehouse: str, version: str) -> Path:
    """Where the dev profile keeps a warehouse's own random key: $SKEWLESS_KEY_DIR, else the user's config."""
    root = os.environ.get(KEY_DIR_ENV) or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / \
        "skewless" / "keys"
    ident = hashlib.sha256(_qualified(warehouse).encode()).hexdigest()[:16]
    return Path(root) / f"{ident}-{version}.key"


def _qualified(path: str) -> str:
    return path if "://" in path else str(Path(path).resolve())


def _dev_key(warehouse: str, version: str, *, create: bool) -> bytes:
    path = dev_key_path(warehouse, version)
    if not path.is_file():
        if not create:
            raise ConfigError(str(path), "", f"no dev key {version} for warehouse {warehouse}")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        print(f"skewless: profile dev: created a random privacy key {version} for warehouse {warehouse} at {path} "
              "(mode 0600; back it up: pseudonyms and `forget` depend on it)", file=sys.stderr)
    return path.read_bytes().strip()


def _inside_repository(path: Path) -> bool:
    """Inside any git checkout: a key there is one `git add` away from being public."""
    return any((parent / ".git").exists() for parent in path.resolve().parents)
