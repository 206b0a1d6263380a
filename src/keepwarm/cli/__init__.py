"""The `keepwarm` command. The one place that turns errors into messages and exit codes.

Exit codes: 0 success, 2 usage or configuration error (the message names the key), 1 anything else.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from keepwarm.cli.app import cli
from keepwarm.errors import ConfigError, KeepwarmError, UserError

# Importing the command modules attaches their commands to `cli`; every module of the package
# is a command module, so a new one needs no edit here.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        code = cli.main(args=argv, prog_name="keepwarm", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"keepwarm: {exc}", err=True)
        sys.exit(2)
    except UserError as exc:
        click.echo(f"keepwarm: {exc}", err=True)
        sys.exit(2)
    except KeepwarmError as exc:
        click.echo(f"keepwarm: error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        # A file that cannot be read or written mid-command: say which, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"keepwarm: error: {where}{exc.strerror or exc}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["cli", "main"]
