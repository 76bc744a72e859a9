"""Split-brain detector: who holds the VIP, and the causes the seed course names.

Split brain = the VIP is on more than one node (seed: "vip出现在了多台机器上"). Checks, each on
every web node, read-only:

1. **holders** - ``ip -4 -o addr show dev <if>``: which nodes carry the VIP;
2. **state** - keepalived's state from the notify state file (``<state_dir>/vrrp.state``);
3. **firewall** - ``nft -j list ruleset``: an input rule dropping/rejecting IP protocol 112
   (VRRP), or an input chain with policy drop and no rule accepting VRRP (seed cause #1,
   "防火墙未关闭");
4. **adverts** - are VRRP adverts received? keepalived's counters, dumped by its STATS signal
   (``kill -s $(keepalived --signum=STATS) <pid>`` -> ``/tmp/keepalived.stats``), taken twice a
   few advert intervals apart. The signal only makes keepalived write the file; it changes no
   state. Disable with ``stats=False`` for a strictly signal-free run;
5. **clock** - ``date +%s.%N`` on each node against this machine (seed cause "时间不同步");
6. **config** - the deployed ``keepalived.conf`` of every node, parsed and compared:
   virtual_router_id, VRRP version, advert_int, authentication (compared by hash, never
   printed), VIP, unicast source/peers.

All of it is read in ONE session per web node (``webha/remote/detect-gather.sh``: one SSH
connection, or one ``nsenter`` in the lab), every node at once. A new SSH connection to a TCG
guest costs seconds; the detector used to open about ten per node one after the other (48.6 s on
the VMs). The clock is asked for on the open session, after it started, so the read's round
trip (its uncertainty) is milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .executor import ExecError
from .vip import VipUnreadable, holders_from

SKEW_LIMIT = 0.5


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str


@dataclass
class SplitBrainReport:
    vip: str
    holders: list[str]
    findings: list[Finding] = field(default_factory=list)
    # Nodes whose addresses could not be read: they may hold the VIP too.
    unknown: list[str] = field(default_factory=list)
    seconds: Optional[float] = None  # how long the detector took

    @property
    def split_brain(self) -> bool:
        return len(self.holders) > 1

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def text(self) -> str:
        if self.split_brain:
            head = f"SPLIT BRAIN: VIP {self.vip} is held by {', '.join(self.holders)}"
        elif self.unknown:
            head = (f"UNKNOWN: VIP {self.vip} is held by {', '.join(self.holders) or 'no readable node'}; "
                    f"cannot read {', '.join(self.unknown)}")
        elif self.holders:
            head = f"ok: VIP {self.vip} is held by {self.holders[0]} only"
        else:
            head = f"NO HOLDER: VIP {self.vip} is on no node"
        lines = [head]
        if self.seconds is not None:
            lines[0] += f"  ({self.seconds:.1f} s)"
        for f in self.findings:
            lines.append(f"  [{'ok' if f.ok else '!!'}] {f.check}: {f.detail}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "vip": self.vip,
            "holders": self.holders,
            "split_brain": self.split_brain,
            "unknown": self.unknown,
            "findings": [f.__dict__ for f in self.findings],
            "seconds": self.seconds,
        }


# --------------------------------------------------------------------------- keepalived.conf
def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        line = re.split(r"\s[#!]|^[#!]", line, maxsplit=1)[0]
        for tok in re.findall(r'"[^"]*"|[{}]|[^\s{}]+', line):
            out.append(tok.strip('"'))
        out.append("\n")
    return out


def parse_keepalived_conf(text: str) -> list:
    """Nested ``[keyword, [args], [children]]`` items; enough for comparing nodes' configs."""
    toks = _tokens(text)
    pos = 0

    def block() -> list:
        nonlocal pos
        items: list = []
        cur: Optional[list] = None
        while pos < len(toks):
            tok = toks[pos]
            pos += 1
            if tok == "}":
                return items
            if tok == "\n":
                cur = None
                continue
            if tok == "{":
                children = block()
                if cur is None:  # a bare "{ ... }" list
                    items.append(["", [], children])
                else:
                    cur[2] = children
                    cur = None
                continue
            if cur is None:
                cur = [tok, [], []]
                items.append(cur)
            else:
                cur[1].append(tok)
        return items

    return block()


