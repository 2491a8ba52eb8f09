"""The nightly's decisions without Spark: steps to run, exit codes, schedules, hours to compact."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skewless.datasets.spec import schedule_due
from skewless.nightly.hours import decide
from skewless.nightly.plan import COMPLETED, STEPS, StepResult, exit_code, plan, step_list

statuses = st.sampled_from(["succeeded", "check_failed", "failed"])


@given(st.dictionaries(st.sampled_from(STEPS), statuses),
       st.none() | st.sets(st.sampled_from(STEPS), min_size=1),
       st.none() | st.sets(st.sampled_from(STEPS)))
def test_a_step_runs_unless_it_completed_and_is_not_forced(done: dict[str, str], selected: set[str] | None,
                                                          forced: set[str] | None) -> None:
    out = plan(sorted(selected) if selected else None, sorted(forced) if forced is not None else None, done)
    assert [s for s, _ in out] == [s for s in STEPS if selected is None or s in selected]  # run order kept
    for step, go in out:
        forced_here = forced is not None and (not forced or step in forced)
        assert go == (forced_here or done.get(step) not in COMPLETED)


def test_exit_codes_fold_the_steps() -> None:
    ok, check = StepResult("compact", "succeeded", 0), StepResult("labels", "check_failed", 1)
    failed = StepResult("purge", "failed", 3)
    assert exit_code([ok, ok]) == 0 and exit_code([ok, check]) == 1 and exit_code([check, failed]) == 3
    # A rerun that skips a step whose check failed still reports the day's failing check.
    assert exit_code([ok, StepResult("drift", "skipped", 0, previous="check_failed")]) == 1
    assert exit_code([StepResult("drift", "skipped", 0, previous="succeeded")]) == 0


def test_step_lists_are_checked_when_parsed() -> None:
    assert step_list("drift,compact") == ("compact", "drift") and step_list("labels purge") == ("labels", "purge")
    with pytest.raises(argparse.ArgumentTypeError, match=r"unknown step\(s\) \['compaction'\]: choose from compact"):
        step_list("compaction,labels")


def test_schedules() -> None:
    monday, wednesday = date(2026, 11, 23), date(2026, 11, 25)
    assert schedule_due("daily", wednesday) and not schedule_due("none", monday)
    assert schedule_due("weekly:monday", monday) and not schedule_due("weekly:monday", wednesday)


def test_hours_to_compact_from_the_listing_and_the_audit() -> None:
    day, hour, earlier = date(2026, 11, 25), datetime(2026, 11, 25, 13), datetime(2026, 11, 24, 13)
    landed = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)      # the newest file's modification time
    ms = int(landed.timestamp() * 1000)
    compacted = datetime(2026, 11, 25, 14, 4)                # the audit's start of the last compaction (UTC)
    assert decide(hour, day, None, None, force=False) is None                  # no files: nothing to do
    assert decide(hour, day, ms, None, force=False) == "new"
    assert decide(earlier, day, ms, None, force=False) == "never_compacted"
    assert decide(hour, day, ms, datetime(2026, 11, 25, 15), force=True) == "forced"
    assert decide(earlier, day, ms, datetime(2026, 11, 25, 15), force=True) is None  # force redoes D only
    assert decide(earlier, day, ms, compacted, force=False) == "late_upload"  # landed after it started
    assert decide(earlier, day, ms - 120_000, compacted, force=False) is None
