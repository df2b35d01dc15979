#!/usr/bin/env python3
"""Build the package's bundled data files from the curated tables in ``tests/data``.

Usage::

    python tools/build_data.py [SOURCE_DIR] [--out otel_carbon/data] [--check]

``SOURCE_DIR`` defaults to ``<repo>/tests/data`` (the curated tables live there, inside the
repository, because the data tests compare the package against them). The script reads the curated CSV
tables (each documented in that directory's ``SOURCES.md``), validates them, keeps only the
columns the package uses, and writes them to ``otel_carbon/data/``. It never changes a value:
numbers are copied as the exact strings of the source, so what ships is what ``SOURCES.md``
describes. Every intensity row keeps its ``year`` and ``source`` (an empty year means the
source gives none).

It also writes ``data_sources.csv``: the inputs table of ``SOURCES.md`` (origin, version,
licence) with the package tables each input feeds, so the credits ship inside the wheel.

``--check`` builds into memory and exits 1 if a packaged file differs (for CI).

Decisions:

* Validation failures stop the build (exit 2) with the file, row and reason: shipping a
  silently broken table would put wrong numbers on every span.
* Output is deterministic (input order, ``\\n`` line endings, minimal quoting), so a
  rebuild from unchanged inputs is a no-op in version control.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE_DIR = REPO_ROOT / "tests" / "data"
DEFAULT_OUT_DIR = REPO_ROOT / "otel_carbon" / "data"

Row = Dict[str, str]
Check = Callable[[str], Optional[str]]  # returns an error message, or None when valid


class BuildError(Exception):
    """A source table failed validation."""


# -- cell checks -----------------------------------------------------------------------


def _number(low: float, high: float, *, low_inclusive: bool = False) -> Check:
    def check(value: str) -> Optional[str]:
        try:
            number = float(value)
        except ValueError:
            return f"{value!r} is not a number"
        above = number >= low if low_inclusive else number > low
        if not (math.isfinite(number) and above and number < high):
            bracket = "[" if low_inclusive else "("
            return f"{value!r} is outside {bracket}{low}, {high})"
        return None

    return check


def _optional(check: Check) -> Check:
    return lambda value: None if value == "" else check(value)


def _year(value: str) -> Optional[str]:
    if not re.fullmatch(r"(19|20)\d\d", value):
        return f"{value!r} is not a year"
    return None


def _pattern(regex: str, what: str) -> Check:
    compiled = re.compile(regex)
    return lambda value: None if compiled.fullmatch(value) else f"{value!r} is not {what}"


def _required(value: str) -> Optional[str]:
    return "is empty" if value.strip() == "" else None


# -- table specifications --------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    """One package table: which source file, which columns, what makes a row valid."""

    name: str
    columns: Tuple[str, ...]
    key: Tuple[str, ...]
    checks: Dict[str, Check] = field(default_factory=dict)
    inputs: Tuple[str, ...] = ()  # ids from the SOURCES.md inputs table
    row_check: Optional[Callable[[Row], Optional[str]]] = None

    @property
    def filename(self) -> str:
        return f"{self.name}.csv"


_INTENSITY = _number(0, 1500)  # SOURCES.md: every intensity is in (0, 1500) g/kWh


def _min_le_max(row: Row) -> Optional[str]:
    if float(row["min_watts_per_vcpu"]) > float(row["max_watts_per_vcpu"]):
        return "min_watts_per_vcpu > max_watts_per_vcpu"
    return None


TABLES: Tuple[TableSpec, ...] = (
    TableSpec(
        name="grid_intensity_countries",
        columns=("iso3", "iso2", "country_name", "year", "g_co2e_per_kwh", "source"),
        key=("iso3",),
        checks={
            "iso3": _pattern(r"[A-Z]{3}", "an ISO 3166 alpha-3 code"),
            "iso2": _optional(_pattern(r"[A-Z]{2}", "an ISO 3166 alpha-2 code")),
            "year": _year,
            "g_co2e_per_kwh": _INTENSITY,
            "source": _required,
        },
        inputs=("CC", "OWID"),
    ),
    TableSpec(
        name="grid_intensity_subnational",
        columns=("country_iso3", "region_code", "region_name", "year", "g_co2e_per_kwh", "source"),
        key=("region_code",),
        checks={
            "country_iso3": _pattern(r"[A-Z]{3}", "an ISO 3166 alpha-3 code"),
            "region_code": _pattern(r"[A-Z0-9-]{2,8}", "a region code"),
            "year": _year,
            "g_co2e_per_kwh": _INTENSITY,
            "source": _required,
        },
        inputs=("CC",),
    ),
    TableSpec(
        name="cloud_regions",
        columns=(
            "provider",
            "region",
            "location",
            "country_iso3",
            "g_co2e_per_kwh",
            "year",
            "source",
            "pue",
            "ccf_g_co2e_per_kwh",
            "google_cfe_fraction",
        ),
        key=("provider", "region"),
        checks={
            "provider": _pattern(r"aws|gcp|azure", "aws, gcp or azure"),
            "region": _pattern(r"[A-Za-z0-9-]+", "a cloud region name"),
            "country_iso3": _optional(_pattern(r"[A-Z]{3}", "an ISO 3166 alpha-3 code")),
            "g_co2e_per_kwh": _INTENSITY,
            "year": _optional(_year),
            "source": _required,
            "pue": _number(1.0, 3.0, low_inclusive=True),
            "ccf_g_co2e_per_kwh": _optional(_INTENSITY),
            "google_cfe_fraction": _optional(_number(0.0, 1.0000001, low_inclusive=True)),
        },
        inputs=("CCF", "GRCI"),
    ),
    TableSpec(
        name="cpu_tdp",
        columns=("model", "tdp_watts"),
        key=("model",),
        checks={"model": _required, "tdp_watts": _number(0, 1000)},
        inputs=("CC",),
    ),
    TableSpec(
        name="cpu_power_model",
        columns=("provider", "microarchitecture", "min_watts_per_vcpu", "max_watts_per_vcpu", "source"),
        key=("provider", "microarchitecture"),
        checks={
            "provider": _pattern(r"aws|gcp|azure", "aws, gcp or azure"),
            "microarchitecture": _required,
            "min_watts_per_vcpu": _number(0, 100),
            "max_watts_per_vcpu": _number(0, 100),
            "source": _required,
        },
        inputs=("CCF",),
        row_check=_min_le_max,
    ),
)

SOURCES_COLUMNS = ("id", "origin", "version", "license", "tables")

# Inputs that feed no package table, and what they are used for instead.
OTHER_USES = {
    "GSF": "(coefficients only: power_coefficients.md)",
    "pycountry": "(build time only: ISO 3166 codes)",
}


# -- reading and validating ------------------------------------------------------------


def read_table(path: Path, spec: TableSpec) -> List[Row]:
    """Read ``path`` and return its rows restricted to ``spec.columns``, validated."""
    if not path.is_file():
        raise BuildError(f"{path}: missing")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [column for column in spec.columns if column not in header]
        if missing:
            raise BuildError(f"{path}: missing column(s) {', '.join(missing)}")
        rows: List[Row] = []
        seen_exact: Dict[Tuple[str, ...], int] = {}
        seen: Dict[Tuple[str, ...], Tuple[int, Tuple[str, ...]]] = {}
        for line_no, raw in enumerate(reader, start=2):
            row = {column: (raw.get(column) or "").strip() for column in spec.columns}
            for column, check in spec.checks.items():
                error = check(row[column])
                if error:
                    raise BuildError(f"{path}:{line_no}: {column} {error}")
            if spec.row_check is not None:
                error = spec.row_check(row)
                if error:
                    raise BuildError(f"{path}:{line_no}: {error}")
            # Keys are matched case-insensitively at run time. Rows whose keys differ only
            # in case are tolerated when they carry the same values (cpu_tdp has one such
            # pair, "i5-750S"/"i5-750s"); an exact duplicate or a conflicting one is an error.
            exact = tuple(row[column] for column in spec.key)
            folded = tuple(value.lower() for value in exact)
            values = tuple(row[c] for c in spec.columns if c not in spec.key)
            if exact in seen_exact:
                raise BuildError(f"{path}:{line_no}: duplicate key {exact} (first on line {seen_exact[exact]})")
            if folded in seen and seen[folded][1] != values:
                raise BuildError(
                    f"{path}:{line_no}: key {exact} conflicts with line {seen[folded][0]} (same key up to case)"
                )
            seen_exact[exact] = line_no
            seen.setdefault(folded, (line_no, values))
            rows.append(row)
    if not rows:
        raise BuildError(f"{path}: no rows")
    return rows


def read_inputs_table(sources_md: Path) -> List[Row]:
    """Parse the ``## Inputs`` markdown table of SOURCES.md into rows."""
    if not sources_md.is_file():
        raise BuildError(f"{sources_md}: missing")
    lines = sources_md.read_text(encoding="utf-8").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().lower() == "## inputs")
    except StopIteration:
        raise BuildError(f"{sources_md}: no '## Inputs' section") from None
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    if len(table) < 3 or [c.lower() for c in table[0]] != ["id", "origin", "version", "license"]:
        raise BuildError(f"{sources_md}: the Inputs table must have columns Id | Origin | Version | License")
    rows = []
    for cells in table[2:]:  # skip the header and the |---| line
        if len(cells) != 4:
            raise BuildError(f"{sources_md}: malformed Inputs row {cells}")
        rows.append(dict(zip(("id", "origin", "version", "license"), (c.replace("`", "") for c in cells))))
    return rows


