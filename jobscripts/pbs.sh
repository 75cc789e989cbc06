#!/bin/bash
# tvbinv_hpc on PBS Pro / OpenPBS / Torque: simulate -> train -> diagnose, checkpointed, resubmitted
# automatically until complete.
#
#   qsub -v TVBINV_CONFIG=$PWD/my_run.toml jobscripts/pbs.sh
#   qsub -v TVBINV_CONFIG=$PWD/my_run.toml,TVBINV_VERB=simulate jobscripts/pbs.sh   # simulate phase only
#
# How it stops and comes back:
#   * PBS sends SIGTERM at the walltime and SIGKILL a few seconds later: too late to checkpoint cleanly.
#     So this script keeps its own clock: a background timer sends SIGUSR1 to the batch shell
#     TVBINV_STOP_MARGIN seconds (default 300) before the walltime; the shell forwards SIGUSR1 to mpiexec,
#     mpiexec to every rank; the ranks finish their batch in flight, flush the store, record the session and
#     exit 75 ("requeue me").  SIGTERM to the batch shell (qdel, walltime) is forwarded as SIGUSR1 too.
#     Walltime: TVBINV_WALLTIME ([[HH:]MM:]SS), else PBS_WALLTIME (Torque, seconds), else `qstat -f`.
#   * Exit 75: `qsub -W depend=afterany:$PBS_JOBID` submits this script again (it starts once this job
#     has ended); the next job skips finished rows and phases.  At most TVBINV_MAX_RESUBMITS resubmissions
#     (counted in TVBINV_RESUBMIT_COUNT, passed on with qsub -v).  Your site must allow qsub on compute nodes.
#     The next job asks for this job's resources (Resource_List.select/place/nodes/walltime and the
#     account from `qstat -f`), so resources given to the first qsub on its command line are kept.
#   * Exit 0: complete.  Exit 2: bad config / user error.  Anything else: crash.  Neither is resubmitted.
#   * A stop is honoured at every point: in the simulate phase at the next batch boundary; during start-up
#     (imports, numba compilation) before the first batch; during train, training runs to its end, then
#     the job exits 75 before diagnose (the trained posterior is kept); diagnose, once started, runs to
#     its end and the job exits 0.  Train and diagnose cannot be cut short: when the stop comes during
#     either, it must end within TVBINV_STOP_MARGIN, else PBS kills the job at the walltime (a crash:
#     not resubmitted; finished rows and phases are kept).
#   * TVBINV_STOP_MARGIN must cover one batch per rank plus the flush: lower [budget] batch_size if a batch
#     takes minutes.
#
# ---- scheduler settings: edit these (a line starting with '##PBS' is disabled) ----------------------
# (comments stay on their own lines: not every qsub accepts a comment after a directive)
#PBS -N tvbinv
# your project/account:
##PBS -A MY_ACCOUNT
# queue:
##PBS -q MY_QUEUE
# PBS Pro/OpenPBS: select=NODES, mpiprocs = MPI ranks per node (one per core; for ranks x threads, e.g.
# mpiprocs=8:ompthreads=4 and TVBINV_THREADS=4)
#PBS -l select=1:ncpus=32:mpiprocs=32
# Torque: use this line instead of the select line
##PBS -l nodes=1:ppn=32
# wall-clock limit (each resubmitted job gets it again; the internal budget reads it, see above)
#PBS -l walltime=04:00:00
# one log file (stdout + stderr), and rerunnable (e.g. after a node failure)
#PBS -j oe
#PBS -r y

set -uo pipefail   # no `set -e`: `wait` returns non-zero by design when a trapped signal arrives

