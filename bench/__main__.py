"""Run the benchmarks and print their figures: ``python -m bench [name …] [--quick]``."""

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import bench


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(available())})")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    names = args.names or available()
    figures = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n== {name}: {module.DESCRIPTION}", flush=True)
        started = time.perf_counter()
        results = module.run(quick=args.quick)
        figures.extend(results)
        for f in results:
            ratio = f" ratio {f.ratio:.2f}" if f.ratio is not None else ""
            base = f" (baseline {f.baseline:.4g} {f.unit})" if f.baseline is not None else ""
            target = f" target {f.target}" if f.target else ""
            note = f"  [{f.note}]" if f.note else ""
            print(f"  {f.metric:<48} {f.value:>10.4g} {f.unit}{base}{ratio}{target}{note}", flush=True)
        print(f"  ({time.perf_counter() - started:.1f}s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps([{**f.__dict__, "ratio": f.ratio} for f in figures], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
