"""``letterlock quota``: how much mail an account may keep (services/accounts/quotas.py).

Limits are set for an account, for every account of a domain (``@domain``) or for
the whole server (``default``); the most specific one set applies. Usage is what the
account's sealed messages take in its region.
"""

from __future__ import annotations

import json

import click

from letterlock.app import App
from letterlock.cli.common import CliContext, load_config, pass_ctx, run_with_app
from letterlock.errors import InvalidInput
from letterlock.services.accounts.quotas import Quota, parse_size
from letterlock.units import human_size


def _size(value: int | None) -> str:
    if value is None:
        return "unlimited"
    return human_size(value)


def _unset(text: str) -> bool:
    return text.strip().lower() in ("none", "unlimited", "")


def _storage(text: str) -> int | None:
    return None if _unset(text) else parse_size(text)


def _count(text: str) -> int | None:
    if _unset(text):
        return None
    try:
        number = int(text)
    except ValueError:
        raise InvalidInput(f"--messages: {text!r} is not a whole number") from None
    if number < 0:
        raise InvalidInput("--messages: a quota cannot be negative")
    return number


def _share(used: int, limit: int | None) -> str:
    return f" ({used * 100 // limit}%)" if limit else ""


@click.group("quota")
def quota_group() -> None:
    """Quotas: storage and message count an account may keep."""


@quota_group.command("set")
@click.argument("scope")
@click.option("--storage", default=None, help="Bytes, e.g. 800M, 2G; 'none' for no limit.")
@click.option("--messages", default=None, help="Message count; 'none' for no limit.")
@pass_ctx
def quota_set(ctx: CliContext, scope: str, storage: str | None, messages: str | None) -> None:
    """Set the limits of SCOPE: an account's address, @domain (each of its accounts)
    or 'default' (every account without its own or its domain's). An option left out
    keeps its current value."""
    config = load_config(ctx)

    async def go(app: App) -> Quota:
        old = await app.quotas.scope_limits(scope) or Quota()
        quota = Quota(old.storage if storage is None else _storage(storage),
                      old.messages if messages is None else _count(messages))
        await app.quotas.set_limits(scope, quota)
        return quota

    quota = run_with_app(config, go)
    click.echo(f"{scope.strip().lower()}: storage {_size(quota.storage)}, messages "
               f"{quota.messages if quota.messages is not None else 'unlimited'}")


@quota_group.command("clear")
@click.argument("scope")
@pass_ctx
def quota_clear(ctx: CliContext, scope: str) -> None:
    """Remove the limits set at SCOPE (the domain's or the server's then apply)."""
    config = load_config(ctx)
    run_with_app(config, lambda app: app.quotas.set_limits(scope, Quota()))
    click.echo(f"{scope.strip().lower()}: no limits of its own")


@quota_group.command("show")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def quota_show(ctx: CliContext, address: str, as_json: bool) -> None:
    """The limits that apply to ADDRESS's account and what it uses."""
    config = load_config(ctx)

    async def go(app: App) -> dict[str, object]:
        ref = await app.accounts.resolve(address)
        quota = await app.quotas.limits(ref.address)
        usage = await app.quotas.usage(ref, fresh=True)
        return {"address": ref.address, "region": ref.region,
                "storage_used": usage.storage, "storage_limit": quota.storage,
                "messages_used": usage.messages, "messages_limit": quota.messages}

    info = run_with_app(config, go)
    if as_json:
        click.echo(json.dumps(info))
        return
    used_s, limit_s = info["storage_used"], info["storage_limit"]
    used_m, limit_m = info["messages_used"], info["messages_limit"]
    assert isinstance(used_s, int) and isinstance(used_m, int)
    assert (limit_s is None or isinstance(limit_s, int)) and \
        (limit_m is None or isinstance(limit_m, int))
    click.echo(f"{info['address']} ({info['region']})")
    click.echo(f"  storage   {_size(used_s)} of {_size(limit_s)}{_share(used_s, limit_s)}")
    click.echo(f"  messages  {used_m} of {limit_m if limit_m is not None else 'unlimited'}"
               f"{_share(used_m, limit_m)}")
