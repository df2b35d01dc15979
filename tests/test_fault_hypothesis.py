"""Property tests over configuration: whatever a user puts in an ``OTEL_CARBON_*`` variable
or passes to a constructor, the package either works, logs a clear warning naming the
variable (environment), or raises ``ValueError`` naming the argument (code). Never a
traceback from deep inside.

* Environment: every ``OTEL_CARBON_*`` constant of :mod:`otel_carbon.config` (found by
  name, so variables added later are covered), with random text, through
  ``probe_sensors`` / ``Sampler`` / ``CarbonSpanProcessor`` (+ a span) / ``CarbonMetrics`` /
  ``intensity_source`` and every parameterless reader in ``config``. A warning must name
  the variable unless the same warning is logged with an empty environment too.
* Constructors: ``CarbonSpanProcessor``, ``Sampler``, ``CpuModelSensor``,
  ``ConstantPowerSensor``, ``Ledger``, ``CarbonMetrics``. One argument at a time gets a
  random value (the others valid); the object is then used (a sampler is started, ticked
  and stopped; a sensor is read; a ledger gets readings). Either all that works or the
  constructor raised ``ValueError`` whose message names that argument.

No network: a live provider from the environment is built with ``start=False``.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import tempfile
import threading
from typing import Any, Callable, Dict, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_carbon import _log, config
from otel_carbon import attributes as A
from otel_carbon.intensity import Intensity, StaticIntensitySource, intensity_source
from otel_carbon.ledger import Ledger
from otel_carbon.metrics import CarbonMetrics
from otel_carbon.processor import CarbonSpanProcessor
from otel_carbon.process_sampler import shutdown_sampler
from otel_carbon.sampler import Sampler
from otel_carbon.sensors.base import HostSample
from otel_carbon.sensors.constant import ConstantPowerSensor
from otel_carbon.sensors.cpu_model import CpuModelSensor
from otel_carbon.sensors.probe import Probe, _reset_probe_cache, probe_sensors

ENV_VARS = sorted(
    value for name, value in vars(config).items() if name.startswith("OTEL_CARBON_") and isinstance(value, str)
)
#: config's parameterless readers (sample_interval_s, idle_policy, metrics_enabled, ...)
READERS = [
    fn
    for name, fn in sorted(vars(config).items())
    if inspect.isfunction(fn)
    and not name.startswith("_")
    and fn.__module__ == config.__name__
    and all(p.default is not p.empty for p in inspect.signature(fn).parameters.values())
]
INTENSITY = StaticIntensitySource(Intensity(g_per_kwh=100.0, zone="test", source="test"))

# Values that exercise the parsers' edges, mixed with random text.
EDGE_VALUES = [
    "", " ", "0", "-0", "-1", "1", "0.5", "1e-300", "1e309", "-1e309", "nan", "NaN", "inf", "-inf", "1_000",
    "0x10", "9" * 400, "true", "false", "on", "off", "yes", "auto", "ccf", "tdp", "cpu", "none", "span",
    "machine", "uk", "watttime", "electricitymaps", "FR", "fra", "US-CA", "ZZ", "aws:eu-west-1", "world",
    "url.full,user.id,http.route", ",,,", "http://127.0.0.1:9", "ftp://example.org", "/nonexistent/dir",
    "\u00e9\u4e2d\U0001f600", "=", "a=b,c", "\t\n",
    # upper bounds and special floats: each numeric variable has a documented range
    "1e308", "-1e308", "1e20", "1e-9", "5e-324", "0.0", "+inf", "-nan", "100000.1", "2000.5", "0.009",
    "86401", "59.9", "10000001", "\uff11", "\u0663", "1\u00a0", "tok en", "tok\nen",
]
# Environment values cannot hold NUL or lone surrogates (os.environ refuses them).
ENV_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
ENV_VALUES = st.one_of(st.sampled_from(EDGE_VALUES), ENV_TEXT)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _assert_plausible(attributes) -> None:
    """Whatever the settings, a trivial span's figures are finite, >= 0 and far from absurd
    (1e20 W gave 3e28 J, 1e308 W NaN, an intensity of 1e308 g/kWh 2.9e296 kg)."""
    for key in (A.ENERGY_TOTAL, A.EMISSIONS, A.INTENSITY):
        value = attributes.get(key)
        if value is not None:
            assert math.isfinite(value) and 0 <= value <= LIMITS[key], (key, value)


LIMITS = {A.ENERGY_TOTAL: 1e6, A.EMISSIONS: 1e6, A.INTENSITY: config.MAX_INTENSITY_G_PER_KWH}


def _exercise_environment(tmp: str, var: str) -> List[str]:
    """Everything that reads the environment, once; returns the warnings logged."""
    _log.reset_for_tests()
    capture = Capture()
    logger = logging.getLogger("otel_carbon")
    logger.addHandler(capture)
    try:
        for reader in READERS:
            reader()
        probe = probe_sensors(
            powercap_root=None if var == config.OTEL_CARBON_POWERCAP_ROOT else tmp,
            gpus=var == config.OTEL_CARBON_NVML,
        )
        source = intensity_source(start=False)
        source.shutdown()
        sampler = Sampler(probe, intensity=INTENSITY)
        sampler.tick()
        processor = CarbonSpanProcessor(sampler=sampler)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(processor)
        meter_provider = MeterProvider(shutdown_on_exit=False)
        metrics = CarbonMetrics(meter_provider, sampler=sampler).attach(processor)
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("t").start_as_current_span("s", attributes={"http.route": "/x"}):
            pass
        _assert_plausible(exporter.get_finished_spans()[0].attributes)
        metrics.shutdown()
        provider.shutdown()
        meter_provider.shutdown()
        probe.close()
    finally:
        logger.removeHandler(capture)
        _log.reset_for_tests()
    return capture.messages


@pytest.fixture(scope="module")
def clean_environment():
    saved = {k: v for k, v in os.environ.items() if k.startswith("OTEL_CARBON_") or k == "OTEL_RESOURCE_ATTRIBUTES"}
    for key in saved:
        del os.environ[key]
    with tempfile.TemporaryDirectory() as tmp:
        baseline = set(_exercise_environment(tmp, ""))
        yield tmp, baseline
    os.environ.update(saved)


@pytest.mark.parametrize("var", ENV_VARS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=ENV_VALUES)
def test_any_environment_value_works_or_warns_naming_the_variable(clean_environment, var, value):
    tmp, baseline = clean_environment
    os.environ[var] = value
    try:
        messages = _exercise_environment(tmp, var)  # must not raise
    finally:
        del os.environ[var]
    # A warning names the variable, or the variable a value needs with it ("the watttime
    # provider needs OTEL_CARBON_WATTTIME_USERNAME"); or it is logged without any setting.
    unexplained = [m for m in messages if "OTEL_CARBON_" not in m and m not in baseline]
    assert unexplained == [], f"{var}={value!r}: warnings that name no variable: {unexplained}"
    if var not in " ".join(messages):
        assert all(m in baseline or "OTEL_CARBON_" in m for m in messages)


RANGE_VARS = sorted(config.RANGES)
SPECIAL = ["0", "-0", "-1", "-1e-9", "nan", "NaN", "-nan", "inf", "+inf", "-inf", "1e308", "-1e308", "1e999", "",
           " ", "\u0661", "\uff15", "5\u00a0", "1e", "0x10", "1,5"]


@pytest.mark.parametrize("var", RANGE_VARS)
@pytest.mark.parametrize("raw", SPECIAL + ["<below>", "<above>", "<low>", "<high>"])
def test_every_numeric_variable_is_bounded_and_out_of_range_uses_the_default(clean_environment, var, raw):
    """0, negatives, NaN, infinities, 1e308, empty, unicode digits, just outside either bound:
    the default, with one warning naming the variable and the default; the bounds themselves
    (unless open) are accepted."""
    bounds = config.RANGES[var]
    step = 1 if bounds.integer else max(abs(bounds.high) * 1e-6, 1e-9)
    raw = {
        "<below>": repr(bounds.low - step), "<above>": repr(bounds.high + step),
        "<low>": repr(bounds.low), "<high>": repr(bounds.high),
    }.get(raw, raw)
    if bounds.integer:
        raw = raw[:-2] if raw.endswith(".0") else raw
    default = object()
    os.environ[var] = raw
    _log.reset_for_tests()
    capture = Capture()
    logger = logging.getLogger("otel_carbon")
    logger.addHandler(capture)
    try:
        value = config.env_number(var, default)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=var) if value is default and raw.strip() else _nothing():
            config.env_number(var, None, strict=True)
    finally:
        logger.removeHandler(capture)
        del os.environ[var]
    text = raw.strip()  # surrounding whitespace (NBSP included) is forgiven
    try:
        number = float(text) if text.isascii() and (not bounds.integer or text.lstrip("+-").isdigit()) else math.nan
    except ValueError:
        number = math.nan
    in_range = (number > bounds.low if bounds.low_open else number >= bounds.low) and number <= bounds.high
    if raw.strip() == "":
        assert value is default and capture.messages == []
    elif in_range:
        assert value == number and capture.messages == []
    else:
        assert value is default
        assert len(capture.messages) == 1 and var in capture.messages[0] and bounds.describe() in capture.messages[0]
        assert "using the default" in capture.messages[0]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_every_variable_is_covered():
    assert len(ENV_VARS) >= 20
    assert config.OTEL_CARBON_SAMPLE_INTERVAL in ENV_VARS and config.OTEL_CARBON_INTENSITY_PROVIDER in ENV_VARS
    assert config.sample_interval_s in READERS and config.idle_policy in READERS


# -- constructor arguments --------------------------------------------------------------------------

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    # finite floats up to 1e30 (a constant draw of 1e300 W would overflow to inf within a second:
    # the sampler then flags the reading unavailable), and the non-finite ones explicitly
    st.floats(min_value=-1e30, max_value=1e30),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324]),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.lists(st.one_of(st.integers(-5, 5), st.floats(), st.text(max_size=3)), max_size=3),
    st.tuples(st.floats(), st.floats()),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
    st.just(float),
    st.just(lambda *a, **k: None),
)


def _sampler() -> Sampler:
    return Sampler(Probe(sensors=[ConstantPowerSensor(power_w=5.0)]), interval_s=0.01, intensity=INTENSITY)


def _sample(t_s: float) -> HostSample:
    return HostSample(t_ns=int(t_s * 1e9), busy_s=t_s, total_s=2 * t_s, n_cpus=2)


def _use_processor(obj: CarbonSpanProcessor) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(obj)
    with provider.get_tracer("t").start_as_current_span("s"):
        pass
    provider.shutdown()


def _use_sampler(obj: Sampler) -> None:
    obj.register_span_counter(lambda: 1)
    obj.start()
    obj.tick()
    assert obj.shutdown(timeout_s=2.0), "the sampler thread did not stop"
    assert obj.ledger.latest is not None, f"no tick was recorded: {obj.sensor_errors}"


def _use_sensor(obj: Any) -> None:
    values = [obj.read(_sample(t)) for t in (1.0, 1.5, 2.0)]
    assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in values), values
    assert values == sorted(values)
    assert math.isfinite(obj.idle_power_w) and obj.idle_power_w >= 0
    obj.info()


def _use_ledger(obj: Ledger) -> None:
    n = len(obj.components)
    for i in range(3):
        obj.append_reading(10**9 * (i + 1), [float(i)] * n, 0.5 * i, 2.0 * i, 0.1 * i, 0.0, 1, INTENSITY.current(), "measured")
    assert obj.window(10**9, 3 * 10**9) is not None


def _use_metrics(obj: CarbonMetrics) -> None:
    obj.drain()
    obj.shutdown()


class Spec:
    def __init__(self, make: Callable[..., Any], valid: Dict[str, Callable[[], st.SearchStrategy]], use: Callable[[Any], None]):
        self.make = make
        self.valid = valid
        self.use = use


SPECS: Dict[str, Spec] = {
    "CarbonSpanProcessor": Spec(
        lambda **kw: CarbonSpanProcessor(**kw),
        {
            "sampler": lambda: st.builds(_sampler),
            "idle_policy": lambda: st.sampled_from([None, "none", "cpu"]),
            "max_open_spans": lambda: st.sampled_from([None, 1, 100]),
            "embodied_g_per_hour": lambda: st.sampled_from([None, 0.0, 12.5]),
        },
        _use_processor,
    ),
    "Sampler": Spec(
        lambda **kw: Sampler(**kw),
        {
            "probe": lambda: st.builds(lambda: Probe(sensors=[ConstantPowerSensor(power_w=5.0)])),
            "interval_s": lambda: st.sampled_from([0.01, 0.05]),
            "intensity": lambda: st.just(INTENSITY),
            "idle_interval_s": lambda: st.sampled_from([0.05, 1.0]),
            "clock_ns": lambda: st.sampled_from([__import__("time").monotonic_ns]),
        },
        _use_sampler,
    ),
    "CpuModelSensor": Spec(
        lambda **kw: CpuModelSensor(**kw),
        {
            "curve": lambda: st.sampled_from(["ccf"]),
            "min_w_per_vcpu": lambda: st.sampled_from([0.0, 1.0]),
            "max_w_per_vcpu": lambda: st.sampled_from([5.0, 6.0]),
            "tdp_w": lambda: st.sampled_from([0.0, 65.0]),
            "n_vcpus": lambda: st.sampled_from([1, 4]),
        },
        _use_sensor,
    ),
    "CpuModelSensor[tdp]": Spec(
        lambda **kw: CpuModelSensor(**kw),
        {
            "curve": lambda: st.sampled_from(["tdp"]),
            "min_w_per_vcpu": lambda: st.sampled_from([0.0]),
            "max_w_per_vcpu": lambda: st.sampled_from([0.0]),
            "tdp_w": lambda: st.sampled_from([65.0, 205.0]),
            "n_vcpus": lambda: st.sampled_from([1, 8]),
        },
        _use_sensor,
    ),
    "ConstantPowerSensor": Spec(
        lambda **kw: ConstantPowerSensor(**kw),
        {
            "power_w": lambda: st.sampled_from([1.0, 300.0]),
            "idle_power_w": lambda: st.sampled_from([0.0, 0.5]),
        },
        _use_sensor,
    ),
    "Ledger": Spec(
        lambda **kw: Ledger(**kw),
        {
            "components": lambda: st.sampled_from([("cpu",), ("cpu", "memory")]).map(lambda c: c),
            "idle_power_w": lambda: st.just(None),  # filled in to match components below
            "capacity": lambda: st.sampled_from([2, 3000]),
            "nominal_price_j_per_cpu_s": lambda: st.just(None),
        },
        _use_ledger,
    ),
    "CarbonMetrics": Spec(
        lambda **kw: CarbonMetrics(**kw),
        {
            "meter_provider": lambda: st.builds(lambda: MeterProvider(shutdown_on_exit=False)),
            "sampler": lambda: st.builds(_sampler),
            "span_attribute_allowlist": lambda: st.sampled_from([(), ["app.tier"]]),
            "max_queue": lambda: st.sampled_from([1, 1024]),
        },
        _use_metrics,
    ),
}


@st.composite
def constructor_call(draw, spec_name: str):
    spec = SPECS[spec_name]
    kwargs = {name: draw(strategy()) for name, strategy in spec.valid.items()}
    if spec_name == "Ledger":
        kwargs["idle_power_w"] = (0.0,) * len(kwargs["components"])
    target = draw(st.sampled_from(sorted(spec.valid)))
    junk = JUNK
    if target == "meter_provider":
        # None means the global provider: a proxy made here would outlive the test and turn
        # into real instruments when a later test sets a global provider
        junk = JUNK.filter(lambda v: v is not None)
    kwargs[target] = draw(junk)
    if spec_name == "Ledger" and target == "components" and isinstance(kwargs[target], (list, tuple)):
        kwargs["idle_power_w"] = (0.0,) * len(kwargs[target])  # so the junk is judged on its own
    return target, kwargs


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_constructor_argument_works_or_raises_value_error_naming_it(spec_name, data):
    target, kwargs = data.draw(constructor_call(spec_name))
    spec = SPECS[spec_name]
    _log.reset_for_tests()
    try:
        obj = spec.make(**kwargs)
    except ValueError as exc:
        assert target in str(exc), f"{spec_name}({target}={kwargs[target]!r}): ValueError not naming it: {exc}"
        return
    except Exception as exc:  # noqa: BLE001 - the property under test
        pytest.fail(f"{spec_name}({target}={kwargs[target]!r}) raised {type(exc).__name__}: {exc}")
    try:
        spec.use(obj)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{spec_name}({target}={kwargs[target]!r}) was accepted but does not work: {type(exc).__name__}: {exc}")
    finally:
        for value in kwargs.values():
            if isinstance(value, Sampler):
                value.shutdown(timeout_s=1.0)
        if target == "sampler" and kwargs[target] is None:  # None is valid: the process-wide one
            shutdown_sampler(timeout_s=2.0)
            _reset_probe_cache()


def test_no_thread_is_left_behind():
    """The constructor tests start and stop samplers: none may be left running."""
    leftover = [t for t in threading.enumerate() if t.name == "otel-carbon-sampler"]
    for t in leftover:
        t.join(2.0)
    assert [t for t in leftover if t.is_alive()] == []


def test_the_ranges_table_in_the_docs_is_the_code_s():
    """docs/configuration.md shows every range as config.RANGES has it."""
    import pathlib

    docs = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name, bounds in config.RANGES.items():
        low = ("> " if bounds.low_open else "≥ ") + f"{bounds.low:g}"
        row = f"| `{name}` | {low} | ≤ {bounds.high:g} | {bounds.unit or '-'} |"
        assert row in docs, row
