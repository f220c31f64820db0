# ---- the job (the same for every sweep; `ltray slurm` writes the settings above) ----
# A private Ray across the allocation: the head on this, the allocation's first node; a worker on
# each other node (srun). Ports come from a block derived from the job id and each node's Ray temp
# dir sits under a short folder of this job, so neither another job nor a user's own Ray collides.
# SLURM signals this shell (--signal=B:TERM@...) before the time limit: the sweep stops cleanly
# (exit 143, finished rounds kept), the job requeues itself and the next run resumes.
set -uo pipefail
export RAY_USAGE_STATS_ENABLED=0
RESTART=${SLURM_RESTART_COUNT:-0}
NODES=${SLURM_JOB_NUM_NODES:-1}
node() { "$LTRAY_PYTHON" -m ltray.cluster.slurm_node "$@"; }
say() { echo "ltray slurm: $*"; }

say "job $SLURM_JOB_ID run $((RESTART + 1)) on $SLURM_JOB_NODELIST ($(date -u +%FT%TZ))"
SIGNALLED=0
DRIVER=
on_term() {  # SLURM's warning before the time limit, or a preemption
    SIGNALLED=1
    say "signalled: stopping the sweep (finished rounds are kept)"
    [ -n "$DRIVER" ] && kill -TERM "$DRIVER" 2>/dev/null
}
trap on_term TERM
HEAD=$(node address) || exit 2
"$LTRAY_PYTHON" -m ltray.cluster.slurm_node head --address "$HEAD" &  # not via node(): $! must be ltray's pid
HEAD_PID=$!
RAY_PIDS=$HEAD_PID
if [ "$NODES" -gt 1 ]; then
    srun --nodes=$((NODES - 1)) --ntasks=$((NODES - 1)) --ntasks-per-node=1 --exclude="$(hostname)" \
        ${LTRAY_WORKER_GPUS:+--gpus-per-node=$LTRAY_WORKER_GPUS} --kill-on-bad-exit=0 \
        "$LTRAY_PYTHON" -m ltray.cluster.slurm_node worker --address "$HEAD" &
    RAY_PIDS="$RAY_PIDS $!"
fi

stop_ray() {
    kill -TERM $RAY_PIDS 2>/dev/null
    wait $RAY_PIDS 2>/dev/null
}

STATUS=143  # what requeues: SLURM's signal, or a Ray that never came up here
if ! node wait --address "$HEAD" --pid "$HEAD_PID" --timeout 300; then
    say "the job's Ray head did not come up"
elif [ "$SIGNALLED" = 0 ]; then
    ARGS=("$LTRAY_SWEEP" --address "$HEAD" --progress-interval "$LTRAY_PROGRESS_INTERVAL")
    if [ "$RESTART" -gt 0 ] || [ "$LTRAY_RESUME" = 1 ]; then
        ARGS+=(--resume --take-over)  # the lease is this job's own, held by its previous run
    fi
    "$LTRAY_PYTHON" -m ltray.sweep "${ARGS[@]}" &
    DRIVER=$!
    [ "$SIGNALLED" = 1 ] && kill -TERM "$DRIVER"  # signalled while it was being started
    RAY_LOST=
    while kill -0 "$DRIVER" 2>/dev/null; do
        if [ -z "$RAY_LOST" ] && ! kill -0 "$HEAD_PID" 2>/dev/null; then
            RAY_LOST=$SECONDS
            say "the job's Ray head stopped: stopping the sweep"
            kill -TERM "$DRIVER" 2>/dev/null
        elif [ -n "$RAY_LOST" ] && [ $((SECONDS - RAY_LOST)) -gt 60 ]; then
            kill -KILL "$DRIVER" 2>/dev/null  # a driver still waiting for the lost head
        fi
        sleep 2 & wait $!  # returns at once for the TERM trap, which passes the signal on
    done
    wait "$DRIVER"
    STATUS=$?
    [ -n "$RAY_LOST" ] && [ "$STATUS" -ne 0 ] && STATUS=143  # Ray failed, not the sweep: requeue
fi
stop_ray

if [ "$STATUS" -eq 143 ]; then
    if [ "$RESTART" -lt "$LTRAY_MAX_REQUEUES" ]; then
        say "stopped before the end (exit 143); requeue $((RESTART + 1)) of at most $LTRAY_MAX_REQUEUES: the next run resumes"
        scontrol requeue "$SLURM_JOB_ID" && exit 143
        say "scontrol requeue failed: resubmit this script with --resume (ltray slurm --resume ...)"
    else
        say "stopped before the end (exit 143) and $LTRAY_MAX_REQUEUES requeues are spent: resubmit with --resume to go on"
    fi
fi
say "sweep exited with status $STATUS"
exit "$STATUS"
