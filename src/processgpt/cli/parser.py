"""The ``processgpt`` command line: every command, action and flag with a help line, and the
environment variables each command reads (generated from the settings classes) in its
``--help``."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version

from pydantic_settings import BaseSettings

from processgpt.cli.memory_parser import memory_parsers
from processgpt.config import (
    ClientSettings,
    DelegateSettings,
    FileSettings,
    LlmSettings,
    McpSettings,
    MemorySettings,
    ProcessSettings,
    SecretSettings,
    Settings,
    WebhookSettings,
    environment_variables,
)
from processgpt.domain.process.state import InstanceStatus
from processgpt.domain.roles import Role
from processgpt.domain.task import TaskStatus

DESCRIPTION = """\
processgpt runs AI agents as durable tasks on Postgres.

Start everything (embedded Postgres, API, console, workers for the built-in agents):
  processgpt up
then, in another shell (it finds the running instance through the profile 'up' writes):
  processgpt submit --agent demo "hello world" --follow

'submit', 'tasks', 'process' and 'worklist' talk to the HTTP API (--url/--api-key,
PROCESSGPT_URL/PROCESSGPT_API_KEY, or the profile of the data directory); 'migrate', 'keys'
and 'agents' work on the database (DATABASE_URL, or the embedded Postgres of the data
directory)."""

_DATABASE = ("database_url", "data_dir", "pool_size", "log_level", "log_format")
_TRACING = ("otlp_endpoint", "service_name")
_WORKER = (
    "concurrency",
    "lease_seconds",
    "poll_interval",
    "agent_max_running",
    "shutdown_grace",
    "flush_interval",
    "schedules",
    "retention_days",
    "retention_interval",
    "retention_batch",
    "retry_base_delay",
    "retry_max_delay",
)
_API = (
    "api_host",
    "api_port",
    "api_keep_alive",
    "jwt_secret",
    "jwt_jwks_url",
    "jwt_audience",
    "max_pending_tasks",
    "sse_heartbeat",
)
_WEBHOOK_WORKER = (
    "allow_private",
    "retry_schedule",
    "timeout",
    "concurrency",
    "lease_seconds",
    "deliver",
)
_Reads = tuple[tuple[type[BaseSettings], tuple[str, ...] | None], ...]

READS: dict[str, _Reads] = {
    "up": (
        (Settings, None),
        (LlmSettings, None),
        (McpSettings, None),
        (DelegateSettings, None),
        (ProcessSettings, None),
        (MemorySettings, None),
        (SecretSettings, ("keys",)),
        (FileSettings, None),
        (WebhookSettings, None),
    ),
    "api": (
        (Settings, _DATABASE + _API + _TRACING),
        (McpSettings, None),
        (ProcessSettings, None),
        (MemorySettings, None),
        (SecretSettings, ("keys",)),
        (FileSettings, None),
        (WebhookSettings, ("allow_private", "max_per_tenant")),
    ),
    "worker": (
        (Settings, _DATABASE + _WORKER + _TRACING),
        (LlmSettings, None),
        (McpSettings, None),
        (DelegateSettings, None),
        (ProcessSettings, None),
        (MemorySettings, None),
        (SecretSettings, ("keys",)),
        (FileSettings, None),
        (WebhookSettings, _WEBHOOK_WORKER),
    ),
    "submit": ((ClientSettings, None), (Settings, ("data_dir",))),
    "tasks": ((ClientSettings, None), (Settings, ("data_dir",))),
    "process": ((ClientSettings, None), (Settings, ("data_dir",))),
    "worklist": ((ClientSettings, None), (Settings, ("data_dir",))),
    "schedules": ((ClientSettings, None), (Settings, ("data_dir",))),
    "files": ((ClientSettings, None), (Settings, ("data_dir",))),
    "notifications": ((ClientSettings, None), (Settings, ("data_dir",))),
    "webhooks": ((ClientSettings, None), (Settings, ("data_dir",))),
    "memory": ((ClientSettings, None), (Settings, ("data_dir",))),
    "migrate": ((Settings, _DATABASE),),
    "keys": ((Settings, _DATABASE),),
    "agents": ((Settings, _DATABASE),),
    "secrets": ((Settings, _DATABASE), (SecretSettings, ("keys",))),
    "workers": ((Settings, _DATABASE),),
    "retention": ((Settings, (*_DATABASE, "retention_days", "retention_batch")),),
}
"""The environment variables each command reads, by settings class and field."""


def environment_epilog(command: str) -> str:
    """The ``--help`` epilog of ``command``: its environment variables and defaults."""
    found = [var for cls, fields in READS[command] for var in environment_variables(cls, fields)]
    name = max(len(var.name) for var in found)
    default = max(len(var.default) for var in found)
    lines = ["environment variables:", f"  {'NAME':<{name}}  {'DEFAULT':<{default}}  MEANING"]
    lines += [f"  {v.name:<{name}}  {v.default:<{default}}  {v.description}" for v in found]
    return "\n".join(lines)


def package_version() -> str:
    try:
        return version("processgpt")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0-65535; 0: a free one)")
    return port


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


class _Parsers:
    """Builds subcommands that share a formatter and their environment epilog."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self.sub = sub

    def add(self, name: str, help: str, **kwargs: object) -> argparse.ArgumentParser:
        return self.sub.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog=environment_epilog(name) if name in READS else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs,  # type: ignore[arg-type]
        )


