"""The ledger: running totals, windows, the active/idle split and the price of a CPU-second.

Property tests (hypothesis) feed random monotone tick sequences; every expectation is
computed here from the inputs (the cumulative counters the test hands the ledger).
"""

from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_carbon.attribution import MIN_WINDOW_PROC_S, Layout, attribute, process_charge
from otel_carbon.intensity import Intensity
from otel_carbon.ledger import MIN_PRICE_BUSY_S, PRICE_WINDOW_NS, Ledger, Window
from otel_carbon.sensors.rapl import MAX_JUMP_POWER_W, MAX_ZONE_POWER_W, Zone

INTENSITY = Intensity(g_per_kwh=200.0, zone="test")
COMPONENTS = ("cpu", "memory")
T0_NS = 5_000_000_000

FIELDS = ("busy_s", "proc_cpu_s", "charged_j", "gpu_proc_j")
PER_COMPONENT = ("energy_j", "active_j", "idle_j")

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def approx(value, scale=1.0):
    return pytest.approx(value, rel=1e-9, abs=1e-9 * max(scale, 1.0))


# -- building ledgers ---------------------------------------------------------------------------

# one step: (dt_ns, energy increments per component, busy increment, proc increment, gpu increment)
step = st.tuples(
    st.integers(min_value=1_000_000, max_value=400_000_000),
    st.tuples(*[st.floats(min_value=0.0, max_value=50.0) for _ in COMPONENTS]),
    st.floats(min_value=0.0, max_value=0.8),
    st.floats(min_value=0.0, max_value=0.4),
    st.floats(min_value=0.0, max_value=20.0),
)
steps = st.lists(step, min_size=1, max_size=25)
idle_powers = st.tuples(*[st.floats(min_value=0.0, max_value=40.0) for _ in COMPONENTS])


def build(steps_: Sequence, idle_power_w=(0.0, 0.0), nominal=None, capacity=3000) -> Tuple[Ledger, List[dict]]:
    """A ledger fed the cumulative sums of ``steps_`` (after a first reading at T0_NS)."""
    ledger = Ledger(COMPONENTS, idle_power_w, capacity=capacity, nominal_price_j_per_cpu_s=nominal)
    t, energy, busy, proc, gpu = T0_NS, [100.0, 50.0], 1000.0, 3.0, 7.0
    readings = [dict(t=t, energy=tuple(energy), busy=busy, proc=proc, gpu=gpu)]
    ledger.append_reading(t, energy, busy, busy * 2, proc, gpu, 0, INTENSITY, "measured")
    for dt_ns, d_energy, d_busy, d_proc, d_gpu in steps_:
        t += dt_ns
        energy = [e + d for e, d in zip(energy, d_energy)]
        busy += d_busy
        proc += d_proc
        gpu += d_gpu
        readings.append(dict(t=t, energy=tuple(energy), busy=busy, proc=proc, gpu=gpu))
        ledger.append_reading(t, energy, busy, busy * 2, proc, gpu, 1, INTENSITY, "measured")
    return ledger, readings


def values(window: Window) -> dict:
    out = {name: getattr(window, name) for name in FIELDS}
    for name in PER_COMPONENT:
        for component in COMPONENTS:
            out[f"{name}.{component}"] = getattr(window, name)[component]
    return out


times_in = st.floats(min_value=-0.2, max_value=1.3)  # as a fraction of the ledger's span


def to_ns(readings, fraction: float) -> int:
    first, last = readings[0]["t"], readings[-1]["t"]
    return first + int(round(fraction * (last - first)))


# -- windows: properties --------------------------------------------------------------------------


@SETTINGS
@given(steps, idle_powers, st.lists(times_in, min_size=3, max_size=3))
def test_windows_add_up(steps_, idle_power_w, fractions):
    ledger, readings = build(steps_, idle_power_w)
    a, b, c = sorted(to_ns(readings, f) for f in fractions)
    ab, bc, ac = values(ledger.window(a, b)), values(ledger.window(b, c)), values(ledger.window(a, c))
    for key in ac:
        assert ab[key] + bc[key] == approx(ac[key], scale=ac[key]), key