# ---- site settings: edit these (or pass them with qsub -v NAME=value,...) ---------------------------
CONFIG="${TVBINV_CONFIG:-tvbinv.toml}"       # TOML config (relative to the submit directory) or 'quickstart'
VERB="${TVBINV_VERB:-run}"                   # run = simulate -> train -> diagnose; or simulate / train / diagnose
VENV="${TVBINV_VENV:-}"                      # e.g. $HOME/tvbinv_hpc/.venv ; empty: tvbinv-hpc from PATH
MODULES="${TVBINV_MODULES:-}"                # e.g. "openmpi/4.1 hdf5/1.14-mpi python/3.11" (space-separated)
#   (`module` is a shell function: if the batch shell lacks it, make the first line `#!/bin/bash -l`)
NP="${TVBINV_NP:-}"                          # MPI ranks; empty: one per line of $PBS_NODEFILE
STOP_MARGIN="${TVBINV_STOP_MARGIN:-300}"     # seconds before the walltime at which the ranks are told to stop
WALLTIME="${TVBINV_WALLTIME:-}"              # empty: PBS_WALLTIME or `qstat -f` (must match -l walltime)
MAX_RESUBMITS="${TVBINV_MAX_RESUBMITS:-20}"  # resubmit at most this many times
RESUBMITS="${TVBINV_RESUBMIT_COUNT:-0}"      # set by this script on resubmission; do not edit
JOBSCRIPT="${TVBINV_JOBSCRIPT:-$0}"          # what to resubmit (default: the copy of this script PBS runs)
read -ra MPIEXEC_ARGS <<< "${TVBINV_MPIEXEC_ARGS:-}"   # extra mpiexec options, e.g. "--map-by core"

# Threads per rank (TVBINV_THREADS, default 1): each rank simulates on that many threads and numpy/BLAS/
# numba use no more; ranks x threads = the cores to use (32 cores: mpiprocs=8:ompthreads=4, TVBINV_THREADS=4).
THREADS="${TVBINV_THREADS:-1}"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
export NUMBA_NUM_THREADS="$THREADS"
# HDF5 file locks are unsupported or broken on many parallel file systems (Lustre, GPFS, NFS).
export HDF5_USE_FILE_LOCKING=FALSE
export PYTHONUNBUFFERED=1
# Lustre: stripe the output folder once, before the first run, e.g.  lfs setstripe -c 4 -S 4M OUTPUT_DIR
# ------------------------------------------------------------------------------------------------------

