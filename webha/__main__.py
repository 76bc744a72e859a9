"""``python -m webha SUBCOMMAND``: lab, drills, the split-brain detector, the tier check, DNS export.

Subcommands register themselves in :data:`COMMANDS` (name -> (add_arguments, run)); add one by
writing the two functions and one line at the bottom.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STACK = ROOT / "stacks" / "Pulumi.dev.yaml"


# --------------------------------------------------------------------------- shared options
def _stack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", default=str(DEFAULT_STACK), help="stack file (default: %(default)s)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a stack value, e.g. vrrp.preempt=true, vrrp.advertInt=0.25 (YAML values)",
    )


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (argparse names the option when this refuses)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _load(args) -> Any:
    from components.config import ConfigError
    from .stackfile import load_stack_file, parse_overrides

    try:
        return load_stack_file(args.stack, overrides=parse_overrides(args.set))
    except ConfigError as exc:
        raise SystemExit(f"{args.stack}:\n{exc}") from None


def _cluster(args, cfg):
    """(cluster, lab-or-None): a kept lab (--lab), real hosts (--target ssh) or a fresh lab."""
    from .drill import LabCluster, SshCluster
    from .testbed.lab import HaLab

    if args.target == "ssh":
        if not args.known_hosts:
            raise SystemExit("--target ssh needs --known-hosts PATH: the stack's pinned host keys "
                             "(scripts/up-local.sh writes $WEBHA_STATE/known_hosts.local; or "
                             "`pulumi stack output --json | python -m webha.hostkeys known-hosts PATH`)")
        return SshCluster(cfg, known_hosts=args.known_hosts, **_hypervisor_control(args, cfg)), None
    if args.lab:
        lab = HaLab.attach(cfg, args.lab)
        return LabCluster(lab), None  # not ours: left running
    lab = HaLab(cfg).start()
    return LabCluster(lab), lab


def _hypervisor_control(args, cfg) -> dict:
    """For a stack on this machine's extra hypervisors (scripts/hypervisors-up.sh): how to take
    one away and how to bring its guests back (`scripts/up-local.sh --refresh` of that stack)."""
    from .testbed.hypervisors import LocalHypervisors, local_hypervisors

    mapping = local_hypervisors(cfg)
    name = Path(args.stack).name
    if not mapping or not (name.startswith("Pulumi.") and name.endswith(".yaml")):
        return {}
    stack = name[len("Pulumi."):-len(".yaml")]
    return {"hypervisors": LocalHypervisors(mapping),
            "recover": ["env", f"WEBHA_STACK={stack}", str(ROOT / "scripts" / "up-local.sh"), "--refresh"]}


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=("lab", "ssh"), default="lab",
                   help="lab: namespaces on this machine (default); ssh: the deployed hosts")
    p.add_argument("--lab", metavar="PREFIX", help="use a lab kept by `lab up` instead of a new one")
    p.add_argument("--known-hosts", metavar="PATH",
                   help="with --target ssh: the stack's pinned host keys (StrictHostKeyChecking=yes)")


# --------------------------------------------------------------------------- drill
def drill_args(p: argparse.ArgumentParser) -> None:
    from .drill import SCENARIOS

    _stack_args(p)
    _target_args(p)
    p.add_argument("--scenario", action="append", choices=SCENARIOS, required=True,
                   help="repeatable; run in order")
    p.add_argument("--observe", type=_seconds, default=4.0, help="seconds to watch after the fault")
    p.add_argument("--rate", type=float, default=50.0, help="client requests per second")
    p.add_argument("--max-no-holder", type=_seconds, metavar="SECONDS",
                   help="fail when no node holds the VIP for longer than this during the scenario "
                   "(default: hypervisor-loss only, the new holder's master-down interval + 2 s)")
    p.add_argument("--out", metavar="DIR",
                   help="write each drill's timeline (drill-SCENARIO.json) and picture (.png) here")


def drill_run(args) -> int:
    from .drill import DrillError, run_drill, single_holder

    cfg = _load(args)
    cluster, own = _cluster(args, cfg)
    failed = False
    try:
        if own is not None and own.adjustments:
            print("lab adjustments: " + "; ".join(own.adjustments))
        try:
            single_holder(cluster, 15)
            for scenario in args.scenario:
                res = run_drill(cluster, scenario, observe=args.observe, rate=args.rate,
                                max_no_holder=args.max_no_holder)
                print(res.text())
                if args.out:
                    from .drillplot import write

                    target = "the VMs over SSH" if args.target == "ssh" else "the namespace lab"
                    js, png = write(res, Path(args.out),
                                    f"drill {scenario} on {target}: {res.description}")
                    print(f"   timeline: {js}\n   picture:  {png}")
                print()
                failed |= bool(res.failures())
        except DrillError as exc:
            print(f"drill stopped: {exc} (run `python -m webha splitbrain` to see why)",
                  file=sys.stderr)
            return 1
    finally:
        if own is not None:
            own.close()
    return 1 if failed else 0


# --------------------------------------------------------------------------- splitbrain
def splitbrain_args(p: argparse.ArgumentParser) -> None:
    from .splitbrain import SKEW_LIMIT

    _stack_args(p)
    _target_args(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-stats", action="store_true", help="do not signal keepalived for its counters")
    p.add_argument("--skew-limit", type=_seconds, default=SKEW_LIMIT, metavar="SECONDS",
                   help="largest clock difference between a node and this machine that is ok "
                   "(default %(default)s; guests with no time source, e.g. on an isolated lab network, "
                   "boot with the RTC's whole seconds: up to 1 s apart)")


def splitbrain_run(args) -> int:
    from .splitbrain import detect

    cfg = _load(args)
    cluster, own = _cluster(args, cfg)
    try:
        if own is not None:
            from .drill import single_holder

            single_holder(cluster, 15)
        report = detect(cluster, stats=not args.no_stats, skew_limit=args.skew_limit)
    finally:
        if own is not None:
            own.close()
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text())
    return 2 if report.split_brain else (1 if report.problems else 0)


# --------------------------------------------------------------------------- verify
def verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config-json", required=True, metavar="FILE_OR_-",
                   help='StackConfig.model_dump(mode="json", by_alias=True) without the secrets; - = stdin')
    p.add_argument("--deadline", type=_seconds, default=30.0, metavar="SECONDS",
                   help="retry the checks until they pass or this many seconds passed (default 30)")


def _tier_config(args, tool: str):
    """The stack config a tier-side command reads (``--config-json``, as the tier check passes it)
    and the known_hosts text made from its pinned public host keys; None after saying why."""
    from components.config import ConfigError
    from components.hostkeys import HostKeyError, known_hosts_lines
    from components.tiercheck import HOST_KEYS_FIELD
    from .stackfile import config_from_dump

    try:
        text = sys.stdin.read() if args.config_json == "-" else Path(args.config_json).read_text()
        data = json.loads(text)
        keys = data.pop(HOST_KEYS_FIELD, None)
        cfg = config_from_dump(data)
        missing = sorted({h.name for h in cfg.web_hosts} - set(keys if isinstance(keys, dict) else {}))
        if missing:
            raise ConfigError(f"{HOST_KEYS_FIELD}: no public host key for {', '.join(missing)}")
        pinned = known_hosts_lines(([str(cfg.host(n).ip)], keys[n]) for n in sorted(keys))
    except (OSError, ValueError, ConfigError, HostKeyError) as exc:  # JSONDecodeError, ConfigError are ValueErrors
        print(f"webha {tool}: cannot read the stack config from {args.config_json}: {exc}", file=sys.stderr)
        return None
    return cfg, pinned


@contextlib.contextmanager
def _pinned_known_hosts(args, tool: str):
    """``(cfg, known_hosts path)`` of :func:`_tier_config`, the file in a temporary directory for
    the block's length; ``None`` when the config could not be read (already said why)."""
    loaded = _tier_config(args, tool)
    if loaded is None:
        yield None
        return
    cfg, pinned = loaded
    with tempfile.TemporaryDirectory(prefix=f"webha-{tool}-") as tmp:
        kh = Path(tmp) / "known_hosts"
        kh.write_text(pinned)
        yield cfg, str(kh)


