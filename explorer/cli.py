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
    from explorer.analysis.attention_long import capture_with_grid
    from explorer.analysis.generation import generated_mask
    from explorer.errors import ExplorerError
    from explorer.models import load_model
    from explorer.report.build import default_sections, needs_model, parse_sections, write_report

    if args.checkpoints is not None:
        return _report_series(args)
    try:
        names = parse_sections(args.sections, compare=args.compare is not None)
        compare = None if args.compare is None else _variant_key(args.compare)
    except ExplorerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not needs_model(names):
        from explorer.models.checkpoint import checkpoint_folder

        folder = checkpoint_folder(args.model)
        if folder is not None:  # read the weights from the files: the model is never loaded
            return _report_checkpoint(folder, args)
    if not (args.text or args.text_file):
        print(
            f"error: the sections {', '.join(names)} need a text: give --text or --text-file", file=sys.stderr
        )
        return 2
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
        max_tokens, generated = args.max_tokens, None
        if args.generate:
            text, max_tokens, generated_ids = _continue(loaded, text, args)
        # A long text's attention grid is reduced during this one pass (the attention section reuses it).
        cap, _grid = capture_with_grid(loaded, text, max_tokens, progress=_layer_progress)
        if args.generate and generated_ids is not None:
            generated = generated_mask(cap.token_ids, generated_ids)
        for message in cap.messages:
            print(f"note: {message}", file=sys.stderr)
        metrics, report = write_report(
            loaded,
            cap,
            args.out,
            sections=default_sections(
                curvature_grid=args.curvature_grid,
                generated=generated,
                names=names,
                compare=compare,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            ),
            progress=lambda name: print(f"computing {name}...", file=sys.stderr, flush=True),
        )
    except ExplorerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {metrics}\nwrote {report}")
    return 0


def _variant_key(raw: str) -> str:
    """``--compare``'s key in its canonical spelling (the weights page's ``vs=``); InputError naming the
    accepted keys for one it cannot read (checked before the model loads: nothing is written)."""
    from explorer.analysis.variants import canonical

    return canonical(raw)


def _layer_progress(fraction: float, message: str) -> None:
    print(f"\rcapturing: {message}", end="\n" if fraction >= 1 else "", file=sys.stderr, flush=True)


def _series_progress(fraction: float, message: str) -> None:
    print(
        f"\rseries {fraction:4.0%}: {message}", end="\n" if fraction >= 1 else "", file=sys.stderr, flush=True
    )


