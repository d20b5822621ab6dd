"""`cqrs-demo`: start, stop, inspect and check a stack from the shell."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from cqrs_demo import config
from cqrs_demo.config import ConfigError, Settings
from cqrs_demo.runtime.serve import SERVICES, stop_on_signals


def _table(rows: list[dict]) -> str:
    columns = list(rows[0])
    cells = [{c: "-" if row[c] is None else str(row[c]) for c in columns} for row in rows]
    widths = {c: max(len(c), *(len(row[c]) for row in cells)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(row[c].ljust(widths[c]) for c in columns).rstrip() for row in cells]
    return "\n".join(lines)


def _with_recorded_mongo(settings: Settings) -> Settings:
    """Without CQRS_MONGO_URL, use the stand-in that `up` started for this namespace."""
    if settings.mongo_url:
        return settings
    from cqrs_demo.runtime.stack import Stack, StackError

    try:
        return Stack.attach(settings).settings
    except StackError:
        raise SystemExit(
            "no MongoDB URL: set CQRS_MONGO_URL, or start the stack first with `cqrs-demo up --detach`"
        ) from None


def cmd_up(settings: Settings, args) -> int:
    from cqrs_demo.runtime.stack import Stack

    stack = Stack(settings, detach=args.detach)
    print(f"starting the stack for namespace {settings.namespace!r} ...", flush=True)
    stack.start(timeout=args.timeout)
    print(_table(stack.status()), flush=True)
    if args.detach:
        print("running in the background; stop it with `cqrs-demo down`")
        return 0
    print("press Ctrl-C to stop", flush=True)
    stop = stop_on_signals((signal.SIGTERM,))  # Ctrl-C: KeyboardInterrupt, below
    try:
        while not stop.is_set():
            stop.wait(1)
            dead = [name for name, service in stack.processes.items() if not service.alive()]
            if dead:
                print(f"stopped unexpectedly: {', '.join(dead)}; see {stack.directory}", file=sys.stderr)
                stack.stop()
                return 1
    except KeyboardInterrupt:
        pass
    print("stopping ...", flush=True)
    stack.stop()
    return 0


def cmd_down(settings: Settings, args) -> int:
    from cqrs_demo.runtime.stack import Stack, StackError

    try:
        stack = Stack.attach(settings)
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    stack.stop()
    print(f"stopped the stack for namespace {settings.namespace!r}")
    return 0


def cmd_status(settings: Settings, args) -> int:
    from cqrs_demo.runtime.stack import Stack, StackError

    try:
        stack = Stack.attach(settings)
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    rows = stack.status()
    print(_table(rows))
    return 0 if all(row["healthy"] for row in rows) else 1


def cmd_serve(settings: Settings, args) -> int:
    from cqrs_demo.runtime.serve import serve

    if args.service in ("query", "projector"):
        settings = _with_recorded_mongo(settings)
    serve(args.service, settings)
    return 0


def cmd_check(settings: Settings, args) -> int:
    from cqrs_demo.connections import read_database, write_engine
    from cqrs_demo.consistency import wait_until_equal

    settings = _with_recorded_mongo(settings)
    engine = write_engine(settings)
    try:
        result = wait_until_equal(engine, read_database(settings), args.wait)
    finally:
        engine.dispose()
    print(json.dumps(result, indent=2, default=str))
    return 0 if result["equal"] else 1


def cmd_outbox_prune(settings: Settings, args) -> int:
    from datetime import timedelta

    from cqrs_demo import failpoints
    from cqrs_demo.connections import write_engine
    from cqrs_demo.write import retention

    try:
        age = retention.parse_age(args.older_than) if args.older_than else timedelta(
            hours=settings.outbox_retention_hours)
    except ValueError as exc:
        print(f"cqrs-demo outbox prune: {exc}", file=sys.stderr)
        return 2
    engine = write_engine(settings)
    try:
        report = retention.prune(
            engine, age, dry_run=args.dry_run,
            before_commit=lambda positions: failpoints.trip(settings, failpoints.PRUNE_BEFORE_COMMIT))
    finally:
        engine.dispose()
    print(json.dumps(report.as_dict()))
    return 0


def cmd_rebuild(settings: Settings, args) -> int:
    from tqdm import tqdm

    from cqrs_demo.connections import read_database, write_engine
    from cqrs_demo.read.rebuild import RebuildFailed, RebuildInProgress, rebuild
    from cqrs_demo.write.event_log import count_events

    settings = _with_recorded_mongo(settings)
    engine = write_engine(settings)
    try:
        with tqdm(total=count_events(engine), unit="event", desc="rebuilding") as bar:
            counts = rebuild(engine, read_database(settings), bar.update)
    except (RebuildFailed, RebuildInProgress) as exc:
        print(f"rebuild failed: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(json.dumps(counts))
    return 0


def cmd_bench(settings: Settings, args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # charts go to files; no display needed
    from cqrs_demo.bench import record
    from cqrs_demo.bench.scenarios import SCENARIOS

    names = args.only or list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"running {name} ...", flush=True)
        parameters, results, figure = SCENARIOS[name](quick=args.quick)
        path = record.write(name, {**parameters, "quick": args.quick}, results, figure, args.out)
        print(f"  wrote {path}", flush=True)
    return 0


def cmd_chaos(settings: Settings, args) -> int:
    from cqrs_demo.bench import record
    from cqrs_demo.chaos.run import run

    verdict = run(args.seconds, args.seed, say=lambda line: print(line, flush=True))
    print(verdict.table())
    if args.json:
        # Stamped like the benchmarks' results, which it sits beside.
        document = {"ran_at": record.utc_now(), "machine": record.machine(), **verdict.to_json()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0 if verdict.passed else 1


def _servers_unreachable(command):
    """A class command needs every server: when one does not answer, say so and where to look."""
    def run(settings: Settings, args) -> int:
        import pika.exceptions
        import pymongo.errors
        import sqlalchemy as sa

        try:
            return command(settings, args)
        except (sa.exc.OperationalError, pika.exceptions.AMQPConnectionError, pymongo.errors.ConnectionFailure,
                OSError) as exc:
            said = (str(exc).splitlines() or [""])[0]
            print(f"cqrs-demo class: a server does not answer ({type(exc).__name__}{': ' + said if said else ''}); "
                  "`cqrs-demo doctor` says which, and how to fix it", file=sys.stderr)
            return 1
    return run


@_servers_unreachable
def cmd_class_status(settings: Settings, args) -> int:
    from cqrs_demo.classroom.census import class_status, stack_lines

    students, stacks = class_status(settings, args.student)
    if not students:
        print("no class stacks on these servers" + (f" for {args.student!r}" if args.student else ""))
        return 0
    print(_table(students))
    if stacks:
        print()
        print(_table(stack_lines(stacks)))
    return 0


@_servers_unreachable
def cmd_class_reset(settings: Settings, args) -> int:
    from cqrs_demo.classroom.reset import reset

    report = reset(settings, args.student, dry_run=args.dry_run, progress=args.progress)
    print("\n".join(report.lines()))
    return 0


def cmd_doctor(settings: Settings, args) -> int:
    from cqrs_demo.runtime.doctor import run_checks

    return run_checks(settings, print)


def _class_commands(commands) -> None:
    room = commands.add_parser("class", help="the classroom: every student's stacks on these servers")
    room_commands = room.add_subparsers(dest="class_command", required=True)
    status = room_commands.add_parser("status", help="one row per student: stacks, exercises passed, anomaly counters")
    status.add_argument("--student", help="only this student (the exact name)")
    status.set_defaults(run=cmd_class_status)
    reset = room_commands.add_parser(
        "reset", help="remove what the class left on the servers (schemas, queues, databases, run folders)")
    reset.add_argument("--student", help="only this student's stacks (the exact name)")
    reset.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    reset.add_argument("--progress", action="store_true", help="also clear the exercises' progress record")
    reset.set_defaults(run=cmd_class_reset)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cqrs-demo", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the whole stack and wait until it is healthy")
    up.add_argument("--detach", action="store_true", help="leave it running in the background")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for health")
    up.set_defaults(run=cmd_up)
    commands.add_parser("down", help="stop a detached stack").set_defaults(run=cmd_down)
    commands.add_parser("status", help="what runs where, and whether it is healthy").set_defaults(run=cmd_status)
    serve = commands.add_parser("serve", help="run one process in the foreground")
    serve.add_argument("service", choices=SERVICES)
    serve.set_defaults(run=cmd_serve)
    check = commands.add_parser("check", help="compare the write model with the read model")
    check.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the read model to catch up")
    check.set_defaults(run=cmd_check)
    commands.add_parser(
        "rebuild", help="rebuild the read model from the event log beside the live one, then switch to it"
    ).set_defaults(run=cmd_rebuild)
    outbox = commands.add_parser("outbox", help="look after the outbox").add_subparsers(dest="action", required=True)
    prune = outbox.add_parser("prune", help="move published rows older than the retention to the event log")
    prune.add_argument("--older-than", metavar="DURATION",
                       help="published longer ago than this (90s, 15m, 12h, 7d, 2w); default CQRS_OUTBOX_RETENTION_HOURS")
    prune.add_argument("--dry-run", action="store_true", help="count what would move, move nothing")
    prune.set_defaults(run=cmd_outbox_prune)
    bench = commands.add_parser("bench", help="run the benchmarks; results to benchmarks/results/")
    bench.add_argument("--quick", action="store_true", help="short runs (a minute or two in all)")
    bench.add_argument("--only", nargs="*", help="scenario names to run")
    bench.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where results go")
    bench.set_defaults(run=cmd_bench)
    chaos = commands.add_parser(
        "chaos", help="commands under a seeded schedule of faults, then a verdict: nothing lost, doubled or reordered")
    chaos.add_argument("--seconds", type=float, default=300.0, help="how long the load and the faults last")
    chaos.add_argument("--seed", type=int, default=1, help="the schedule's seed: the same seed, the same faults")
    chaos.add_argument("--json", type=Path, help="also write the verdict to this JSON file")
    chaos.set_defaults(run=cmd_chaos)
    _class_commands(commands)
    commands.add_parser(
        "doctor", help="check this machine for a class: servers, permissions, ports, disk, kernel, browser"
    ).set_defaults(run=cmd_doctor)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = config.from_environment()
    except ConfigError as exc:
        print(f"cqrs-demo: {exc}", file=sys.stderr)
        return 2
    return args.run(settings, args)
