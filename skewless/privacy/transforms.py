"""The privacy step of compaction: apply the policy to loadable rows before their first write.

Pure transforms. HMAC-SHA256 runs in a vectorised function that reads the key from a broadcast
(`keyed`), so no plan, EXPLAIN, UI page or event log holds the key or its padded forms. A hashed
value reads `<key version>:<64 hex>`, so every value says which key made it and a table can hold two
key versions during a rotation.

`forget` finds a subject with the same HMAC under every key the policy knows (`pseudonyms`), then
the subject's rows (`subject_rows`, `quarantine_match`).

The identifier objects (`entity`, `context`) and the prediction's outputs arrive as maps; they leave
as structs with one field per member the policy allows, so each member carries its own access tag.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.errors import ConfigError, UsageError
from skewless.core.frames import require_columns
from skewless.core.policy import FieldPolicy, HashKey, PrivacyPolicy
from skewless.privacy.keyed import keyed_pseudonym

_IPV4 = r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$"
_ISO = "yyyy-MM-dd'T'HH:mm:ss'Z'"
MAP_SECTIONS = (N.ENTITY, N.CONTEXT, N.PREDICTION)


class UnpolicedFieldError(ConfigError):
    """A loadable record carries a field the privacy policy does not mention."""

    def __init__(self, source: str, path: str, landing_hour: str) -> None:
        self.path = path
        super().__init__(source, f"fields.{path}",
                         f"records of landing hour {landing_hour} carry {path}, which has no policy; nothing "
                         "was written. Add it (or a section.* entry) to the policy and rerun")


def pseudonym(value: Column, key: HashKey) -> Column:
    """`<version>:<hmac hex>` of the value as text; null stays null. The key never enters the plan
    (`keyed`: a vectorised function reads it from a broadcast on the executors)."""
    return keyed_pseudonym(value.cast("string"), key.version, key.secret)


def truncated(value: Column, to: str, length: int | None) -> Column:
    text = value.cast("string")
    if to in ("ip_24", "ip_16"):
        keep = 3 if to == "ip_24" else 2
        v4 = F.regexp_replace(text, rf"(\.\d{{1,3}}){{{4 - keep}}}$", ".0" * (4 - keep))
        # IPv6: the first 3 (or 2) groups as written, i.e. a /48 (or /32) network for the full form.
        v6_groups = F.regexp_extract(text, rf"^((?:[0-9A-Fa-f]{{0,4}}:){{{keep}}})", 1)
        return (F.when(text.rlike(_IPV4), v4)
                .when(text.contains(":") & (v6_groups != ""), F.concat(v6_groups, F.lit(":"))))
    if to in ("day", "hour"):
        return F.date_format(F.date_trunc(to, F.try_to_timestamp(text)), _ISO)
    return F.substring(text, 1, length or 0)


def apply_action(value: Column, fp: FieldPolicy, key: HashKey) -> Column:
    if fp.action == "hash":
        return pseudonym(value, key)
    if fp.action == "truncate":
        assert fp.to is not None  # validated with the policy
        return truncated(value, fp.to, fp.length)
    if fp.action == "generalize":
        assert fp.width is not None
        number = value.cast("string").try_cast("double")
        # The bucket's lower bound, in doubles: floor() returns a long and would clamp 1e308 to
        # Long.MAX (x width). pmod is never negative, so negative values round down too.
        return number - F.pmod(number, F.lit(float(fp.width)))
    return value


@dataclass(frozen=True)
class PrivacyPlan:
    """What one run writes for each member: (member name, policy) per section, in column order."""

    sections: Mapping[str, tuple[tuple[str, FieldPolicy], ...]]
    features: tuple[tuple[str, FieldPolicy], ...]
    key: HashKey
    policy_tag: str


def plan_for(policy: PrivacyPolicy, key: HashKey, seen: Mapping[str, Iterable[str]],
             table_members: Mapping[str, Iterable[str]], features: Iterable[str], landing_hour: str) -> PrivacyPlan:
    """Members to write: those already in the table (stable column order), then new ones seen this run.
    A member without a policy stops the run here, before anything is written."""
    sections: dict[str, tuple[tuple[str, FieldPolicy], ...]] = {}
    for section in MAP_SECTIONS:
        names = list(dict.fromkeys([*table_members.get(section, ()), *sorted(seen.get(section, ()))]))
        if section == N.PREDICTION:
            names = [n for n in names if n != N.SCORE]
        sections[section] = tuple(_with_policy(policy, section, names, landing_hour))
    feats = tuple(_with_policy(policy, N.FEATURES, list(features), landing_hour))
    return PrivacyPlan(sections, feats, key, policy.tag)


def _with_policy(policy: PrivacyPolicy, section: str, names: list[str], hour: str) -> list[tuple[str, FieldPolicy]]:
    out = []
    for name in names:
        fp = policy.lookup(f"{section}.{name}")
        if fp is None:
            raise UnpolicedFieldError(policy.source, f"{section}.{name}", hour)
        if fp.action != "drop":
            out.append((name, fp))
    return out


def apply_policy(rows: DataFrame, plan: PrivacyPlan) -> DataFrame:
    """feature_logs rows (maps as parsed) -> the same columns with every member's action applied."""
    require_columns(rows, (N.ENTITY, N.CONTEXT, N.PREDICTION, N.FEATURES), "apply_policy")
    out: dict[str, Column] = {}
    for section in (N.ENTITY, N.CONTEXT):
        members = [apply_action(F.col(section)[m], fp, plan.key).alias(m) for m, fp in plan.sections[section]]
        # A struct needs a field: an object with no member allowed (or none seen yet) is left out.
        if members:
            out[section] = F.struct(*members)
    outputs = F.col(N.PREDICTION)[N.OUTPUTS]
    out[N.PREDICTION] = F.struct(F.col(N.PREDICTION)[N.SCORE].alias(N.SCORE),
                                 *[apply_action(outputs[m], fp, plan.key).alias(m)
                                   for m, fp in plan.sections[N.PREDICTION]])
    out[N.FEATURES] = F.struct(*[apply_action(F.col(N.FEATURES)[f], fp, plan.key).alias(f)
                                 for f, fp in plan.features])
    cols = [out[c].alias(c) if c in out else F.col(c) for c in rows.columns
            if c not in (N.ENTITY, N.CONTEXT) or c in out]
    return rows.select(*cols)


