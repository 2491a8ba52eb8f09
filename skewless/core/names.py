"""Every table and column name the jobs use, in one place."""

from __future__ import annotations

from typing import Final, Literal

FeatureType = Literal["numeric", "categorical", "boolean"]

# Tables (directory names under the warehouse root, and plain names in `skewless sql`).
FEATURE_LOGS: Final = "feature_logs"
FEATURE_LOGS_QUARANTINE: Final = "feature_logs_quarantine"
INGESTION_AUDIT: Final = "ingestion_audit"
LABELS: Final = "labels"
LABELS_QUARANTINE: Final = "labels_quarantine"
LABELED_EXAMPLES: Final = "labeled_examples"  # a view: feature_logs + labels, the pick and states derived at read
PRIVACY_REQUESTS: Final = "privacy_requests"
DATASET_VERSIONS: Final = "dataset_versions"
DATASET_RESERVATIONS: Final = "dataset_reservations"  # internal: version numbers taken; no role reads it
SKEW_TESTS: Final = "skew_tests"  # one row per skew-test run (skewless skew-test)
DRIFT_METRICS: Final = "drift_metrics"  # one row per drift run, segment, feature and metric (skewless drift)
DRIFT_REFERENCES: Final = "drift_references"  # a reference's bins and histograms, computed once and reused
FORGOTTEN_SUBJECTS: Final = "forgotten_subjects"  # tombstones: compaction and labels never load these again
NIGHTLY_RUNS: Final = "nightly_runs"    # one row per `skewless nightly` run: its summary
NIGHTLY_STEPS: Final = "nightly_steps"  # one row per nightly run and step: status, seconds, counts
NIGHTLY_LEASE: Final = "nightly_lease"  # internal: who runs the nightly now, until when; no role reads it
TABLES: Final = (FEATURE_LOGS, FEATURE_LOGS_QUARANTINE, INGESTION_AUDIT, LABELS, LABELS_QUARANTINE, PRIVACY_REQUESTS,
                 DATASET_VERSIONS, FORGOTTEN_SUBJECTS, SKEW_TESTS, DRIFT_METRICS, DRIFT_REFERENCES, NIGHTLY_RUNS,
                 NIGHTLY_STEPS)
# Names a reader queries that are computed from tables at read time (never written as a table).
VIEWS: Final = (LABELED_EXAMPLES,)
LABELED_EXAMPLES_SOURCES: Final = (FEATURE_LOGS, LABELS)  # the tables the view reads
QUERYABLE: Final = (*TABLES, *VIEWS)

# Landing layout.
PREDICTIONS_DIR: Final = "predictions"
LABELS_DIR: Final = "labels"

# feature_logs columns: the log format's names, plus derived and ingestion columns.
SCHEMA_VERSION: Final = "schema_version"
REQUEST_ID: Final = "request_id"
LOGGED_AT: Final = "logged_at"
MODEL: Final = "model"
ENTITY: Final = "entity"
FEATURES: Final = "features"
FEATURE_STATUS: Final = "feature_status"
PREDICTION: Final = "prediction"
SCORE: Final = "score"
OUTPUTS: Final = "outputs"
SAMPLE_RATE: Final = "sample_rate"
CONTEXT: Final = "context"
EVENT_DATE: Final = "event_date"
EVENT_HOUR: Final = "event_hour"
LANDING_HOUR: Final = "landing_hour"
LANDING_DATE: Final = "landing_date"
SOURCE_FILE: Final = "source_file"
SOURCE_LINE: Final = "source_line"
RECORD_HASH: Final = "record_hash"
RUN_ID: Final = "run_id"
INGESTED_AT: Final = "ingested_at"

# Label columns.
LABEL: Final = "label"
OBSERVED_AT: Final = "observed_at"
SOURCE: Final = "source"
LABEL_DATE: Final = "label_date"
LABEL_OBSERVED_AT: Final = "label_observed_at"
LABEL_SOURCE: Final = "label_source"
LABEL_DELAY_S: Final = "label_delay_s"
LABEL_STATE: Final = "label_state"
WINDOW_END: Final = "window_end"
LABELS_AS_OF: Final = "labels_as_of"
STATE_LABELED: Final = "labeled"
STATE_PENDING: Final = "pending"
STATE_MATURED_NEGATIVE: Final = "matured_negative"
STATE_MATURED_DROPPED: Final = "matured_dropped"
MISSING_LABEL: Final = "missing_label"
MISSING_OBSERVED_AT: Final = "missing_observed_at"

# Quarantine-only columns.
REASON: Final = "reason"
RAW_TEXT: Final = "raw_text"

# Working columns that never reach a table.
RAW_VALUE: Final = "_value"
PARSED: Final = "_parsed"
CORRUPT: Final = "_corrupt"
EXTRA_FEATURES: Final = "_extra_features"
ROW_ID: Final = "_row_id"  # monotonically_increasing_id: input partition << 33 | row in partition
SPLIT_START: Final = "_split_start"
LINE_BYTES: Final = "_line_bytes"  # UTF-8 bytes of a line plus its newline, to check files were read whole
DUP_KIND: Final = "_dup_kind"

FEATURE_LOG_PARTITIONS: Final = (EVENT_DATE, EVENT_HOUR)
QUARANTINE_PARTITIONS: Final = (LANDING_DATE,)

# Quarantine reasons with a fixed name; `type_mismatch:<field>` is built per field.
MALFORMED_JSON: Final = "malformed_json"
NOT_AN_OBJECT: Final = "not_an_object"
EMPTY_RECORD: Final = "empty_record"
UNSUPPORTED_SCHEMA_VERSION: Final = "unsupported_schema_version"
MISSING_REQUEST_ID: Final = "missing_request_id"
MISSING_LOGGED_AT: Final = "missing_logged_at"
BAD_TIMESTAMP: Final = "bad_timestamp"
OUT_OF_RANGE_TIMESTAMP: Final = "out_of_range_timestamp"
MISSING_MODEL: Final = "missing_model"
MISSING_SCORE: Final = "missing_score"
MISSING_SAMPLE_RATE: Final = "missing_sample_rate"
BAD_SAMPLE_RATE: Final = "bad_sample_rate"
BAD_FEATURE_STATUS: Final = "bad_feature_status"
TYPE_MISMATCH: Final = "type_mismatch"
RECORD_TOO_LARGE: Final = "record_too_large"
INVALID_UTF8: Final = "invalid_utf8"
NON_FINITE_NUMBER: Final = "non_finite_number"
DUPLICATE_KEY: Final = "duplicate_key"
UNKNOWN_FIELD: Final = "unknown_field"
BAD_FEATURE_NAME: Final = "bad_feature_name"
FEATURE_LIMIT: Final = "feature_limit"
UNREADABLE_FILE: Final = "unreadable_file"
LABEL_OUT_OF_RANGE: Final = "label_out_of_range"
FORGOTTEN_SUBJECT: Final = "forgotten_subject"  # a forgotten subject's record: kept out, its text dropped

# Duplicate kinds.
DUP_IN_RUN: Final = "in_run"
DUP_EXISTING: Final = "existing"