def _data_dir_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help=f"{what} (PROCESSGPT_DATA_DIR)")


def _connection(parser: argparse.ArgumentParser) -> None:
    """The options that say which API an HTTP command talks to."""
    group = parser.add_argument_group("connection (default: the profile 'processgpt up' wrote)")
    group.add_argument("--url", help="the API's base URL (PROCESSGPT_URL)")
    group.add_argument("--api-key", help="an API key; it decides the tenant (PROCESSGPT_API_KEY)")
    group.add_argument(
        "--data-dir", metavar="DIR", help="use the profile of the 'up' on this data directory"
    )


def _serving(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=_positive_int, help="tasks this process runs at once")
    parser.add_argument("--lease-seconds", type=float, help="lease length (heartbeat: a third)")
    parser.add_argument("--shutdown-grace", type=float, help="seconds to let tasks finish on stop")


def _listening(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address the API listens on (PROCESSGPT_API_HOST)")
    parser.add_argument(
        "--port", type=_port, help="port the API listens on; 0: a free one (PROCESSGPT_API_PORT)"
    )


def _serve_parsers(parsers: _Parsers) -> None:
    up = parsers.add(
        "up", "run everything: database, migrations, API + console, workers for built-in agents"
    )
    _listening(up)
    _data_dir_option(up, "embedded Postgres data, dev key and profile")
    _serving(up)

    api = parsers.add("api", "serve the HTTP API alone")
    _listening(api)
    _data_dir_option(api, "embedded Postgres data")

    worker = parsers.add("worker", "run a worker for one or more agents")
    worker.add_argument(
        "--agent", action="append", metavar="NAME", help="agent (orchestrator) name; repeatable"
    )
    worker.add_argument(
        "--executor",
        metavar="MODULE:CLASS",
        help="your own AgentExecutor, imported from the current directory or installed "
        "packages (e.g. examples.my_agent:MyExecutor); needs exactly one --agent",
    )
    worker.add_argument(
        "--blocking",
        action="store_true",
        default=None,
        help="run the executor in a thread (for blocking code)",
    )
    worker.add_argument("--no-migrate", action="store_true", help="do not apply migrations")
    _data_dir_option(worker, "embedded Postgres data")
    _serving(worker)


def _task_parsers(parsers: _Parsers) -> None:
    submit = parsers.add("submit", "submit a task over the API (and follow it)")
    submit.add_argument("--agent", required=True, help="agent name (agent_orch)")
    submit.add_argument("query", nargs="?", default="", help="what to do")
    submit.add_argument("--input", metavar="JSON", help="JSON object given to the agent")
    submit.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    submit.add_argument("--max-attempts", type=int, default=3, help="attempts (default 3)")
    submit.add_argument("--idempotency-key", metavar="KEY", help="same key, same task")
    submit.add_argument("--run-at", metavar="TIME", help="ISO 8601 time before which it waits")
    submit.add_argument(
        "--follow", action="store_true", help="print its events live, then its result"
    )
    _connection(submit)

    tasks = parsers.add(
        "tasks",
        "list, show, follow, cancel, requeue, answer or complete tasks (over the API)",
        aliases=["task"],
    )
    actions = tasks.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the newest tasks")
    listing.add_argument(
        "--status", choices=[s.value for s in TaskStatus], help="only tasks in this state"
    )
    listing.add_argument("--agent", help="only this agent's tasks")
    listing.add_argument("--limit", type=_positive_int, default=50, help="at most (default 50)")
    _connection(listing)
    for name, help in (
        ("show", "a task and its events"),
        ("follow", "print a task's events live until it ends or waits for input"),
        ("cancel", "cancel a task"),
        ("requeue", "run a failed or cancelled task again"),
    ):
        action = actions.add_parser(name, help=help)
        action.add_argument("task_id", metavar="TASK_ID", help="the task's id")
        _connection(action)
    answer = actions.add_parser("answer", help="answer a task waiting for input")
    answer.add_argument("task_id", metavar="TASK_ID", help="the task's id")
    answer.add_argument("answer", help="the answer (text, or JSON with --json)")
    answer.add_argument("--json", action="store_true", help="the answer is JSON")
    _connection(answer)
    complete = actions.add_parser(
        "complete",
        help="complete a person's work item (TODO) with its form's values; its process goes on",
        description="Complete a person's work item (a task in the worklist, status TODO); its "
        "process advances in the same transaction.",
        epilog="example:\n  processgpt task complete 0190… --output "
        '\'{"approval_form": {"decision": "approve"}}\'',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    complete.add_argument("task_id", metavar="TASK_ID", help="the work item's id")
    complete.add_argument(
        "--output", required=True, metavar="JSON", help="JSON object: the form's values"
    )
    complete.add_argument(
        "--idempotency-key", metavar="KEY", help="completing again with it is not an error"
    )
    _connection(complete)


_PROCESS_EXAMPLES = """\
examples:
  processgpt process deploy examples/processes/expense_approval.json \\
      --forms examples/processes/expense_approval.forms.json
  processgpt process start expense_approval --var amount=120 --role manager=kim@example.com
  processgpt worklist --role manager
  processgpt task complete TASK_ID --output '{"approval_form": {"decision": "approve"}}'
  processgpt process show PROCESS_ID
  processgpt process list --status RUNNING"""


def _action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    example: str | None = None,
) -> argparse.ArgumentParser:
    return actions.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=f"example:\n  {example}" if example else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _process_parsers(parsers: _Parsers) -> None:
    process = parsers.add(
        "process",
        "publish process definitions, start and follow their instances (over the API)",
    )
    process.epilog = f"{_PROCESS_EXAMPLES}\n\n{process.epilog}"
    actions = process.add_subparsers(dest="action", required=True, metavar="ACTION")
    deploy = actions.add_parser(
        "deploy", help="publish a definition file (ProcessGPT JSON or BPMN) as its next version"
    )
    deploy.add_argument("file", metavar="FILE", help="a .json (ProcessGPT) or .bpmn file")
    deploy.add_argument(
        "--id", help="the definition's id (default: the file's processDefinitionId or process id)"
    )
    deploy.add_argument("--name", help="the definition's name (default: the file's)")
    deploy.add_argument(
        "--forms", metavar="FILE", help="JSON object of the forms its steps use: form id → form"
    )
    _connection(deploy)

    start = _action(
        actions,
        "start",
        "start an instance of a published definition",
        "processgpt process start expense_approval --var amount=120 --var 'tags=[\"travel\"]' "
        "--role manager=kim@example.com --version 2",
    )
    start.add_argument("definition_id", metavar="ID", help="the definition's id")
    start.add_argument(
        "--var",
        action="append",
        metavar="NAME=VALUE",
        help="a variable; repeatable; VALUE is JSON when it parses (3, true, [1]), else text; "
        "a dotted NAME nests (form.field=1)",
    )
    start.add_argument(
        "--role", action="append", metavar="ROLE=USER", help="who a role's steps go to; repeatable"
    )
    start.add_argument("--version", type=_positive_int, help="the version (default: the latest)")
    start.add_argument("--name", help="the instance's name")
    start.add_argument("--idempotency-key", metavar="KEY", help="same key, same instance")
    _connection(start)

    listing = _action(actions, "list", "the newest instances")
    listing.add_argument("--definition", metavar="ID", help="only instances of this definition")
    listing.add_argument(
        "--status", choices=[s.value for s in InstanceStatus], help="only instances in this state"
    )
    listing.add_argument("--limit", type=_positive_int, default=50, help="at most (default 50)")
    _connection(listing)

    def on_instance(name: str, help: str, example: str | None = None) -> argparse.ArgumentParser:
        action = _action(actions, name, help, example)
        action.add_argument("proc_inst_id", metavar="PROCESS_ID", help="the instance's id")
        _connection(action)
        return action

    on_instance("show", "an instance: status, where it waits, open tasks, its last history")
    cancel = on_instance("cancel", "cancel an instance with its open tasks and timers")
    cancel.add_argument("--reason", help="why (kept in its history)")
    message = on_instance(
        "message",
        "deliver a message to the step waiting for it",
        "processgpt process message PROCESS_ID payment --payload '{\"ref\": 42}'",
    )
    message.add_argument("name", metavar="NAME", help="the message's name")
    message.add_argument("--payload", metavar="JSON", help="JSON object merged into variables")
    resolve = on_instance(
        "resolve",
        "retry where an incident stopped the instance",
        "processgpt process resolve PROCESS_ID i3 --var amount=120",
    )
    resolve.add_argument("incident_id", metavar="INCIDENT_ID", help="as 'process show' lists it")
    resolve.add_argument(
        "--var", action="append", metavar="NAME=VALUE", help="set a variable first; repeatable"
    )

    worklist = parsers.add("worklist", "people's open work items (over the API)")
    worklist.epilog = (
        "examples:\n  processgpt worklist --role manager\n"
        '  processgpt task complete TASK_ID --output \'{"decision": "approve"}\'\n\n'
        f"{worklist.epilog}"
    )
    worklist.add_argument("--user", help="only those assigned to this user")
    worklist.add_argument("--role", help="only those of this role")
    worklist.add_argument("--limit", type=_positive_int, default=50, help="at most (default 50)")
    _connection(worklist)


def _schedule_parsers(parsers: _Parsers) -> None:
    schedules = parsers.add(
        "schedules", "start processes or tasks on a cron schedule (over the API)"
    )
    actions = schedules.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="a schedule that starts a process (--process) or a task (--agent)"
    )
    create.add_argument("name", metavar="NAME", help="the schedule's name (unique per tenant)")
    create.add_argument("query", metavar="QUERY", nargs="?", help="the task's query (--agent)")
    create.add_argument("--cron", required=True, help="'0 9 * * MON-FRI', '@daily', …")
    create.add_argument("--timezone", default="UTC", help="IANA zone of the cron (default UTC)")
    create.add_argument("--process", metavar="DEFINITION", help="start this process definition")
    create.add_argument("--version", type=_positive_int, help="pin the definition's version")
    create.add_argument(
        "--var", action="append", default=[], metavar="K=V", help="a process variable (repeat)"
    )
    create.add_argument("--agent", help="queue a task for this agent")
    create.add_argument("--input", metavar="JSON", help="the task's input object")
    create.add_argument("--disabled", action="store_true", help="create it disabled")
    listing = actions.add_parser("list", help="list the tenant's schedules")
    changes = [create, listing]
    for name, help in (
        ("show", "show a schedule (JSON)"),
        ("enable", "enable a schedule (from its next tick after now)"),
        ("disable", "disable a schedule"),
        ("delete", "delete a schedule"),
    ):
        action = actions.add_parser(name, help=help)
        action.add_argument("schedule", metavar="SCHEDULE", help="the schedule's id or name")
        changes.append(action)
    for action in changes:
        _connection(action)


