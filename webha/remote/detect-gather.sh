#!/bin/bash
# The split-brain detector's ONE session per web node (webha/splitbrain.py gather()): everything it
# reads from a node, read-only, in one go, instead of one SSH connection per fact.
#
# Args: INTERFACE STATE_FILE KEEPALIVED_PID KEEPALIVED_CONF ADVERT_INT_DEFAULT stats|nostats
# Protocol: prints "@@webha ready", waits for one line on stdin, prints its clock at once (the
# caller times that round trip on the open session: the clock read's uncertainty), then sections
#   @@webha begin NAME
#   ...output...
#   @@webha end NAME RC
# (stderr of a section follows as section NAME.err). Sections: clock, addr, state, nft, conf,
# include:PATH (each file keepalived.conf includes), window, stats1, stats2.
set -u
iface=$1 state_file=$2 pidfile=$3 conf=$4 window_default=$5 do_stats=$6
err=$(mktemp)
trap 'rm -f "$err"' EXIT

section() {  # NAME CMD...: stdout and exit status; stderr as NAME.err when not empty
    local name=$1 rc=0
    shift
    echo "@@webha begin $name"
    "$@" 2>"$err" || rc=$?
    echo "@@webha end $name $rc"
    if [ -s "$err" ]; then
        echo "@@webha begin $name.err"
        cat "$err"
        echo "@@webha end $name.err 0"
    fi
}

nft_ruleset() {
    command -v nft >/dev/null || return 3
    nft -j list ruleset
}

stats() {  # keepalived's counters: the STATS signal makes it write /tmp/keepalived.stats
    local sig p
    sig=$(keepalived --signum=STATS) || return 1
    p=$(cat "$pidfile") || return 1
    rm -f /tmp/keepalived.stats
    kill -s "$sig" "$p" || return 1
    for _ in $(seq 1 40); do
        if [ -s /tmp/keepalived.stats ]; then
            sleep 0.05
            cat /tmp/keepalived.stats
            return 0
        fi
        sleep 0.05
    done
    echo "keepalived wrote no /tmp/keepalived.stats within 2 s" >&2
    return 1
}

window() {  # 3 adverts of the deployed config (at least 0.5 s): long enough to hear the master
    local adv
    adv=$(awk '$1 == "advert_int" { print $2 }' "$conf" 2>/dev/null | sort -g | tail -n 1)
    awk -v a="${adv:-$window_default}" 'BEGIN { w = 3 * a; if (w < 0.5) w = 0.5; print w }'
}

echo "@@webha ready"
read -r _
section clock date +%s.%N
section addr ip -4 -o addr show dev "$iface"
section state cat "$state_file"
section nft nft_ruleset
section conf cat "$conf"
# Included files (the VRRP password lives in one): keepalived reads them as part of the config.
while read -r inc; do
    section "include:$inc" cat "$inc"
done < <(awk '$1 == "include" { print $2 }' "$conf" 2>/dev/null)
[ "$do_stats" = stats ] || exit 0
w=$(window)
section window echo "$w"
section stats1 stats
sleep "$w"
section stats2 stats
