"""otel-carbon run: a Python program with zero code, any other command as a process tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from otel_carbon import attributes as R
from otel_carbon.cli.span_lines import read_spans
from otel_carbon.data import load_table
from otel_carbon.intensity import resolve_intensity
from otel_carbon.sensors.cpu_model import ccf_params

APP = textwrap.dedent(
    """
    import sys, time
    from opentelemetry import trace
    tracer = trace.get_tracer("app")

    def burn(seconds):
        t = time.thread_time()
        while time.thread_time() - t < seconds:
            pass

    with tracer.start_as_current_span("work-small"):
        burn(0.05)
    for _ in range(2):
        with tracer.start_as_current_span("work-big"):
            burn(0.1)
    with open(sys.argv[1], "w") as fh:
        fh.write(str(time.process_time()))
    print("app output")
    sys.exit(int(sys.argv[2]))
    """
)


def env_for_tests(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHONPATH"))}
    env.update(OTEL_CARBON_CPU_MODEL="ccf", OTEL_CARBON_COUNTRY="FR", OTEL_CARBON_NVML="off")
    env.update(extra)
    return env


def price_j_per_cpu_s():
    min_w, max_w, _ = ccf_params(None, load_table("cpu_power_model"))
    return max_w - min_w


def otel_carbon_run(tmp_path, *argv, env=None, timeout=120):
    summary = tmp_path / "summary.json"
    out = subprocess.run(
        [sys.executable, "-m", "otel_carbon.cli", "run", "--summary-json", str(summary), *argv],
        capture_output=True, text=True, env=env or env_for_tests(), cwd=tmp_path, timeout=timeout,
    )
    data = json.loads(summary.read_text()) if summary.exists() else None
    return out, data


@pytest.fixture
def app(tmp_path):
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


def test_python_program_is_instrumented_with_zero_code(tmp_path, app):
    spans_file = tmp_path / "spans.jsonl"
    cpu_file = tmp_path / "cpu.txt"
    out, s = otel_carbon_run(tmp_path, "--no-auto-instrument", "--output", str(spans_file), "--",
                             sys.executable, str(app), str(cpu_file), "3")
    assert out.returncode == 3, out.stderr  # the child's exit code
    assert out.stdout.strip() == "app output"  # the summary goes to stderr
    assert s["python_instrumented"] is True
    assert s["cpu_time_s"] >= float(cpu_file.read_text())  # the process tree includes the child's CPU
    assert s["energy_j"]["cpu"] == pytest.approx(s["cpu_time_s"] * price_j_per_cpu_s(), rel=1e-3)
    fr = resolve_intensity({}, country="FR")
    assert s["zone"] == "FR"
    assert s["emissions_g"] == pytest.approx(s["energy_total_j"] * fr.g_per_kwh * fr.pue / 3.6e6)
    assert [r["key"] for r in s["top_spans"]] == ["work-big", "work-small"]
    big, small = s["top_spans"]
    assert big["count"] == 2 and small["count"] == 1
    assert big["energy_total_j"] == pytest.approx(0.2 * price_j_per_cpu_s(), rel=0.2)
    assert "ESTIMATED" in out.stderr and "work-big" in out.stderr and "zone FR" in out.stderr
    spans = read_spans(str(spans_file))
    (tree,) = [x for x in spans if x.attributes.get(R.RUN_SCOPE) == R.SCOPE_PROCESS_TREE]
    roots = [x for x in spans if x.parent_span_id == tree.span_id]
    assert len(roots) == 1 and roots[0].attributes[R.RUN_SCOPE] == R.SCOPE_PROCESS
    assert roots[0].trace_id == tree.trace_id
    assert tree.attributes["process.exit.code"] == 3
    assert tree.energy_j == pytest.approx(s["energy_total_j"])
    # a second run appends to the same file; its summary counts only its own spans
    out, s2 = otel_carbon_run(tmp_path, "--no-auto-instrument", "--output", str(spans_file), "--",
                              sys.executable, str(app), str(cpu_file), "0")
    assert out.returncode == 0 and s2["spans"] == 3 and s2["top_spans"][0]["count"] == 2
    assert len(read_spans(str(spans_file))) == 2 * len(spans)


def test_fresh_machine_no_collector_default_path(tmp_path, app):
    """The README's first command: no configuration, auto-instrumentation on, no collector."""
    out, s = otel_carbon_run(tmp_path, "--", sys.executable, str(app), str(tmp_path / "cpu.txt"), "0")
    assert out.returncode == 0, out.stderr
    assert s["python_instrumented"] is True and s["spans"] == 3
    assert "4317" not in out.stderr and "Failed to export" not in out.stderr
    assert s["spans_file"] is None  # the temporary file is gone


