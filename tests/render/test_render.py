"""Render tier: every template, for every shipped stack, checked by the tool that will read it.

keepalived -t (inside a namespace that has the configured interface), nginx -t, nft -c, php -l,
bash -n + shellcheck, YAML parsing of cloud-init. A missing tool fails the test with what to
install; nothing is skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.checks import keepalived_test_passed
from components.hostkeys import generate as generate_host_key, public_key
from components.render import render, template_names
from components.topology import Paths, host_context, keepalived_context
from components.vm import mac_for
from tests.conftest import ROOT, STACKS
from webha.stackfile import FAKE_SECRETS, load_stack_file

pytestmark = pytest.mark.render
RENDERED: dict[str, int] = {}
INSTALL = "run scripts/install-deps.sh (Debian packages: keepalived nginx-light nftables php-cli shellcheck cloud-init)"


def need(tool: str) -> str:
    path = shutil.which(tool) or (tool if os.path.exists(tool) else None)
    if not path:
        pytest.fail(f"{tool} not found: {INSTALL}")
    return path


def run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
    assert res.returncode == 0, f"{cmd}: {res.stdout}\n{res.stderr}"
    return res


def r(name: str, **ctx) -> str:
    RENDERED[name] = RENDERED.get(name, 0) + 1
    return render(name, **ctx)


def configs():
    for stack in STACKS:
        yield stack, "debian", load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    rhel = {"image": {"osFamily": "rhel"}, "vrrp": {"unicast": False}}
    yield "dev", "rhel", load_stack_file(ROOT / "stacks" / "Pulumi.dev.yaml", overrides=rhel)


CONFIGS = list(configs())
IDS = [f"{s}-{f}" for s, f, _ in CONFIGS]


@pytest.fixture(scope="module")
def netns():
    """A namespace with the guests' interface name, as keepalived -t and nft -c need."""
    need("ip")
    name = f"whr{os.getpid() % 100000:05d}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"], ["link", "set", "eth0", "up"],
                    ["addr", "add", "10.1.1.11/24", "dev", "eth0"]):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="module")
def script_user():
    """keepalived's script_user must exist for `keepalived -t` to accept enable_script_security."""
    user = Paths().script_user
    if subprocess.run(["id", "-u", user], capture_output=True).returncode != 0:
        run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user])
    return user


def check_shell(text: str, tmp: Path, name: str, partial: bool = False):
    """bash -n always; shellcheck on whole scripts (a partial is checked inside its includers)."""
    f = tmp / (name.replace("/", "_").removesuffix(".j2"))
    f.write_text(text)
    run(["bash", "-n", str(f)])
    if not partial:
        run([need("shellcheck"), "-S", "warning", "-s", "bash", str(f)])


@pytest.mark.parametrize("stack,family,cfg", CONFIGS, ids=IDS)
def test_keepalived_conf(stack, family, cfg, netns, script_user, tmp_path):
    need("keepalived")
    # enable_script_security wants every directory above a script root-owned and not writable by
    # others: pytest's tmp_path (0700 under world-writable /tmp) is not, /run is.
    tmp_path = Path(f"/run/webha-render-{os.getpid()}-{stack}-{family}")
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir(mode=0o755)
    for node in cfg.web_hosts:
        paths = Paths(script_dir=str(tmp_path / node.name), state_dir=str(tmp_path / "run"),
                      keepalived_dir=str(tmp_path))
        ctx = keepalived_context(cfg, node.name, paths)
        (tmp_path / "vrrp-auth.conf").write_text(
            r("keepalived/vrrp-auth.conf.j2", auth_pass=FAKE_SECRETS["vrrpAuthPass"]))
        Path(paths.script_dir).mkdir(mode=0o755)
        os.chmod(paths.script_dir, 0o755)
        for script in ("check_nginx.sh", "notify.sh", "release-vip.sh", "vip-held.sh", "nginx-exit.sh"):
            text = r(f"keepalived/{script}.j2", **ctx)
            check_shell(text, tmp_path, f"{node.name}-{script}.j2")
            (Path(paths.script_dir) / script).write_text(text)
            (Path(paths.script_dir) / script).chmod(0o755)
        conf = tmp_path / f"{node.name}-keepalived.conf"
        conf.write_text(r("keepalived/keepalived.conf.j2", **ctx))
        res = subprocess.run(["ip", "netns", "exec", netns, "keepalived", "-t", "-l", "-f", str(conf)],
                             capture_output=True, text=True, timeout=30)
        assert keepalived_test_passed(res.returncode), f"keepalived -t rejected {node.name}: {res.stdout}{res.stderr}"
        assert f"virtual_router_id {cfg.vrrp.virtual_router_id}" in conf.read_text()
        text, hc = conf.read_text(), cfg.vrrp.health_check
        # keepalived kills the check 1 s after its answer limit: a slow start on a busy node is no
        # failure (bench/soak.py's first run: every false transition was a killed check).
        assert f"    timeout {hc.timeout + 1}\n" in text
        assert f"read -r -t {hc.timeout} " in (Path(paths.script_dir) / "check_nginx.sh").read_text()
        assert ("vrrp_rt_priority 50" in text) is cfg.vrrp.realtime
        # keepalived must ask for more than the hard RLIMIT_RTTIME its unit gives it: its own
        # setrlimit fails and it never resets the limit to 0 on a reload (tests/lab/test_detector.py).
        rt = ctx["keepalived"]["rttime"]
        asked = [int(l.split()[1]) for l in text.splitlines() if l.strip().startswith("vrrp_rlimit_rttime ")]
        assert asked == ([rt["keepalived"]] if cfg.vrrp.realtime else []) and rt["keepalived"] > rt["hard"]
        assert ("track_file {" in text) is hc.track_file
    shutil.rmtree(tmp_path)


