"""Test-time augmentation: the 8 symmetries of the square (flips and quarter turns).

A cell on a slide has no up, down, left or right, so each view is as valid as the original;
averaging the model over all 8 removes its small orientation preferences.
"""

from __future__ import annotations

import numpy as np

VIEWS = 8


def dihedral_views(tensor: np.ndarray) -> np.ndarray:
    """(3, H, W) -> (8, 3, H, W): four quarter turns, each also mirrored."""
    turns = [np.rot90(tensor, k, axes=(1, 2)) for k in range(4)]
    mirrored = [view[:, :, ::-1] for view in turns]
    return np.ascontiguousarray(np.stack(turns + mirrored), dtype=np.float32)


def average_views(probabilities: np.ndarray) -> np.ndarray:
    """(N * 8,) probabilities, 8 consecutive views per image -> (N,) means."""
    return probabilities.reshape(-1, VIEWS).mean(axis=1)