@SETTINGS
@given(steps, idle_powers, st.lists(times_in, min_size=2, max_size=2))
def test_a_window_is_never_negative_and_energy_is_active_plus_idle(steps_, idle_power_w, fractions):
    ledger, readings = build(steps_, idle_power_w)
    a, b = sorted(to_ns(readings, f) for f in fractions)
    window = ledger.window(a, b)
    assert all(v >= 0.0 for v in values(window).values())
    for component in COMPONENTS:
        total = window.active_j[component] + window.idle_j[component]
        assert window.energy_j[component] == approx(total, scale=total)
    assert window.price_j_per_cpu_s >= 0.0 and 0.0 <= window.process_share <= 1.0


@SETTINGS
@given(steps, idle_powers)
def test_the_whole_window_holds_what_was_fed(steps_, idle_power_w):
    ledger, readings = build(steps_, idle_power_w)
    first, last = readings[0], readings[-1]
    window = ledger.window(first["t"], last["t"])
    for i, component in enumerate(COMPONENTS):
        assert window.energy_j[component] == approx(last["energy"][i] - first["energy"][i], scale=last["energy"][i])
    assert window.busy_s == approx(last["busy"] - first["busy"], scale=last["busy"])
    assert window.proc_cpu_s == approx(last["proc"] - first["proc"], scale=last["proc"])
    assert window.gpu_proc_j == approx(last["gpu"] - first["gpu"], scale=last["gpu"])
    assert window.duration_s == pytest.approx((last["t"] - first["t"]) / 1e9)


@SETTINGS
@given(steps, st.floats(min_value=0.0, max_value=1.0))
def test_inside_an_interval_values_are_interpolated(steps_, fraction):
    ledger, readings = build(steps_)
    lo, hi = readings[-2], readings[-1]
    t = lo["t"] + int(fraction * (hi["t"] - lo["t"]))
    frac = (t - lo["t"]) / (hi["t"] - lo["t"])
    window = ledger.window(lo["t"], t)
    for i, component in enumerate(COMPONENTS):
        expected = (hi["energy"][i] - lo["energy"][i]) * frac
        assert window.energy_j[component] == approx(expected, scale=hi["energy"][i])
    assert window.busy_s == approx((hi["busy"] - lo["busy"]) * frac, scale=hi["busy"])


@SETTINGS
@given(steps.filter(lambda s: len(s) >= 1), st.integers(min_value=1, max_value=5_000_000_000))
def test_after_the_last_tick_the_latest_rates_are_extrapolated(steps_, beyond_ns):
    ledger, readings = build(steps_)
    prev, last = readings[-2], readings[-1]
    interval_ns = last["t"] - prev["t"]
    window = ledger.window(last["t"], last["t"] + beyond_ns)
    for i, component in enumerate(COMPONENTS):
        rate = (last["energy"][i] - prev["energy"][i]) / interval_ns
        assert window.energy_j[component] == approx(rate * beyond_ns, scale=last["energy"][i] + rate * beyond_ns)
    busy_rate = (last["busy"] - prev["busy"]) / interval_ns
    assert window.busy_s == approx(busy_rate * beyond_ns, scale=last["busy"] + busy_rate * beyond_ns)
    gpu_rate = (last["gpu"] - prev["gpu"]) / interval_ns
    assert window.gpu_proc_j == approx(gpu_rate * beyond_ns, scale=last["gpu"] + gpu_rate * beyond_ns)


@SETTINGS
@given(steps, st.integers(min_value=0, max_value=10**10))
def test_before_the_first_tick_nothing_happened(steps_, before_ns):
    ledger, readings = build(steps_)
    t0 = readings[0]["t"]
    window = ledger.window(t0 - before_ns - 1, t0)
    assert all(v == 0.0 for v in values(window).values())


@SETTINGS
@given(steps, idle_powers)
def test_idle_is_the_idle_power_over_each_interval_capped_by_the_energy(steps_, idle_power_w):
    ledger, readings = build(steps_, idle_power_w)
    expected_idle = [0.0, 0.0]
    expected_active = [0.0, 0.0]
    for lo, hi in zip(readings, readings[1:]):
        dt_s = (hi["t"] - lo["t"]) / 1e9
        for i in range(len(COMPONENTS)):
            d_e = hi["energy"][i] - lo["energy"][i]
            idle = min(d_e, idle_power_w[i] * dt_s)
            expected_idle[i] += idle
            expected_active[i] += d_e - idle
    window = ledger.window(readings[0]["t"], readings[-1]["t"])
    for i, component in enumerate(COMPONENTS):
        scale = readings[-1]["energy"][i]
        assert window.idle_j[component] == pytest.approx(expected_idle[i], rel=1e-7, abs=1e-7 * scale)
        assert window.active_j[component] == pytest.approx(expected_active[i], rel=1e-7, abs=1e-7 * scale)