REQUEUE_EXIT=75
JOB="${PBS_JOBID:-?}"
log() { printf '%s [pbs.sh job %s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$JOB" "$*" >&2; }

cd "${PBS_O_WORKDIR:-.}" || { log "error: cannot cd to PBS_O_WORKDIR=${PBS_O_WORKDIR:-}"; exit 2; }

if [ -n "$MODULES" ]; then
    if command -v module >/dev/null 2>&1; then
        # shellcheck disable=SC2086  # word splitting intended: a list of modules
        module load $MODULES || { log "error: module load $MODULES failed"; exit 2; }
    else
        log "warning: TVBINV_MODULES is set but there is no 'module' command; not loading: $MODULES"
    fi
fi
if [ -n "$VENV" ]; then
    if [ ! -f "$VENV/bin/activate" ]; then log "error: no virtual environment at $VENV"; exit 2; fi
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
fi
if ! command -v tvbinv-hpc >/dev/null 2>&1; then
    log "error: tvbinv-hpc not found (set TVBINV_VENV or load the environment that provides it)"; exit 2
fi
if [ "$CONFIG" != quickstart ] && [ ! -f "$CONFIG" ]; then
    log "error: config file '$CONFIG' not found (in $(pwd))"; exit 2
fi
for v in STOP_MARGIN MAX_RESUBMITS RESUBMITS THREADS; do
    if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then log "error: $v='${!v}' is not a whole number"; exit 2; fi
done
if [ -z "$NP" ]; then
    if [ -n "${PBS_NODEFILE:-}" ] && [ -r "$PBS_NODEFILE" ]; then NP=$(wc -l < "$PBS_NODEFILE"); else NP=1; fi
fi
TVBINV=$(command -v tvbinv-hpc)   # absolute path: ranks on other nodes start the same program

# "[[HH:]MM:]SS" -> seconds (empty when unparsable)
to_seconds() {
    local IFS=: part s=0
    local -a parts
    read -ra parts <<< "$1"
    [ "${#parts[@]}" -ge 1 ] && [ "${#parts[@]}" -le 3 ] || return 0
    for part in "${parts[@]}"; do
        [[ "$part" =~ ^[0-9]+$ ]] || return 0
        s=$((s * 60 + 10#$part))
    done
    echo "$s"
}
if [ -z "$WALLTIME" ] && [ -n "${PBS_WALLTIME:-}" ]; then
    WALLTIME="$PBS_WALLTIME"
fi
# This job's attributes (`qstat -f` wraps long values onto lines that start with a tab: join them).
QSTAT_F=""
if [ -n "${PBS_JOBID:-}" ] && command -v qstat >/dev/null 2>&1; then
    QSTAT_F=$(qstat -f "$PBS_JOBID" 2>/dev/null | awk '/^\t/ {sub(/^\t/, ""); last = last $0; next}
                                                    NR > 1 {print last} {last = $0} END {print last}')
fi
job_attr() { printf '%s\n' "$QSTAT_F" | awk -F' = ' -v k="$1" '$1 ~ "^ *" k "$" {print $2; exit}'; }
if [ -z "$WALLTIME" ] && [ -n "$QSTAT_F" ]; then
    WALLTIME=$(job_attr Resource_List.walltime)
fi
WALL_S=$(to_seconds "$WALLTIME")

# Open MPI: root needs --allow-run-as-root; more ranks than cores need --oversubscribe; the environment
# is not passed to ranks on other nodes unless named with -x.
MPIEXEC=(mpiexec -n "$NP")
# Capture, then match: `grep -q` in a pipe under pipefail can SIGPIPE the writer and report no match.
MPI_VERSION=$(mpiexec --version 2>/dev/null || true)
if [[ "$MPI_VERSION" == *"Open MPI"* || "$MPI_VERSION" == *OpenRTE* ]]; then
    [ "$(id -u)" = 0 ] && MPIEXEC+=(--allow-run-as-root)
    MPIEXEC+=(--bind-to none)   # tvbinv_hpc pins its threads per rank itself
    for v in PATH LD_LIBRARY_PATH PYTHONPATH VIRTUAL_ENV PYTHONUNBUFFERED OMP_NUM_THREADS MKL_NUM_THREADS \
             OPENBLAS_NUM_THREADS NUMBA_NUM_THREADS HDF5_USE_FILE_LOCKING $(compgen -e | grep '^TVBINV_'); do
        [ -n "${!v+x}" ] && MPIEXEC+=(-x "$v")
    done
fi
MPIEXEC+=("${MPIEXEC_ARGS[@]}")

# Forward the stop request to the launcher.  bash runs a trap only between commands, so the launcher runs
# in the background and the shell sits in `wait`, which the trap interrupts.
STOP_SIG=""
LPID=""
TIMER_PID=""
# shellcheck disable=SC2317  # called from the traps below
on_signal() {
    STOP_SIG="$1"
    if [ -n "$LPID" ]; then
        log "$2: forwarding SIGUSR1 to mpiexec (pid $LPID): ranks finish their batch and checkpoint"
        kill -USR1 "$LPID" 2>/dev/null || true
    else
        log "$2 before the launch"
    fi
}
trap 'on_signal USR1 "received SIGUSR1 (internal time budget or user)"' USR1
trap 'on_signal TERM "received SIGTERM (qdel or walltime)"' TERM

# Background timer: SIGUSR1 to this shell BUDGET seconds from now; its sleep dies with it (no stray
# process holding the log open).
start_timer() {
    local budget="$1" main=$$
    (
        trap 'kill "$sp" 2>/dev/null; exit 0' TERM
        sleep "$budget" & sp=$!
        wait "$sp" && kill -USR1 "$main"
    ) </dev/null >/dev/null 2>&1 &
    TIMER_PID=$!
}

log "start: resubmission ${RESUBMITS}/${MAX_RESUBMITS}, $NP ranks, verb '$VERB', config '$CONFIG', $TVBINV"
"${MPIEXEC[@]}" "$TVBINV" "$VERB" "$CONFIG" &
LPID=$!
if [ -n "$WALL_S" ]; then
    BUDGET=$((WALL_S - STOP_MARGIN - SECONDS))
    if [ "$BUDGET" -lt 1 ]; then
        log "warning: walltime ${WALL_S} s leaves no time before the stop margin (${STOP_MARGIN} s): stopping at once"
        BUDGET=1
    fi
    log "internal time budget: SIGUSR1 to the ranks in ${BUDGET} s (walltime ${WALL_S} s, margin ${STOP_MARGIN} s)"
    start_timer "$BUDGET"
else
    log "warning: walltime unknown (set TVBINV_WALLTIME=HH:MM:SS): no internal time budget; relying on" \
        "SIGTERM at the walltime, which may come too late for a clean checkpoint"
fi
# `wait` returns >128 when a trap fires; go back to waiting while mpiexec still runs.
while kill -0 "$LPID" 2>/dev/null; do
    wait "$LPID"
done
wait "$LPID"   # the launcher's exit code (bash keeps it for a reaped background job)
rc=$?
trap '' USR1   # a late timer must not kill the shell while it resubmits
[ -n "$TIMER_PID" ] && kill "$TIMER_PID" 2>/dev/null

case "$rc" in
    0)
        log "finished: exit 0, $VERB complete"
        exit 0 ;;
    "$REQUEUE_EXIT")
        if [ "$RESUBMITS" -ge "$MAX_RESUBMITS" ]; then
            log "exit $rc: checkpointed with work left, but already resubmitted $RESUBMITS times" \
                "(TVBINV_MAX_RESUBMITS=$MAX_RESUBMITS): NOT resubmitting; check progress with" \
                "'tvbinv-hpc status STORE' and resubmit by hand"
            exit "$rc"
        fi
        if [ ! -r "$JOBSCRIPT" ]; then
            log "error: exit $rc but cannot read '$JOBSCRIPT' to resubmit: set TVBINV_JOBSCRIPT; resubmit by hand"
            exit "$rc"
        fi
        # Pass the settings on (qsub -v takes NAME=value pairs separated by commas).
        pass="TVBINV_RESUBMIT_COUNT=$((RESUBMITS + 1))"
        for v in $(compgen -e | grep '^TVBINV_' | grep -v '^TVBINV_RESUBMIT_COUNT$'); do
            if [[ "${!v}" == *,* ]]; then log "warning: not passing $v on (qsub -v cannot hold commas)"; continue; fi
            pass+=",$v=${!v}"
        done
        # The next job asks for what this one got (resources given to qsub on the command line override
        # the script's #PBS lines, and a resubmission would otherwise lose them).
        same=()
        for r in select place nodes walltime; do
            val=$(job_attr "Resource_List.$r")
            [ -n "$val" ] && same+=(-l "$r=$val")
        done
        acct=$(job_attr Account_Name)
        [ -n "$acct" ] && same+=(-A "$acct")
        if [ "${#same[@]}" -eq 0 ]; then
            log "warning: resources of job $JOB unknown (qstat -f gave none): the next job gets the script's own" \
                "#PBS lines"
        fi
        log "exit $rc: checkpointed with work left; resubmitting $JOBSCRIPT after job $JOB" \
            "(resubmission $((RESUBMITS + 1))/$MAX_RESUBMITS) ${same[*]}"
        if next=$(qsub -W "depend=afterany:$JOB" "${same[@]}" -v "$pass" "$JOBSCRIPT"); then
            log "resubmitted as job $next: it resumes from the store"
        else
            log "error: qsub failed (see its message above): resubmit by hand (finished rows are kept)"
        fi
        exit "$rc" ;;
    2)
        log "exit 2: configuration or usage error (see above): NOT resubmitting"
        exit 2 ;;
    *)
        if [ -n "$STOP_SIG" ]; then
            log "exit $rc after SIG$STOP_SIG: the ranks did not checkpoint before they were killed (the" \
                "walltime came during train or diagnose, which cannot be cut short) or crashed: NOT" \
                "resubmitting; resubmit with a longer walltime (finished rows and phases are kept)"
        else
            log "exit $rc: crashed (see above): NOT resubmitting; the store stays consistent, resubmit after a fix"
        fi
        exit "$rc" ;;
esac