def _file_parsers(parsers: _Parsers) -> None:
    files = parsers.add("files", "upload, download and list the tenant's files (over the API)")
    actions = files.add_subparsers(dest="action", required=True, metavar="ACTION")
    upload = actions.add_parser("upload", help="upload a file (prints its id)")
    upload.add_argument("path", metavar="PATH", help="the file")
    upload.add_argument("--type", help="its content type (default: from its name and bytes)")
    upload.add_argument("--task", metavar="TASK_ID", help="attach it to this task")
    upload.add_argument("--chat", metavar="CHAT_ID", help="attach it to this chat")
    download = actions.add_parser("download", help="download a file")
    download.add_argument("file", metavar="FILE_ID", help="the file's id")
    download.add_argument(
        "-o", "--output", help="where to save it ('-': stdout; default: its name, here)"
    )
    listing = actions.add_parser("list", help="list the tenant's files, newest first")
    listing.add_argument("--task", metavar="TASK_ID", help="only this task's")
    listing.add_argument("--chat", metavar="CHAT_ID", help="only this chat's")
    link = actions.add_parser("link", help="print a signed link (works without a key)")
    link.add_argument("file", metavar="FILE_ID", help="the file's id")
    link.add_argument("--seconds", type=_positive_int, help="how long it works")
    delete = actions.add_parser("delete", help="delete a file")
    delete.add_argument("file", metavar="FILE_ID", help="the file's id")
    for action in (upload, download, listing, link, delete):
        _connection(action)