# -- RAPL wraparound: properties --------------------------------------------------------------------

MAX_RANGE_UJ = 262143328850


@pytest.fixture(scope="module")
def counter_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rapl") / "energy_uj"
    path.write_text("0\n")
    return path


def _write(path, value: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, f"{value:020d}\n".encode(), 0)
    finally:
        os.close(fd)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=MAX_RANGE_UJ), st.integers(min_value=1_000_000, max_value=3 * 10**9)),
        min_size=2,
        max_size=30,
    )
)
def test_a_zone_never_loses_energy_nor_jumps_beyond_what_is_possible(counter_file, readings):
    fd = os.open(counter_file, os.O_RDONLY)
    zone = Zone(path=str(counter_file.parent), name="package-0", max_range_uj=MAX_RANGE_UJ, fd=fd)
    try:
        t_ns = 0
        previous_raw = None
        previous_j = 0.0
        for raw, dt_ns in readings:
            t_ns += dt_ns
            _write(counter_file, raw)
            energy_j = zone.advance(t_ns)
            gained_j = energy_j - previous_j
            assert gained_j >= 0.0
            if previous_raw is not None:
                if 0 <= raw - previous_raw <= MAX_JUMP_POWER_W * dt_ns / 1e9 * 1e6:
                    # the zone sums joules in a float: near 2.6e5 J its step is ~3e-11 J
                    assert gained_j == pytest.approx((raw - previous_raw) / 1e6, abs=1e-9)
                else:  # a wrap or a reset (backward, or forward beyond any plausible power):
                    # never more than the highest power could draw
                    possible_j = MAX_ZONE_POWER_W * dt_ns / 1e9
                    assert gained_j <= possible_j + 1e-6
            previous_raw, previous_j = raw, energy_j
    finally:
        zone.close()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=10**10),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=1_000_000, max_value=10**9),
)
def test_a_plausible_wrap_counts_the_range_left_plus_the_new_value(counter_file, origin_ns, a, b, dt_ns):
    """Any wrap the highest power could cause in ``dt_ns``: ``left_uj`` below the top of the
    range before, ``new_uj`` after."""
    possible_uj = MAX_ZONE_POWER_W * dt_ns / 1e9 * 1e6
    left_uj = max(1, int(a * possible_uj / 2))
    new_uj = int(b * possible_uj / 2)
    before = MAX_RANGE_UJ - left_uj
    fd = os.open(counter_file, os.O_RDONLY)
    zone = Zone(path=str(counter_file.parent), name="package-0", max_range_uj=MAX_RANGE_UJ, fd=fd)
    try:
        _write(counter_file, before)
        zone.advance(origin_ns)
        _write(counter_file, new_uj)
        assert zone.advance(origin_ns + dt_ns) == pytest.approx((MAX_RANGE_UJ - before + new_uj) / 1e6)
        assert zone.resets == 0
    finally:
        zone.close()


# -- prices -------------------------------------------------------------------------------------------


def _feed_rates(ledger: Ledger, phases, dt_ns: int = 100_000_000, proc_rate=0.0):
    """Feed ticks: each phase is (n_ticks, energy W per component, busy CPU-s per s)."""
    t, energy, busy, proc = T0_NS, [0.0] * len(ledger.components), 50.0, 1.0
    readings = [dict(t=t, energy=tuple(energy), busy=busy, proc=proc)]
    ticks = [ledger.append_reading(t, energy, busy, 0.0, proc, 0.0, 0, INTENSITY, "measured")]
    for n, watts, busy_rate in phases:
        for _ in range(n):
            t += dt_ns
            energy = [e + w * dt_ns / 1e9 for e, w in zip(energy, watts)]
            busy += busy_rate * dt_ns / 1e9
            proc += proc_rate * dt_ns / 1e9
            readings.append(dict(t=t, energy=tuple(energy), busy=busy, proc=proc))
            ticks.append(ledger.append_reading(t, energy, busy, 0.0, proc, 0.0, 0, INTENSITY, "measured"))
    return ticks, readings