# --- forget: find a subject's rows -------------------------------------------------------------

SUBJECT = "_subject"
NEEDLE = "_needle"


def pseudonyms(value: str, keys: Sequence[HashKey]) -> list[str]:
    """What `value` looks like in the tables under each key version (the same HMAC as `pseudonym`)."""
    return [f"{k.version}:{hmac.new(k.secret, value.encode(), hashlib.sha256).hexdigest()}" for k in keys]


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


# --- tombstones: a forgotten subject stays forgotten --------------------------------------------

TOMBSTONE_FIELD, TOMBSTONE_VALUE = "entity_field", "value"
REQUEST_FIELD = N.REQUEST_ID  # tombstones of the subject's request ids use this as their field
_KEY, _HIT = "_tombstone_key", "_forgotten"
# What a forgotten row keeps of its subject in the quarantine: nothing (the reason stays).
_SUBJECT_TEXT = (N.RAW_TEXT, N.RAW_VALUE, N.REQUEST_ID)


def _tombstone_key(field: str | Column, value: Column) -> Column:
    return F.concat_ws("\u0001", field if isinstance(field, Column) else F.lit(field), value)


def mark_forgotten(rows: DataFrame, tombstones: DataFrame, fields: Sequence[str], keys: Sequence[HashKey]) -> DataFrame:
    """Rows of a forgotten subject, found by an entity member's pseudonym under any of `keys` or by a
    request id, get the reason `forgotten_subject` (unless they already have one) and lose their raw
    text and request id: they are accounted for as quarantined, and nothing of the subject is written.

    `tombstones` is small (entity_field, value) and is broadcast; only `fields` (the members that have
    tombstones) are hashed, and only request ids when there is no entity field."""
    require_columns(rows, (N.ROW_ID, N.REASON, N.RAW_TEXT, N.REQUEST_ID), "mark_forgotten")
    require_columns(tombstones, (TOMBSTONE_FIELD, TOMBSTONE_VALUE), "mark_forgotten")
    candidates = [_tombstone_key(REQUEST_FIELD, F.col(N.REQUEST_ID))]
    if fields:
        require_columns(rows, (N.ENTITY,), "mark_forgotten")
        candidates += [_tombstone_key(f, pseudonym(F.col(N.ENTITY)[f], k)) for f in fields for k in keys]
    known = tombstones.select(_tombstone_key(F.col(TOMBSTONE_FIELD), F.col(TOMBSTONE_VALUE)).alias(_KEY))
    hits = (rows.select(N.ROW_ID, F.explode(F.array(*candidates)).alias(_KEY))
            .join(F.broadcast(known), on=_KEY, how="left_semi")
            .select(N.ROW_ID).distinct().withColumn(_HIT, F.lit(True)))
    marked = rows.join(F.broadcast(hits), on=N.ROW_ID, how="left")
    hit = F.coalesce(F.col(_HIT), F.lit(False))
    return marked.select(
        *[F.when(hit, F.coalesce(F.col(N.REASON), F.lit(N.FORGOTTEN_SUBJECT))).otherwise(F.col(N.REASON)).alias(c)
          if c == N.REASON else F.when(~hit, F.col(c)).alias(c) if c in _SUBJECT_TEXT else F.col(c)
          for c in rows.columns])
