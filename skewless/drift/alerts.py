"""The drift webhook: POST the run's JSON summary, with a timeout and bounded retries.

Called after the run's results are committed; it never raises: a webhook that is down costs a line
on stderr and a `webhook` field in the summary, never the run's results or its exit code.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


def post(url: str, payload: dict[str, Any], *, timeout_s: float, retries: int,
         sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """{"delivered": bool, "attempts": n, "error": last error or None}; 2xx is delivered."""
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    error = None
    for attempt in range(1, retries + 2):
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "skewless-drift"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - http(s) only, checked in config
                if 200 <= response.status < 300:
                    return {"delivered": True, "attempts": attempt, "error": None}
                error = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt <= retries:
            sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
    return {"delivered": False, "attempts": retries + 1, "error": error}