def verify_run(args) -> int:
    from .drill import SshCluster
    from .verify import verify

    with _pinned_known_hosts(args, "verify") as loaded:
        if loaded is None:
            return 2
        cfg, kh = loaded
        report = verify(cfg, SshCluster(cfg, known_hosts=kh), deadline=args.deadline)
    print(report.text())
    if not report.ok:
        print("webha verify: " + "; ".join(f"{c.name}: {c.detail}" for c in report.failures), file=sys.stderr)
    return 0 if report.ok else 1


# --------------------------------------------------------------------------- rollout-gate
def gate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config-json", required=True, metavar="FILE_OR_-",
                   help="as for verify (the stack config without secrets, plus the public host keys)")
    p.add_argument("--deadline", type=_seconds, default=120.0, metavar="SECONDS",
                   help="keep looking until the tier may take the change, at most this long (default 120)")


def gate_run(args) -> int:
    from .executor import ssh_executors
    from .rollout_gate import GateError, run_gate

    with _pinned_known_hosts(args, "rollout-gate") as loaded:
        if loaded is None:
            return 2
        cfg, kh = loaded
        hosts = ssh_executors(cfg, kh, [h.name for h in cfg.web_hosts])
        try:
            print("rollout gate: " + run_gate(cfg, hosts, deadline=args.deadline,
                                              log=lambda m: print(m, file=sys.stderr, flush=True)))
        except GateError as exc:
            print(f"webha rollout-gate: the VRRP instance change is not applied: {exc}", file=sys.stderr)
            return 1
    return 0