def credits_rows(inputs: Sequence[Row]) -> List[Row]:
    """Inputs joined with the package tables that use each one."""
    known = {row["id"] for row in inputs}
    for spec in TABLES:
        for input_id in spec.inputs:
            if input_id not in known:
                raise BuildError(f"SOURCES.md has no input {input_id!r} (used by {spec.name})")
    result = []
    for row in inputs:
        tables = [spec.name for spec in TABLES if row["id"] in spec.inputs]
        uses = " ".join(tables) if tables else OTHER_USES.get(row["id"], "(not used)")
        result.append({**row, "tables": uses})
    return result


# -- writing ---------------------------------------------------------------------------


def render_csv(columns: Sequence[str], rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row[column] for column in columns])
    return buffer.getvalue()


def build(source_dir: Path) -> Dict[str, str]:
    """Return ``{filename: csv text}`` for every package data file."""
    outputs: Dict[str, str] = {}
    for spec in TABLES:
        rows = read_table(source_dir / spec.filename, spec)
        outputs[spec.filename] = render_csv(spec.columns, rows)
    credits = credits_rows(read_inputs_table(source_dir / "SOURCES.md"))
    outputs["data_sources.csv"] = render_csv(SOURCES_COLUMNS, credits)
    return outputs


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source_dir", nargs="?", type=Path, default=DEFAULT_SOURCE_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="package data directory")
    parser.add_argument("--check", action="store_true", help="exit 1 if the packaged files are stale")
    args = parser.parse_args(argv)
    try:
        outputs = build(args.source_dir)
    except BuildError as exc:
        print(f"build_data: {exc}", file=sys.stderr)
        return 2
    stale = []
    for filename, text in outputs.items():
        target = args.out / filename
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current == text:
            continue
        stale.append(filename)
        if not args.check:
            args.out.mkdir(parents=True, exist_ok=True)
            with target.open("w", encoding="utf-8", newline="") as handle:
                handle.write(text)
    if args.check:
        if stale:
            print("build_data: stale: " + ", ".join(stale), file=sys.stderr)
            return 1
        print("build_data: up to date")
        return 0
    for filename in outputs:
        state = "written" if filename in stale else "unchanged"
        print(f"{args.out / filename}: {outputs[filename].count(chr(10)) - 1} rows, {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
