#!/usr/bin/env bash
# .ci/slurm-up.sh -- bring up a single-node SLURM cluster (no systemd, no
# cgroups, no accounting DB) for dask-jobqueue integration tests.
#
# Idempotent: safe to run when slurm is not installed, installed but stopped,
# or already up. Exits 0 only once `srun -N1 hostname` succeeds.
# Stop everything again with .ci/slurm-down.sh.
#
# Environment knobs (all optional):
#   SLURM_UP_TIMEOUT   seconds to wait for the node to become idle (default 60)
#   SLURM_PARTITION    partition name (default debug)
#
# Layout: config /etc/slurm/slurm.conf, logs /var/log/slurm/{slurmctld,slurmd}.log,
# pid files /run/slurm/{slurmctld,slurmd}.pid, /run/munge/munged.pid.
#
# ---------------------------------------------------------------------------
# dask-jobqueue usage that was verified end to end against this cluster
# (Debian 12, slurm-wlm 22.05.8, dask-jobqueue 0.9.0, distributed 2026.8.0,
# python 3.11); dask job start to first result takes ~4-5 s:
#
#   from dask_jobqueue import SLURMCluster
#   from distributed import Client
#   cluster = SLURMCluster(
#       cores=1, processes=1, memory="2GB",
#       queue="debug", walltime="00:10:00",
#       job_extra_directives=[],
#       local_directory="/tmp", log_directory="/tmp/slurm-logs",
#       interface="lo",          # scheduler + worker bind to 127.0.0.1
#   )
#   cluster.scale(jobs=1)
#   client = Client(cluster)
#   client.wait_for_workers(1, timeout=120)
#   assert client.submit(lambda x: x + 1, 1).result() == 2
#
# Notes / pitfalls:
#   * interface="lo" is not strictly needed here: without it the scheduler
#     picks the external NIC address (e.g. tcp://192.0.2.2:PORT) and, since the
#     worker job runs on this same machine, it still connects (verified). With
#     it, scheduler and worker (`--interface lo`) both use 127.0.0.1, so the
#     test does not depend on the CI box's NIC/addresses or firewall: pass it.
#     scheduler_options={"host": "127.0.0.1"} also works (verified) but only
#     pins the scheduler; interface="lo" covers scheduler AND workers.
#   * The job runs the worker with the same python (sys.executable), as root,
#     with the submitting shell's environment (SLURM exports env by default).
#   * memory="2GB" makes dask-jobqueue emit `#SBATCH --mem=2G`; the node's
#     RealMemory must be >= that or the job stays PENDING forever (Reason=
#     Resources / BadConstraints). RealMemory here is `free -m` minus a margin.
#   * No cgroup plugins are used (proctrack/linuxproc, task/none,
#     jobacct_gather/none), so nothing depends on the container's cgroup setup.
#   * SlurmdParameters=config_overrides: the node is never drained just because
#     the hardware slurmd detects differs slightly from slurm.conf.
#   * If you change slurm.conf by hand, run slurm-down.sh then slurm-up.sh
#     (this script rewrites slurm.conf and restarts the daemons when it changes).
# ---------------------------------------------------------------------------
set -euo pipefail

TIMEOUT="${SLURM_UP_TIMEOUT:-60}"
PARTITION="${SLURM_PARTITION:-debug}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
RUN_DIR=/run/slurm
LOG_DIR=/var/log/slurm
SPOOL_CTLD=/var/spool/slurmctld
SPOOL_D=/var/spool/slurmd

log() { echo "[slurm-up] $*" >&2; }
die() {
    echo "[slurm-up] ERROR: $*" >&2
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        if [ -f "$f" ]; then
            echo "----- last lines of $f -----" >&2
            tail -n 25 "$f" >&2 || true
        fi
    done
    exit 1
}

if [ "$(id -u)" -ne 0 ]; then
    die "must run as root (installs packages and starts system daemons)"
fi

# pid_alive PIDFILE NAME -> 0 if the pid in PIDFILE is a running NAME process
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