def test_other_commands_are_one_span_over_the_process_tree(tmp_path):
    script = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; exit 7"
    spans_file = tmp_path / "spans.jsonl"
    out, s = otel_carbon_run(tmp_path, "--output", str(spans_file), "--", "sh", "-c", script)
    assert out.returncode == 7
    assert s["python_expected"] is False and s["cpu_time_s"] > 0.05
    assert s["energy_j"]["cpu"] == pytest.approx(s["cpu_time_s"] * price_j_per_cpu_s(), rel=1e-3)
    (span,) = read_spans(str(spans_file))
    assert span.attributes[R.RUN_SCOPE] == R.SCOPE_PROCESS_TREE and span.cpu_time_s == pytest.approx(s["cpu_time_s"])


def test_exit_codes_of_signals_and_missing_commands(tmp_path):
    out, _ = otel_carbon_run(tmp_path, "--", "sh", "-c", "kill -TERM $$")
    assert out.returncode == 128 + 15
    out, _ = otel_carbon_run(tmp_path, "--", "no-such-command-xyz")
    assert out.returncode == 127 and "command not found" in out.stderr
    for name, mode in (("not-executable.sh", 0o644), ("no-shebang.sh", 0o755)):  # EACCES, ENOEXEC
        script = tmp_path / name
        script.write_text("echo hi\n")
        script.chmod(mode)
        out, _ = otel_carbon_run(tmp_path, "--", str(script))
        assert out.returncode == 126 and f"cannot run {script}" in out.stderr and "Traceback" not in out.stderr, out.stderr
    out, _ = otel_carbon_run(tmp_path)
    assert out.returncode == 2


def test_the_programs_own_sitecustomize_still_runs(tmp_path, app):
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "marker.txt"
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    env = env_for_tests(PYTHONPATH=str(site))
    out, s = otel_carbon_run(tmp_path, "--no-auto-instrument", "--", sys.executable, str(app),
                             str(tmp_path / "cpu.txt"), "0", env=env)
    assert out.returncode == 0, out.stderr
    assert marker.read_text() == "ran"
    assert s["python_instrumented"] is True


def test_a_python_that_cannot_be_instrumented_is_still_measured(tmp_path, app):
    # -I ignores PYTHONPATH, so our sitecustomize never loads
    out, s = otel_carbon_run(tmp_path, "--", sys.executable, "-I", str(app), str(tmp_path / "cpu.txt"), "0")
    assert out.returncode == 0
    assert s["python_instrumented"] is False and s["cpu_time_s"] > 0.2
    assert "measured as a process only" in out.stderr


# -- signals, the child's environment, and what may never change the exit status -----------

SLEEPER = textwrap.dedent(
    """
    import os, sys, time
    from opentelemetry import trace
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("before-the-signal"):
        sum(range(1000))
    with open(sys.argv[1] + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])  # the test waits for this file
    time.sleep(60)
    """
)


def start_run(tmp_path, *argv, env=None):
    """`otel-carbon run` in the background; returns (process, pid file of the Python child)."""
    pid_file = tmp_path / "child.pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_carbon.cli", "run", "--summary-json", str(tmp_path / "summary.json"), *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or env_for_tests(), cwd=tmp_path,
        preexec_fn=no_core_files,
    )
    return proc, pid_file


