"""Test-time augmentation transforms: the 8 symmetries of the square (flips and quarter turns).

A cell on a slide has no up, down, left or right, so each transformed copy is as valid as the
original; averaging the model over all 8 removes its small orientation preferences.
"""

from __future__ import annotations

import numpy as np

TRANSFORMS = 8


def dihedral_transforms(tensor: np.ndarray) -> np.ndarray:
    """(3, H, W) -> (8, 3, H, W): four quarter turns, each also mirrored."""
    turns = [np.rot90(tensor, k, axes=(1, 2)) for k in range(4)]
    mirrored = [turned[:, :, ::-1] for turned in turns]
    return np.ascontiguousarray(np.stack(turns + mirrored), dtype=np.float32)


def average_over_transforms(probabilities: np.ndarray) -> np.ndarray:
    """(N * 8,) probabilities, 8 consecutive transforms per image -> (N,) means."""
    return np.asarray(probabilities.reshape(-1, TRANSFORMS).mean(axis=1))