def test_keepalived_rejects_broken_config(netns, tmp_path):
    """The check has teeth: a config naming a missing interface is rejected, not 'passed'."""
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.dev.yaml", overrides={"network": {"interface": "eth9"}})
    conf = tmp_path / "bad.conf"
    conf.write_text(render("keepalived/keepalived.conf.j2", **keepalived_context(cfg, "web01")))
    res = subprocess.run(["ip", "netns", "exec", netns, "keepalived", "-t", "-l", "-f", str(conf)],
                         capture_output=True, text=True, timeout=30)
    assert not keepalived_test_passed(res.returncode)
    assert "Non-existent interface" in res.stdout + res.stderr


@pytest.mark.parametrize("stack,family,cfg", CONFIGS, ids=IDS)
def test_nginx_site(stack, family, cfg, tmp_path):
    need("nginx")
    for host in cfg.web_hosts:
        d = tmp_path / host.name
        for sub in ("logs", "nginx/tmp"):
            (d / sub).mkdir(parents=True)
        paths = Paths(nginx_pid=str(d / "nginx.pid"), nginx_site=str(d / "shop.conf"),
                      log_dir=str(d / "logs"), app_root=str(d / "www"))
        ctx = host_context(cfg, host, paths)
        Path(paths.nginx_site).write_text(r("nginx/shop.conf.j2", **ctx))
        main = d / "nginx.conf"
        main.write_text(r("lab/nginx-main.conf.j2", **ctx, lab={"dir": str(d)}))
        run(["nginx", "-t", "-q", "-c", str(main), "-e", str(d / "logs" / "startup.log")])
        # The lab's stand-in for nginx.service + webha's drop-in (webha/testbed/lab.py).
        check_shell(r("lab/nginx-service.sh.j2", **ctx, lab={"dir": str(d), "nginx_conf": str(main)}),
                    tmp_path, f"{host.name}-nginx-service.sh.j2")


@pytest.mark.parametrize("stack,family,cfg", CONFIGS, ids=IDS)
def test_php(stack, family, cfg, tmp_path):
    need("php")
    host = cfg.web_hosts[0]
    ctx = host_context(cfg, host)
    for name, extra in (("app/application/database.php.j2", {"db_host": str(cfg.db_host.ip), "db_password": FAKE_SECRETS["dbPassword"]}),
                        ("app/public/index.php.j2", {}), ("app/public/order.php.j2", {}),
                        ("app/application/shop_order.php.j2", {})):
        f = tmp_path / Path(name).name.removesuffix(".j2")
        f.write_text(r(name, **ctx, **extra))
        run(["php", "-l", str(f)])
    out = run(["php", "-r", f"var_export((require '{tmp_path / 'database.php'}')['username']);"]).stdout
    assert out == repr(cfg.database.app_user)
    # database.php out of php-fpm's opcache (a move switches it): the ini parses, names the
    # blacklist, and the blacklist names the app's database.php
    ini = tmp_path / "99-webha.ini"
    ini.write_text(r("php/opcache-webha.ini.j2", **ctx))
    out = run(["php", "-r", f"echo parse_ini_file('{ini}')['opcache.blacklist_filename'];"]).stdout
    assert out == ctx["paths"]["opcache_blacklist"]
    assert r("php/opcache-blacklist.txt.j2", **ctx).split() == [cfg.app.database_php]


