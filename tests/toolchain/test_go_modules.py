"""The toolchain's Go modules (toolchain/*) are formatted, vetted and tested.

They run every step of `pulumi up` on the guests (the command provider stand-in), start the
program (the language host) and map libvirt (the bridge glue): code that is built by
scripts/setup-toolchain.sh and must pass the same checks as any Go code. The Go compiler is the
one that script uses (scripts/find-go.sh), with the same GOFLAGS/CGO_ENABLED, so the compile cache
of a toolchain build serves these runs too.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.toolchain

ROOT = Path(__file__).resolve().parents[2]
TOOLCHAIN = ROOT / "toolchain"
MODULES = sorted(p.parent.name for p in TOOLCHAIN.glob("*/go.mod"))
# A cold compile of the libvirt module (the Terraform bridge) takes minutes: room for it.
TIMEOUT = 1200


def _go() -> str:
    found = subprocess.run([str(ROOT / "scripts/find-go.sh")], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.fail(f"no Go compiler: {found.stderr.strip()}")
    return found.stdout.strip()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, GOFLAGS="-trimpath -buildvcs=false", CGO_ENABLED="0")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def test_modules_found():
    assert MODULES == ["command", "langhost", "libvirt"]


def test_gofmt_clean():
    gofmt = str(Path(_go()).parent / "gofmt")
    r = _run([gofmt, "-l", "."], TOOLCHAIN)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "", f"not gofmt-formatted:\n{r.stdout}"


@pytest.mark.parametrize("module", MODULES)
def test_go_vet(module):
    r = _run([_go(), "vet", "./..."], TOOLCHAIN / module)
    assert r.returncode == 0, f"go vet in toolchain/{module}:\n{r.stdout}{r.stderr}"


@pytest.mark.parametrize("module", MODULES)
def test_go_test(module):
    r = _run([_go(), "test", "-count=1", "./..."], TOOLCHAIN / module)
    assert r.returncode == 0, f"go test in toolchain/{module}:\n{r.stdout}{r.stderr}"
    assert "\nok " in "\n" + r.stdout, f"toolchain/{module} ran no tests:\n{r.stdout}"


def test_patched_go_libvirt(tmp_path):
    """go-libvirt as the libvirt provider is built with it (scripts/golibvirt-patched.sh: webha's
    rpc.go, toolchain/libvirt/_golibvirt), vetted and tested in the provider module's graph."""
    dest = tmp_path / "go-libvirt"
    r = subprocess.run([str(ROOT / "scripts/golibvirt-patched.sh"), str(dest)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    module = tmp_path / "provider"
    module.mkdir()
    for name in ("go.mod", "go.sum"):
        shutil.copy(TOOLCHAIN / "libvirt" / name, module / name)
    pkg = "github.com/digitalocean/go-libvirt"
    for args in (["mod", "edit", "-replace", f"{pkg}={dest}"], ["vet", pkg], ["test", "-count=1", "-v", pkg]):
        r = _run([_go(), *args], module)
        assert r.returncode == 0, f"go {' '.join(args)}:\n{r.stdout}{r.stderr}"
    assert "--- PASS: TestWebhaDownloadInAnyPacketOrder" in r.stdout, r.stdout


def test_build_script_only_orchestrates():
    """The build script holds no embedded sources (no heredocs) and stays short."""
    script = (ROOT / "scripts/setup-toolchain.sh").read_text()
    assert not re.search(r"<<(?!<)-?\s*['\"]?[A-Za-z_]", script), "a heredoc in setup-toolchain.sh"
    assert len(script.splitlines()) < 300
