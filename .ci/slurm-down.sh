#!/usr/bin/env bash
# .ci/slurm-down.sh -- stop the daemons started by .ci/slurm-up.sh
# (slurmd, slurmctld, munged). Idempotent; only processes named in the pid
# files written by those daemons are signalled. Always exits 0 unless a
# daemon refuses to die even after SIGKILL.
set -euo pipefail

RUN_DIR=/run/slurm
log() { echo "[slurm-down] $*" >&2; }

pid_alive() {
    local pidfile="$1" name="$2" pid
    [ -s "$pidfile" ] || return 1
    pid="$(cat "$pidfile" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    proc_alive "$pid" "$name"
}

# proc_alive PID NAME -> 0 while process PID exists and is NAME (not a zombie).
# Daemons delete their own pid file early during shutdown, so waiting for
# an exit must look at the pid, not at the pid file.
proc_alive() {
    local pid="$1" name="$2" comm st
    comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
    [ "$comm" = "$name" ] || return 1
    st="$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" || return 1
    [ "$st" != "Z" ]
}

# Cancel leftover jobs so slurmstepd/job processes do not linger.
if pid_alive "$RUN_DIR/slurmctld.pid" slurmctld && command -v scancel >/dev/null 2>&1; then
    scancel --quiet --full --user="$(id -un)" 2>/dev/null || true
fi

rc=0
stop() {  # stop PIDFILE NAME
    local pidfile="$1" name="$2" pid
    if ! pid_alive "$pidfile" "$name"; then
        log "$name not running"
        rm -f "$pidfile"
        return 0
    fi
    pid="$(cat "$pidfile")"
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 75); do          # up to 15 s
        proc_alive "$pid" "$name" || break
        sleep 0.2
    done
    if proc_alive "$pid" "$name"; then
        log "$name did not exit, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 1
    fi
    if proc_alive "$pid" "$name"; then
        log "ERROR: $name (pid $pid) still running"
        rc=1
    else
        rm -f "$pidfile"
    fi
}

stop "$RUN_DIR/slurmd.pid" slurmd
stop "$RUN_DIR/slurmctld.pid" slurmctld
stop /run/munge/munged.pid munged
exit "$rc"
