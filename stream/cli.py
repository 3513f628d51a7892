"""Run the worker and its helpers from the command line: ``stream worker | demo | feed | rules | explain | report``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from stream.runtime.kafka_config import KafkaSecurityError, check_security
from stream.settings import Settings, settings_help

DESCRIPTION = """IM incentive stream processor.

commands:
  worker   start one worker (consumes the input topics, publishes awards)
  demo     start a worker, feed sample traffic, print awards as they arrive (make run)
  feed     produce synthetic IM events to the input topics
  rules check FILE              validate a rules file; print the most points a user can earn
  rules publish FILE [--force]  validate and publish a rules version to the rules topic (live)
  rules show                    the rules versions known, and the one in effect now
  explain USER [--limit N]      why a user has the points they have: balance, latest awards, task
                                progress, what stopped points this week (asks the query API)
  report economy [--week W]     a week's points per user, points by rule, active users, board winners

explain and report ask the query API at --api URL, else STREAM_API_URL, else the local worker
(http://STREAM_WEB_HOST:STREAM_WEB_PORT). Exit status: 0 answered, 1 unknown user (or another refusal),
3 the API unreachable or unavailable (503 after 5 attempts).

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
    demo.add_argument("--events", type=int, default=6000, help="sample events to feed (default 6000)")
    demo.add_argument(
        "--days",
        type=float,
        default=9.0,
        help="spread them over this many days up to now (default 9: last week closes, its boards have winners)",
    )
    demo.add_argument("--seconds", type=float, default=60.0, help="longest time to wait for awards")
    feed = sub.add_parser("feed", help="produce synthetic events")
    feed.add_argument("--events", type=int, default=10_000)
    feed.add_argument("--users", type=int, default=500)
    feed.add_argument(
        "--rate", type=float, default=None, help="events per second (default: as fast as possible)"
    )
    feed.add_argument("--seed", type=int, default=7)
    feed.add_argument(
        "--days",
        type=float,
        default=2 / 24,
        help="spread the events over this many days up to now (default: the last two hours)",
    )
    rules = sub.add_parser("rules", help="check, publish and show rules versions")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="validate a rules file and print what it allows")
    check.add_argument("file", type=Path)
    publish = rules_sub.add_parser("publish", help="validate and publish a rules file to the rules topic")
    publish.add_argument("file", type=Path)
    publish.add_argument(
        "--force",
        action="store_true",
        help="publish even with an effective_from in the past, or replace a version's content "
        "(events already scored are not rescored)",
    )
    rules_sub.add_parser("show", help="the versions known and the one in effect now")
    api_help = "query API URL (default: STREAM_API_URL, else http://STREAM_WEB_HOST:STREAM_WEB_PORT)"
    explain = sub.add_parser("explain", help="explain a user's points (asks the query API)")
    explain.add_argument("user", help="the user's id")
    explain.add_argument(
        "--limit", type=int, default=10, help="latest awards to show (default 10, at most 40)"
    )
    explain.add_argument("--api", default=None, metavar="URL", help=api_help)
    explain.add_argument("--json", action="store_true", help="print the API's JSON instead (user, ledger)")
    report = sub.add_parser("report", help="reports from the query API")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    economy = report_sub.add_parser("economy", help="a week's points economy and board winners")
    economy.add_argument(
        "--week",
        type=_week,
        default=None,
        help="ISO week like 2026-W48 (default: last week, STREAM_TIMEZONE)",
    )
    economy.add_argument("--api", default=None, metavar="URL", help=api_help)
    economy.add_argument("--json", action="store_true", help="print the raw JSON of /economy/{week}")
    return parser


def _week(text: str) -> str:
    from stream.report import WEEK

    if not WEEK.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO week like 2026-W48")
    return text


EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3


def run_query(settings: Settings, args: argparse.Namespace) -> None:
    """Run ``stream explain`` or ``stream report``: ask the query API, print the answer."""
    import time

    import orjson

    from stream.client import ApiError, Client, NotFound, Unavailable, Unreachable, api_url
    from stream.explain import explain, fetch
    from stream.report import economy_json, format_economy, last_week

    client = Client(api_url(settings, args.api))
    name = "explain" if args.command == "explain" else f"report {args.report_command}"
    try:
        if args.command == "explain":
            if args.json:
                got = fetch(client, args.user, limit=args.limit)
                text = orjson.dumps(
                    {"user": got["user"], "ledger": got["ledger"]}, option=orjson.OPT_INDENT_2
                ).decode()
            else:
                text = explain(client, args.user, limit=args.limit, timezone=settings.timezone)
        else:
            week = args.week or last_week(int(time.time() * 1000), settings.timezone)
            body = economy_json(client, week)
            text = body.decode() if args.json else format_economy(orjson.loads(body), settings.timezone)
    except NotFound as exc:
        print(f"stream {name}: {exc} (asked {client.base_url})", file=sys.stderr)
        sys.exit(EXIT_REFUSED)
    except (Unreachable, Unavailable) as exc:
        print(f"stream {name}: {exc}", file=sys.stderr)
        sys.exit(EXIT_UNAVAILABLE)
    except ApiError as exc:
        print(f"stream {name}: {exc}", file=sys.stderr)
        sys.exit(EXIT_REFUSED)
    print(text)


def run_worker(settings: Settings) -> None:
    """Validate rules, create topics, then run one Faust worker until it is stopped."""
    import faust

    from stream.rules import RulesError
    from stream.runtime.app import create_worker
    from stream.runtime.rules_cli import compile_file, startup_book
    from stream.runtime.topics import TopicError, ensure_topics

    try:
        compiled, _text = compile_file(settings.rules_file, settings)  # a bad file stops it before Kafka
    except RulesError as exc:
        sys.exit(f"stream: {exc}")
    try:
        ensure_topics(settings)
        book = startup_book(settings, compiled)
    except (TopicError, RulesError) as exc:
        sys.exit(f"stream: {exc}")
    worker = create_worker(settings, book)
    faust.Worker(worker.app, loglevel=settings.log_level).execute_from_commandline()


def run_rules(settings: Settings, args: argparse.Namespace) -> None:
    """Run ``stream rules check | publish | show``; exit 1 with the reason when refused or invalid."""
    from stream.rules import RulesError
    from stream.runtime import rules_cli
    from stream.runtime.topics import TopicError, ensure_rules_topic

    try:
        if args.rules_command == "check":
            lines = rules_cli.check(args.file, settings)
        else:
            ensure_rules_topic(settings)
            if args.rules_command == "publish":
                lines = rules_cli.publish_file(args.file, settings, args.force)
            else:
                lines = rules_cli.show(settings)
    except (RulesError, TopicError) as exc:
        print(f"stream rules {args.rules_command}: {exc}", file=sys.stderr)
        sys.exit(1)
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the command."""
    args = _parser().parse_args(argv)
    settings = Settings()
    if args.command in ("explain", "report"):
        run_query(settings, args)  # HTTP only: no Kafka settings to check
        return
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

        run_demo(settings, events=args.events, seconds=args.seconds, days=args.days)
    elif args.command == "rules":
        run_rules(settings, args)
    elif args.command == "feed":
        from stream.demo import run_feed

        run_feed(
            settings, events=args.events, users=args.users, rate=args.rate, seed=args.seed, days=args.days
        )
