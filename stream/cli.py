"""Run the worker and its helpers from the command line: ``stream worker | demo | feed | rules | explain |
report | invites``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

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
  report invites [--from D] [--to D]
                                the invitation funnel per channel of the registrations of those days
                                (default: the last 7), with the cost per fully activated invitee
  invites pending               the invitations waiting for an operator (daily limit or budget reached)
  invites approve|reject INVITEE [--operator NAME] [--force]
                                send an operator's decision on a waiting invitation to
                                STREAM_TOPIC_INVITE_DECISIONS (refused unless INVITEE is waiting, or --force)

explain, report and invites pending ask the query API at --api URL, else STREAM_API_URL, else the local
worker (http://STREAM_WEB_HOST:STREAM_WEB_PORT); invites approve|reject ask it too, to check that the
invitee waits. Exit status: 0 answered (or the decision sent), 1 unknown user, an invitee not waiting, or
another refusal, 3 the API or Kafka unreachable or unavailable (503 after 5 attempts).

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
    funnel = report_sub.add_parser("invites", help="the invitation funnel per channel, with the cost")
    funnel.add_argument(
        "--from",
        dest="first",
        type=_day,
        default=None,
        metavar="DATE",
        help="first registration day, YYYY-MM-DD (default: 6 days before --to)",
    )
    funnel.add_argument(
        "--to",
        dest="last",
        type=_day,
        default=None,
        metavar="DATE",
        help="last registration day, inclusive (default: today, STREAM_TIMEZONE)",
    )
    funnel.add_argument("--api", default=None, metavar="URL", help=api_help)
    funnel.add_argument("--json", action="store_true", help="print the raw JSON of /invites/funnel")
    invites = sub.add_parser("invites", help="invitations waiting for an operator: list, approve, reject")
    invites_sub = invites.add_subparsers(dest="invites_command", required=True)
    pending = invites_sub.add_parser("pending", help="the invitations waiting for an operator")
    pending.add_argument("--api", default=None, metavar="URL", help=api_help)
    pending.add_argument("--json", action="store_true", help="print the raw JSON of /invites/pending")
    for decision, what in (("approve", "follows the normal path from now"), ("reject", "its rewards expire")):
        cmd = invites_sub.add_parser(decision, help=f"{decision} a waiting invitation ({what})")
        cmd.add_argument("invitee", type=_ident, help="the invitee's user id")
        cmd.add_argument(
            "--operator",
            type=_ident,
            default=None,
            metavar="NAME",
            help="who decides, for the audit trail (default: your login name)",
        )
        cmd.add_argument(
            "--force",
            action="store_true",
            help="send even if the query API does not list the invitee as waiting",
        )
        cmd.add_argument("--api", default=None, metavar="URL", help=api_help)
    return parser


def _day(text: str) -> str:
    from stream.runtime.invites_view import parse_day

    if parse_day(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-23")
    return text


def _ident(text: str) -> str:
    from stream.runtime.decisions import MAX_ID

    if not text or len(text) > MAX_ID:
        raise argparse.ArgumentTypeError(f"an id is 1 to {MAX_ID} characters")
    return text


def _week(text: str) -> str:
    from stream.report import WEEK

    if not WEEK.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO week like 2026-W48")
    return text


EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3


def _query_text(client: Any, settings: Settings, args: argparse.Namespace) -> str:
    """Ask the query API what the command needs and return the text to print."""
    import time

    import orjson

    from stream import report
    from stream.explain import explain, fetch

    if args.command == "explain":
        if args.json:
            got = fetch(client, args.user, limit=args.limit)
            return orjson.dumps(
                {"user": got["user"], "ledger": got["ledger"]}, option=orjson.OPT_INDENT_2
            ).decode()
        return explain(client, args.user, limit=args.limit, timezone=settings.timezone)
    if args.command == "invites":
        body = report.pending_json(client)
        return body.decode() if args.json else report.format_pending(orjson.loads(body), settings.timezone)
    if args.report_command == "invites":
        first, last = report.default_days(args.first, args.last, int(time.time() * 1000), settings.timezone)
        if first > last:
            raise report.BadRange(f"--from {first} is after --to {last}")
        body = report.funnel_json(client, first, last)
        return body.decode() if args.json else report.format_funnel(orjson.loads(body))
    week = args.week or report.last_week(int(time.time() * 1000), settings.timezone)
    body = report.economy_json(client, week)
    return body.decode() if args.json else report.format_economy(orjson.loads(body), settings.timezone)


def _command_name(args: argparse.Namespace) -> str:
    if args.command == "explain":
        return "explain"
    if args.command == "invites":
        return f"invites {args.invites_command}"
    return f"report {args.report_command}"


def run_query(settings: Settings, args: argparse.Namespace) -> None:
    """Run ``stream explain``, ``stream report`` or ``stream invites pending``: ask the query API, print."""
    from stream.client import ApiError, Client, NotFound, Unavailable, Unreachable, api_url
    from stream.report import BadRange

    client = Client(api_url(settings, args.api))
    name = _command_name(args)
    try:
        text = _query_text(client, settings, args)
    except BadRange as exc:
        print(f"stream {name}: {exc}", file=sys.stderr)
        sys.exit(2)
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


def run_decision(settings: Settings, args: argparse.Namespace) -> None:
    """Run ``stream invites approve|reject INVITEE``: check that it waits, then send the decision to Kafka.

    The check asks the query API's ``/invites/pending``: an invitee it does not list is refused (exit 1)
    unless ``--force``. When the API cannot answer, the decision is sent anyway with a warning (the
    workers ignore a decision for an invitee with nothing waiting).
    """
    from stream.client import ApiError, Client, api_url
    from stream.runtime import decisions

    name = f"stream invites {args.invites_command}"
    client = Client(api_url(settings, args.api))
    try:
        waiting = client.get("/invites/pending").get("pending", [])
    except ApiError as exc:
        print(
            f"{name}: warning: could not check that {args.invitee!r} waits ({exc}); sending anyway",
            file=sys.stderr,
        )
    else:
        if not any(row.get("invitee") == args.invitee for row in waiting):
            why = (
                f"{args.invitee!r} is not waiting for an operator (not in {client.base_url}/invites/pending)"
            )
            if not args.force:
                print(f"{name}: {why}; nothing sent (--force sends it anyway)", file=sys.stderr)
                sys.exit(EXIT_REFUSED)
            print(f"{name}: warning: {why}; sending anyway (--force)", file=sys.stderr)
    operator = args.operator or decisions.default_operator()
    record = decisions.decision_record(args.invitee, args.invites_command, operator, decisions.now_ms())
    try:
        sent = decisions.send_decision(settings, record)
    except decisions.DecisionError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    done = "approved" if args.invites_command == "approve" else "rejected"
    print(
        f"{done} {args.invitee}: decision {record['event_id']} by {operator or '(unnamed)'} written to "
        f"{sent.topic} [partition {sent.partition}, offset {sent.offset}]"
    )


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
    if args.command in ("explain", "report") or (
        args.command == "invites" and args.invites_command == "pending"
    ):
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
    elif args.command == "invites":
        run_decision(settings, args)
    elif args.command == "feed":
        from stream.demo import run_feed

        run_feed(
            settings, events=args.events, users=args.users, rate=args.rate, seed=args.seed, days=args.days
        )
