"""Every type of the compiled extension is safe when made with ``__new__`` and never
initialised: each method, called with any arguments, never crashes, and each of the type's
own methods raises (``__init__`` aside, and ``Hooks.on_end``, which does nothing for any span).

Run in a fresh interpreter, so a crash is a failed test and not a dead test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from otel_carbon import cpu_clock

compiled_types = pytest.mark.skipif(
    os.environ.get("OTEL_CARBON_SPEEDUPS", "").strip().lower() == "off",
    reason="OTEL_CARBON_SPEEDUPS=off: the pure-Python run has no compiled types",
)


def _run_compiled(code: str) -> "subprocess.CompletedProcess[str]":
    """``code`` in a fresh interpreter (a crash fails the test, not the test run)."""
    assert cpu_clock.speedups is not None, "otel_carbon._speedups was not built: " + cpu_clock.span_path
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


PROBE = textwrap.dedent(
    """
    import itertools, sys, types
    from otel_carbon import _speedups

    ARGS = [(), (None,), (0,), (None, None), (0, 0), (None, 1, 1.0), (None, 1, 1.0, 1.0, 1.0),
            (None,) * 8, (0,) * 8, ({},), ([], ()), ("x", b"y", 1.5)]
    kinds = (types.MethodDescriptorType, types.WrapperDescriptorType, types.BuiltinFunctionType,
             types.GetSetDescriptorType, types.MemberDescriptorType, types.ClassMethodDescriptorType)
    checked, returned = [], []
    for type_name in sorted(dir(_speedups)):
        cls = getattr(_speedups, type_name)
        if not isinstance(cls, type):
            continue
        for name in sorted(set(dir(cls)) - {"__new__", "__init_subclass__", "__subclasshook__",
                                            "__class__", "__dir__", "__reduce_ex__"}):
            attr = getattr(cls, name, None)
            if not isinstance(attr, kinds):
                continue
            obj = cls.__new__(cls)
            if isinstance(attr, (types.GetSetDescriptorType, types.MemberDescriptorType)):
                for value in (None, 1, "x"):
                    try:
                        getattr(obj, name)
                        setattr(obj, name, value)
                    except BaseException:
                        pass
            else:
                for args in ARGS:
                    try:
                        getattr(obj, name)(*args)
                    except BaseException:
                        pass
                    else:
                        if name in cls.__dict__ and name != "__init__" and f"{type_name}.{name}" != "Hooks.on_end":
                            returned.append(f"{type_name}.{name}{args!r}")
            checked.append(f"{type_name}.{name}")
            del obj
    import gc
    gc.collect()
    print(len(checked), " ".join(checked))
    print("returned:", " ".join(returned))
    """
)


@compiled_types
def test_every_method_of_every_type_made_with_new_raises_never_crashes():
    result = _run_compiled(PROBE)
    assert result.returncode == 0, f"crashed (exit {result.returncode}): {result.stderr[-3000:]}"
    checked, returned = result.stdout.strip().split("\n")
    count, names = checked.split(" ", 1)
    assert int(count) > 10 and "Hooks.on_start" in names and "TaskMeter" in names, result.stdout
    assert returned == "returned:", returned  # an uninitialised object's own methods all raise


HEAP_TYPES = textwrap.dedent(
    """
    import gc, sys
    from otel_carbon import _speedups

    HEAPTYPE = 1 << 9
    for cls in (_speedups.Hooks, _speedups.TaskMeter):
        assert cls.__flags__ & HEAPTYPE, cls  # heap types, made from the module's state
        assert cls.__module__ == "otel_carbon._speedups", cls.__module__
        before = sys.getrefcount(cls)
        made = [cls.__new__(cls) for _ in range(1000)]
        assert sys.getrefcount(cls) >= before + 1000  # each instance holds its type
        del made
        gc.collect()
        assert sys.getrefcount(cls) == before, (cls, before, sys.getrefcount(cls))
    meter = _speedups.TaskMeter(object())
    assert meter.acc_ns == 0 and meter.open_spans == 0 and meter.now_ns() == 0
    print("ok")
    """
)


@compiled_types
def test_the_types_are_heap_types_that_their_instances_keep_and_release():
    result = _run_compiled(HEAP_TYPES)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
