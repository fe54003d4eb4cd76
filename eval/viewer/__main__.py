"""``python -m eval.viewer serve|export|results``.

    python -m eval.viewer serve --config viewer.yaml            # the web app (127.0.0.1 by default)
    python -m eval.viewer export --items-file I --predictions NAME=P [--predictions NAME2=P2] --out DIR [--limit 8]
    python -m eval.viewer results --database labels.sqlite --out DIR   # Table 2 as JSON, Markdown and CSV
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

import yaml

from data_prep.writers import atomic_write_bytes, write_json
from eval.jsonl import JsonlError
from eval.viewer.export import export_items
from eval.viewer.items import load_view_items
from eval.viewer.results import DIMENSIONS, table2
from eval.viewer.server import ViewerConfigError, start_server
from eval.viewer.store import LabelStore


def named_paths(values: list[str]) -> dict[str, Path]:
    pairs = {}
    for value in values:
        name, _, path = value.partition("=")
        if not path:
            raise SystemExit(f"expected NAME=PATH, got {value!r}")
        pairs[name] = Path(path)
    return pairs


def write_results(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "table2.json", result)
    header = ["model", "group", *DIMENSIONS]
    rows = [[model, group, *["" if scores[d] is None else f"{scores[d]:.4f}" for d in DIMENSIONS]]
            for model, by_group in result["scores"].items() for group, scores in by_group.items()]
    rows += [["agreement", "", *["" if result["agreement"].get(d, {}).get("cohen_kappa") is None else
                                 f"{result['agreement'][d]['percent_agreement']:.4f} (kappa {result['agreement'][d]['cohen_kappa']:.4f})"
                                 for d in DIMENSIONS]]]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    atomic_write_bytes(out / "table2.csv", buffer.getvalue().encode())
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    atomic_write_bytes(out / "table2.md", ("\n".join(lines) + "\n").encode())


def report_problems(problems: list[str], shown: int = 20, what: str = "line(s) of the input files") -> None:
    """What is not shown (lines of the items and predictions files, boxes), with the reason, on stderr."""
    if problems:
        listed = "".join(f"\n  {problem}" for problem in problems[:shown])
        more = f"\n  ... and {len(problems) - shown} more" if len(problems) > shown else ""
        print(f"{len(problems)} {what} are not shown:{listed}{more}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.viewer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("--config", type=Path, required=True)
    export = commands.add_parser("export")
    export.add_argument("--items-file", type=Path, required=True)
    export.add_argument("--predictions", action="append", required=True, help="NAME=predictions.jsonl (1 or 2)")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--limit", type=int, default=8)
    results = commands.add_parser("results")
    results.add_argument("--database", type=Path, required=True)
    results.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "serve":
        try:
            config = yaml.safe_load(args.config.read_text(encoding="utf-8"))
            server = start_server(config)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ViewerConfigError, JsonlError) as error:
            # a config or an input file to fix: one message, not a traceback
            raise SystemExit(f"{args.config}: {error}") from None
        report_problems(server.problems)
        print(f"viewer on {server.url}/?token=<your token>  (mode: {server.mode}, {len(server.items)} items); Ctrl-C stops")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            server.close()
    elif args.command == "export":
        problems: list[str] = []
        paths = named_paths(args.predictions)
        if missing := [str(path) for path in paths.values() if not path.is_file()]:
            raise SystemExit(f"--predictions: no such file {missing}")
        try:
            items = load_view_items(args.items_file, paths, None, 0, blind=False, problems=problems)
        except JsonlError as error:
            raise SystemExit(str(error)) from None
        report_problems(problems)
        drawing_problems: list[str] = []
        written = export_items(items, args.out, args.limit, drawing_problems)
        report_problems(drawing_problems, what="box(es)")
        print(f"exported {len(written)} PNGs to {args.out}")
    else:
        result = table2(LabelStore(args.database).all_rows())
        write_results(result, args.out)
        print(json.dumps(result["agreement"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