def test_constant_rates_give_the_active_power_per_busy_cpu_second():
    idle_w, total_w, busy_rate = (4.0, 1.0), (24.0, 3.0), 2.0
    ledger = Ledger(COMPONENTS, idle_w)
    ticks, _ = _feed_rates(ledger, [(30, total_w, busy_rate)], proc_rate=0.5)
    expected = tuple((w - i) / busy_rate for w, i in zip(total_w, idle_w))
    idle_expected = sum(idle_w) / busy_rate
    for tick in ticks[1:]:
        assert tick.price_j_per_cpu_s == pytest.approx(expected)
        assert tick.idle_price_j_per_cpu_s == pytest.approx(idle_expected)
    window = ledger.window(ticks[0].t_ns, ticks[-1].t_ns)
    assert window.price_j_per_cpu_s == pytest.approx(sum(expected))
    assert window.idle_power_w == pytest.approx(sum(idle_w))
    # the process is charged its CPU-seconds at that price (each interval at the price
    # known at its start: from the second interval on, once the first price is measured)
    charged = ledger.window(ticks[1].t_ns, ticks[-1].t_ns)
    assert charged.charged_j == pytest.approx(charged.proc_cpu_s * sum(expected))
    assert window.process_share == pytest.approx(0.5 / busy_rate)


def test_the_price_is_taken_over_the_trailing_second():
    dt_ns = PRICE_WINDOW_NS // 10
    ledger = Ledger(("cpu",), (0.0,))
    ticks, readings = _feed_rates(ledger, [(15, (10.0,), 1.0), (25, (40.0,), 2.0)], dt_ns=dt_ns)
    for k in range(1, len(readings)):
        now = readings[k]
        # the newest earlier reading at least PRICE_WINDOW_NS old; before the ledger is
        # that old, the oldest reading
        base = next((r for r in reversed(readings[:k]) if now["t"] - r["t"] >= PRICE_WINDOW_NS), readings[0])
        expected = (now["energy"][0] - base["energy"][0]) / (now["busy"] - base["busy"])
        assert ticks[k].price_j_per_cpu_s[0] == pytest.approx(expected), k
    # well after the change the price is the new one, in the middle of it a blend
    assert ticks[-1].price_j_per_cpu_s[0] == pytest.approx(40.0 / 2.0)
    blended = ticks[20].price_j_per_cpu_s[0]
    assert 10.0 / 1.0 < blended < 40.0 / 2.0


def test_nominal_price_until_enough_busy_time():
    nominal = (2.5, 0.5)
    ledger = Ledger(COMPONENTS, (0.0, 0.0), nominal_price_j_per_cpu_s=nominal)
    # busy time grows by a tenth of what a price needs over the whole run
    n = 8
    busy_rate = MIN_PRICE_BUSY_S / 10 / (n * 0.1)
    ticks, readings = _feed_rates(ledger, [(n, (30.0, 2.0), busy_rate)], proc_rate=0.05)
    for tick in ticks:
        assert tick.price_j_per_cpu_s == pytest.approx(nominal)
    window = ledger.window(ticks[0].t_ns, ticks[-1].t_ns)
    assert window.charged_j == pytest.approx(window.proc_cpu_s * sum(nominal))
    # once the host has been busy long enough the price is measured
    more, _ = _feed_rates_continue(ledger, readings[-1], n=5, watts=(30.0, 2.0), busy_rate=0.5)
    assert more[-1].price_j_per_cpu_s != pytest.approx(nominal)
    assert more[-1].price_j_per_cpu_s[0] > 0


def _feed_rates_continue(ledger, last, n, watts, busy_rate, dt_ns=100_000_000):
    t, energy, busy, proc = last["t"], list(last["energy"]), last["busy"], last["proc"]
    ticks, readings = [], []
    for _ in range(n):
        t += dt_ns
        energy = [e + w * dt_ns / 1e9 for e, w in zip(energy, watts)]
        busy += busy_rate * dt_ns / 1e9
        readings.append(dict(t=t, energy=tuple(energy), busy=busy, proc=proc))
        ticks.append(ledger.append_reading(t, energy, busy, 0.0, proc, 0.0, 0, INTENSITY, "measured"))
    return ticks, readings


