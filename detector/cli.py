"""``detector`` command line: argument parsing only; the work is done by the modules it calls."""

from __future__ import annotations

import argparse
import os
import sys

from detector.errors import DetectorError


def _worker(args: argparse.Namespace) -> int:
    from detector.stream.config import Settings
    from detector.stream.worker import run_worker

    run_worker(Settings.from_env())
    return 0


def _replay(args: argparse.Namespace) -> int:
    from detector.replay import replay_file
    from detector.stream.config import Settings

    settings = Settings.from_env()
    if args.workers < 1:
        raise DetectorError(f"replay: --workers must be at least 1; got {args.workers}")
    summary = replay_file(
        settings.policy(),
        args.input,
        args.output,
        args.dlq,
        args.members,
        workers=args.workers,
        alert_source=settings.alert_source,
        runbook_url=settings.runbook_url,
    )
    print(summary.line(), file=sys.stderr)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import dataclasses

    import orjson

    from detector.sim.scenario import Scenario, parse_tactic_flags
    from detector.sim.traffic import describe, write

    scenario = Scenario.demo(seed=args.seed) if args.demo_scale else Scenario(seed=args.seed)
    scenario = dataclasses.replace(
        scenario,
        force=parse_tactic_flags(args.force),
        exclude=parse_tactic_flags(args.exclude),
        campaigns=scenario.campaigns if args.campaigns is None else args.campaigns,
    )
    if args.hours is not None or args.scale != 1.0:
        scenario = scenario.scaled(args.scale, hours=args.hours)
    if args.describe:
        sys.stdout.write(orjson.dumps(describe(scenario), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if args.produce:
        from detector.sim.produce import produce_scenario

        produce_scenario(scenario, args.produce, args.topic, rate=args.rate, batch=args.batch)
        return 0
    if not args.output:
        raise DetectorError("simulate: give -o RECORDS.jsonl[.gz] or --produce BROKER")
    labels_path = args.labels or _labels_path(args.output)
    summary = write(scenario, args.output, labels_path)
    print(f"simulate: {summary}", file=sys.stderr)
    return 0


def _labels_path(records_path: str) -> str:
    stem = records_path.removesuffix(".gz").removesuffix(".jsonl").removesuffix(".json")
    return stem + ".labels.json"


def _demo(args: argparse.Namespace) -> int:
    from detector.sim.demo import run_demo

    return run_demo(duration=args.duration, seed=args.seed, rate=args.rate)


def _policy(args: argparse.Namespace):
    """``--policy FILE`` if given, else the worker's (``DETECTOR_POLICY_FILE`` or the defaults)."""
    from detector.detection.policy import DetectionPolicy
    from detector.stream.config import Settings

    return DetectionPolicy.from_file(args.policy) if args.policy else Settings.from_env().policy()


def _eval(args: argparse.Namespace) -> int:
    policy = _policy(args)
    if args.sweep:
        from detector.sim.scenario import parse_tactic_flags
        from detector.sim.sweep import SweepPlan, run_sweep

        plan = SweepPlan(
            scenarios=args.sweep,
            seeds=args.seeds,
            first_seed=args.first_seed,
            scale=args.scale,
            hours=args.hours,
            force=parse_tactic_flags(args.hold_out),
            exclude=parse_tactic_flags(args.exclude),
        )
        sweep = run_sweep(plan, jobs=args.jobs, report_dir=args.report, progress=sys.stderr, policy=policy)
        print(sweep.text())
        return 0 if sweep.passed else 1
    if not (args.records and args.labels):
        raise DetectorError("eval: give RECORDS LABELS, or --sweep N")
    from detector.sim.evaluate import evaluate_files

    report = evaluate_files(args.records, args.labels, args.report, policy=policy)
    print(report.text())
    return 0


def _tune(args: argparse.Namespace) -> int:
    from detector.detection.policy import read_overrides
    from detector.sim.scenario import TACTICS, parse_tactic_flags
    from detector.sim.sweep import SweepPlan
    from detector.sim.tuning import parse_grid, run_tuning, text

    left_out = []
    for dimension, values in parse_tactic_flags(args.leave_out).items():
        for value in sorted(values):
            if value not in TACTICS.get(dimension, ()):
                raise DetectorError(f"tune: --leave-out {dimension}={value}: no such tactic; known: {TACTICS}")
            left_out.append((dimension, value))
    plan = SweepPlan(scenarios=args.sweep, seeds="tune", first_seed=args.first_seed, scale=args.scale, hours=args.hours)
    base = read_overrides(args.policy, "tune: policy file") if args.policy else None
    grid = parse_grid(read_overrides(args.grid, "tune: grid"))
    choices = run_tuning(plan, grid, left_out, args.report, base=base, jobs=args.jobs)
    print(text(choices))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``detector`` argument parser (its help is the CLI reference in the README)."""
    parser = argparse.ArgumentParser(
        prog="detector", description="Detect LLM distillation campaigns in API request logs."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run the Faust worker (settings from DETECTOR_* variables)")
    worker.set_defaults(run=_worker)

    replay = commands.add_parser("replay", help="run the detector over a JSON-lines file of request.v1 records")
    replay.add_argument("input", help="request.v1 JSON lines; .gz is decompressed; - reads stdin")
    replay.add_argument("-o", "--output", help="alerts as JSON lines (default stdout; .gz compresses)")
    replay.add_argument("--dlq", help="rejected lines with their reasons, as dead-letter JSON lines")
    replay.add_argument("--members", help="campaign membership changes as JSON lines (membership.v1)")
    replay.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="detect-stage processes, each new account to the least busy (default: this machine's cores)",
    )
    replay.set_defaults(run=_replay)

    simulate = commands.add_parser("simulate", help="generate labeled request.v1 traffic (benign and attack families)")
    simulate.add_argument("-o", "--output", help="records as JSON lines (.gz compresses)")
    simulate.add_argument("--labels", help="labels JSON (default: beside the records, .labels.json)")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--hours", type=float, help="event-time duration (default: the scenario's)")
    simulate.add_argument("--scale", type=float, default=1.0, help="multiply every family's account count")
    simulate.add_argument("--demo-scale", action="store_true", help="the small scenario the demo uses")
    simulate.add_argument("--campaigns", type=int, help="how many campaigns (default: drawn from the seed, 3-5)")
    simulate.add_argument(
        "--force", action="append", metavar="DIM=VALUE[,VALUE]", help="every campaign has this tactic (repeatable)"
    )
    simulate.add_argument(
        "--exclude", action="append", metavar="DIM=VALUE[,VALUE]", help="no campaign has this tactic (repeatable)"
    )
    simulate.add_argument("--describe", action="store_true", help="print the drawn tactics as JSON, no records")
    simulate.add_argument("--produce", metavar="BROKER", help="produce to Kafka at host:port instead of a file")
    simulate.add_argument("--topic", default="llm.requests")
    simulate.add_argument("--rate", type=float, default=5000.0, help="records per second when producing")
    simulate.add_argument("--batch", type=int, default=1, help="records per Kafka message (NDJSON envelope)")
    simulate.set_defaults(run=_simulate)

    demo = commands.add_parser("demo", help="embedded broker + worker + simulated traffic; prints alerts")
    demo.add_argument("--duration", type=float, default=120.0, help="seconds before stopping (Ctrl-C stops too)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--rate", type=float, default=400.0, help="records per second fed to the worker")
    demo.set_defaults(run=_demo)

    evaluate = commands.add_parser(
        "eval", help="score the detector on labeled records, or on a sweep of freshly drawn scenarios"
    )
    evaluate.add_argument("records", nargs="?")
    evaluate.add_argument("labels", nargs="?")
    evaluate.add_argument(
        "--report", default="reports/eval", help="folder for report.json and PNG plots (sweep.json and sweep.txt)"
    )
    evaluate.add_argument("--sweep", type=int, metavar="N", help="run N scenarios with freshly drawn tactics")
    evaluate.add_argument(
        "--seeds", choices=("tune", "eval"), default="eval", help="seed range: tuning or evaluation (README figures)"
    )
    evaluate.add_argument("--first-seed", type=int, help="first seed (default: the start of the --seeds range)")
    evaluate.add_argument("--jobs", type=int, help="scenarios run in parallel (default: the number of cores)")
    evaluate.add_argument(
        "--hold-out", action="append", metavar="DIM=VALUE", help="force this tactic in every campaign (repeatable)"
    )
    evaluate.add_argument(
        "--exclude", action="append", metavar="DIM=VALUE", help="no campaign has this tactic (repeatable)"
    )
    evaluate.add_argument("--scale", type=float, default=0.5, help="sweep scenario scale (accounts)")
    evaluate.add_argument("--hours", type=float, default=48.0, help="sweep scenario event-time hours")
    evaluate.add_argument("--policy", help="policy JSON file (default: DETECTOR_POLICY_FILE, else the defaults)")
    evaluate.set_defaults(run=_eval)

    tune = commands.add_parser(
        "tune", help="choose thresholds on the tuning seeds, with every tactic and leaving each out in turn"
    )
    tune.add_argument("grid", help='JSON object: policy field (campaign ones as "campaigns.NAME") → values to try')
    tune.add_argument("--sweep", type=int, default=30, metavar="N", help="tuning scenarios per candidate")
    tune.add_argument("--first-seed", type=int, help="first tuning seed (default: the start of the tuning range)")
    tune.add_argument("--jobs", type=int, help="scenarios run in parallel (default: the number of cores)")
    tune.add_argument(
        "--leave-out", action="append", metavar="DIM=VALUE", help="also choose without this tactic (repeatable)"
    )
    tune.add_argument("--policy", help="policy JSON file the candidates start from (default: the defaults)")
    tune.add_argument("--scale", type=float, default=0.5, help="tuning scenario scale (accounts)")
    tune.add_argument("--hours", type=float, default=48.0, help="tuning scenario event-time hours")
    tune.add_argument(
        "--report",
        default="reports/tune",
        help="folder for tune.txt, tune.json, the chosen policies; candidates already swept there are read back",
    )
    tune.set_defaults(run=_tune)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``detector`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DetectorError as error:
        print(f"detector {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
