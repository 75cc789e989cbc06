#!/bin/bash
# tvbinv_hpc on one machine (workstation, interactive allocation, a scheduler without a script here):
# simulate -> train -> diagnose under mpiexec, restarted in a loop while the run asks to be requeued.
#
#   jobscripts/local.sh my_run.toml                          # one rank per core
#   TVBINV_NP=4 TVBINV_VERB=simulate jobscripts/local.sh my_run.toml
#   TVBINV_NP=1 TVBINV_THREADS=4 jobscripts/local.sh my_run.toml   # one rank simulating on 4 threads
#
# Signals (send them to this script's pid, printed in its first log line):
#   * SIGUSR1: the ranks finish their batch in flight, checkpoint and exit 75; this script then starts the
#     run again (what a scheduler's requeue would do: handy to try the restart path, or from a wrapper that
#     knows about a preemption).
#   * SIGTERM, or Ctrl-C at a terminal: the ranks checkpoint and exit 75, and this script stops with exit 75.
#     Run it again to resume (finished rows and phases are skipped).
#   * Exit 75 from the run without a stop request here (e.g. a rank was signalled directly): restart.
#     At most TVBINV_MAX_RESTARTS restarts.  Exit 0: complete.  Exit 2: bad config.  Anything else: crash.
#     Neither is restarted.  A stop is honoured at every point: in the simulate phase at the next batch
#     boundary; during start-up before the first batch; during train, training runs to its end and the
#     run exits 75 before diagnose.  Diagnose, once started, runs to its end.

set -uo pipefail   # no `set -e`: `wait` returns non-zero by design when a trapped signal arrives

# ---- settings: edit these (or set the variables) ------------------------------------------------------
CONFIG="${1:-${TVBINV_CONFIG:-tvbinv.toml}}"   # TOML config or 'quickstart'
VERB="${TVBINV_VERB:-run}"                     # run = simulate -> train -> diagnose; or simulate / train / diagnose
VENV="${TVBINV_VENV:-}"                        # e.g. $HOME/tvbinv_hpc/.venv ; empty: tvbinv-hpc from PATH
MODULES="${TVBINV_MODULES:-}"                  # e.g. "openmpi/4.1 hdf5/1.14-mpi" (space-separated)
#   (`module` is a shell function: if the batch shell lacks it, make the first line `#!/bin/bash -l`)
THREADS="${TVBINV_THREADS:-1}"                 # simulation threads per rank
NCPU=$(nproc 2>/dev/null || echo 1)
NP="${TVBINV_NP:-$(( THREADS > 0 && NCPU / THREADS > 1 ? NCPU / THREADS : 1 ))}"   # MPI ranks (default: cores / threads)
MAX_RESTARTS="${TVBINV_MAX_RESTARTS:-20}"      # restart at most this many times
read -ra MPIEXEC_ARGS <<< "${TVBINV_MPIEXEC_ARGS:-}"   # extra mpiexec options

# Threads per rank (TVBINV_THREADS, default 1): each rank simulates on that many threads and numpy/BLAS/
# numba use no more; ranks x threads = the cores to use (e.g. TVBINV_NP=1 TVBINV_THREADS=4 on 4 cores).
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
export NUMBA_NUM_THREADS="$THREADS"
# HDF5 file locks are unsupported or broken on many network/parallel file systems (NFS, Lustre, GPFS).
export HDF5_USE_FILE_LOCKING=FALSE
export PYTHONUNBUFFERED=1
# ------------------------------------------------------------------------------------------------------