@pytest.mark.parametrize("stack,family,cfg", CONFIGS, ids=IDS)
def test_firewall(stack, family, cfg, netns, tmp_path):
    for host in cfg.hosts:
        ctx = host_context(cfg, host)
        if family == "debian":
            f = tmp_path / f"{host.name}.nft"
            f.write_text(r("firewall/nftables.conf.j2", **ctx))
            # As on a minimal guest: no /etc/protocols (netbase), so no protocol names.
            run(["unshare", "-m", "sh", "-c", 'mount --bind /dev/null /etc/protocols && exec "$@"',
                 "sh", "ip", "netns", "exec", netns, need("nft"), "-c", "-f", str(f)])
            text = f.read_text()
            assert "policy drop" in text
            if host.role == "db":
                assert "tcp dport 3306" in text and "10.1.1.11, 10.1.1.13" in text
            else:
                assert "ip protocol 112" in text
        else:
            text = r("firewall/firewalld.sh.j2", **ctx)
            check_shell(text, tmp_path, f"{host.name}-firewalld.sh")
            if host.role == "web":
                assert "--destination 224.0.0.18 --protocol vrrp -j ACCEPT" in text


@pytest.mark.parametrize("stack,family,cfg", CONFIGS, ids=IDS)
def test_cloud_init(stack, family, cfg, tmp_path):
    for host in cfg.hosts:
        ctx = host_context(cfg, host)
        fw = "firewall/nftables.conf.j2" if family == "debian" else "firewall/firewalld.sh.j2"
        key = generate_host_key()
        user = r("cloud-init/user-data.yaml.j2", **ctx, etc_hosts=r("hosts.j2", **ctx),
                 firewall=render(fw, **ctx), ssh_user=cfg.ssh.user, ssh_public_key="ssh-ed25519 AAAAtest",
                 host_key_private=key, host_key_public=public_key(key))
        assert user.startswith("#cloud-config\n")
        doc = yaml.safe_load(user)
        # the stack's host key, and no other key made (cloud-init schema checks the keys' names)
        assert doc["ssh_keys"] == {"ed25519_private": key, "ed25519_public": public_key(key)}
        assert doc["ssh_deletekeys"] is True and doc["ssh_genkeytypes"] == ["ed25519"]
        assert doc["hostname"] == host.name and doc["fqdn"] == host.fqdn
        hosts_file = next(f for f in doc["write_files"] if f["path"] == "/etc/hosts")["content"]
        assert all(h.fqdn in hosts_file for h in cfg.hosts)
        net = yaml.safe_load(r("cloud-init/network-config.yaml.j2", **ctx, mac=mac_for(host.ip)))
        assert net["ethernets"]["eth0"]["addresses"] == [f"{host.ip}/{cfg.network.cidr.prefixlen}"]
        meta = yaml.safe_load(r("cloud-init/meta-data.yaml.j2", **ctx, instance_key=stack))
        assert meta["local-hostname"] == host.name
        f = tmp_path / f"{host.name}-user-data"
        f.write_text(user)
        run([need("cloud-init"), "schema", "--config-file", str(f)])


