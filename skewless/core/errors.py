"""Named exceptions. Each carries the context a user needs to fix the cause."""

from __future__ import annotations

from collections.abc import Iterable


class SkewlessError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = 3


class ConfigError(SkewlessError, ValueError):
    """Configuration is invalid; raised before any write. `key` is the dotted path of the bad key."""

    exit_code = 2

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


class UsageError(SkewlessError, ValueError):
    """A command-line argument is invalid."""

    exit_code = 2


class MissingColumnsError(SkewlessError, ValueError):
    """A DataFrame lacks columns a transform needs."""

    def __init__(self, where: str, expected: Iterable[str], actual: Iterable[str]) -> None:
        exp, act = sorted(expected), sorted(actual)
        missing = sorted(set(exp) - set(act))
        self.missing = missing
        super().__init__(f"{where}: missing columns {missing}; expected {exp}, got {act}")


class DeltaJarsMissingError(SkewlessError, RuntimeError):
    """The Delta Lake jars are not in the project's jar folder."""

    exit_code = 2


class TableNotFoundError(SkewlessError, LookupError):
    """A table the command needs has not been written yet."""

    exit_code = 2

    def __init__(self, name: str, path: str) -> None:
        super().__init__(f"table {name!r} does not exist yet at {path}")


class InvariantError(SkewlessError, AssertionError):
    """A run's counts do not reconcile (read != loaded + duplicates + quarantined)."""


class AccessDeniedError(SkewlessError):
    """A query names a table or column above the role's clearance."""

    exit_code = 2

    def __init__(self, role: str, target: str, access: str, clearance: str) -> None:
        self.target = target
        self.access = access
        super().__init__(f"role {role!r} may not read {target} (access class {access}); "
                         f"{role} reads: {clearance}")


class QueryRefusedError(SkewlessError):
    """`skewless sql` refused a query before running anything: what was refused, and why."""

    exit_code = 2

    def __init__(self, what: str, why: str) -> None:
        self.what = what
        super().__init__(f"query refused: {what}: {why}")


class ConcurrentCommitError(SkewlessError):
    """A Delta commit kept losing to concurrent writers after its bounded retries."""

    def __init__(self, what: str, attempts: int, cause: str) -> None:
        self.attempts = attempts
        super().__init__(f"{what}: gave up after {attempts} attempts, each lost to a concurrent commit "
                         f"(last: {cause}); rerun the job: its writes are idempotent")


class VersionTakenError(SkewlessError):
    """Another `snapshot create` reserved the version numbers this one tried."""

    def __init__(self, name: str, tried: list[int]) -> None:
        super().__init__(f"{name}: versions {tried} were each reserved by a concurrent `snapshot create`; "
                         "nothing was written; run it again")


class GuardUnavailableError(SkewlessError):
    """The SQL extension that enforces roles is not active in the session: nothing may run as a role."""

    exit_code = 2


class LeaseHeldError(SkewlessError):
    """Another nightly run holds the warehouse's lease (exit 3): names the holder and its expiry."""

    def __init__(self, warehouse: str, holder: str, expires_at: object, waited_s: float) -> None:
        self.holder = holder
        super().__init__(f"another nightly run holds the lease on {warehouse}: {holder}, until {expires_at} UTC "
                         f"(waited {waited_s:.0f}s; nightly.wait_minutes or --wait-minutes waits longer; a "
                         f"crashed holder's lease expires, or is taken over at once on its own host)")


class LeaseLostError(SkewlessError):
    """This run's lease expired and another run took it: stop before writing more."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"the nightly lease was taken over by {holder} (this run's lease had expired): stopping")