# --------------------------------------------------------------------------- lab
def lab_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lab_cmd", required=True)
    up = sub.add_parser("up", help="start a lab and leave it running")
    _stack_args(up)
    down = sub.add_parser("down", help="remove kept labs (all, or PREFIX) and stale ones")
    down.add_argument("prefix", nargs="?")
    down.add_argument("--all", action="store_true", help="also labs of running processes")
    sub.add_parser("list", help="labs on this machine")


def lab_run(args) -> int:
    from .testbed.lab import BASE_DIR, HaLab, cleanup_stale

    if args.lab_cmd == "up":
        cfg = _load(args)
        lab = HaLab(cfg).start()
        holder = lab.wait_single_holder(15)
        lab.keep({"stack": args.stack, "set": args.set})
        print(f"lab {lab.prefix} up; VIP {cfg.vrrp.vip} on {holder}")
        for note in lab.adjustments:
            print(f"  adjusted: {note}")
        for host, ex in lab.hosts.items():
            print(f"  {host:8s} nsenter {' '.join(ex.prefix()[1:])} bash")
        print(f"  files: {lab.dir}")
        print(f"  drill: python -m webha drill --lab {lab.prefix} --stack {args.stack} "
              + "".join(f"--set {s} " for s in args.set) + "--scenario nginx-kill")
        print(f"  down:  python -m webha lab down {lab.prefix}")
        return 0
    if args.lab_cmd == "down":
        if args.prefix:
            gone = cleanup_stale(only=args.prefix)
        else:
            gone = cleanup_stale(kept=True, everything=args.all)
        print("removed: " + (", ".join(gone) or "nothing"))
        return 0
    for d in sorted(BASE_DIR.glob("whl*")) if BASE_DIR.is_dir() else []:
        owner = (d / "owner").read_text().strip() if (d / "owner").exists() else "?"
        print(f"{d.name}  owner={owner}")
    return 0


# --------------------------------------------------------------------------- guests
def guests_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="guests_cmd", required=True)
    start = sub.add_parser("start-stopped", help="start the shut-off guests of a `pulumi stack export` (stdin)")
    start.add_argument("export", nargs="?", default="-", help="the export's file (default: stdin)")


def guests_run(args) -> int:
    from .guests import GuestError, start_stopped_from_export

    try:
        if args.export == "-":
            started = start_stopped_from_export(sys.stdin)
        else:
            with open(args.export, encoding="utf-8") as f:
                started = start_stopped_from_export(f)
    except GuestError as exc:
        print(f"webha guests: {exc}", file=sys.stderr)
        return 1
    if not started:
        print("no guest of the stack is shut off")
    return 0


# --------------------------------------------------------------------------- dns
def dns_args(p: argparse.ArgumentParser) -> None:
    from .dns.cli import add_arguments

    add_arguments(p)


def dns_run(args) -> int:
    from .dns.cli import run

    return run(args)


COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "drill": ("run failover drills and print a report", drill_args, drill_run),
    "splitbrain": ("is the VIP on more than one node, and why", splitbrain_args, splitbrain_run),
    "lab": ("namespace lab with real keepalived and nginx", lab_args, lab_run),
    "verify": ("is the deployed tier healthy (the post-condition of pulumi up)", verify_args, verify_run),
    "rollout-gate": ("before a VRRP instance change: one holder, nothing else running (pulumi up runs it)",
                     gate_args, gate_run),
    "guests": ("the stack's guests (from its state): start-stopped before a destroy", guests_args, guests_run),
    "dns": ("the stack's dns output as octoDNS/BIND/external-dns/PowerDNS records", dns_args, dns_run),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m webha")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, (help_text, add, _) in COMMANDS.items():
        add(sub.add_parser(name, help=help_text))
    args = ap.parse_args(argv)
    return COMMANDS[args.cmd][2](args)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