REQUEUE_EXIT=75
log() { printf '%s [local.sh pid %s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$*" >&2; }

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
    log "error: tvbinv-hpc not found (set TVBINV_VENV or activate the environment that provides it)"; exit 2
fi
if [ "$CONFIG" != quickstart ] && [ ! -f "$CONFIG" ]; then
    log "error: config file '$CONFIG' not found (in $(pwd))"; exit 2
fi
for v in NP MAX_RESTARTS THREADS; do
    if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then log "error: $v='${!v}' is not a whole number"; exit 2; fi
done
TVBINV=$(command -v tvbinv-hpc)

# Open MPI: root needs --allow-run-as-root, more ranks than cores need --oversubscribe.
MPIEXEC=(mpiexec -n "$NP")
# Capture, then match: `grep -q` in a pipe under pipefail can SIGPIPE the writer and report no match.
MPI_VERSION=$(mpiexec --version 2>/dev/null || true)
if [[ "$MPI_VERSION" == *"Open MPI"* || "$MPI_VERSION" == *OpenRTE* ]]; then
    [ "$(id -u)" = 0 ] && MPIEXEC+=(--allow-run-as-root)
    [ "$NP" -gt "$(nproc 2>/dev/null || echo 1)" ] && MPIEXEC+=(--oversubscribe)
    MPIEXEC+=(--bind-to none)   # tvbinv_hpc pins its threads per rank itself
fi
MPIEXEC+=("${MPIEXEC_ARGS[@]}")
# At a terminal, Ctrl-C would reach mpiexec too (same process group) and abort the job at once: start
# mpiexec in its own session so that only this script gets it and can ask for a clean checkpoint.
DETACH=()
if [ -t 0 ] && command -v setsid >/dev/null 2>&1; then DETACH=(setsid); fi

STOP_SIG=""
LPID=""
# shellcheck disable=SC2317  # called from the traps below
on_signal() {
    STOP_SIG="$1"
    if [ -n "$LPID" ]; then
        log "received SIG$1: forwarding SIGUSR1 to mpiexec (pid $LPID): ranks finish their batch and checkpoint"
        kill -USR1 "$LPID" 2>/dev/null || true
    fi
}
trap 'on_signal USR1' USR1
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT

attempt=0
while :; do
    if [ "$STOP_SIG" = TERM ] || [ "$STOP_SIG" = INT ]; then
        log "stopping as asked (SIG$STOP_SIG between attempts). Run again to resume."
        exit "$REQUEUE_EXIT"
    fi
    STOP_SIG=""
    log "start: attempt $((attempt + 1)) (restart ${attempt}/${MAX_RESTARTS}), $NP ranks, verb '$VERB'," \
        "config '$CONFIG', $TVBINV"
    "${DETACH[@]}" "${MPIEXEC[@]}" "$TVBINV" "$VERB" "$CONFIG" &
    LPID=$!
    # `wait` returns >128 when a trap fires; go back to waiting while mpiexec still runs.
    while kill -0 "$LPID" 2>/dev/null; do
        wait "$LPID"
    done
    wait "$LPID"   # the launcher's exit code (bash keeps it for a reaped background job)
    rc=$?
    LPID=""

    case "$rc" in
        0)
            log "finished: exit 0, $VERB complete"
            exit 0 ;;
        "$REQUEUE_EXIT")
            if [ "$STOP_SIG" = TERM ] || [ "$STOP_SIG" = INT ]; then
                log "exit $rc: checkpointed after SIG$STOP_SIG; stopping as asked. Run again to resume."
                exit "$rc"
            fi
            if [ "$attempt" -ge "$MAX_RESTARTS" ]; then
                log "exit $rc: checkpointed with work left, but already restarted $attempt times" \
                    "(TVBINV_MAX_RESTARTS=$MAX_RESTARTS): giving up; run again to resume"
                exit "$rc"
            fi
            attempt=$((attempt + 1))
            log "exit $rc: checkpointed with work left; restarting (restart ${attempt}/${MAX_RESTARTS})" ;;
        2)
            log "exit 2: configuration or usage error (see above): not restarting"
            exit 2 ;;
        *)
            if [ -n "$STOP_SIG" ]; then
                log "exit $rc after SIG$STOP_SIG: the ranks did not checkpoint (killed, or crashed): not" \
                    "restarting; run again to resume (finished rows and phases are kept)"
            else
                log "exit $rc: crashed (see above): not restarting; the store stays consistent, run again after a fix"
            fi
            exit "$rc" ;;
    esac
done
