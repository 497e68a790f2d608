"""The arguments of ``processgpt memory ...`` (kept apart from :mod:`.memory` so that building
the parser loads no HTTP client)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

KINDS = ("fact", "guideline", "preference", "correction")
STATUSES = ("proposed", "active", "superseded", "deleted")


def _scope_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scope (unset: any)")
    group.add_argument("--agent", help="an agent profile or orchestrator name")
    group.add_argument("--process", dest="proc_def_id", metavar="DEFINITION", help="a process")
    group.add_argument("--activity", dest="activity_id", metavar="ACTIVITY", help="an activity")
    group.add_argument("--user", dest="user_id", metavar="USER", help="a user")


def memory_parsers(
    memory: argparse.ArgumentParser, connection: Callable[[argparse.ArgumentParser], None]
) -> None:
    actions = memory.add_subparsers(dest="action", required=True, metavar="ACTION")
    teach = actions.add_parser("teach", help="teach an item in natural language")
    teach.add_argument("content", metavar="TEXT", help="what the agent should know or do")
    teach.add_argument("--kind", choices=KINDS, default="guideline", help="what it is")
    teach.add_argument("--original", help="for --kind correction: the answer it corrects")
    teach.add_argument("--pin", action="store_true", help="always put it in the context")
    teach.add_argument("--propose", action="store_true", help="a proposal, not active yet")
    teach.add_argument("--expires", metavar="ISO_TIME", help="never retrieved after this time")
    teach.add_argument("--reason", help="why (kept in the history)")
    _scope_options(teach)

    listing = actions.add_parser("list", help="list items, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only items in this state")
    listing.add_argument("--kind", choices=KINDS, help="only items of this kind")
    listing.add_argument("--pinned", action="store_true", help="only pinned items")
    listing.add_argument("--limit", type=int, default=50, help="at most (default 50)")
    _scope_options(listing)

    search = actions.add_parser("search", help="what a task in a scope would retrieve")
    search.add_argument("query", metavar="QUERY", help="what the task is about")
    search.add_argument("--limit", type=int, default=5, help="at most (default 5)")
    search.add_argument(
        "--mode", choices=("hybrid", "vector", "text"), default="hybrid", help="how to rank"
    )
    _scope_options(search)

    correct = actions.add_parser("correct", help="supersede an item by a corrected one")
    correct.add_argument("memory", metavar="ID", help="the item to correct")
    correct.add_argument("content", metavar="TEXT", help="the corrected content")
    correct.add_argument("--reason", help="why (kept in the history)")

    changes = [teach, listing, search, correct]
    for name, help in (
        ("show", "show an item (JSON)"),
        ("history", "show an item's history"),
        ("pin", "pin an item"),
        ("unpin", "unpin an item"),
        ("retire", "delete an item (its history stays)"),
        ("approve", "activate a proposal"),
        ("reject", "reject a proposal"),
    ):
        action = actions.add_parser(name, help=help)
        action.add_argument("memory", metavar="ID", help="the item's id")
        action.add_argument("--reason", help="why (kept in the history)")
        changes.append(action)

    proposals = actions.add_parser("proposals", help="list proposals waiting for approval")
    forget = actions.add_parser(
        "forget", help="delete every live item of exactly one scope (prints how many)"
    )
    _scope_options(forget)
    forget.add_argument("--reason", help="why (kept in the history)")
    forget.add_argument("--yes", action="store_true", help="needed when the scope is tenant-wide")
    policy = actions.add_parser("policy", help="whether lessons from feedback activate at once")
    policy.add_argument("mode", choices=("auto", "review"), help="auto: active; review: proposals")
    policy.add_argument("--agent", help="this agent's policy (unset: the tenant's)")
    used = actions.add_parser("used-by", help="the items a task was given")
    used.add_argument("task", metavar="TASK_ID", help="the task's id")
    for action in [*changes, proposals, forget, policy, used]:
        connection(action)