def _find(items: list, key: str) -> list:
    return [i for i in items if i[0] == key]


INCLUDE = re.compile(r"^(\s*)include\s+(\S+)\s*$", re.M)


def inline_includes(text: str, read: Callable[[str], str]) -> str:
    """keepalived.conf with its ``include`` lines replaced by the files they name (the VRRP
    password lives in an include): what keepalived itself reads. ``read(path)`` raises
    :class:`ExecError` for a file it cannot read."""
    return INCLUDE.sub(lambda m: inline_includes(read(m.group(2)), read), text)


def read_conf(ex, path: str) -> str:
    """:func:`inline_includes` of a file read with ``cat`` on ``ex``. Unreadable = ExecError."""

    def read(p: str) -> str:
        try:
            res = ex.run(["cat", p], timeout=5)
        except ExecError as exc:
            raise ExecError(f"cannot read {p} ({exc})") from None
        if res.returncode != 0:
            raise ExecError(f"cannot read {p} ({res.stderr.strip() or res.returncode})")
        return res.stdout

    return inline_includes(read(path), read)


def summarize_conf(text: str) -> dict:
    items = parse_keepalived_conf(text)
    glob = {i[0]: i[1] for g in _find(items, "global_defs") for i in g[2]}
    out: dict = {"vrrp_version": (glob.get("vrrp_version") or ["2"])[0], "instances": {}}
    for inst in _find(items, "vrrp_instance"):
        body = {i[0]: i for i in inst[2]}

        def arg(k: str, default: Optional[str] = None) -> Optional[str]:
            return body[k][1][0] if k in body and body[k][1] else default

        auth = body.get("authentication")
        auth_kv = {i[0]: (i[1][0] if i[1] else "") for i in (auth[2] if auth else [])}
        peers = sorted(
            w for i in (body["unicast_peer"][2] if "unicast_peer" in body else [])
            for w in [i[0], *i[1]] if re.match(r"^[0-9a-f.:]+$", w)
        )
        vips = sorted(i[0] for i in (body["virtual_ipaddress"][2] if "virtual_ipaddress" in body else []))
        out["instances"][inst[1][0] if inst[1] else "?"] = {
            "virtual_router_id": arg("virtual_router_id"),
            "interface": arg("interface"),
            "priority": arg("priority", "100"),
            "state": arg("state"),
            "advert_int": arg("advert_int", "1"),
            "nopreempt": "nopreempt" in body,
            "unicast_src_ip": arg("unicast_src_ip"),
            "unicast_peer": peers,
            "vips": vips,
            "auth_type": auth_kv.get("auth_type", "none"),
            # Compared, never shown: a short hash of the password.
            "auth_hash": hashlib.sha256(auth_kv.get("auth_pass", "").encode()).hexdigest()[:8]
            if auth_kv.get("auth_pass") else None,
        }
    return out


