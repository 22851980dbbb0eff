"""How far a command travels through mnistlab before its network first runs: the calls on the way, counted.

    python scripts/hops.py train --limit-train 512 --limit-test 256 --epochs 1 --no-plots --quiet --out /tmp/h
    python scripts/hops.py --after load predict examples/photos/photo-7.png

runs `mnistlab ARGS...` in this process under `sys.setprofile`, records every call of a function defined in the
installed mnistlab package, and stops at the first call that runs a network: `Net.forward` (torch) or an
onnxruntime session's `run` (with --after FUNCTION, the first after FUNCTION returns: `load` runs the network
once to check it). It prints (and writes as JSON with --json FILE):
- path: the chain of mnistlab calls on the stack at that moment, outermost first (its length - 1 is the hops);
- calls: every mnistlab function call made before it, the modules they are in, and the visits to each module (a
  visit is a call into a module from another one: data going back and forth shows as many visits).
The same script measures any layout of the package, so figures taken before and after a move compare.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path

import mnistlab
from mnistlab.cli import main as mnistlab_main

PACKAGE = str(Path(mnistlab.__file__).resolve().parent)
TARGETS = {("forward", "Net"), ("run", "InferenceSession")}


def module_of(code) -> str | None:
    path = str(Path(code.co_filename).resolve())
    if not path.startswith(PACKAGE + os.sep):
        return None
    rel = Path(path).relative_to(Path(PACKAGE).parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts)


def is_target(frame) -> bool:
    owner = frame.f_locals.get("self")
    return (frame.f_code.co_name, type(owner).__name__ if owner is not None else "") in TARGETS


def report(frame, calls: list[str], out: str | None) -> None:
    path = []
    f = frame.f_back
    while f is not None:
        mod = module_of(f.f_code)
        if mod:
            path.append(f"{mod}.{f.f_code.co_qualname}")
        f = f.f_back
    path.reverse()
    modules = [c.rsplit(":", 1)[0] for c in calls]
    visits = collections.Counter(m for i, m in enumerate(modules) if i == 0 or modules[i - 1] != m)
    owner = type(frame.f_locals.get("self")).__name__
    result = {
        "target": f"{owner}.{frame.f_code.co_name}",
        "path": path,
        "hops": len(path) - 1,
        "calls": len(calls),
        "modules": len(set(modules)),
        "visits": sum(visits.values()),
        "visits_per_module": dict(visits.most_common()),
    }
    print(f"first network call: {result['target']}")
    print(f"path ({result['hops']} hops):")
    for p in path:
        print("  " + p)
    print(f"before it: {result['calls']} mnistlab calls in {result['modules']} modules, {result['visits']} visits")
    for m, n in visits.most_common():
        print(f"  {n:4d}  {m}")
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--after", metavar="FUNCTION", help="count only from the first return of this mnistlab function (e.g. load)"
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the mnistlab command and its options")
    opts = parser.parse_args()
    calls: list[str] = []
    counting = [opts.after is None]

    def profile(frame, event, arg):
        if not counting[0]:
            if event == "return" and frame.f_code.co_name == opts.after and module_of(frame.f_code):
                counting[0] = True
            return
        if event != "call":
            return
        if is_target(frame):
            sys.setprofile(None)
            report(frame, calls, opts.json)
            sys.stdout.flush()
            os._exit(0)
        mod = module_of(frame.f_code)
        if mod and frame.f_code.co_name != "<module>":  # an import's module body is no step of the data
            calls.append(f"{mod}:{frame.f_code.co_qualname}")

    sys.setprofile(profile)
    try:
        mnistlab_main(opts.args)
    finally:
        sys.setprofile(None)
    sys.exit("the command ended without running a network")


if __name__ == "__main__":
    main()
