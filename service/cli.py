"""``yardstick serve | worker | migrate | export-openapi | demo | evaluate | report``."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from service.settings import InvalidSettings, Settings, load_settings, settings_warnings

if TYPE_CHECKING:
    from service.store.migrations import MigrationReport

DEFAULT_OPENAPI_PATH = Path("openapi/openapi.json")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def openapi_document() -> dict[str, object]:
    from service.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp), database_url=None, workers=0))
        try:
            return app.openapi()
        finally:
            app.state.store.close()


def render_openapi() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app
    from service.logs import configure_logging

    overrides = {"workers": args.workers} if args.workers is not None else {}
    try:
        settings = load_settings(**overrides)
    except InvalidSettings as exc:
        print(f"yardstick serve: {exc}", file=sys.stderr)
        return 2
    if not settings.api_keys and not is_loopback(args.host) and not args.insecure:
        print(
            f"refusing to serve on {args.host} without API keys: set YARDSTICK_API_KEYS, "
            "bind a loopback address, or pass --insecure if something else guards the port",
            file=sys.stderr,
        )
        return 2
    for warning in settings_warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    configure_logging(settings.log_format, args.log_level)
    app = create_app(settings, embedded_workers=True)
    # log_config=None: uvicorn's lines (access log included) go through our formatter
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=None,
        access_log=args.access_log,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from service.jobs.pool import WorkerPool
    from service.logs import configure_logging

    try:
        settings = load_settings()
    except InvalidSettings as exc:
        print(f"yardstick worker: {exc}", file=sys.stderr)
        return 2
    for warning in settings_warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    processes = args.processes or max(settings.workers, 1)
    configure_logging(settings.log_format)
    # Once here, so the worker processes (each of which checks it too) find the schema current.
    print(f"yardstick worker: {_migrate_database(settings).describe()}", flush=True)
    pool = WorkerPool(settings, processes)
    pool.start()
    print(f"yardstick worker: {processes} process(es) on {settings.resolved_database_url}", flush=True)
    pool.wait()
    return 0


def _migrate_database(settings: Settings) -> MigrationReport:
    from service.store.migrations import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return upgrade(settings.resolved_database_url)


def _migrate(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        report = _migrate_database(settings)
    except Exception as exc:
        print(f"yardstick migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(report.describe())
    return 0


def _export_openapi(args: argparse.Namespace) -> int:
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_openapi())
    print(f"wrote {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from service.demo import run_demo

    return run_demo(
        args.url, rows=args.rows, api_key=args.api_key, seed=args.seed, min_roc_auc=args.min_roc_auc
    )


def _evaluate(args: argparse.Namespace) -> int:
    from yardstick.pipeline import evaluate_file

    return evaluate_file(
        Path(args.file),
        model=args.model,
        version=args.version,
        url=args.url,
        api_key=args.api_key,
        config=Path(args.config) if args.config else None,
        task=args.task,
        positive_class=args.positive_class,
        junit=Path(args.junit) if args.junit else None,
        report=Path(args.report) if args.report else None,
        retries=args.retries,
    )


def _report(args: argparse.Namespace) -> int:
    from yardstick.pipeline import save_report

    return save_report(args.job_id, Path(args.output), url=args.url, api_key=args.api_key)


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=None, help="the service (default YARDSTICK_URL or http://127.0.0.1:8000)"
    )
    parser.add_argument("--api-key", default=None, help="default YARDSTICK_API_KEY")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yardstick", description="Yardstick model-evaluation service.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API with embedded workers")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, default=None, help="worker processes (default YARDSTICK_WORKERS)"
    )
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without API keys")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--no-access-log", dest="access_log", action="store_false", help="no line per request")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="run job workers only (scale-out)")
    worker.add_argument("--processes", type=int, default=None)
    worker.set_defaults(func=_worker)

    migrate = sub.add_parser(
        "migrate",
        help="bring the database schema to this version's newest revision and print the revision "
        "before and after (serve and worker also do this at start-up)",
    )
    migrate.set_defaults(func=_migrate)

    export = sub.add_parser("export-openapi", help="write the OpenAPI document")
    export.add_argument("--output", default=str(DEFAULT_OPENAPI_PATH))
    export.set_defaults(func=_export_openapi)

    demo = sub.add_parser("demo", help="post a generated batch to a running service and evaluate it")
    demo.add_argument("--url", default="http://127.0.0.1:8000")
    demo.add_argument("--rows", type=int, default=20_000)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--api-key", default=None)
    demo.add_argument(
        "--min-roc-auc",
        type=float,
        default=0.7,
        help="the demo's gate on the ROC AUC's lower 95%% bound; exits 1 when the verdict is fail",
    )
    demo.set_defaults(func=_demo)

    evaluate = sub.add_parser(
        "evaluate",
        help="post a batch file, evaluate it, print the verdict; exit 0 pass/warn, 1 fail, 2 error",
    )
    evaluate.add_argument("file", help="the batch: .parquet, .csv or .arrow (Arrow IPC file or stream)")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--version", required=True)
    evaluate.add_argument("--task", choices=["binary", "multiclass", "regression"], default=None,
                          help="default: the config's task")  # fmt: skip
    evaluate.add_argument("--positive-class", default=None, help="binary; default: the config's")
    evaluate.add_argument(
        "--config", default=None, help="YAML: evaluation sections (metrics, bootstrap, baselines, gates, ...)"
    )
    evaluate.add_argument("--junit", default=None, help="write the gates as JUnit XML here")
    evaluate.add_argument("--report", default=None, help="save the HTML report here")
    evaluate.add_argument("--retries", type=int, default=4, help="retries on 429, 503 and connection errors")
    _client_options(evaluate)
    evaluate.set_defaults(func=_evaluate)

    report = sub.add_parser("report", help="save a job's HTML report")
    report.add_argument("job_id")
    report.add_argument("-o", "--output", required=True, help="the HTML file to write")
    _client_options(report)
    report.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
