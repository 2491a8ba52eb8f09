"""`python -m skewless ...`: the same as the `skewless` command."""

from skewless.cli import main

raise SystemExit(main())