def compare_configs(confs: dict[str, dict], node_ips: dict[str, str]) -> list[Finding]:
    findings: list[Finding] = []
    if len(confs) < 2:
        return [Finding("config", False, f"only {len(confs)} keepalived.conf readable")]
    versions = {n: c["vrrp_version"] for n, c in confs.items()}
    if len(set(versions.values())) > 1:
        findings.append(Finding("config", False, f"vrrp_version differs: {versions}"))
    names = sorted({i for c in confs.values() for i in c["instances"]})
    for inst in names:
        per = {n: c["instances"].get(inst) for n, c in confs.items()}
        missing = [n for n, v in per.items() if v is None]
        if missing:
            findings.append(Finding("config", False, f"{inst}: missing on {', '.join(missing)}"))
            continue
        for key, label in (
            ("virtual_router_id", "virtual_router_id"),
            ("advert_int", "advert_int"),
            ("auth_type", "auth_type"),
            ("auth_hash", "auth_pass (hash)"),
            ("vips", "VIP"),
        ):
            vals = {n: v[key] for n, v in per.items()}
            if len({json.dumps(x) for x in vals.values()}) > 1:
                findings.append(Finding("config", False, f"{inst}: {label} differs: {vals}"))
        unicast = {n: bool(v["unicast_peer"]) for n, v in per.items()}
        if len(set(unicast.values())) > 1:
            findings.append(Finding("config", False, f"{inst}: unicast on some nodes only: {unicast}"))
        elif all(unicast.values()):
            for n, v in per.items():
                want = sorted(ip for m, ip in node_ips.items() if m != n and m in per)
                if v["unicast_src_ip"] != node_ips.get(n):
                    findings.append(Finding("config", False,
                                            f"{inst}: {n} unicast_src_ip {v['unicast_src_ip']} is not its address {node_ips.get(n)}"))
                lost = [ip for ip in want if ip not in v["unicast_peer"]]
                if lost:
                    findings.append(Finding("config", False, f"{inst}: {n} unicast_peer lacks {', '.join(lost)}"))
        prios = {n: v["priority"] for n, v in per.items()}
        if len(set(prios.values())) < len(prios):
            findings.append(Finding("config", False, f"{inst}: equal priorities {prios}"))
    if not findings:
        findings.append(Finding("config", True, "virtual_router_id, version, advert_int, auth, VIP and peers agree"))
    return findings


