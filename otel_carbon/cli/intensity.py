"""``otel-carbon intensity``: the grid carbon intensity this process would use, and why.

Prints value, zone, year, source and PUE after the same resolution as the span processor
(arguments, then ``OTEL_CARBON_*`` env, then the OTel Resource, then the world average).
Configuration errors are reported as errors here (exit status 2), not only logged. When
``OTEL_CARBON_INTENSITY_PROVIDER`` names a live provider, it is queried once.

``--list countries|regions|cloud`` prints the bundled codes.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from otel_carbon.cli._common import HelpFormatter, epilog
from otel_carbon.intensity import Intensity, LiveIntensitySource, intensity_source
from otel_carbon.intensity import bundled
from otel_carbon.units_text import format_number

_LISTS = {
    "countries": bundled.list_countries,
    "regions": bundled.list_regions,
    "cloud": bundled.list_cloud_regions,
}


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser(
        "intensity",
        help="show the grid carbon intensity in use",
        description="Show the grid carbon intensity (g CO2e/kWh) this process would use, and where it comes from "
        "(arguments, then OTEL_CARBON_* variables, then the OTel Resource, then the world average).",
        epilog=epilog("  0  the intensity (or the list) was printed; a failed live provider falls back to bundled data\n"
                      "  2  bad usage or configuration (an unknown country, region or cloud region; a bad PUE)",
                      "  otel-carbon intensity --country FR\n  otel-carbon intensity --cloud aws:eu-west-1 --json\n"
                      "  otel-carbon intensity --list regions"),
        formatter_class=HelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--country", help="ISO 3166 alpha-2 or alpha-3 code, e.g. FR or FRA")
    where.add_argument("--region", help="sub-national code, e.g. US-CA, CA-QC, SE3")
    where.add_argument("--cloud", metavar="PROVIDER:REGION", help="cloud region, e.g. aws:eu-west-1, gcp:europe-west1")
    where.add_argument("--list", choices=sorted(_LISTS), help="list the bundled codes of one kind")
    parser.add_argument("--pue", type=float, help="Power Usage Effectiveness to apply (>= 1)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "list", None):
        return _print_list(args.list, bool(args.json))
    try:
        source = intensity_source(
            country=args.country,
            region=args.region,
            cloud=args.cloud,
            pue=args.pue,
            strict=True,
            start=False,
        )
    except ValueError as exc:
        print(f"otel-carbon intensity: error: {exc}", file=sys.stderr)
        return 2
    provider: Optional[str] = None
    bundled_value: Optional[Intensity] = None
    if isinstance(source, LiveIntensitySource):
        provider, bundled_value = source.name, source.bundled
        value = source.refresh_now()
        source.shutdown()
    else:
        value = source.current()
    if args.json:
        document = value.as_dict()
        document["provider"] = provider
        if bundled_value is not None:
            document["bundled"] = bundled_value.as_dict()
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        _print_text(value, provider, bundled_value)
    return 0


def _print_text(value: Intensity, provider: Optional[str], bundled_value: Optional[Intensity]) -> None:
    print(f"intensity  {format_number(value.g_per_kwh)} g CO2e/kWh")
    print(f"zone       {value.zone}")
    print(f"year       {value.year if value.year is not None else 'unknown'}")
    print(f"source     {value.source}")
    print(f"pue        {format_number(value.pue)}")
    print(f"effective  {format_number(value.g_per_kwh * value.pue)} g CO2e per kWh used by the servers")
    if provider is not None:
        state = "live" if value.live else "FALLBACK to bundled data (live provider failed)"
        print(f"provider   {provider}: {state}")
        if value.as_of:
            print(f"as of      {value.as_of}")
        if bundled_value is not None and value.live:
            print(f"bundled    {format_number(bundled_value.g_per_kwh)} g CO2e/kWh ({bundled_value.zone})")


def _print_list(kind: str, as_json: bool) -> int:
    rows = _LISTS[kind]()
    if as_json:
        print(json.dumps([{"code": code, "name": name} for code, name in rows], indent=2))
    else:
        width = max(len(code) for code, _ in rows)
        for code, name in rows:
            print(f"{code:<{width}}  {name}")
    return 0