@pytest.mark.parametrize("stack,family,cfg", CONFIGS, ids=IDS)
def test_scripts(stack, family, cfg, tmp_path):
    for host in cfg.hosts:
        ctx = host_context(cfg, host)
        scripts = {"scripts/host-prep.sh.j2": ctx,
                   "scripts/host-key-install.sh.j2": {**ctx, "public_key": "ssh-ed25519 AAAA'$x y",
                                                      "ssh_port": cfg.ssh.port}}
        if host.role == "web":
            kctx = keepalived_context(cfg, host.name)
            scripts.update({
                "scripts/web-install.sh.j2": {**ctx, "staging": "/var/lib/webha/staging/x"},
                "scripts/web-remove.sh.j2": ctx,
                "scripts/app-config.sh.j2": {**ctx, "db_host": str(cfg.db_host.ip), "app_phase": "deploy"},
                "scripts/app-config.sh.j2 before-move": {**ctx, "db_host": "10.1.1.11", "app_phase": "before-move"},
                "scripts/app-config.sh.j2 switch": {**ctx, "db_host": str(cfg.db_host.ip), "app_phase": "switch"},
                "scripts/keepalived-apply.sh.j2": {**kctx, "staging": "/var/lib/webha/staging/y"},
                "scripts/keepalived-quiesce.sh.j2": {**kctx, "staging": "/var/lib/webha/staging/q"},
                "scripts/keepalived-remove.sh.j2": kctx,
                "scripts/keepalived-start.sh.j2": {**kctx, "expect_state": "MASTER",
                                                   "instance_id": "virtual_router_id 51"},
                "scripts/keepalived-gate-node.sh.j2": kctx,
            })
        for name, c in scripts.items():
            check_shell(r(name.split()[0], **c), tmp_path, f"{host.name}-{name.replace(' ', '-')}")
        # each guest runs only its role's services (the e2e tier checks them on the VMs)
        stops = [l for l in r("scripts/host-prep.sh.j2", **ctx).splitlines() if l.startswith("stop_unused ")]
        want = {"web01": [], "web02": ["stop_unused mariadb.service"],
                "mysql01": ["stop_unused nginx.service 'php*-fpm.service' keepalived.service"]}
        assert stops == want[host.name], (host.name, stops)
        if host.role == "web":  # included by quiesce, apply, start; checked there, counted here
            r("scripts/keepalived-identity.sh.j2")
            r("scripts/keepalived-standdown.sh.j2", **kctx)
            r("keepalived/holds-vip.sh.j2", **kctx)


@pytest.mark.parametrize("stack,family,cfg", CONFIGS, ids=IDS)
def test_migration_steps(stack, family, cfg, tmp_path):
    """Every db template, with the context its plan step gives it (seed step included)."""
    from components.migration_plan import template_contexts
    from components.topology import base_context

    for name, extra in template_contexts(cfg).items():
        text = r(name, **{**base_context(cfg), **extra})
        check_shell(text, tmp_path, f"{stack}-{name}", partial=name == "db/lib.sh.j2")


