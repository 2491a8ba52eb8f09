"""`skewless generate`: argument parsing for the traffic generator (no Spark)."""

from __future__ import annotations

import argparse

from skewless.core.config import Config
from skewless.core.errors import UsageError
from skewless.core.progress import summary
from skewless.devtools.generator import GenSpec, generate
from skewless.serving.logformat import parse_hour


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", required=True, help="first hour, e.g. 2026-11-25T00")
    p.add_argument("--hours", type=int, default=1, help="number of hours (default 1)")
    p.add_argument("--rps", type=float, default=20.0, help="served predictions per second, before sampling")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same files")
    p.add_argument("--hosts", type=int, default=4, help="serving hosts, one logger and file stream each")
    p.add_argument("--sample-rate", type=float, default=0.1, help="logging sample rate in (0, 1]")
    p.add_argument("--low-risk-rate", type=float, help="log grocery and fuel merchants' requests at this lower rate "
                   "(sampling that varies by key; 0 < rate <= --sample-rate)")
    p.add_argument("--drift-from", help="hour from which device features drift, e.g. 2026-11-25T02")
    p.add_argument("--no-quirks", action="store_true", help="clean traffic: no retries, broken lines, late files")
    p.add_argument("--compress-level", type=int, default=1, help="gzip level 0-9 (0 writes plain .jsonl)")
    p.add_argument("--format", choices=("json", "avro"), default="json", dest="log_format",
                   help="log format: json (v1, default) or avro (v2; what v2 cannot hold is written as v1)")
    p.add_argument("--avro-from", help="with --format avro: the hour hosts switch from v1 to v2, e.g. "
                                       "2026-11-25T03 (default: the first)")
    p.add_argument("--codec", choices=("deflate", "zstandard"), default="deflate", help="Avro codec (--format avro)")
    p.add_argument("--no-cut-file", action="store_true", help="with quirks, still no file cut short")


def run(cfg: Config, args: argparse.Namespace) -> int:
    try:
        start = parse_hour(args.start)
        drift = parse_hour(args.drift_from) if args.drift_from else None
        avro_from = parse_hour(args.avro_from) if args.avro_from else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.hours < 1 or args.rps <= 0 or args.hosts < 1 or not 0 < args.sample_rate <= 1:
        raise UsageError("--hours and --hosts must be >= 1, --rps > 0, --sample-rate in (0, 1]")
    if args.low_risk_rate is not None and not 0 < args.low_risk_rate <= args.sample_rate:
        raise UsageError(f"--low-risk-rate must be in (0, --sample-rate {args.sample_rate}], got {args.low_risk_rate}")
    if not 0 <= args.compress_level <= 9:
        raise UsageError("--compress-level must be 0-9")
    spec = GenSpec(landing=cfg.paths.landing, start=start, hours=args.hours, rps=args.rps, seed=args.seed,
                   hosts=args.hosts, sample_rate=args.sample_rate, drift_from=drift,
                   compress_level=args.compress_level, quirks=not args.no_quirks, log_format=args.log_format,
                   codec=args.codec, cut_file=not args.no_cut_file, avro_from=avro_from,
                   low_risk_rate=args.low_risk_rate)
    if avro_from is not None and args.log_format != "avro":
        raise UsageError("--avro-from needs --format avro")
    totals = generate(spec)
    summary({"job": "generate", "landing": cfg.paths.landing, **totals})
    return 0
