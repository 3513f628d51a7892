"""Run the worker and its helpers from the command line: ``stream worker | demo | feed``."""

from __future__ import annotations

import argparse
import logging
import sys

from stream.runtime.kafka_config import KafkaSecurityError, check_security
from stream.settings import Settings, settings_help

DESCRIPTION = """IM incentive stream processor.

commands:
  worker   start one worker (consumes the input topics, publishes awards)
  demo     start a worker, feed sample traffic, print awards as they arrive (make run)
  feed     produce synthetic IM events to the input topics

settings (environment variables):
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream",
        description=DESCRIPTION + settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="start one worker")
    demo = sub.add_parser("demo", help="worker + sample traffic + awards on screen")
    demo.add_argument("--events", type=int, default=3000, help="sample events to feed")
    demo.add_argument("--seconds", type=float, default=60.0, help="longest time to wait for awards")
    feed = sub.add_parser("feed", help="produce synthetic events")
    feed.add_argument("--events", type=int, default=10_000)
    feed.add_argument("--users", type=int, default=500)
    feed.add_argument(
        "--rate", type=float, default=None, help="events per second (default: as fast as possible)"
    )
    feed.add_argument("--seed", type=int, default=7)
    return parser


def run_worker(settings: Settings) -> None:
    """Validate rules, create topics, then run one Faust worker until it is stopped."""
    import faust

    from stream.rules import RulesError, load_rules
    from stream.runtime.app import create_worker
    from stream.runtime.topics import TopicError, ensure_topics

    try:
        rules = load_rules(settings.rules_file)
    except RulesError as exc:
        sys.exit(f"stream: {exc}")
    try:
        ensure_topics(settings)
    except TopicError as exc:
        sys.exit(f"stream: {exc}")
    worker = create_worker(settings, rules)
    faust.Worker(worker.app, loglevel=settings.log_level).execute_from_commandline()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the command."""
    args = _parser().parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        check_security(settings)
    except KafkaSecurityError as exc:
        sys.exit(f"stream: {exc}")
    if args.command == "worker":
        run_worker(settings)
    elif args.command == "demo":
        from stream.demo import run_demo

        run_demo(settings, events=args.events, seconds=args.seconds)
    elif args.command == "feed":
        from stream.demo import run_feed

        run_feed(settings, events=args.events, users=args.users, rate=args.rate, seed=args.seed)