def no_core_files():  # SIGQUIT's default action dumps core: not in the test's folder, not to a crash reporter
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def wait_for(path, proc, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the program never started"
        time.sleep(0.05)
    return int(path.read_text())


@pytest.mark.parametrize("signame, who, status", [
    ("SIGTERM", "child", 143),
    ("SIGTERM", "wrapper", 143),
    ("SIGINT", "child", 130),
    ("SIGINT", "wrapper", 130),
    ("SIGHUP", "wrapper", 129),
    ("SIGQUIT", "wrapper", 131),
])
def test_a_signal_keeps_the_spans_prints_the_summary_and_exits_like_a_shell(tmp_path, signame, who, status):
    """docker stop / Kubernetes (SIGTERM), Ctrl-C (SIGINT), a closed terminal (SIGHUP): to the
    program itself, or to `otel-carbon run` alone (then it is passed on)."""
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    spans_file = tmp_path / "spans.jsonl"
    proc, pid_file = start_run(tmp_path, "--no-auto-instrument", "--output", str(spans_file), "--",
                               sys.executable, str(tmp_path / "sleeper.py"), str(tmp_path / "child.pid"))
    child_pid = wait_for(pid_file, proc)
    os.kill(child_pid if who == "child" else proc.pid, getattr(signal, signame))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err.replace("KeyboardInterrupt", "").split("otel-carbon run:")[-1]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exit_code"] == status and summary["signal"] == signame
    assert f"exit code   {status} (ended by {signame})" in err
    if signame == "SIGQUIT":  # passed on; its default action (a core dump) is left alone, nothing is flushed
        return
    names = {s.name for s in read_spans(str(spans_file))}
    assert "before-the-signal" in names  # the program's spans were flushed before it died
    assert summary["python_instrumented"] is True and "could not import" not in err


def test_the_programs_children_inherit_neither_the_startup_path_nor_our_variables(tmp_path):
    app = tmp_path / "env_app.py"
    app.write_text(textwrap.dedent(
        """
        import json, os, subprocess, sys
        child = subprocess.run([sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                               capture_output=True, text=True, check=True)
        with open(sys.argv[1], "w") as fh:
            json.dump({"own": dict(os.environ), "child": json.loads(child.stdout), "path": sys.path}, fh)
        """
    ))
    report = tmp_path / "env.json"
    env = env_for_tests(PYTHONPATH=str(tmp_path / "mine"))
    out, s = otel_carbon_run(tmp_path, "--no-auto-instrument", "--", sys.executable, str(app), str(report), env=env)
    assert out.returncode == 0, out.stderr
    assert s["python_instrumented"] is True
    seen = json.loads(report.read_text())
    for who in ("own", "child"):
        environ = seen[who]
        assert not [k for k in environ if k.startswith("OTEL_CARBON_RUN_")], who
        assert environ.get("PYTHONPATH") == str(tmp_path / "mine"), who  # the user's entry stays, ours is gone
    assert not any("otel-carbon-run-" in p for p in seen["path"])


def test_garbage_in_the_spans_file_changes_neither_the_exit_code_nor_shows_a_traceback(tmp_path):
    app = tmp_path / "garbage_app.py"
    app.write_text(textwrap.dedent(
        """
        import sys
        from opentelemetry import trace
        with trace.get_tracer("app").start_as_current_span("work"):
            pass
        with open(sys.argv[1], "a") as fh:
            fh.write('garbage\\n{"resourceSpans":["x"]}\\n{"resourceSpans":[{"scopeSpans":[{"spans":['
                     '{"name":"nan","attributes":[{"key":"carbon.energy.total","value":{"doubleValue":"NaN"}}]}]}]}]}\\n')
        sys.exit(5)
        """
    ))
    spans_file = tmp_path / "spans.jsonl"
    out, s = otel_carbon_run(tmp_path, "--no-auto-instrument", "--output", str(spans_file), "--",
                             sys.executable, str(app), str(spans_file))
    assert out.returncode == 5 and s["exit_code"] == 5
    assert "Traceback" not in out.stderr
    assert "3 lines skipped" in out.stderr and s["skipped_lines"].startswith("3 lines skipped")
    assert s["top_spans"][0]["key"] == "work"


def test_output_files_in_a_missing_directory_fail_before_the_program_runs(tmp_path):
    marker = tmp_path / "ran.txt"
    program = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('ran')"]
    for option in ("--output", "--summary-json"):
        out = subprocess.run([sys.executable, "-m", "otel_carbon.cli", "run", option, str(tmp_path / "no" / "f.json"),
                              "--", *program], capture_output=True, text=True, env=env_for_tests(), timeout=120)
        assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr
        assert not marker.exists()


CONFIGURING_APP = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(level=logging.INFO)
    import otel_carbon
    from opentelemetry import trace
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    FlaskInstrumentor().instrument()  # already done by `run`'s auto-instrumentation
    otel_carbon.configure(service_name="checkout", resource_attributes={"deployment.environment": "test"})
    with trace.get_tracer("app").start_as_current_span("work"):
        sum(range(10000))
    """
)


def test_a_program_that_configures_itself_keeps_its_service_name_quietly(tmp_path):
    app = tmp_path / "configuring_app.py"
    app.write_text(CONFIGURING_APP)
    spans_file = tmp_path / "spans.jsonl"
    out, s = otel_carbon_run(tmp_path, "--output", str(spans_file), "--", sys.executable, str(app))
    assert out.returncode == 0, out.stderr
    assert "already called" not in out.stderr and "already instrumented" not in out.stderr
    spans = read_spans(str(spans_file))
    (work,) = [x for x in spans if x.name == "work"]
    assert work.service == "checkout" and work.energy_j is not None
    program_root = [x for x in spans if x.attributes.get(R.RUN_SCOPE) == R.SCOPE_PROCESS]
    assert [x.service for x in program_root] == ["checkout"]


FORWARD_CHECK = textwrap.dedent(
    """
    import signal, subprocess, time
    from otel_carbon.cli.run import _Signals
    signals = _Signals()
    results = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signals.proc = subprocess.Popen(["sleep", "30"])
        signals._forward(signum, None)
        time.sleep(0.3)
        results.append("passed on" if signals.proc.poll() is not None else "not passed on")
        signals.proc.kill()
        signals.proc.wait()
    print(" ".join(results))
    """
)


def test_ctrl_c_in_a_terminal_is_not_sent_to_the_program_a_second_time(tmp_path):
    """The terminal sends Ctrl-C to its whole foreground group, the program included; a second
    SIGINT from run would make a server such as uvicorn skip its graceful shutdown. Outside
    a terminal's foreground (kill -INT, a CI runner) SIGINT is passed on like the others."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()

    def own_terminal():  # a new session whose controlling terminal is the pty: its foreground group
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    in_terminal = subprocess.run([sys.executable, "-c", FORWARD_CHECK], stdin=slave, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, preexec_fn=own_terminal, timeout=60)
    os.close(slave)
    os.close(master)
    assert in_terminal.stdout.split() == ["not", "passed", "on", "passed", "on"], in_terminal.stderr
    outside = subprocess.run([sys.executable, "-c", FORWARD_CHECK], stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, start_new_session=True, timeout=60)
    assert outside.stdout.split() == ["passed", "on", "passed", "on"], outside.stderr


def test_the_programs_start_up_code_loads_no_subcommand():
    """What ``run`` injects into a Python program imports otel_carbon.cli.run_child: the
    package's command-line parser and its subcommands stay out of the program."""
    code = (
        "import sys, otel_carbon.cli.run_child; "
        "print(sorted(m for m in sys.modules if m.startswith('otel_carbon.cli') or m == 'argparse'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "['otel_carbon.cli', 'otel_carbon.cli.run_child']", out.stdout