# ---------------------------------------------------------------- 1. install
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v munged >/dev/null 2>&1 || ! command -v srun >/dev/null 2>&1; then
    log "installing slurm-wlm + munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package maintainer scripts from trying to start services: there is
    # no init system here; this script starts the daemons itself.
    policy_created=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        policy_created=1
    fi
    apt_ok=0
    for attempt in 1 2 3; do
        if apt-get update -qq \
            && apt-get install -y -qq --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
                slurm-wlm munge >/dev/null; then
            apt_ok=1
            break
        fi
        log "apt-get failed (attempt $attempt), retrying in 5 s"
        sleep 5
    done
    if [ "$policy_created" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    [ "$apt_ok" = 1 ] || die "apt-get install slurm-wlm munge failed"
fi
command -v slurmctld >/dev/null 2>&1 || die "slurmctld still missing after install"

# ------------------------------------------------------------ 2. slurm.conf
NODE="$(hostname -s 2>/dev/null || true)"
[ -n "$NODE" ] || NODE=localhost
# The node name must resolve; fall back to localhost if it does not.
if ! getent hosts "$NODE" >/dev/null 2>&1; then
    log "hostname '$NODE' does not resolve, using localhost"
    NODE=localhost
fi

CPUS="$(nproc)"
MEM_TOTAL="$(free -m | awk '/^Mem:/ {print $2}')"
# margin: 5% of RAM, at least 256 MB, so RealMemory never exceeds what slurmd sees
MARGIN=$(( MEM_TOTAL / 20 ))
[ "$MARGIN" -ge 256 ] || MARGIN=256
REAL_MEM=$(( MEM_TOTAL - MARGIN ))
[ "$REAL_MEM" -ge 512 ] || REAL_MEM=512

mkdir -p "$CONF_DIR" "$RUN_DIR" "$LOG_DIR" "$SPOOL_CTLD" "$SPOOL_D"

NEW_CONF="$(mktemp)"
trap 'rm -f "$NEW_CONF"' EXIT
cat > "$NEW_CONF" <<EOF
# Generated by .ci/slurm-up.sh -- single-node CI cluster, do not edit by hand.
ClusterName=ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SPOOL_CTLD
SlurmdSpoolDir=$SPOOL_D
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups anywhere
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no accounting / job completion storage
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=60
KillWait=5
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

CONF_CHANGED=0
if [ ! -f "$CONF" ] || ! cmp -s "$NEW_CONF" "$CONF"; then
    log "writing $CONF (node $NODE, CPUs=$CPUS, RealMemory=$REAL_MEM)"
    install -m 0644 "$NEW_CONF" "$CONF"
    CONF_CHANGED=1
fi

# ------------------------------------------------------------------ 3. munge
if ! getent passwd munge >/dev/null 2>&1; then
    die "user 'munge' missing (munge package not installed correctly?)"
fi
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
    fi
fi
chown munge:munge /etc/munge /etc/munge/munge.key /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge

if ! pid_alive /run/munge/munged.pid munged; then
    log "starting munged"
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged \
        || die "munged failed to start"
fi
ok=0
for _ in $(seq 1 50); do
    if munge -n </dev/null | unmunge >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
done
[ "$ok" = 1 ] || die "munge round trip (munge -n | unmunge) fails"

# ----------------------------------------------------------- 3b. slurm daemons
# A changed slurm.conf needs fresh daemons (node name/memory may differ).
if [ "$CONF_CHANGED" = 1 ]; then
    for d in slurmd slurmctld; do
        if pid_alive "$RUN_DIR/$d.pid" "$d"; then
            pid="$(cat "$RUN_DIR/$d.pid")"
            log "config changed: stopping running $d (pid $pid)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 75); do
                proc_alive "$pid" "$d" || break
                sleep 0.2
            done
            if proc_alive "$pid" "$d"; then kill -KILL "$pid" 2>/dev/null || true; sleep 1; fi
            proc_alive "$pid" "$d" && die "could not stop old $d (pid $pid)"
            rm -f "$RUN_DIR/$d.pid"
        fi
    done
fi

if ! pid_alive "$RUN_DIR/slurmctld.pid" slurmctld; then
    log "starting slurmctld"
    # A stale pid file (daemon killed -9) would make the liveness check below
    # look at a dead pid before the new daemon has written its own.
    rm -f "$RUN_DIR/slurmctld.pid"
    # -c: start clean (no stale jobs/node state from an earlier run); -i: ignore
    # errors reading state files.
    /usr/sbin/slurmctld -c -i || die "slurmctld failed to start"
fi
ok=0
for _ in $(seq 1 $(( TIMEOUT * 2 ))); do
    if scontrol ping 2>/dev/null | grep -q 'is UP'; then ok=1; break; fi
    if [ -e "$RUN_DIR/slurmctld.pid" ] && ! pid_alive "$RUN_DIR/slurmctld.pid" slurmctld; then
        die "slurmctld exited during startup"
    fi
    sleep 0.5
done
[ "$ok" = 1 ] || die "slurmctld not answering 'scontrol ping' after ${TIMEOUT}s"

if ! pid_alive "$RUN_DIR/slurmd.pid" slurmd; then
    log "starting slurmd"
    rm -f "$RUN_DIR/slurmd.pid"
    /usr/sbin/slurmd -N "$NODE" || die "slurmd failed to start"
    for _ in $(seq 1 50); do
        [ -s "$RUN_DIR/slurmd.pid" ] && break
        sleep 0.2
    done
fi

# ------------------------------------------------------ wait for node idle
deadline=$(( $(date +%s) + TIMEOUT ))
state=""
while :; do
    state="$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true)"
    case "$state" in
        idle|mixed|allocated|completing)
            break ;;
        down*|drain*|drained*|fail*|"unknown*"|inval*)
            reason="$(sinfo -h -n "$NODE" -o '%E' 2>/dev/null || true)"
            log "node $NODE is '$state' (reason: ${reason:-none}); resuming"
            scontrol update nodename="$NODE" state=resume 2>/dev/null \
                || scontrol update nodename="$NODE" state=idle 2>/dev/null || true
            ;;
    esac
    pid_alive "$RUN_DIR/slurmd.pid" slurmd || die "slurmd is not running"
    pid_alive "$RUN_DIR/slurmctld.pid" slurmctld || die "slurmctld is not running"
    if [ "$(date +%s)" -ge "$deadline" ]; then
        sinfo -N -l >&2 || true
        die "node $NODE not idle after ${TIMEOUT}s (state: '${state:-none}')"
    fi
    sleep 1
done
log "node $NODE is $state"

# ------------------------------------------------------------ 4. smoke test
out="$(timeout "$TIMEOUT" srun -N1 -n1 -t 1 -p "$PARTITION" hostname 2>&1)" \
    || die "srun -N1 hostname failed: $out"
log "srun -N1 hostname -> $out"
log "SLURM is up: partition '$PARTITION', node '$NODE' (CPUs=$CPUS RealMemory=$REAL_MEM)"