def _notification_parsers(parsers: _Parsers) -> None:
    notes = parsers.add(
        "notifications", "people's notifications, listed or followed (over the API)"
    )
    notes.add_argument("--user", help="a person's inbox (theirs, their --role's, everyone's)")
    notes.add_argument("--role", help="a role's notifications")
    notes.add_argument("--unread", action="store_true", help="only those not read yet")
    notes.add_argument("--limit", type=_positive_int, default=50, help="at most (default 50)")
    what = notes.add_mutually_exclusive_group()
    what.add_argument("--follow", action="store_true", help="print new ones as they come")
    what.add_argument("--read", type=_positive_int, metavar="ID", help="mark one read")
    what.add_argument("--read-all", action="store_true", help="mark all (as filtered) read")
    _connection(notes)

    hooks = parsers.add("webhooks", "the tenant's webhook endpoints (over the API, admin key)")
    actions = hooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="an endpoint (its signing secret printed once)")
    create.add_argument("endpoint_url", metavar="URL", help="where deliveries are POSTed")
    create.add_argument(
        "--event", action="append", default=[], metavar="TYPE", help="an event type (repeat)"
    )
    create.add_argument("--description", default="", help="what the endpoint is for")
    listing = actions.add_parser("list", help="list the endpoints (secrets masked)")
    for action in (create, listing):
        _connection(action)
    for name, help in (
        ("enable", "enable an endpoint (its waiting deliveries are sent)"),
        ("disable", "disable an endpoint"),
        ("rotate-secret", "a new signing secret (printed once)"),
        ("deliveries", "an endpoint's newest deliveries"),
        ("delete", "delete an endpoint"),
    ):
        action = actions.add_parser(name, help=help)
        action.add_argument("endpoint", metavar="ID", help="the endpoint's id")
        if name == "deliveries":
            action.add_argument("--limit", type=_positive_int, default=20, help="at most")
        _connection(action)


