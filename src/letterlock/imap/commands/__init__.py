"""Command handlers, one module per command group; :data:`HANDLERS` maps each parsed
command type to its handler ``async (command, context) -> Reply``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from letterlock.imap.commands import (
    auth,
    fetch,
    general,
    idle,
    mailboxes,
    messages,
    notify,
    quota,
    search,
    sort,
    thread,
    updates,
)
from letterlock.imap.context import Context
from letterlock.imap.parsing import commands as c
from letterlock.imap.parsing.notify import NotifyNone, NotifySet
from letterlock.imap.parsing.quota import GetQuota, GetQuotaRoot, SetQuota
from letterlock.imap.reply import Reply

Handler = Callable[[Any, Context], Awaitable[Reply]]

HANDLERS: dict[type[c.Command], Handler] = {
    c.Capability: general.capability,
    c.Noop: general.noop,
    c.Check: general.noop,
    c.Logout: general.logout,
    c.Id: general.id_,
    c.Enable: general.enable,
    c.Namespace: general.namespace,
    c.Login: auth.login,
    c.Authenticate: auth.authenticate,
    c.Select: mailboxes.select,
    c.Create: mailboxes.create,
    c.Delete: mailboxes.delete,
    c.Rename: mailboxes.rename,
    c.Subscribe: mailboxes.subscribe,
    c.List: mailboxes.list_,
    c.Status: mailboxes.status,
    c.Append: mailboxes.append,
    c.Idle: idle.idle,
    c.Close: messages.close,
    c.Unselect: messages.unselect,
    c.Expunge: messages.expunge,
    c.Store: messages.store,
    c.Copy: messages.copy,
    c.Fetch: fetch.fetch,
    c.Search: search.search,
    c.Sort: sort.sort,
    c.Thread: thread.thread,
    c.CancelUpdate: updates.cancel,
    GetQuota: quota.getquota,
    GetQuotaRoot: quota.getquotaroot,
    SetQuota: quota.setquota,
    NotifyNone: notify.notify_none,
    NotifySet: notify.notify_set,
}

# Commands during which EXPUNGE responses must not be sent (RFC 9051 7.5.1).
NO_EXPUNGE_DURING = (c.Fetch, c.Store, c.Search, c.Sort, c.Thread)
