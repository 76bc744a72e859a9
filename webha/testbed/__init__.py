"""Test harnesses, not operator tools: what the lab, migration and benchmark tiers stand up.

* :mod:`.netns` - network namespaces as lab hosts (one implementation of stale-lab cleanup)
* :mod:`.lab` - the HA lab: real keepalived + nginx per web host in namespaces
* :mod:`.mariadb_lab` - real MariaDB servers on lab hosts, running the migration steps
* :mod:`.shopdata` - a deterministic sample ``ds_shop`` database

The operator tools (drill, split-brain detector, tier check, holder stream) live one level up in
:mod:`webha` and reach real guests over SSH as well as these labs.
"""
