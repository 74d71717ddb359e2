"""A stand-in for a cron job that reports to Vigil's heartbeat URL (started by `make run`).

Every PERIOD seconds it "runs": pings /start, works a little, then pings success, or /fail with a message
every fifth run. It stops by itself after --max-runs, or once the server has been unreachable for a minute.
Only the standard library, as a real cron job's script would be.
"""

from __future__ import annotations

import argparse
import time
import urllib.error
import urllib.request


def ping(url: str, body: str = "") -> bool:
    try:
        with urllib.request.urlopen(url, data=body.encode(), timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8080/ping/demo-backup-job")
    parser.add_argument("--period", type=float, default=15.0)
    parser.add_argument("--max-runs", type=int, default=10_000)
    args = parser.parse_args()
    unreachable_since: float | None = None
    time.sleep(3)  # let the server start
    for run in range(1, args.max_runs + 1):
        reached = ping(f"{args.url}/start")
        time.sleep(1)
        if run % 5 == 0:
            reached = ping(f"{args.url}/fail", f"run {run}: backup failed: disk full") and reached
        else:
            reached = ping(args.url, f"run {run}: 1234 files, 56 MB") and reached
        if reached:
            unreachable_since = None
        elif unreachable_since is None:
            unreachable_since = time.monotonic()
        elif time.monotonic() - unreachable_since > 60:
            return
        time.sleep(args.period)


if __name__ == "__main__":
    main()