@pytest.mark.parametrize("script", sorted([*ROOT.glob("scripts/*.sh"), ROOT / ".ci" / "run"]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_project_scripts(script):
    """The project's own scripts (setup, CI) meet the bar the rendered ones do."""
    run(["bash", "-n", str(script)])
    run([need("shellcheck"), "-x", str(script)], cwd=ROOT)


@pytest.mark.parametrize("stack,family,cfg", CONFIGS, ids=IDS)
def test_keepalived_systemd_files(stack, family, cfg, script_user, tmp_path):
    """The keepalived drop-in (restart, release the VIP after any stop) and nginx's (its exit for
    keepalived's tracked file) by `systemd-analyze verify`;
    the state dir's tmpfiles.d line by `systemd-tmpfiles --create` into a scratch root."""
    ctx = keepalived_context(cfg, cfg.web_hosts[0].name,
                             Paths(script_dir=str(tmp_path / "scripts")))
    units, scripts = tmp_path / "units", tmp_path / "scripts"
    scripts.mkdir()
    # keepalived's drop-in runs release-vip.sh; nginx's runs nginx-exit.sh (its exit -> the file
    # keepalived tracks). Each unit with its drop-in, by `systemd-analyze verify`.
    for unit, dropin, script in (("keepalived", "systemd-override.conf", "release-vip.sh"),
                                 ("nginx", "nginx-override.conf", "nginx-exit.sh")):
        (units / f"{unit}.service.d").mkdir(parents=True)
        shutil.copy(f"/lib/systemd/system/{unit}.service", units)
        (units / f"{unit}.service.d" / "webha.conf").write_text(r(f"keepalived/{dropin}.j2", **ctx))
        (scripts / script).write_text(r(f"keepalived/{script}.j2", **ctx))
        (scripts / script).chmod(0o755)
        res = subprocess.run([need("systemd-analyze"), "verify", str(units / f"{unit}.service")],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"})
        assert res.returncode == 0 and "Unknown" not in res.stderr, (unit, res.stderr)
        assert "Failed to parse" not in res.stderr and "Invalid" not in res.stderr, (unit, res.stderr)
    dropin = (units / "keepalived.service.d" / "webha.conf").read_text()
    rt = ctx["keepalived"]["rttime"]
    # Only a real-time keepalived gets its limit (and loses CAP_SYS_RESOURCE): the guests of a
    # stack without `realtime` (the TCG stacks) run keepalived as they always did.
    limits = (f"\nLimitRTTIME={rt['soft']}us:{rt['hard']}us\n",
              "\nCapabilityBoundingSet=~CAP_SYS_RESOURCE\n")
    for line in limits:
        assert (line in dropin) == bool(ctx["keepalived"]["realtime"]), (stack, line, dropin)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for f in ("passwd", "group"):
        shutil.copy(f"/etc/{f}", root / "etc")
    conf = tmp_path / "webha.conf"
    conf.write_text(r("keepalived/tmpfiles.conf.j2", **ctx))
    run([need("systemd-tmpfiles"), "--create", f"--root={root}", str(conf)])
    made = root / ctx["paths"]["state_dir"].lstrip("/")
    assert made.is_dir() and made.stat().st_uid == pwd.getpwnam(ctx["paths"]["script_user"]).pw_uid


@pytest.mark.parametrize("stack,family,cfg", CONFIGS, ids=IDS)
def test_event_reader(stack, family, cfg, tmp_path):
    """The event reader (python3, compiled; its values are Python literals) and its unit
    (`systemd-analyze verify`, which also wants the ExecStart file to exist)."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for node in cfg.web_hosts:
        ctx = keepalived_context(cfg, node.name, Paths(script_dir=str(scripts)))
        reader = scripts / "webha-events.py"
        reader.write_text(r("keepalived/webha-events.py.j2", **ctx))
        reader.chmod(0o755)
        run(["python3", "-m", "py_compile", str(reader)])
        ns: dict = {}
        exec(compile(reader.read_text(), str(reader), "exec"), ns)  # definitions only (__main__ guarded)
        assert ns["NODE"] == node.name and ns["VIP"] == str(cfg.vrrp.vip)
        assert ns["FIFO"] == f"{ctx['paths']['state_dir']}/notify.fifo"
        units = tmp_path / f"units-{node.name}"
        units.mkdir()
        (units / "webha-events.service").write_text(r("keepalived/webha-events.service.j2", **ctx))
        res = subprocess.run([need("systemd-analyze"), "verify", str(units / "webha-events.service")],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"})
        # systemd only warns about (and ignores) a line it cannot parse: any word from it fails.
        assert res.returncode == 0 and not res.stderr.strip(), res.stderr


def test_every_template_was_rendered():
    """Runs last in this module: a template nobody renders is a template nobody checked."""
    unrendered = [t for t in template_names() if t not in RENDERED]
    assert not unrendered, f"templates with no render check: {unrendered}"


# --------------------------------------------------------------------------- VRRP auth pass
# The dev stack ships VRRPv3 without a password: these tests take its VRRPv2 + PASS variant.
PASS_AUTH = {"vrrp": {"version": 2, "advertInt": 1, "authType": "PASS"}}


def _keepalived_password(netns: str, cfg, node: str, auth_pass: str, tmp: Path) -> str:
    """The password keepalived itself parsed from the rendered config + include (its -d dump)."""
    paths = Paths(keepalived_dir=str(tmp), script_dir=str(tmp / "scripts"), state_dir=str(tmp / "run"))
    (tmp / "vrrp-auth.conf").write_text(render("keepalived/vrrp-auth.conf.j2", auth_pass=auth_pass))
    conf = tmp / "keepalived.conf"
    conf.write_text(render("keepalived/keepalived.conf.j2", **keepalived_context(cfg, node, paths)))
    proc = subprocess.run(
        ["timeout", "-s", "TERM", "1", "ip", "netns", "exec", netns, "keepalived", "-n", "-l", "-D", "-d",
         "-f", str(conf), "-p", str(tmp / "k.pid"), "-r", str(tmp / "v.pid"), "-c", str(tmp / "c.pid")],
        capture_output=True, text=True, timeout=30)
    found = [l.split("Password = ", 1)[1] for l in (proc.stdout + proc.stderr).splitlines() if "Password = " in l]
    assert found, f"keepalived printed no password for {node}:\n{proc.stdout}{proc.stderr}"
    return found[0]


@pytest.mark.parametrize("auth", ["labpass1", "a'b\\c", "@x;y%z^", "~a(b)[c]", "<a>=b+c,", "a:b/c?d|", "a&b`c*"])
def test_auth_pass_is_literal_in_keepalived(auth, netns, script_user):
    """Every accepted kind of password reaches keepalived on both nodes as the same literal."""
    need("keepalived")
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.dev.yaml", overrides=PASS_AUTH, secrets={**FAKE_SECRETS, "vrrpAuthPass": auth})
    tmp = Path(f"/run/webha-render-auth-{os.getpid()}")
    try:
        for node in ("web01", "web02"):
            shutil.rmtree(tmp, ignore_errors=True)
            (tmp / "scripts").mkdir(parents=True, mode=0o755)
            assert _keepalived_password(netns, cfg, node, auth, tmp) == auth, node
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("auth", ["$_RANDOM", "$_PWD", "a#b", "a!b", "a b"])
def test_auth_pass_keepalived_would_change_is_refused(auth, netns, script_user):
    """Why the config refuses them: keepalived does not keep them literally (and for $_RANDOM,
    differently on each node), so the refusal is checked against the real parser."""
    from components.config import ConfigError

    need("keepalived")
    with pytest.raises(ConfigError, match="webha:vrrpAuthPass"):
        load_stack_file(ROOT / "stacks" / "Pulumi.dev.yaml", overrides=PASS_AUTH, secrets={**FAKE_SECRETS, "vrrpAuthPass": auth})
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.dev.yaml", overrides=PASS_AUTH)
    tmp = Path(f"/run/webha-render-auth-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "scripts").mkdir(parents=True, mode=0o755)
        assert _keepalived_password(netns, cfg, "web01", auth, tmp) != auth
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- YAML booleans
@pytest.mark.parametrize("name", ["on", "no", "yes", "off", "true", "null", "0x1f", "1e3"])
def test_cloud_init_values_stay_strings(name, tmp_path):
    """A host named like a YAML 1.1 boolean/null/number stays that string in every cloud-init file."""
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.dev.yaml", overrides={
        "hosts": [{"name": name, "fqdn": f"{name}.itcast.cn", "ip": "10.1.1.11", "role": "web", "priority": 150},
                  {"name": "mysql01", "fqdn": "mysql01.itcast.cn", "ip": "10.1.1.12", "role": "db"},
                  {"name": "web02", "fqdn": "web02.itcast.cn", "ip": "10.1.1.13", "role": "web", "priority": 100}],
        "database": {"sourceHost": name}})
    host = cfg.host(name)
    ctx = host_context(cfg, host)
    user = r("cloud-init/user-data.yaml.j2", **ctx, etc_hosts=r("hosts.j2", **ctx),
             firewall=render("firewall/nftables.conf.j2", **ctx), ssh_user="on",
             ssh_public_key="ssh-ed25519 AAAAtest no", host_key_private=generate_host_key(),
             host_key_public="ssh-ed25519 AAAAtest no")
    doc = yaml.safe_load(user)
    assert doc["hostname"] == name and doc["fqdn"] == f"{name}.itcast.cn"
    assert doc["users"][1]["name"] == "on"
    meta = yaml.safe_load(r("cloud-init/meta-data.yaml.j2", **ctx, instance_key="no"))
    assert meta == {"instance-id": f"{name}-no", "local-hostname": name}
    net = yaml.safe_load(r("cloud-init/network-config.yaml.j2", **ctx, mac=mac_for(host.ip)))
    assert list(net["ethernets"]) == ["eth0"] and net["ethernets"]["eth0"]["addresses"] == ["10.1.1.11/24"]
    f = tmp_path / "user-data"
    f.write_text(user)
    run([need("cloud-init"), "schema", "--config-file", str(f)])


def test_app_config_phases_on_a_real_file(tmp_path):
    """The app config step as rendered, run with bash and php on files here: before the move it
    points the app at the source, but never back once database.php reads the target (switched by
    the move, or a tier deployed before in snapshot mode); the switch points it at the target and
    leaves an already switched file as it is."""
    need("php")
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.local.yaml")
    cfg = cfg.model_copy(update={"app": cfg.app.model_copy(update={"database_php": str(tmp_path / "database.php")})})
    host = cfg.web_hosts[1]
    ctx = host_context(cfg, host)
    source, target = str(cfg.host(cfg.database.source_host).ip), str(cfg.db_host.ip)

    def php_for(ip):
        return r("app/application/database.php.j2", **ctx, db_host=ip, db_password="pw 'x' $y")

    def step(phase, ip):
        script = tmp_path / f"app-config-{phase}.sh"
        script.write_text(r("scripts/app-config.sh.j2", **ctx, db_host=ip, app_phase=phase))
        return run(["bash", str(script)], input=php_for(ip)).stdout

    f = tmp_path / "database.php"
    assert "-> 10.1.1.11" in step("before-move", source) and f.read_text() == php_for(source)
    assert "-> 10.1.1.11" in step("before-move", source)  # a re-run before the move
    assert "-> 10.1.1.12" in step("switch", target) and f.read_text() == php_for(target)
    assert "already points at 10.1.1.12" in step("switch", target)
    assert "left as it is" in step("before-move", source) and f.read_text() == php_for(target)


# --------------------------------------------------------------------------- the health check
class _Health:
    """nginx's /healthz as the check sees it, on loopback: answers ``status``, or hangs."""

    def __init__(self, status: int | None):
        import http.server
        import threading

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.paths.append(self.path)
                if status is None:  # a hung nginx: the connection is accepted, nothing comes back
                    time.sleep(20)
                    return
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *args):
                pass

        self.paths: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


import time  # noqa: E402  (used by the handler above)


def _check_script(tmp_path: Path, port: int, pid: str | None) -> Path:
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.local.yaml")
    ctx = keepalived_context(cfg, "web01", Paths(state_dir=str(tmp_path)))
    ctx["node"] = {**ctx["node"], "ip": "127.0.0.1"}
    ctx["app"] = {**ctx["app"], "http_port": port}
    ctx["paths"] = {**ctx["paths"], "nginx_pid": str(tmp_path / "nginx.pid")}
    if pid is not None:
        (tmp_path / "nginx.pid").write_text(pid + "\n")
    script = tmp_path / "check_nginx.sh"
    script.write_text(r("keepalived/check_nginx.sh.j2", **ctx))
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("status,pid,ok", [
    (200, "self", True), (503, "self", False), (None, "self", False),
    (200, None, False), (200, "999999999", False), ("closed", "self", False),
], ids=["200", "503", "hung", "no-pidfile", "dead-pid", "port-closed"])
def test_the_health_check_judges_nginx_by_its_answer(tmp_path, status, pid, ok):
    """The rendered check_nginx.sh against a real HTTP server on loopback: 0 only for a live
    nginx pid and a 200 from /healthz; a hung server fails within the check's own timeout."""
    server = _Health(None if status in (None, "closed") else status)
    port = server.port
    if status == "closed":
        server.close()
    script = _check_script(tmp_path, port, None if pid is None else (str(os.getpid()) if pid == "self" else pid))
    t0 = time.monotonic()
    res = subprocess.run([str(script)], capture_output=True, text=True, timeout=30)
    took = time.monotonic() - t0
    if status != "closed":
        server.close()
    assert (res.returncode == 0) is ok, (res.returncode, res.stderr)
    if ok:
        assert server.paths == ["/healthz"]
    if status is None:
        assert took < 8  # its own read timeout (2 s here) ended it, not the server (20 s)


def test_the_health_check_starts_no_process(tmp_path):
    """Bash builtins only: on a busy TCG guest every exec (curl and its libraries) cost seconds
    and made keepalived kill the check (`timed_out`) while nginx was fine."""
    server = _Health(200)
    script = _check_script(tmp_path, server.port, str(os.getpid()))
    trace = tmp_path / "trace"
    res = subprocess.run([need("strace"), "-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork",
                          "-o", str(trace), str(script)], capture_output=True, text=True, timeout=30)
    server.close()
    assert res.returncode == 0, res.stderr
    calls = [line for line in trace.read_text().splitlines() if "(" in line and "resumed" not in line]
    assert len([c for c in calls if "execve(" in c]) == 1 and not [c for c in calls if "execve(" not in c], calls
