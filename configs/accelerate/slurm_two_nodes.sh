#!/bin/bash
# Two nodes x 8 GPUs under SLURM: sbatch configs/accelerate/slurm_two_nodes.sh path/to/config.yaml
# One task per node; each starts 8 processes through accelerate launch. Swap the --config_file for fsdp2.yaml
# (with --num_machines/--num_processes kept on the command line) for a sharded full fine-tune.
#SBATCH --job-name=ltx-trainer
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --output=ltx-trainer-%j.log
set -euo pipefail
CONFIG=${1:?usage: sbatch slurm_two_nodes.sh CONFIG.yaml}
MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
GPUS_PER_NODE=8
srun bash -c "accelerate launch \
  --config_file configs/accelerate/two_nodes.yaml \
  --num_machines $SLURM_NNODES \
  --num_processes $((SLURM_NNODES * GPUS_PER_NODE)) \
  --machine_rank \$SLURM_NODEID \
  --main_process_ip $MAIN_IP \
  --main_process_port 29500 \
  -m ltx_trainer.cli train $CONFIG"
