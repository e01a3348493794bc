"""Command line: `eigen-explorer serve` (the app) and `eigen-explorer report` (headless JSON + HTML)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    from explorer.ui.serve import serve

    return serve(args.port, args.address, args.streamlit_args, warm_up=not args.no_warm_up)


def _report(args: argparse.Namespace) -> int:
    import explorer.analysis.export  # noqa: F401 (registers the reader of exported compression decisions)
    from explorer.errors import ExplorerError
    from explorer.models import capture, load_model
    from explorer.report.build import default_sections, write_report

    if args.text_file:
        try:
            text = Path(args.text_file).read_text(encoding="utf-8")
        except OSError as err:
            print(f"error: cannot read {args.text_file}: {err.strerror}", file=sys.stderr)
            return 2
    else:
        text = args.text
    try:
        loaded = load_model(
            args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code
        )
        cap = capture(loaded, text, args.max_tokens)
        for message in cap.messages:
            print(f"note: {message}", file=sys.stderr)
        metrics, report = write_report(
            loaded,
            cap,
            args.out,
            sections=default_sections(curvature_grid=args.curvature_grid),
            progress=lambda name: print(f"computing {name}...", file=sys.stderr, flush=True),
        )
    except ExplorerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {metrics}\nwrote {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eigen-explorer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the Streamlit app")
    serve.add_argument("--port", type=int, default=8501)
    serve.add_argument("--address", default="localhost", help="bind address (0.0.0.0 to serve others)")
    serve.add_argument(
        "--no-warm-up",
        action="store_true",
        help="do not import the app and load the default model in the background at start (saves its memory "
        "until a page needs the model; the first visit then waits for both)",
    )
    serve.add_argument("streamlit_args", nargs=argparse.REMAINDER, help="extra `streamlit run` options")
    serve.set_defaults(func=_serve)

    report = sub.add_parser("report", help="write metrics.json and report.html for a model and a text")
    report.add_argument("--model", default="smollm2-135m", help="catalogue id, local folder or hub id")
    group = report.add_mutually_exclusive_group(required=True)
    group.add_argument("--text", help="the text to analyse")
    group.add_argument("--text-file", help="a UTF-8 file holding the text")
    report.add_argument("--out", required=True, help="output folder")
    report.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    report.add_argument("--dtype", default="float32", help="float32, bfloat16, float16")
    report.add_argument("--max-tokens", type=int, default=512)
    report.add_argument("--trust-remote-code", action="store_true", help="allow the model's own Python code")
    report.add_argument(
        "--curvature-grid",
        action="store_true",
        help="also compute the Hessian's lambda_max and trace of every layer's attention and MLP (slow)",
    )
    report.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
