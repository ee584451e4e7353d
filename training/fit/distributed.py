"""Training on several processes: `torchrun --nproc_per_node=N -m training train ...`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; each process then trains a
DistributedDataParallel copy of the model on its share of every global batch (a
DistributedSampler deals the shuffled images out), and the gradients are averaged, so one
step equals a one-process step on the whole global batch. `--batch-size` stays the global
batch. gloo on CPUs, NCCL on GPUs. Only rank 0 writes the run directory; every rank runs
the (small) validation on identical weights, so early stopping decides alike everywhere.

Not equal to one process: batch-norm statistics are per process on CPU (SyncBatchNorm needs
GPUs; it is used there), and random augmentation draws differ (--no-augment for checks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

from training.data.cell_dataset import CellBatch


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun (even with one process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        if self.launched and torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def join_from_environment() -> ProcessGroup:
    """Join torchrun's process group when launched by it; else one plain process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return ProcessGroup()
    group = ProcessGroup(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        launched=True,
    )
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(group.local_rank)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return group


def leave(group: ProcessGroup) -> None:
    if group.launched and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def per_process_batch_size(global_batch: int, group: ProcessGroup) -> int:
    if global_batch % group.world_size:
        raise ValueError(
            f"--batch-size {global_batch} (the global batch) must divide evenly among "
            f"{group.world_size} processes"
        )
    return global_batch // group.world_size


def sampler(
    dataset: Dataset[CellBatch], group: ProcessGroup, seed: int
) -> DistributedSampler[int] | None:
    """The shuffled share of each epoch's images for this process; None without torchrun
    (the one-process loader shuffles as it always has)."""
    if not group.launched:
        return None
    return DistributedSampler(
        dataset, num_replicas=group.world_size, rank=group.rank, shuffle=True, seed=seed
    )


def wrap(model: nn.Module, group: ProcessGroup) -> nn.Module:
    """The module to train through: gradients averaged over the processes."""
    if not group.launched:
        return model
    if group.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
        return DistributedDataParallel(model, device_ids=[group.local_rank])
    return DistributedDataParallel(model)


def average_gradients(model: nn.Module, group: ProcessGroup) -> None:
    """For a backward pass that did not go through the DDP wrapper (the Grad-CAM penalty
    calls the bare model): average the gradients by hand."""
    if group.world_size == 1:
        return
    for parameter in model.parameters():
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= group.world_size


def mean_over_processes(value: float, group: ProcessGroup) -> float:
    """A per-process average (the epoch's loss) averaged over every process."""
    if group.world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=group.device)  # NCCL: on GPU
    dist.all_reduce(tensor)
    return float(tensor.item()) / group.world_size
