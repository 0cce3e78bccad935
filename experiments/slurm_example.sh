#!/usr/bin/env bash
# Example: train 256 CIFAR-10 shadow models on a GPU cluster, then attack them. SLURM.
#
#   bash experiments/slurm_example.sh /shared/runs/cifar10 /shared/tfds
#
# Submits (1) an array job: task i trains models [i*K, (i+1)*K) with --model_range, one
# GPU each, all writing disjoint blocks of one store on the shared filesystem (no
# coordination needed; a task that is re-run skips models already written, and a failed
# task can be resubmitted alone with --array=<i>); (2) one attack job that starts only
# when every array task succeeded (--dependency=afterok). Adapt the #SBATCH-style options
# (partition, account, time) to your cluster; they are passed on the sbatch command lines
# below so that this one file holds both jobs.
#
# Alternative for a multi-node allocation: one JAX job over all nodes, where process i of
# P takes the i-th contiguous share of --model_range:
#   srun --nodes=4 --ntasks-per-node=1 --gpus-per-task=1 \
#     python -m experiments.train_shadows --distributed --workdir="$WORKDIR" ...
# (jax.distributed.initialize() reads the SLURM environment). Array jobs are simpler and
# survive partial failures better; both give the same store.
set -euo pipefail

WORKDIR=${1:?usage: slurm_example.sh WORKDIR [DATA_DIR]}
DATA_DIR=${2:-$HOME/tensorflow_datasets}
NUM_MODELS=${NUM_MODELS:-256}
MODELS_PER_TASK=${MODELS_PER_TASK:-32}      # one array task = this many models
PARTITION=${PARTITION:-gpu}
VENV=${VENV:-$PWD/.venv}              # jobs run $VENV/bin/python, not a python on PATH
TASKS=$(( (NUM_MODELS + MODELS_PER_TASK - 1) / MODELS_PER_TASK ))

# Flags shared by every task: the run's config must be identical in all of them (the store
# refuses a task whose config differs). --models_per_step is left to the engine's automatic
# choice for the GPU (memory-based); set it to override.
TRAIN_FLAGS=(
  --workdir="$WORKDIR"
  --dataset=cifar10
  --data_dir="$DATA_DIR"
  --num_models="$NUM_MODELS"
  --epochs=100
)

mkdir -p "$WORKDIR/logs"

train_id=$(sbatch --parsable \
  --job-name=lira-train \
  --partition="$PARTITION" \
  --gpus=1 --cpus-per-task=8 --mem=64G --time=12:00:00 \
  --array="0-$(( TASKS - 1 ))" \
  --output="$WORKDIR/logs/train_%A_%a.out" \
  --wrap="START=\$(( SLURM_ARRAY_TASK_ID * $MODELS_PER_TASK )) && \
    STOP=\$(( START + $MODELS_PER_TASK < $NUM_MODELS ? START + $MODELS_PER_TASK : $NUM_MODELS )) && \
    '$VENV/bin/python' -m experiments.train_shadows ${TRAIN_FLAGS[*]} --model_range=\$START:\$STOP")
echo "submitted training array job $train_id ($TASKS tasks of $MODELS_PER_TASK models)"

attack_id=$(sbatch --parsable \
  --job-name=lira-attack \
  --partition="$PARTITION" \
  --cpus-per-task=16 --mem=64G --time=4:00:00 \
  --dependency="afterok:$train_id" \
  --output="$WORKDIR/logs/attack_%j.out" \
  --wrap="'$VENV/bin/python' -m experiments.verify --workdir='$WORKDIR' && \
    '$VENV/bin/python' -m experiments.attack --workdir='$WORKDIR'")
echo "submitted attack job $attack_id (runs after all of $train_id succeed)"
echo "progress: ls $WORKDIR/store/_blocks   logs: $WORKDIR/logs"