def _admin_parsers(parsers: _Parsers) -> None:
    migrate = parsers.add("migrate", "apply database migrations")
    _data_dir_option(migrate, "embedded Postgres data")

    keys = parsers.add("keys", "create, list or revoke a tenant's API keys (in the database)")
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = key_actions.add_parser("create", help="create an API key (printed once)")
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=Role.MEMBER.value,
        help="member (default): the tenant's work; admin: also keys, agents, MCP servers; "
        "operator: also every tenant",
    )
    listing = key_actions.add_parser("list", help="list a tenant's keys (prefixes, never keys)")
    revoke = key_actions.add_parser("revoke", help="revoke a key by its prefix (immediate)")
    revoke.add_argument("prefix", help="the key's prefix, as 'keys list' shows it")
    for action in (create, listing, revoke):
        action.add_argument("--tenant", dest="tenant_id", required=True, help="tenant id")
        _data_dir_option(action, "embedded Postgres data")

    agents = parsers.add("agents", "create, list or delete agent profiles (in the database)")
    agent_actions = agents.add_subparsers(dest="action", required=True, metavar="ACTION")
    agent_create = agent_actions.add_parser("create", help="create an agent profile")
    agent_create.add_argument("name", help="the profile's name (tasks name it as their agent)")
    agent_create.add_argument("--orch", required=True, help="orchestrator (agent_orch)")
    agent_create.add_argument("--model", help="model name")
    agent_create.add_argument("--instructions", help="system instructions")
    agent_create.add_argument("--persona", help="added to the instructions")
    agent_create.add_argument("--tools", help="allowed tools, comma separated (default: all)")
    agent_list = agent_actions.add_parser("list", help="list the tenant's agent profiles")
    agent_delete = agent_actions.add_parser("delete", help="delete an agent profile")
    agent_delete.add_argument("name", help="the profile's name")
    for p in (agent_create, agent_list, agent_delete):
        p.add_argument("--tenant", dest="agents_tenant", help="tenant id (default: default)")
        _data_dir_option(p, "embedded Postgres data")

    secrets = parsers.add("secrets", "manage the keys of stored secrets (in the database)")
    secret_actions = secrets.add_subparsers(dest="action", required=True, metavar="ACTION")
    rotate = secret_actions.add_parser(
        "rotate", help="re-encrypt stored secrets with the first key (and encrypt plaintext)"
    )
    rotate.add_argument(
        "--new-key", action="store_true", help="first add a new key to the data dir's key file"
    )
    _data_dir_option(rotate, "embedded Postgres data and secret.key")

    workers = parsers.add(
        "workers", "list the worker processes, live and lost, with their agents (in the database)"
    )
    workers.add_argument("--json", action="store_true", help="print the rows as JSON")
    _data_dir_option(workers, "embedded Postgres data")
    retention = parsers.add(
        "retention",
        "delete finished tasks, their events and finished processes past their tenant's "
        "retention now (in the database)",
    )
    retention.add_argument(
        "--dry-run", action="store_true", help="only count what would be deleted, per tenant"
    )
    _data_dir_option(retention, "embedded Postgres data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="processgpt",
        description=DESCRIPTION,
        epilog="'processgpt COMMAND --help' shows a command's options and environment.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"processgpt {package_version()}")
    parser.add_argument(
        "--tenant",
        default=None,
        help="tenant of the 'agents' commands (default: default); 'submit', 'tasks' and "
        "'process' act for their API key's tenant",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = _Parsers(sub)
    _serve_parsers(parsers)
    _task_parsers(parsers)
    _process_parsers(parsers)
    _schedule_parsers(parsers)
    _file_parsers(parsers)
    _notification_parsers(parsers)
    memory_parsers(
        parsers.add("memory", "teach agents and manage their long-term memory (over the API)"),
        _connection,
    )
    _admin_parsers(parsers)
    return parser