# --------------------------------------------------------------------------- nftables
def vrrp_blocking_rules(ruleset_json: str) -> list[str]:
    """Descriptions of nft input rules/policies that stop VRRP from reaching keepalived."""
    # Unreadable output is an error for the caller to report, never "nothing drops VRRP".
    try:
        data = json.loads(ruleset_json)["nftables"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not an `nft -j` ruleset ({exc.__class__.__name__}: {exc})") from None
    chains = {}
    rules: dict = {}
    for obj in data:
        if "chain" in obj:
            c = obj["chain"]
            chains[(c["family"], c["table"], c["name"])] = c
        elif "rule" in obj:
            r = obj["rule"]
            rules.setdefault((r["family"], r["table"], r["chain"]), []).append(r)
    out = []
    for key, chain in chains.items():
        if chain.get("hook") not in ("input", "prerouting"):
            continue
        accepts_vrrp = False
        for r in rules.get(key, []):
            exprs = r.get("expr", [])
            vrrp = any(_matches_vrrp(e) for e in exprs)
            verdict = next((v for e in exprs for v in ("drop", "reject", "accept") if v in e), None)
            if vrrp and verdict in ("drop", "reject"):
                counter = next((e["counter"] for e in exprs if "counter" in e), None)
                packets = f", {counter.get('packets')} packets dropped" if isinstance(counter, dict) else ""
                out.append(f"{key[0]} {key[1]} {key[2]}: rule handle {r.get('handle')} {verdict}s VRRP (protocol 112){packets}")
            if vrrp and verdict == "accept":
                accepts_vrrp = True
        if chain.get("policy") == "drop" and not accepts_vrrp:
            out.append(f"{key[0]} {key[1]} {key[2]}: policy drop and no rule accepting VRRP")
    return out


def _matches_vrrp(expr: dict) -> bool:
    m = expr.get("match")
    if not m:
        return False
    left = m.get("left", {})
    payload = left.get("payload", {}) if isinstance(left, dict) else {}
    meta = left.get("meta", {}) if isinstance(left, dict) else {}
    is_proto = (payload.get("protocol") == "ip" and payload.get("field") == "protocol") or meta.get(
        "key") == "l4proto"
    right = m.get("right")
    vals = right.get("set", []) if isinstance(right, dict) else [right]
    return is_proto and any(v in ("vrrp", 112, "112") for v in vals)


# --------------------------------------------------------------------------- stats
def parse_stats(text: str) -> dict[str, dict[str, int]]:
    """``/tmp/keepalived.stats`` -> {instance: {"received": n, "sent": n}}."""
    out: dict[str, dict[str, int]] = {}
    inst = None
    section = None
    for line in text.splitlines():
        m = re.match(r"^VRRP Instance: (\S+)", line)
        if m:
            inst = m.group(1)
            out[inst] = {}
            continue
        s = line.strip()
        if s.startswith("Advertisements:"):
            section = "adv"
            continue
        if s.endswith(":") and not s.startswith(("Received", "Sent")):
            section = None
        m = re.match(r"^(Received|Sent):\s*(\d+)", s)
        if inst and section == "adv" and m:
            out[inst][m.group(1).lower()] = int(m.group(2))
    return out


# --------------------------------------------------------------------------- gathering
GATHER_SCRIPT = Path(__file__).resolve().parent / "remote" / "detect-gather.sh"
MARK = "@@webha "


@dataclass
class Gathered:
    """What one node's gather session returned: ``sections[name] = (exit status, text)``."""

    node: str
    sections: dict[str, tuple[int, str]] = field(default_factory=dict)
    clock: Optional[float] = None  # the node's clock, read between t0 and t1 (this machine's)
    t0: float = 0.0
    t1: float = 0.0
    error: Optional[str] = None  # the session itself failed (unreachable, killed, timed out)
    seconds: float = 0.0

    def get(self, name: str) -> tuple[Optional[int], str, str]:
        """(exit status, stdout, stderr) of a section; status None when it never ran."""
        if name not in self.sections:
            return None, "", self.error or f"no {name} section in the gathered output"
        rc, out = self.sections[name]
        return rc, out, self.sections.get(f"{name}.err", (0, ""))[1]


def parse_gathered(node: str, lines: list[str]) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    name, buf = None, []
    for line in lines:
        if line.startswith(MARK + "begin "):
            name, buf = line[len(MARK + "begin "):].rstrip("\n"), []
        elif line.startswith(MARK + "end ") and name is not None:
            rc = line.rstrip("\n").rsplit(" ", 1)[-1]
            out[name] = (int(rc) if rc.lstrip("-").isdigit() else -1, "".join(buf))
            name = None
        elif name is not None:
            buf.append(line)
    return out


def gather(ex, layout, stats: bool = True, timeout: float = 60) -> Gathered:
    """One session on ``ex`` running :data:`GATHER_SCRIPT`; never raises (errors are in the
    result: unknown is reported, never taken for "fine")."""
    g = Gathered(ex.name)
    start = time.monotonic()
    argv = ["bash", "-c", GATHER_SCRIPT.read_text(), "detect-gather", layout.interface,
            f"{layout.paths.state_dir}/vrrp.state", layout.keepalived_pid, layout.keepalived_conf,
            "1", "stats" if stats else "nostats"]
    try:
        proc = subprocess.Popen(ex.stream_argv(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        g.error = f"cannot start the session: {exc}"
        return g
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        assert proc.stdin and proc.stdout
        line = proc.stdout.readline()
        if line.strip() != MARK + "ready":
            proc.wait()
            g.error = (proc.stderr.read().strip() if proc.stderr else "") or f"session ended ({proc.returncode})"
            return g
        # The clock: asked for on the open session, so the round trip is milliseconds, not the
        # seconds a new SSH connection to a TCG guest costs.
        g.t0 = time.time()
        proc.stdin.write("\n")
        proc.stdin.flush()
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # begin clock / the clock
        g.t1 = time.time()
        lines += proc.stdout.readlines()
        proc.wait()
        g.sections = parse_gathered(ex.name, lines)
        rc, out, _ = g.get("clock")
        try:
            g.clock = float(out.strip()) if rc == 0 else None
        except ValueError:
            g.clock = None
        if proc.returncode != 0:
            err = proc.stderr.read().strip() if proc.stderr else ""
            g.error = f"session exited {proc.returncode}" + (f": {err}" if err else "")
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        g.seconds = time.monotonic() - start
    if g.error and proc.returncode == -9:
        g.error = f"timed out after {timeout:.0f} s"
    return g


def gather_all(cluster, stats: bool = True, timeout: float = 60) -> dict[str, Gathered]:
    """Every web node at once: one session per node, in parallel."""
    nodes = cluster.web_names
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        futures = {n: pool.submit(gather, cluster.hosts[n], cluster.layouts[n], stats, timeout) for n in nodes}
        return {n: f.result() for n, f in futures.items()}


# --------------------------------------------------------------------------- detector
STATES = ("MASTER", "BACKUP", "FAULT", "STOP")


def states_from(gathered: dict[str, Gathered]) -> dict[str, str]:
    """keepalived's state per web node as notify.sh recorded it; "unknown" when unreadable."""
    states = {}
    for n, g in gathered.items():
        rc, out, _ = g.get("state")
        value = out.strip() if rc == 0 else ""
        states[n] = value if value in STATES else "unknown"
    return states


def advert_findings(gathered: dict[str, Gathered], states: dict[str, str]) -> list[Finding]:
    """Are adverts reaching every node? keepalived's counters, read twice 3 adverts apart.

    A node that received none is fine only if it is the only MASTER by the state files (backups
    are silent); a BACKUP, FAULT or unknown node that hears nothing, or one of two MASTERs, is cut
    off (or nobody sends)."""
    out = []
    for n, g in gathered.items():
        rc1, s1, e1 = g.get("stats1")
        rc2, s2, e2 = g.get("stats2")
        if rc1 != 0 or rc2 != 0:
            why = (e1 or e2).strip() or f"exit {rc1 if rc1 != 0 else rc2}"
            out.append(Finding("adverts", False, f"{n}: keepalived not running or its stats unreadable ({why})"))
            continue
        a, b = parse_stats(s1), parse_stats(s2)
        window = g.get("window")[1].strip() or "?"
        if not b:
            out.append(Finding("adverts", False, f"{n}: no VRRP instance in keepalived's stats"))
        for inst in b:
            if inst not in a:
                out.append(Finding("adverts", False, f"{n} {inst}: not in the first stats read"))
                continue
            got = b[inst].get("received", 0) - a[inst].get("received", 0)
            sent = b[inst].get("sent", 0) - a[inst].get("sent", 0)
            others = [m for m, s in states.items() if s == "MASTER" and m != n]
            ok = got > 0 or (states.get(n) == "MASTER" and not others)
            detail = f"{n} {inst} ({states.get(n, 'unknown')}): {got} adverts received, {sent} sent in {window}s"
            if not ok:
                detail += (f" although {', '.join(others)} is MASTER: adverts do not reach {n}" if others
                           else f": {n} hears no master")
            out.append(Finding("adverts", ok, detail))
    return out


def clock_finding(node: str, remote: Optional[float], t0: float, t1: float, skew_limit: float,
                  why: str = "") -> Finding:
    """The node's clock (read between t0 and t1 on this machine's) against this machine's:
    |difference| plus the read's own uncertainty (half the round trip) must stay within
    ``skew_limit``; when the uncertainty alone makes it undecidable, that is not ok either."""
    if remote is None:
        return Finding("clock", False, f"{node}: cannot read its clock ({why or 'no clock read'})")
    skew = remote - (t0 + t1) / 2
    err_s = (t1 - t0) / 2
    what = (f"{node}: clock {skew:+.3f}s from this machine's (±{err_s:.3f}s: half the read's round "
            f"trip); limit |difference| <= {skew_limit}s")
    if abs(skew) + err_s <= skew_limit:
        return Finding("clock", True, what + ": within")
    if abs(skew) - err_s > skew_limit:
        return Finding("clock", False, what + ": OVER the limit")
    return Finding("clock", False, what + ": cannot tell (the read was too slow)")


def detect(cluster, stats: bool = True, skew_limit: float = SKEW_LIMIT, timeout: float = 60) -> SplitBrainReport:
    """Run every check on ``cluster`` (a :class:`webha.drill.Cluster`); read-only. One session
    per web node, all at once (:func:`gather_all`), then :func:`detect_from`."""
    t0 = time.monotonic()
    report = detect_from(cluster, gather_all(cluster, stats, timeout), stats, skew_limit)
    report.seconds = time.monotonic() - t0
    return report


def detect_from(cluster, gathered: dict[str, Gathered], stats: bool = True,
                skew_limit: float = SKEW_LIMIT) -> SplitBrainReport:
    """The verdict on what :func:`gather_all` read. Unknown is never ok: a node, file, ruleset or
    counter that cannot be read is a failed finding."""
    nodes = cluster.web_names
    findings: list[Finding] = [Finding("session", False, f"{n}: {g.error}") for n, g in gathered.items() if g.error]
    try:
        holders, unknown = holders_from({n: gathered[n].get("addr") for n in nodes}, cluster.vip,
                                        cluster.layouts[nodes[0]].interface), []
    except VipUnreadable as exc:
        holders, unknown = exc.partial, list(exc.problems)
        findings += [Finding("holders", False, f"{n}: cannot read its addresses, may hold the VIP ({why})")
                     for n, why in exc.problems.items()]
    report = SplitBrainReport(cluster.vip, holders, findings, unknown)
    ips = {n: str(cluster.cfg.host(n).ip) for n in nodes}

    states = states_from(gathered)
    masters = [n for n, s in states.items() if s == "MASTER"]
    unread = [n for n, s in states.items() if s == "unknown"]
    report.findings.append(Finding(
        "state", len(masters) <= 1 and not unread,
        ", ".join(f"{n}={s}" for n, s in states.items())
        + (f" (no readable state file on {', '.join(unread)})" if unread else ""),
    ))

    for n in nodes:
        rc, out, err = gathered[n].get("nft")
        if rc != 0:
            why = "nft is not installed" if rc == 3 else (err.strip() or f"exit {rc}")
            report.findings.append(Finding("firewall", False, f"{n}: cannot read the ruleset ({why})"))
            continue
        try:
            bad = vrrp_blocking_rules(out)
        except ValueError as exc:
            report.findings.append(Finding("firewall", False, f"{n}: cannot read the ruleset ({exc})"))
            continue
        report.findings.append(Finding(
            "firewall", not bad,
            f"{n}: " + ("; ".join(bad) if bad else "no nftables rule drops VRRP"),
        ))

    if stats:
        report.findings.extend(advert_findings({n: gathered[n] for n in nodes}, states))

    for n in nodes:
        g = gathered[n]
        report.findings.append(clock_finding(n, g.clock, g.t0, g.t1, skew_limit, g.get("clock")[2] or g.error or ""))

    confs = {}
    for n in nodes:
        g = gathered[n]

        def read(path: str, g: Gathered = g) -> str:
            rc, out, err = g.get(path)
            if rc != 0:
                raise ExecError(f"cannot read {path.removeprefix('include:')} ({err.strip() or rc})")
            return out

        try:
            confs[n] = summarize_conf(inline_includes(read("conf"), lambda p: read(f"include:{p}")))
        except ExecError as exc:
            report.findings.append(Finding("config", False, f"{n}: {exc}"))
    report.findings.extend(compare_configs(confs, ips))
    return report
