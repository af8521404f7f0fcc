"""``python -m benchmarks [--only NAME ...] [--quick]``: run the benchmarks, write
``benchmarks/results/<name>.json`` and print one table (see docs/PERFORMANCE.md)."""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import sys
import time
import traceback

MODULES = {
    "log_streaming": "benchmarks.log_streaming",
    "provisioning": "benchmarks.provisioning",
    "status_sync": "benchmarks.status_sync",
    "http": "benchmarks.http_views",
    "ws_fanout": "benchmarks.ws_fanout",
    "sessionhost_resync": "benchmarks.sessionhost_resync",
    "time_to_ready": "benchmarks.time_to_ready",
}


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_table(results: list[dict]) -> None:
    header = ("benchmark", "measure", "value", "target", "met")
    rows = []
    for result in results:
        for index, (label, value, target, met) in enumerate(result.get("rows", [])):
            mark = "" if met is None else ("yes" if met else "NO")
            rows.append((result["name"] if index == 0 else "", label, _cell(value), target or "", mark))
        if result.get("error"):
            rows.append((result["name"], "error", result["error"][:60], "", "NO"))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * width for width in widths)
    print(line)
    print("  ".join(str(cell).ljust(width) for cell, width in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", action="append", choices=sorted(MODULES), help="run only this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke run, not figures")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/*.json")
    args = parser.parse_args(argv)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 16384):  # 1,000 WebSocket clients and their server side, in children too
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))

    from .env import prepare
    from .results import machine_info, write_result

    environment = prepare()
    names = args.only or list(MODULES)
    results = []
    try:
        machine = machine_info(environment)
        print(f"machine: {machine['cpu']}, {machine['nproc']} cores, {machine['memory_gib']} GiB; "
              f"Python {machine['python']}; {machine['database']}; {machine['redis']}", flush=True)
        for name in names:
            module = importlib.import_module(MODULES[name])
            print(f"== {name}: {module.TITLE}", flush=True)
            started = time.monotonic()
            try:
                result = module.run(environment, quick=args.quick)
            except Exception as exc:  # one failing benchmark must not hide the others' figures
                traceback.print_exc()
                result = {"name": name, "title": module.TITLE, "error": f"{type(exc).__name__}: {exc}", "rows": []}
            result["seconds"] = round(time.monotonic() - started, 1)
            result["machine"] = machine
            result["quick"] = args.quick
            result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            results.append(result)
            print(f"   ({result['seconds']} s)", flush=True)
            if not args.no_write:
                write_result(name, json.loads(json.dumps(result, default=str)))
    finally:
        environment.close()
    print_table(results)
    return 1 if any(result.get("error") for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
