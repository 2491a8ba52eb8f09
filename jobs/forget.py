"""Forget a subject, and purge quarantined raw text past its retention.

    skewless forget --entity user_id=U123
    skewless purge                      (also run by the nightly `skewless compact --date ...`)
    spark-submit --jars "$(python -m jobs.jars path)" jobs/forget.py --entity user_id=U123

The raw value is hashed with every key the policy knows (current and rotated out), so rows hashed
before a rotation are found too. Rows go from every table that holds the subject: the tables keyed by
request id first, `feature_logs` last, so a run killed midway still finds the subject's request ids
on rerun. Each delete is a MERGE against a small source DataFrame, so neither the raw value nor its
hash appears in a Delta commit's predicate text. Deletion vectors are purged (REORG) and old files
VACUUMed, so no table version reachable by time travel keeps the data once the retention passed.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file by spark-submit: make the `jobs` package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hashlib
import hmac
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs import names as N
from jobs.errors import UsageError
from jobs.policy import HashKey, PrivacyPolicy

SUBJECT = "_subject"
NEEDLE = "_needle"


def pseudonyms(value: str, keys: Sequence[HashKey]) -> list[str]:
    """What `value` looks like in the tables under each key version (same HMAC as jobs.privacy)."""
    return [f"{k.version}:{hmac.new(_block_key(k.secret), value.encode(), hashlib.sha256).hexdigest()}"
            for k in keys]


def _block_key(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest() if len(secret) > 64 else secret


def parse_subject(text: str, policy: PrivacyPolicy) -> tuple[str, str, bool]:
    """`user_id=U123` -> (member, raw value, whether the tables hold it hashed)."""
    member, sep, value = text.partition("=")
    member = member.removeprefix(f"{N.ENTITY}.")
    if not sep or not member or not value:
        raise UsageError(f"--entity {text!r}: expected FIELD=VALUE, e.g. user_id=U123")
    fp = policy.lookup(f"{N.ENTITY}.{member}")
    if fp is None:
        raise UsageError(f"--entity {member}: no such entity field in the privacy policy")
    if fp.action not in ("hash", "keep"):
        raise UsageError(f"--entity {member}: the policy stores it as `{fp.action}`, which cannot identify "
                         "one subject; forget by a hashed or kept field (e.g. user_id)")
    return member, value, fp.action == "hash"


def subject_rows(feature_logs: DataFrame, member: str, matches: DataFrame) -> DataFrame:
    """(request_id, event_date) of the subject's served predictions: the key of every dependent table."""
    cond = F.col(f"{N.ENTITY}.{member}") == F.col(SUBJECT)
    return (feature_logs.join(F.broadcast(matches), on=cond, how="left_semi")
            .select(N.REQUEST_ID, N.EVENT_DATE).distinct())


def quarantine_match(target: str, source: str) -> Column:
    """A quarantined line belongs to the subject when it names one of its request ids, or holds the
    raw value as a JSON string (lines that never parsed are matched on their text)."""
    return (F.col(f"{target}.{N.REQUEST_ID}") == F.col(f"{source}.{N.REQUEST_ID}")) | (
        F.instr(F.col(f"{target}.{N.RAW_TEXT}"), F.col(f"{source}.{NEEDLE}")) > 0)


def main(argv: list[str] | None = None) -> int:
    from jobs.cli import run_job

    return run_job("forget", argv)


if __name__ == "__main__":
    raise SystemExit(main())
