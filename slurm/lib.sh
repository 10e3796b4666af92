# Shared by slurm/*.sbatch (sourced, not run): the environment, the logs, and the stop/requeue protocol.
#
# Stop and requeue:
#   1. SLURM sends USR1 to the batch shell only, 10 minutes before the time limit (#SBATCH
#      --signal=B:USR1@600), or when asked: `scancel --batch --signal=USR1 JOBID`. The training loop
#      acts on it within one step or one validation batch (seconds), but 10 minutes rather than 2 leave
#      room for writing last.pt to a slow shared filesystem and for what notebooks do outside the loop
#      (05's and 08's evaluations do not stop on the signal; a job killed there is not requeued, though
#      the evaluations already finished are cached beside each checkpoint).
#   2. The trap forwards USR1 to the training process named in each train.pid file of the run folder
#      ("PID HOST", written by rank 0 once it catches the signal), and to nothing else: papermill and
#      torchrun would die of it (USR1 terminates by default). A training process that starts after the
#      signal is told as soon as its train.pid appears. On several nodes (train.sbatch --nodes=N) the
#      batch shell forwards USR1 to srun, which passes it to the task it runs on each node
#      (slurm/train_node.sh); each node's task forwards it to the trainer of train.pid if that one runs
#      on its node (only rank 0 writes the file). One rank told is enough: the loop all-reduces the
#      stop flag, so every rank stops at the same step and rank 0 alone writes last.pt.
#   3. The training loop writes last.pt at the next step boundary and stops: `python -m ffnlib.train`
#      and `python -m ffnlib.workbook run` exit 75. Exit 75, or a failure after a forwarded stop (torchrun
#      reports its workers' 75 as 1), => `scontrol requeue`; the job starts again with the same
#      arguments, and every model resumes from its last.pt (finished models return at once).
#   Exit 0 ends the job; any other failure ends it with that exit code and is not requeued. Only the
#   batch shell requeues (once); the node tasks of a multi-node job exit 75 on a stop and leave it to it.
#   `scancel JOBID` (TERM) ends the job for good.
#
# Environment knobs: FFN_CONDA_ENV (conda env to activate; default ffn-workbook, used when the project
# has no .venv), FFN_PYTHON (the python to run; default: python of that environment), FFN_RUNS_DIR
# (where a notebook job's default run folder goes, as in ffnlib.paths; default runs), FFN_RDZV_HOST and
# FFN_RDZV_PORT (a multi-node job's rendezvous; default: the batch node's `hostname` and the first free
# port from 29500 + job id % 10000).

FFN_REQUEUE_EXIT_CODE=75  # ffnlib.train.REQUEUE_EXIT_CODE

ffn_log() {
    local line
    line="[slurm $(date '+%F %T')] $*"
    echo "$line"
    if [[ -n ${FFN_LOG:-} ]]; then echo "$line" >>"$FFN_LOG"; fi
}

ffn_die() {  # ffn_die CODE MESSAGE
    local code=$1
    shift
    ffn_log "error: $*" >&2
    exit "$code"
}

# ---------------------------------------------------------------------------------------- environment
ffn_activate() {
    # A project .venv wins (someone made it on purpose), unless FFN_CONDA_ENV names a conda env.
    if [[ -z ${FFN_CONDA_ENV:-} && -f .venv/bin/activate ]]; then
        set +u
        source .venv/bin/activate
        set -u
    elif command -v conda >/dev/null; then
        local env=${FFN_CONDA_ENV:-ffn-workbook}
        if [[ ${CONDA_DEFAULT_ENV:-} != "$env" ]]; then
            set +u  # conda's activation scripts read unset variables
            eval "$(conda shell.bash hook)"
            conda activate "$env" ||
                ffn_die 2 "cannot activate conda env $env: conda env create -f environment.yml (or set FFN_CONDA_ENV)"
            set -u
        fi
    elif [[ -n ${FFN_CONDA_ENV:-} ]]; then
        ffn_die 2 "FFN_CONDA_ENV=$FFN_CONDA_ENV but there is no conda command (module load conda?)"
    fi
    PYTHON=${FFN_PYTHON:-python}
    command -v "$PYTHON" >/dev/null || ffn_die 2 "no $PYTHON: make the conda env (README.md, "On a cluster") or set FFN_PYTHON"
}

