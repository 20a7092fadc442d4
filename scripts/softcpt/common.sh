# Shared by the SoftCPT scripts of this folder (sourced, never run): the reference's positional
# arguments $1..$11 (DATASET CFG SHOTS CLASS_N_CTX CLASS_CSC TASK_N_CTX TASK_CSC N_CTX CSC PG_TYPE
# PG_RATIO) become variables, EXP the experiment folder name and MTCOOP_OPTS the train.py options.
source "$(dirname "$0")/../lib/run.sh"
RUN_STYLE=coop

# suite_setup TRAINER DATASET CFG SHOTS: checks DATA, enters the repository, sets the globals.
suite_setup() {
    require_data
    enter_repo
    TRAINER=$1
    DATASET=$2
    CFG=$3
    SHOTS=$4
}

mtcoop_setup() {
    suite_setup MTCoOp "$1" "$2" "$3"
    CLASS_N_CTX=$4
    CLASS_CSC=$5
    TASK_N_CTX=$6
    TASK_CSC=$7
    N_CTX=$8
    CSC=$9
    PG_TYPE=${10}
    PG_RATIO=${11}
    EXP=cnctx${CLASS_N_CTX}_ccsc${CLASS_CSC}_tnctx${TASK_N_CTX}_tcsc${TASK_CSC}_nctx${N_CTX}_csc${CSC}_type${PG_TYPE}_ratio${PG_RATIO}
    MTCOOP_OPTS=(
        TRAINER.MTCOOP.CLASS_N_CTX ${CLASS_N_CTX}
        TRAINER.MTCOOP.CLASS_CSC ${CLASS_CSC}
        TRAINER.MTCOOP.TASK_N_CTX ${TASK_N_CTX}
        TRAINER.MTCOOP.TASK_CSC ${TASK_CSC}
        TRAINER.MTCOOP.N_CTX ${N_CTX}
        TRAINER.MTCOOP.CSC ${CSC}
        TRAINER.MTCOOP.PG_TYPE ${PG_TYPE}
        TRAINER.MTCOOP.PG_RATIO ${PG_RATIO}
        DATASET.NUM_SHOTS ${SHOTS}
    )
}

# run_unless_done DIR COMMAND...: the reference's skip message, or run COMMAND.
run_unless_done() {
    local dir=$1
    shift
    if [ -d "$dir" ]; then
        echo "Results are available in ${dir}. Skip this job"
    else
        echo "Run this job and save the output to ${dir}"
        "$@"
    fi
}