def test_a_counter_without_a_nominal_price_starts_at_zero():
    ledger = Ledger(("cpu",), (0.0,))
    tick = ledger.append_reading(T0_NS, [1.0], 10.0, 20.0, 1.0, 0.0, 0, INTENSITY, "measured")
    assert tick.price_j_per_cpu_s == (0.0,)


def test_an_all_static_component_has_no_active_energy():
    ledger = Ledger(("memory",), (5.0,))
    _feed_rates(ledger, [(10, (5.0,), 1.0)])
    ticks = ledger.ticks()
    window = ledger.window(ticks[0].t_ns, ticks[-1].t_ns)
    assert window.active_j["memory"] == 0.0
    assert window.idle_j["memory"] == pytest.approx(5.0 * 1.0)


def test_gpu_energy_is_split_among_open_spans_or_left_unattributed():
    ledger = Ledger(("cpu",), (0.0,))
    ledger.append_reading(T0_NS, [0.0], 1.0, 2.0, 0.0, 10.0, 0, INTENSITY, "measured")
    t = ledger.append_reading(T0_NS + 10**8, [1.0], 1.1, 2.2, 0.0, 16.0, 3, INTENSITY, "measured")
    assert t.gpu_per_span_j == pytest.approx(6.0 / 3)
    assert t.gpu_per_span_w == pytest.approx(6.0 / 3 / 0.1)
    t = ledger.append_reading(T0_NS + 2 * 10**8, [2.0], 1.2, 2.4, 0.0, 20.0, 0, INTENSITY, "measured")
    assert t.gpu_per_span_j == pytest.approx(2.0)
    assert t.gpu_unattributed_j == pytest.approx(4.0)


# -- plain cases ---------------------------------------------------------------------------------------


def _window(active, idle, busy_s, proc_cpu_s, t0=0, t1=2_000_000_000):
    return Window(
        t0,
        t1,
        energy_j={k: active[k] + idle[k] for k in active},
        active_j=active,
        idle_j=idle,
        busy_s=busy_s,
        proc_cpu_s=proc_cpu_s,
        charged_j=0.0,
        gpu_proc_j=0.0,
    )


def test_window_price_share_and_idle_power():
    window = _window({"cpu": 30.0, "memory": 6.0}, {"cpu": 8.0, "memory": 2.0}, busy_s=4.0, proc_cpu_s=1.0)
    assert window.price_j_per_cpu_s == pytest.approx((30.0 + 6.0) / 4.0)
    assert window.process_share == pytest.approx(1.0 / 4.0)
    assert window.duration_s == pytest.approx(2.0)
    assert window.idle_power_w == pytest.approx((8.0 + 2.0) / 2.0)


def test_window_without_busy_time_or_duration():
    window = _window({"cpu": 3.0}, {"cpu": 1.0}, busy_s=0.0, proc_cpu_s=0.5, t0=7, t1=7)
    assert window.price_j_per_cpu_s == 0.0
    assert window.process_share == 0.0
    assert window.idle_power_w == 0.0


def test_process_share_is_capped_at_one():
    # /proc/stat has 10 ms granularity: the process can look busier than the host
    window = _window({"cpu": 1.0}, {"cpu": 0.0}, busy_s=0.02, proc_cpu_s=0.03)
    assert window.process_share == 1.0


def test_the_ring_is_bounded_and_old_times_clamp_to_the_oldest_tick():
    ledger, readings = build([(100_000_000, (1.0, 1.0), 0.1, 0.0, 0.0)] * 9, capacity=4)
    ticks = ledger.ticks()
    assert len(ticks) == 4
    assert [t.t_ns for t in ticks] == [r["t"] for r in readings[-4:]]
    window = ledger.window(readings[0]["t"], readings[-1]["t"])
    assert window.energy_j["cpu"] == pytest.approx(readings[-1]["energy"][0] - readings[-4]["energy"][0])


def test_empty_ledger_has_no_window():
    assert Ledger(COMPONENTS, (0.0, 0.0)).window(0, 1) is None
    assert Ledger(COMPONENTS, (0.0, 0.0)).latest is None


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(components=COMPONENTS, idle_power_w=(0.0, 0.0), capacity=1), "capacity"),
        (dict(components=COMPONENTS, idle_power_w=(0.0,)), "idle_power_w"),
        (dict(components=COMPONENTS, idle_power_w=(0.0, 0.0), nominal_price_j_per_cpu_s=(1.0,)), "nominal_price_j_per_cpu_s"),
    ],
)
def test_bad_ledger_arguments_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Ledger(**kwargs)


