"""How to read the verdict of the real tools that check rendered configs.

keepalived 2.2.7 (Debian 12) ends a *successful* ``keepalived -t`` of a config that has scripts
(``vrrp_script``, ``notify``) by sending SIGTERM to itself: exit status 143 in a shell, -15 from
``subprocess``, with nothing printed. A rejected config exits with a positive status (e.g. 5,
"Non-existent interface specified in configuration") and says why. Measured here; the same rule
is in templates/scripts/keepalived-apply.sh.j2 for the real hosts.
"""

KEEPALIVED_TEST_OK = (0, 143, -15)


def keepalived_test_passed(returncode: int) -> bool:
    return returncode in KEEPALIVED_TEST_OK
