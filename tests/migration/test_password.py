"""The app password round trip with every character that has a meaning somewhere on its way:
stdin -> target-prepare's SQL (CREATE USER / ALTER USER) -> database.php (render()) -> PHP's
parser -> mysqli login to the migrated database from both web hosts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr

from components.render import render
from components.topology import base_context

from .helpers import migrating

pytestmark = pytest.mark.migration

# A leading '{', both quotes, a backslash (also before a quote), '$' and shell/PHP variable
# syntax, spaces (leading, inner, trailing), CJK, '#' and ';' (option-file comment characters).
PASSWORD = "{'a\"b\\c\\' $HOME ${x} 密码 #;`x` "
PHP_LOGIN = Path(__file__).with_name("php_login.php")


def test_app_password_with_quotes_backslash_dollar_spaces_cjk_works_end_to_end(fresh_target, tmp_path):
    php = shutil.which("php")
    if not php:
        pytest.fail("php is missing: apt-get install php-cli php-mysql")
    lab = fresh_target
    # Built past the config validation that another change relaxes (components/config.py).
    cfg = lab.cfg.model_copy(update={"db_password": SecretStr(PASSWORD)})
    with migrating(lab, cfg):
        for res in lab.run_plan()[1:]:
            assert res.returncode == 0, str(res)
            assert PASSWORD not in res.output
    lab.state = "app-password-changed"

    ctx = base_context(cfg)
    text = render("app/application/database.php.j2", **ctx, db_host=ctx["database"]["target_ip"],
                  db_password=PASSWORD)
    conf = tmp_path / "database.php"
    conf.write_text(text)
    conf.chmod(0o644)
    tmp_path.chmod(0o755)
    for host in ("web01", "web02"):
        res = lab.lab.run(host, php, str(PHP_LOGIN), str(conf), "SELECT COUNT(*) FROM goods",
                          check=False, timeout=60)
        assert res.returncode == 0, f"{host}: {res.stdout}{res.stderr}"
        got_hex, count = res.stdout.split()
        assert bytes.fromhex(got_hex).decode() == PASSWORD  # PHP read exactly the configured bytes
        assert count == lab.src.value("SELECT COUNT(*) FROM ds_shop.goods")
    # ... and a password that differs in one character is refused (the login proves the password).
    wrong = tmp_path / "wrong.php"
    wrong.write_text(render("app/application/database.php.j2", **ctx, db_host=ctx["database"]["target_ip"],
                            db_password=PASSWORD.replace("密", "蜜")))
    wrong.chmod(0o644)
    res = lab.lab.run("web01", php, str(PHP_LOGIN), str(wrong), "SELECT 1", check=False, timeout=60)
    assert res.returncode != 0 and "Access denied" in res.stdout + res.stderr