def test_a_reversed_window_raises():
    ledger, readings = build([(100_000_000, (1.0, 1.0), 0.1, 0.0, 0.0)])
    with pytest.raises(ValueError, match="t1_ns"):
        ledger.window(readings[-1]["t"], readings[0]["t"])


def test_model_sensor_feeds_give_the_model_price():
    """A ccf-like source: idle = n*min W, active = (max-min) per busy CPU-second."""
    min_w, max_w, n = 0.7, 3.5, 4
    ledger = Ledger(("cpu",), (n * min_w,), nominal_price_j_per_cpu_s=(max_w - min_w,))
    t, energy, busy = T0_NS, 0.0, 10.0
    ledger.append_reading(t, [energy], busy, 0.0, 0.0, 0.0, 0, INTENSITY, "estimated")
    for busy_rate in (0.5, 3.0, 1.25, 0.0, 2.0):
        t += 100_000_000
        d_busy = busy_rate * 0.1
        energy += n * min_w * 0.1 + (max_w - min_w) * d_busy
        busy += d_busy
        tick = ledger.append_reading(t, [energy], busy, 0.0, 0.0, 0.0, 0, INTENSITY, "estimated")
        assert tick.price_j_per_cpu_s[0] == pytest.approx(max_w - min_w)


def test_a_window_longer_than_the_ring_loses_nothing_from_a_kept_start_tick():
    """A long run keeps the tick current at its start: its window then covers everything,
    although the ring has long dropped that tick (without it the start clamps to the ring)."""
    ledger = Ledger(COMPONENTS, (0.0, 0.0), capacity=5)
    ticks, readings = _feed_rates(ledger, [(40, (10.0, 2.0), 1.0)], proc_rate=0.5)
    first, last = ticks[1], ticks[-1]
    assert first not in ledger.ticks()  # long gone from the ring
    kept = ledger.window(first.t_ns, last.t_ns, start=first)
    clamped = ledger.window(first.t_ns, last.t_ns)
    expected = {c: y - x for c, x, y in zip(COMPONENTS, first.energy_j, last.energy_j)}
    assert kept.energy_j == pytest.approx(expected)
    assert kept.busy_s == pytest.approx(last.busy_s - first.busy_s)
    assert kept.charged_j == pytest.approx(last.charged_j - first.charged_j)
    assert sum(clamped.energy_j.values()) < 0.2 * sum(expected.values())
    # Within the ring, the start tick changes nothing.
    inside = ticks[-3]
    assert ledger.window(inside.t_ns, last.t_ns, start=inside).energy_j == pytest.approx(
        ledger.window(inside.t_ns, last.t_ns).energy_j
    )


@SETTINGS
@given(steps, idle_powers, st.data())
def test_work_that_used_the_processs_cpu_pays_what_the_process_was_charged(steps_, idle_power_w, data):
    """The ledger's charge and a span's price are one rule (otel_carbon.attribution): work
    that used exactly the process's CPU time between two ticks is priced at what the
    ledger charged the process over that window, per component and idle."""
    ledger, _ = build(steps_, idle_power_w)
    ticks = ledger.ticks()
    i = data.draw(st.integers(min_value=0, max_value=len(ticks) - 2))
    j = data.draw(st.integers(min_value=i + 1, max_value=len(ticks) - 1))
    start, tick = ticks[i], ticks[j]
    cpu_s = tick.proc_cpu_s - start.proc_cpu_s
    if j - i > 1 and cpu_s <= MIN_WINDOW_PROC_S:
        return  # too little CPU time for a window price: the latest tick's trailing price
    layout = Layout(tuple((name, k) for k, name in enumerate(COMPONENTS)), idle=True)
    figures = attribute(cpu_s, start, tick, layout)
    charged = [b - a for a, b in zip(start.charged_by_j, tick.charged_by_j)]
    scale = max(tick.charged_j, 1.0)
    assert list(figures.energy_j) == [approx(c, scale) for c in charged]
    assert figures.idle_j == approx(tick.charged_idle_j - start.charged_idle_j, scale)
    whole = process_charge(tick).total_j - process_charge(start).total_j
    assert sum(figures.energy_j) + (tick.gpu_proc_j - start.gpu_proc_j) == approx(whole, scale)
