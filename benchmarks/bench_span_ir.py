"""Instructions per span (callgrind), with and without CarbonSpanProcessor.

    python benchmarks/bench_span_ir.py [--spans 10000]

Wall time on a shared VM drifts by tens of percent between runs; an instruction count does
not. Each variant of ``bench_span.py`` runs in its own process under ``valgrind
--tool=callgrind``, twice (2,000 spans, then 2,000 + ``--spans``); the difference divided
by ``--spans`` is the instructions one span costs, start-up and imports excluded (every
thread counts: the batch processor's worker, the sampler). Instructions are not time (a
system call such as the thread-CPU-clock read is one instruction here and ~0.7 us on this
VM; cache misses are free), so read it beside ``bench_span.py``'s paired ratios.
The ``floor`` variant is a Python lambda that only adds the same eight attribute values to
each span: what any processor that puts eight numbers on a span pays.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict

HERE = Path(__file__).resolve().parent
FIRST = 2000
VARIANTS = ("bare", "floor: lambda adding 8 attributes", "carbon, this host", "carbon, RAPL cpu+dram", "carbon + metrics")


def run_variant(name: str, n: int) -> None:
    """In the child: build the variant's provider and end ``n`` spans (after a warm-up)."""
    sys.path.insert(0, str(HERE))
    import bench_span as b

    if name == "bare":
        tp = b.provider(False)
    elif name.startswith("floor"):
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        values = {"carbon.cpu.time": 1.5, "carbon.cpu.clock": "thread", "carbon.energy.cpu": 2.5, "carbon.energy.total": 2.5,
                  "carbon.emissions": 3.5, "carbon.intensity": 4.0, "carbon.zone": "x", "carbon.method": "estimated"}
        tp = TracerProvider()
        tp.add_span_processor(BatchSpanProcessor(b.NoopExporter()))
        floor = SpanProcessor()
        floor._on_ending = lambda span: span._attributes._dict.update(  # type: ignore[attr-defined]
            {k: v * 1.0000001 if type(v) is float else v for k, v in values.items()}  # fresh floats, as ours
        )
        tp.add_span_processor(floor)
        tp.drain = lambda: None  # type: ignore[attr-defined]
    elif name == "carbon, RAPL cpu+dram":
        sampler, _driver = b.rapl_sampler(Path(tempfile.mkdtemp(prefix="bench-powercap-")))
        tp = b.provider(True, sampler=sampler)
    else:
        tp = b.provider(True, metrics=name == "carbon + metrics")
    run = b.plain(tp)
    run(500)
    run(n)


def count(name: str, n: int) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, "--child", name, str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=10000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_variant(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    per_span: Dict[str, float] = {}
    for name in VARIANTS:
        per_span[name] = (count(name, FIRST + args.spans) - count(name, FIRST)) / args.spans
    sys.path.insert(0, str(HERE))
    from _common import machine

    print(f"machine: {machine()}")
    print(f"instructions per start_span().end(), difference of {FIRST} and {FIRST + args.spans} spans (callgrind)")
    for name, ir in per_span.items():
        print(f"{name:<40} {ir:10.0f}   x{ir / per_span['bare']:5.3f}")


if __name__ == "__main__":
    main()