# ffn_start RUN_DIR: absolute run folder, its log file, the environment, a header in the log.
ffn_start() {
    FFN_RUN_DIR=$(realpath -m -- "$1")
    mkdir -p -- "$FFN_RUN_DIR"
    FFN_LOG=$FFN_RUN_DIR/slurm-${SLURM_JOB_ID:-local}.log  # a requeued job appends to the same file
    _FFN_STOP=0 _FFN_CHILD= _FFN_PID_GLOB=
    trap _ffn_on_usr1 USR1  # from here on, USR1 is never lost (the default action would end this shell)
    ffn_log "job ${SLURM_JOB_ID:-(not under SLURM)} start ${SLURM_RESTART_COUNT:-0} on $(hostname)," \
        "GPUs ${CUDA_VISIBLE_DEVICES:-none}, run folder $FFN_RUN_DIR"
    ffn_activate
}

ffn_gpus() {  # GPUs of this node given to the job
    if [[ -n ${SLURM_GPUS_ON_NODE:-} ]]; then
        echo "$SLURM_GPUS_ON_NODE"
    elif [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
        tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | grep -c .
    else
        echo 1
    fi
}

# ---------------------------------------------------------------------------------------- the two jobs
# ffn_notebook_job NOTEBOOK PARAMS.yaml [RUN_DIR] [-p KEY VALUE ...]
ffn_notebook_job() {
    (($# >= 2)) || ffn_die 2 "usage: NOTEBOOK PARAMS.yaml [RUN_DIR] [-p KEY VALUE ...]"
    local notebook=$1 params=$2
    shift 2
    local run_dir=${FFN_RUNS_DIR:-runs}/$(basename -- "${params%.*}")  # a profile's notebooks share it
    if (($#)) && [[ $1 != -* ]]; then
        run_dir=$1
        shift
    fi
    [[ -f $params ]] || ffn_die 2 "$params: no such parameters file (a profile such as configs/ssv2_r50.yaml)"
    ffn_start "$run_dir"
    # The notebook's kernel trains each model in <run>/models/<name>, writing train.pid there meanwhile.
    ffn_run "$FFN_RUN_DIR/models/*/train.pid" \
        "$PYTHON" -m ffnlib.workbook run "$notebook" --run-dir "$FFN_RUN_DIR" -f "$params" "$@"
}

# ffn_train_job CONFIG.yaml RUN_DIR [--set KEY=VALUE ...]: one model on every GPU of the job's nodes, into
# RUN_DIR/models/<name> (the name the config gives it: vanilla_16f, st_4f, ffn, ...).
ffn_train_job() {
    (($# >= 2)) || ffn_die 2 "usage: CONFIG.yaml RUN_DIR [--set KEY=VALUE ...]"
    local config=$1 run_dir=$2
    shift 2
    [[ -f $config ]] || ffn_die 2 "$config: no such config file"
    ffn_start "$run_dir"
    local nodes=${SLURM_JOB_NUM_NODES:-1}
    if ((nodes > 1)); then
        _ffn_train_nodes "$nodes" "$config" "$@"
    fi
    local gpus
    gpus=$(ffn_gpus)
    # One node (--standalone: rendezvous on localhost); rank 0 writes the model's train.pid. Under
    # torchrun, USR1 to rank 0 stops every rank at the same step (the loop all-reduces the stop flag).
    ffn_run "$FFN_RUN_DIR/models/*/train.pid" \
        "$PYTHON" -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node="$gpus" \
        -m ffnlib.train --config "$config" --run-dir "$FFN_RUN_DIR" --no-progress "$@"
}

# _ffn_train_nodes NODES CONFIG [--set ...] (batch shell): one srun task per node, each running torchrun
# (slurm/train_node.sh) against the c10d rendezvous on this node, the job's first; exits as ffn_run.
_ffn_train_nodes() {
    local nodes=$1 config=$2
    shift 2
    local host=${FFN_RDZV_HOST:-$(hostname)} port=${FFN_RDZV_PORT:-$(ffn_free_port)}
    local cpus=()
    if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then cpus=(--cpus-per-task="$SLURM_CPUS_PER_TASK"); fi
    _FFN_USR1_TO_CHILD=1  # srun passes USR1 on to every node's task; no train.pid is this shell's to signal
    ffn_run "" srun --nodes="$nodes" --ntasks="$nodes" --ntasks-per-node=1 ${cpus[@]+"${cpus[@]}"} --kill-on-bad-exit=1 \
        --label bash slurm/train_node.sh "$host:$port" "$nodes" "$config" "$FFN_RUN_DIR" "$@"
}

# ffn_train_node HOST:PORT NODES CONFIG RUN_DIR [--set ...] (one srun task per node): this node's
# torchrun, every GPU of the node; USR1 is passed to the trainer of train.pid when it runs here. Exits
# 0 done, 75 stopped (saved by rank 0, wherever it runs), else the failure code; never requeues.
ffn_train_node() {
    (($# >= 4)) || ffn_die 2 "usage: HOST:PORT NODES CONFIG.yaml RUN_DIR [--set KEY=VALUE ...]"
    local endpoint=$1 nodes=$2 config=$3
    FFN_RUN_DIR=$4
    shift 4
    _FFN_STOP=${_FFN_STOP:-0} _FFN_CHILD= _FFN_PID_GLOB=  # train_node.sh may have caught USR1 already
    trap _ffn_on_usr1 USR1
    ffn_log "node ${SLURM_NODEID:-?} of $nodes on $(hostname), GPUs ${CUDA_VISIBLE_DEVICES:-none}, rendezvous $endpoint"
    ffn_activate
    local gpus
    gpus=$(ffn_gpus)
    _ffn_supervise "$FFN_RUN_DIR/models/*/train.pid" \
        "$PYTHON" -m torch.distributed.run --nnodes="$nodes" --nproc-per-node="$gpus" --rdzv-backend=c10d \
        --rdzv-endpoint="$endpoint" --rdzv-id="${SLURM_JOB_ID:-ffn-train}" \
        -m ffnlib.train --config "$config" --run-dir "$FFN_RUN_DIR" --no-progress "$@"
    if ((_FFN_RC == 0)); then
        exit 0
    elif ((_FFN_RC == FFN_REQUEUE_EXIT_CODE || _FFN_STOP)); then
        ffn_log "node ${SLURM_NODEID:-?}: stopped (torchrun exit $_FFN_RC; rank 0 saved last.pt)"
        exit "$FFN_REQUEUE_EXIT_CODE"
    fi
    exit "$_FFN_RC"
}

ffn_free_port() {  # a TCP port nobody listens on here: 29500 + job id % 10000, or the next free one
    local port=$((29500 + ${SLURM_JOB_ID:-$$} % 10000))
    while (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
    done
    echo "$port"
}

# ---------------------------------------------------------------------------------------- stop and requeue
# ffn_run PID_GLOB COMMAND...: run COMMAND (output also in $FFN_LOG), forward USR1 to the training
# processes whose train.pid files match PID_GLOB, then exit: 0 done, 75 requeued, else the failure code.
ffn_run() {
    _ffn_supervise "$@"
    local rc=$_FFN_RC
    # let tee write the last lines (at most 5 s: a leftover grandchild may hold the pipe open)
    for _ in {1..50}; do kill -0 "$_FFN_TEE" 2>/dev/null || break; sleep 0.1; done

    if ((rc == 0)); then
        ffn_log "done"
        exit 0
    fi
    if ((rc == FFN_REQUEUE_EXIT_CODE || _FFN_STOP)); then
        if ((rc == FFN_REQUEUE_EXIT_CODE)); then
            ffn_log "stopped with last.pt saved (exit $rc)"
        else  # torchrun exits 1 when its workers exit 75
            ffn_log "exit $rc after a forwarded stop: treated as stopped (last.pt holds the last saved step)"
        fi
        if [[ -z ${SLURM_JOB_ID:-} ]]; then
            ffn_log "not under SLURM: run the same command again to resume"
        else
            ffn_log "requeueing job $SLURM_JOB_ID; it will resume from last.pt"
            scontrol requeue "$SLURM_JOB_ID" ||
                ffn_log "scontrol requeue failed: submit the same sbatch line again to resume"
        fi
        exit "$FFN_REQUEUE_EXIT_CODE"
    fi
    ffn_log "failed with exit code $rc (not requeued); the command's output is in $FFN_LOG"
    exit "$rc"
}

# _ffn_supervise PID_GLOB COMMAND...: run COMMAND in the background (its output teed into $FFN_LOG when
# set), forward USR1 as _ffn_on_usr1 says until it ends, and leave its exit code in _FFN_RC.
_ffn_supervise() {
    _FFN_PID_GLOB=$1
    shift
    _FFN_SIGNALLED=" "  # pids already sent USR1 (a second USR1 after the loop restored its handlers kills)
    _FFN_IGNORED=" "
    _FFN_HOST=$(hostname)
    ffn_log "running: $*"
    local out rc
    _FFN_TEE=
    if [[ -n ${FFN_LOG:-} ]]; then
        exec {out}> >(tee -a "$FFN_LOG")
        _FFN_TEE=$!
    else
        exec {out}>&1
    fi
    # In the background, so that the trap runs while we wait (bash defers traps until a foreground child ends).
    "$@" >&"$out" 2>&1 &
    _FFN_CHILD=$!
    exec {out}>&-  # only the command holds the pipe now: tee ends with it
    if ((_FFN_STOP && ${_FFN_USR1_TO_CHILD:-0})); then  # asked before srun ran: once it can pass it on
        sleep 2
        _ffn_usr1_to_child
    fi
    while :; do
        if ((_FFN_STOP)); then  # stop asked: tell every training process, also one that starts later
            while kill -0 "$_FFN_CHILD" 2>/dev/null; do
                _ffn_signal_trainers
                sleep 1
            done
        fi
        rc=0
        wait "$_FFN_CHILD" || rc=$?  # returns early when USR1 arrives (after the trap has run)
        kill -0 "$_FFN_CHILD" 2>/dev/null || break  # it ended: rc is its exit code
    done
    _FFN_RC=$rc
}

_ffn_on_usr1() {
    _FFN_STOP=1
    ffn_log "USR1: asking the training to save last.pt and stop"
    if ((${_FFN_USR1_TO_CHILD:-0})); then
        _ffn_usr1_to_child
    else
        _ffn_signal_trainers
    fi
}

_ffn_usr1_to_child() {  # multi-node batch shell: srun passes USR1 on to its tasks, one per node
    [[ -n $_FFN_CHILD ]] || return 0  # not started yet: _ffn_supervise passes it on once it runs
    if kill -USR1 "$_FFN_CHILD" 2>/dev/null; then
        ffn_log "sent USR1 to srun ($_FFN_CHILD), for the task on every node"
    fi
}

_ffn_signal_trainers() {
    [[ -n $_FFN_CHILD && -n $_FFN_PID_GLOB ]] || return 0  # not started yet: ffn_run tells it once it runs
    local file pid host
    while IFS= read -r file; do
        { read -r pid host <"$file"; } 2>/dev/null || continue  # gone meanwhile: that training has ended
        [[ $pid =~ ^[0-9]+$ ]] || continue
        [[ -z $host || $host == "$_FFN_HOST" ]] || continue  # a trainer on another node: its node's task tells it
        [[ $_FFN_SIGNALLED == *" $pid "* || $_FFN_IGNORED == *" $pid "* ]] && continue
        if ! _ffn_descends_from "$pid" "$_FFN_CHILD"; then  # left by an earlier job, or another job's
            ffn_log "ignoring $file: process $pid is not part of this job"
            _FFN_IGNORED+="$pid "
            continue
        fi
        if kill -USR1 "$pid" 2>/dev/null; then
            ffn_log "sent USR1 to training process $pid ($file)"
            _FFN_SIGNALLED+="$pid "
        fi
    done < <(compgen -G "$_FFN_PID_GLOB" || true)
}

_ffn_descends_from() {  # _ffn_descends_from PID ANCESTOR: is PID ANCESTOR or one of its descendants?
    [[ -r /proc/self/stat ]] || return 0  # no /proc: trust the file
    local pid=$1 stat state
    while ((pid > 1)); do
        ((pid == $2)) && return 0
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
        stat=${stat##*) }  # drop "pid (command) ": the command may hold spaces and parentheses
        read -r state pid _ <<<"$stat"
    done
    return 1
}