def _report_checkpoint(folder: Path, args: argparse.Namespace) -> int:
    """``--sections weights`` on a safetensors folder: the weight spectra read from its files tensor by tensor,
    without loading the model (so a model larger than memory works)."""
    from explorer.errors import ExplorerError
    from explorer.models.checkpoint import Checkpoint
    from explorer.models.device import resolve_device
    from explorer.report.build import write_checkpoint_report

    try:
        checkpoint = Checkpoint.open(folder, dtype=args.dtype)
        metrics, report = write_checkpoint_report(
            checkpoint,
            args.out,
            model_id=args.model,
            device=resolve_device(args.device),
            progress=lambda name: print(f"computing {name}...", file=sys.stderr, flush=True),
        )
    except (ExplorerError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {metrics}\nwrote {report}")
    return 0


def _report_series(args: argparse.Namespace) -> int:
    """``--checkpoints DIR``: the series section alone, every checkpoint read from its files (no model loaded)."""
    from explorer.analysis.checkpoint_series import checkpoint_series
    from explorer.errors import ExplorerError
    from explorer.models.device import resolve_device
    from explorer.report.build import write_series_report

    unused = [flag for flag, value in (("--sections", args.sections), ("--compare", args.compare)) if value]
    unused += ["--text"] if args.text or args.text_file else []
    if unused:
        print(
            f"error: --checkpoints writes the series section only, from the weights: leave out {', '.join(unused)}",
            file=sys.stderr,
        )
        return 2
    try:
        series = checkpoint_series(
            args.checkpoints, device=resolve_device(args.device), dtype=args.dtype, progress=_series_progress
        )
        metrics, report = write_series_report(series, args.out)
    except ExplorerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, why in series.failed.items():
        print(f"note: checkpoint {name} left out: {why}", file=sys.stderr)
    print(f"wrote {metrics}\nwrote {report}")
    return 0


def _continue(loaded, text: str, args: argparse.Namespace):
    """``--generate``: (prompt + continuation text, its token limit, the prompt's ids); prints the settings. An
    encoder cannot write: the text is analysed as given (ids None), with a note."""
    from explorer.analysis.generation import GREEDY, SAMPLED, GenerationSettings, continue_text

    if not loaded.causal:
        print(
            f"note: {loaded.card.id} is an encoder and cannot continue the text; --generate ignored",
            file=sys.stderr,
        )
        return text, args.max_tokens, None
    settings = GenerationSettings(
        args.generate, SAMPLED if args.sample else GREEDY, args.temperature, args.top_p, args.seed
    )
    print(f"generating {settings.describe()}...", file=sys.stderr, flush=True)
    prompt_ids, generation, prompt_text, continuation = continue_text(loaded, text, args.max_tokens, settings)
    if generation.stopped_early:
        print(f"note: the model ended its text after {generation.n_generated} tokens", file=sys.stderr)
    return prompt_text + continuation, loaded.card.max_positions, prompt_ids


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
    group = report.add_mutually_exclusive_group()  # required by every section but weights: checked in _report
    group.add_argument("--text", help="the text to analyse")
    group.add_argument("--text-file", help="a UTF-8 file holding the text")
    report.add_argument("--out", required=True, help="output folder")
    report.add_argument(
        "--sections",
        metavar="NAMES",
        help="only these sections, comma-separated, of: model, attention, logit_lens, weights, directions, "
        "compression, curvature, compare (default: all; compare only with --compare). 'weights' alone on a "
        "local safetensors folder reads the checkpoint files tensor by tensor and never loads the model (no "
        "text needed)",
    )
    report.add_argument(
        "--compare",
        metavar="KEY",
        help="add a 'compare' section: the model A against a variant B of it, as the weights page's compare "
        "mode (vs=): int8, int4 / int4-g32 / int4-g32-asym (4-bit, groups of 32, with offset), rank:0.5 or "
        "rank:0.8:svdllm (low rank, share of the break-even rank, method; +int8 for quantized factors), "
        "lora:r8:s50 (peft LoRA rank 8, 50 Adam steps on the text; :cal on the calibration text), "
        "dir:/path/to/model (a folder of the same architecture). Per matrix alpha, alpha-hat, stable rank, "
        "spectral norm of A and B and Delta W's ranks and subspace shares; KL(A||B), top-1 agreement, "
        "perplexities and greedy continuations on the text",
    )
    report.add_argument(
        "--checkpoints",
        metavar="DIR",
        help="a training run's folder of checkpoints (sub-folders checkpoint-N, or with one step number in "
        "their name, each a safetensors model folder): write the 'series' section only, alpha, alpha-hat, "
        "stable rank and spectral norm of every matrix against the step, read from the files without loading "
        "any model (no text; a checkpoint that cannot be read is named in the section's 'failed')",
    )
    report.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    report.add_argument("--dtype", default="float32", help="float32, bfloat16, float16")
    report.add_argument(
        "--max-tokens",
        type=int,
        default=512,
        help="cut the text to this many tokens, up to the model's context (SmolLM2: 8192, MiniLM: 512; more is "
        "cut to the context with a note). Past 512 tokens on SmolLM2 the attention is reduced layer by layer",
    )
    report.add_argument("--trust-remote-code", action="store_true", help="allow the model's own Python code")
    report.add_argument(
        "--generate",
        type=int,
        default=0,
        metavar="N",
        help="continue the text (cut to --max-tokens) by N tokens with the model and analyse text + continuation "
        "(causal LMs; the logit_lens section marks the generated tokens)",
    )
    report.add_argument("--sample", action="store_true", help="with --generate: sample instead of greedy")
    report.add_argument("--temperature", type=float, default=1.0, help="with --sample: softmax temperature")
    report.add_argument("--top-p", type=float, default=1.0, help="with --sample: nucleus mass (0, 1]")
    report.add_argument("--seed", type=int, default=0, help="with --sample: the random seed (reproducible)")
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
