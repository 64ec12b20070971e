"""The ``blobstore`` click group and the plumbing every command shares.

A command module defines plain click commands and lists them in ``COMMANDS``;
``blobstore.cli`` adds them to :data:`cli`. Inside a command:

- decorate with :func:`common_options` (``--db``, ``--storage``, ``--json``) and
  take tenants and keys through :func:`tenant_argument` / :func:`key_argument`,
  which reject bad names before anything is opened;
- call :func:`run` with an async function of the open store; it opens the store
  once, runs the function with ``asyncio.run`` and closes the store;
- print through :mod:`blobstore.cli.output`; raise, never print, errors.

Every failure ends in :meth:`BlobstoreGroup.main` as one line on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from blobstore.cli import output
from blobstore.errors import InvalidInput
from blobstore.model.durations import parse_duration
from blobstore.model.keys import validate_key, validate_tenant

if TYPE_CHECKING:  # the store and its database layer load when a command runs, not for --help
    from blobstore.core.config import Settings
    from blobstore.store import BlobStore

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    """The options every command accepts, wherever on the command line they were given."""

    db: str | None = None
    storage: str | None = None
    json: bool = False

    def settings(self) -> Settings:
        """The environment's settings with ``--db`` / ``--storage`` applied; ConfigurationError if unusable.

        Without BLOBSTORE_HOME, the home is the nearest ``.blobstore`` holding a store in the current directory
        or its parents (as git finds its repository), else ``./.blobstore``."""
        from blobstore.cli.location import environ_with_home
        from blobstore.core.config import Settings

        return Settings.from_env(environ_with_home(), database_url=self.db, storage_url=self.storage)


def options() -> Options:
    """The current command's :class:`Options`."""
    return click.get_current_context().ensure_object(Options)


def _remember(ctx: click.Context, param: click.Parameter, value: object) -> None:
    if value is not None and value is not False and param.name is not None:
        setattr(ctx.ensure_object(Options), param.name, value)


def common_options(command: F) -> F:
    """Add ``--db``, ``--storage`` and ``--json`` (accepted before or after the command name)."""
    decorators = [
        click.option(
            "--db",
            metavar="URL",
            expose_value=False,
            callback=_remember,
            help="Database URL; overrides BLOBSTORE_DATABASE_URL.",
        ),
        click.option(
            "--storage",
            metavar="URL",
            expose_value=False,
            callback=_remember,
            help="Storage URL (file:///dir, s3://bucket[/prefix], memory://); overrides BLOBSTORE_STORAGE_URL.",
        ),
        click.option(
            "--json", is_flag=True, expose_value=False, callback=_remember, help="Print results as JSON for scripts."
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _tenant(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    return value if ctx.resilient_parsing or value is None else validate_tenant(value)


def _keys(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    if ctx.resilient_parsing or value is None:
        return value
    if isinstance(value, tuple):
        return tuple(dict.fromkeys(validate_key(key) for key in value))
    return validate_key(value)


class Duration(click.ParamType[int]):
    """A duration in whole seconds: a number, with a unit of s, m, h, d or w (2w, 7d, 12h, 30m, 3600s)."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value), what=f"--{param.name.replace('_', '-')}" if param and param.name else "")
        except InvalidInput as exc:
            self.fail(str(exc), param, ctx)


def tenant_argument(command: F) -> F:
    """The ``TENANT`` argument, validated (InvalidTenant) before anything is opened."""
    return click.argument("tenant", callback=_tenant)(command)


def tenant_option(help: str) -> Callable[[F], F]:
    """A ``--tenant T`` option, validated (InvalidTenant) before anything is opened."""
    return click.option("--tenant", metavar="T", callback=_tenant, help=help)


def key_argument(name: str = "key", **attrs: Any) -> Callable[[F], F]:
    """A key argument (``nargs=-1`` for several, deduplicated in order), validated (InvalidKey) up front."""
    return click.argument(name, callback=_keys, **attrs)


def run_async(work: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine function to completion on a fresh event loop."""

    async def main() -> T:
        return await work()

    import asyncio  # with ssl underneath, most of a bare start-up: loaded when a command runs

    return asyncio.run(main())


def run(work: Callable[[BlobStore], Awaitable[T]], *, creates: bool = False, beside_a_server: bool = False) -> T:
    """Open the store named by the options and environment, run ``work`` on it, close it.

    Only a command that ``creates`` may make a new embedded store (and says where, once); any other finds none
    and says how to point at one. With a server configured for the object commands (BLOBSTORE_SERVER_URL or
    BLOBSTORE_TOKEN), a command that needs the database itself refuses, unless it runs ``beside_a_server``.
    """
    from blobstore.cli import location
    from blobstore.store import BlobStore

    if not beside_a_server:
        location.refuse_remote_mode(click.get_current_context().command_path)
    settings = options().settings()
    new = location.missing_embedded_database(settings)
    if new is not None and not creates:
        raise location.no_store(settings, new)

    async def main() -> T:
        async with await BlobStore.open(settings) as store:
            if new is not None:
                output.notice(f"created a new store: {location.describe(settings)}")
            return await work(store)

    return run_async(main)


class BlobstoreGroup(click.Group):
    """The root group: commands listed in the order they were added, each with its whole one-sentence
    description (wrapped, never cut short with "..." at any terminal width), and every failure as one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        rows = [
            (name, command.get_short_help_str(limit=sys.maxsize))
            for name, command in commands
            if command is not None and not command.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        # click would print a blank line for Ctrl-C and exit quietly on a broken pipe: carry both past it.
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, EOFError) as exc:
            raise output.Interrupted from exc
        except OSError as exc:
            if output.is_broken_pipe(exc):
                raise output.OutputClosed from exc
            raise

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name or output.PROG, complete_var, standalone_mode=False, **extra)
            sys.stdout.flush()
            code = result if isinstance(result, int) else 0
        except Exception as exc:
            failure: BaseException = output.OutputClosed() if output.is_broken_pipe(exc) else exc
            if isinstance(failure, output.OutputClosed):
                output.silence_stdout()
            code = output.report_failure(failure)
        except KeyboardInterrupt as exc:
            code = output.report_failure(exc)
        if standalone_mode:
            sys.exit(code)
        return code


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("blobstore")
    except PackageNotFoundError:
        return "unknown"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the installed version, looked up only when asked for."""
    if value and not ctx.resilient_parsing:
        click.echo(f"{output.PROG} {_version()}")
        ctx.exit()


@click.group(output.PROG, cls=BlobstoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@common_options
def cli() -> None:
    """blobstore: a content-addressed, deduplicating blob store.

    Configure with BLOBSTORE_HOME, BLOBSTORE_DATABASE_URL, BLOBSTORE_STORAGE_URL
    and friends (see the README), or --db and --storage on any command.
    """
