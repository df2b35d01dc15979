"""examples/gpu_app.py: the paths that need no GPU. Without a measurable GPU it exits 2
with the reason (NVML off, or NVML's library missing, as the driver reports it), and with a
GPU but no torch/cupy it exits 3. NVML is replaced at the ``pynvml`` module seam by the
fake in tests/fake_nvml.py (so the result is the same on a machine with a real GPU); the
workload run itself needs an NVIDIA GPU and torch or cupy (see the report of that check)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

try:
    from test_examples_common import EXAMPLES, PYTHON, REPO, child_env
except ImportError:  # tests/ imported as a package
    from .test_examples_common import EXAMPLES, PYTHON, REPO, child_env

from otel_carbon import config

APP = EXAMPLES / "gpu_app.py"
TESTS = REPO / "tests"


FAKE_TORCH = """
import time, types
torch = types.ModuleType("torch")
torch.__version__ = "0-fake"
torch.float16 = "float16"
torch.device = lambda name: name
torch.randn = lambda *shape, **kw: shape
torch.matmul = lambda a, b: time.sleep(0.002)  # the board's energy is scripted below
torch.cuda = types.SimpleNamespace(is_available=lambda: True, synchronize=lambda device=None: None)
sys.modules["torch"] = torch
"""

# A Volta board drawing a constant POWER_W: its energy counter (mJ) follows the clock.
POWER_W = 100.0
FAKE_BOARD = f"""
import os, threading, time
board = fake_nvml.FakeDevice("volta", name="NVIDIA Fake V100", energy_mj=0)
board.compute_pids.append(os.getpid())  # the only process on the board: all of it is ours
nvml = fake_nvml.FakeNvml([board])
t0 = time.monotonic()
def burn():
    while True:
        board.energy_mj = int((time.monotonic() - t0) * {POWER_W} * 1000)
        time.sleep(0.005)
threading.Thread(target=burn, daemon=True).start()
"""


def _run(receiver, fake: str, extra_env=None, block_libraries=True, extra=""):
    """Run gpu_app.py with ``pynvml`` replaced by ``fake`` (Python source making ``nvml``)."""
    wrapper = textwrap.dedent(
        f"""
        import runpy, sys
        sys.path.insert(0, {str(TESTS)!r})
        import fake_nvml
        """
    ) + "\n" + textwrap.dedent(fake) + "\n" + textwrap.dedent(extra) + "\n" + textwrap.dedent(
        f"""
        sys.modules["pynvml"] = nvml
        if {block_libraries!r}:
            sys.modules["torch"] = None  # import torch -> ImportError
        sys.modules["cupy"] = None
        sys.argv = [{str(APP)!r}, "--seconds", "1"]
        runpy.run_path({str(APP)!r}, run_name="__main__")
        """
    )
    env = child_env(receiver, "grpc")
    env.pop("OTEL_CARBON_NVML")
    env.pop("OTEL_TRACES_EXPORTER")
    env.update(extra_env or {})
    return subprocess.run([PYTHON, "-c", wrapper], cwd=str(REPO), env=env, capture_output=True, text=True, timeout=60)


def test_nvml_off_exits_2_and_says_so(otlp_receiver):
    done = _run(otlp_receiver, "nvml = fake_nvml.FakeNvml([fake_nvml.FakeDevice('volta')])",
                {config.OTEL_CARBON_NVML: "off"})
    assert done.returncode == 2, done
    assert f"{config.OTEL_CARBON_NVML}=off" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_driver_exits_2_with_reason_and_fix(otlp_receiver):
    done = _run(otlp_receiver, "nvml = fake_nvml.FakeNvml(init_error=fake_nvml.ERROR_CODES['NVML_ERROR_LIBRARY_NOT_FOUND'])")
    assert done.returncode == 2, done
    assert "No NVIDIA GPU can be measured here" in done.stderr
    assert "nvmlInit failed" in done.stderr and "install the NVIDIA driver" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_no_device_exits_2(otlp_receiver):
    done = _run(otlp_receiver, "nvml = fake_nvml.FakeNvml([])")
    assert done.returncode == 2, done
    assert "reports no GPU" in done.stderr


def test_gpu_without_torch_or_cupy_exits_3(otlp_receiver):
    done = _run(otlp_receiver, "nvml = fake_nvml.FakeNvml([fake_nvml.FakeDevice('volta', energy_mj=1000)])")
    assert done.returncode == 3, done
    assert "torch is not installed" in done.stderr and "cupy is not installed" in done.stderr
    assert "Traceback" not in done.stderr


def test_gpu_workload_prints_span_energy_with_gpu(otlp_receiver):
    """The whole run with a scripted board (constant POWER_W) and a stand-in torch: the
    matmul span carries about POWER_W x its duration of GPU energy."""
    done = _run(otlp_receiver, FAKE_BOARD, block_libraries=False, extra=FAKE_TORCH)
    assert done.returncode == 0, done
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.startswith(("gpu-matmul", "cpu-hash"))}
    assert set(rows) == {"gpu-matmul", "cpu-hash"}, done.stdout
    # columns: span, wall s, cpu s, cpu J, gpu J, total J, CO2e mg, method, zone
    wall_s, cpu_j, gpu_j, total_j = (float(rows["gpu-matmul"][i]) for i in (1, 3, 4, 5))
    assert gpu_j == pytest.approx(POWER_W * wall_s, rel=0.35), done.stdout
    assert total_j == pytest.approx(cpu_j + gpu_j, abs=0.02), done.stdout
    assert rows["gpu-matmul"][7] in ("measured", "mixed"), done.stdout  # NVML is a measurement
    assert "GPU energy of the matmul span" in done.stdout and "workload: torch 0-fake" in done.stdout


def test_real_environment_without_gpu_exits_2_or_runs(otlp_receiver):
    """The unmodified script: on this machine (no NVIDIA driver) exit 2 with the reason; on
    a GPU machine with torch or cupy it runs the workload and must find GPU energy."""
    env = child_env(otlp_receiver, "grpc")
    env.pop("OTEL_CARBON_NVML")
    env.pop("OTEL_TRACES_EXPORTER")
    done = subprocess.run([PYTHON, str(APP), "--seconds", "1"], cwd=str(REPO), env=env, capture_output=True, text=True,
                          timeout=120)
    if done.returncode == 3:
        pytest.skip("GPU present but no torch/cupy here")
    assert done.returncode in (0, 2), done
    if done.returncode == 2:
        assert "No NVIDIA GPU can be measured here" in done.stderr, done.stderr
    else:
        assert "GPU energy of the matmul span" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("argv", [["--seconds", "0"], ["--size", "8"], ["--device", "-1"]])
def test_bad_arguments_exit_with_usage(argv):
    done = subprocess.run([PYTHON, str(APP), *argv], cwd=str(REPO), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage:" in done.stderr, done
    assert Path(APP).exists()
