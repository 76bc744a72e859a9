"""The stack's guests as its state records them, and starting the ones that are off before a destroy.

Why: a ``destroy`` runs each web node's undo steps (keepalived-remove, web-remove) over SSH before
it deletes the guest. A guest that is off (powered off by hand, a drill killed in its recovery)
makes each of those steps dial 121 times, ~15 min a step, before the destroy fails or goes on.
``scripts/destroy-local.sh`` therefore starts the stack's shut-off guests first; the steps' own
dial retries wait for the boot.

The guests come from the stack's state (``pulumi stack export``), each with the URI of the libvirt
provider that made it (a twohv stack has one per hypervisor) and its UUID: no name guessing, and a
guest of another stack with a similar name is never touched.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Callable, Iterable, TextIO

DOMAIN = "libvirt:index/domain:Domain"
PROVIDER = "pulumi:providers:libvirt"


class GuestError(RuntimeError):
    """The state or a hypervisor could not tell a guest's power state, or a start failed."""


@dataclass(frozen=True)
class Guest:
    name: str
    uuid: str
    uri: str


def stack_guests(export: dict) -> list[Guest]:
    """Every libvirt domain in a ``pulumi stack export`` with its provider's URI."""
    resources = (export.get("deployment") or {}).get("resources") or []
    uris = {}
    for r in resources:
        if r.get("type") == PROVIDER:
            uri = (r.get("inputs") or {}).get("uri") or (r.get("outputs") or {}).get("uri")
            uris[f"{r['urn']}::{r.get('id')}"] = uri
    guests = []
    for r in resources:
        if r.get("type") != DOMAIN or not r.get("id"):
            continue  # a domain whose create never finished has no UUID: nothing to start
        ref = r.get("provider", "")
        uri = uris.get(ref)
        name = (r.get("outputs") or {}).get("name") or r["urn"].rsplit("::", 1)[-1]
        if not uri:
            # The default provider (no explicit one) reads LIBVIRT_DEFAULT_URI or its own default;
            # webha always makes explicit providers, so this is a state webha did not write.
            raise GuestError(f"{name}: its libvirt provider ({ref or 'none'}) has no uri in the state")
        guests.append(Guest(name=name, uuid=r["id"], uri=uri))
    return sorted(guests, key=lambda g: (g.uri, g.name))


Run = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _virsh(argv: list[str]) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def start_stopped(guests: Iterable[Guest], run: Run = _virsh,
                  log: Callable[[str], None] = print) -> list[Guest]:
    """Start every guest whose hypervisor says ``shut off``; return those started.

    A guest that is running (or paused, or crashed: the destroy deals with those) is left alone.
    A hypervisor that cannot be asked, or a start that fails, raises :class:`GuestError` after the
    other guests were handled: the caller decides whether to destroy anyway."""
    started, errors = [], []
    for g in guests:
        state = run(["virsh", "-c", g.uri, "domstate", g.uuid])
        if state.returncode != 0:
            errors.append(f"{g.name} ({g.uri}): virsh domstate: {state.stderr.strip() or state.returncode}")
            continue
        if state.stdout.strip() != "shut off":
            continue
        res = run(["virsh", "-c", g.uri, "start", g.uuid])
        if res.returncode != 0:
            errors.append(f"{g.name} ({g.uri}): virsh start: {res.stderr.strip() or res.returncode}")
            continue
        log(f"started {g.name} ({g.uri}): it was shut off, and its undo steps reach it over SSH")
        started.append(g)
    if errors:
        raise GuestError("; ".join(errors))
    return started


def start_stopped_from_export(stream: TextIO, log: Callable[[str], None] = print) -> list[Guest]:
    try:
        export = json.load(stream)
    except json.JSONDecodeError as exc:
        raise GuestError(f"not a stack export: {exc}") from None
    return start_stopped(stack_guests(export), log=log)
