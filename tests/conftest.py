from pathlib import Path

import pytest

FIXTURE_ROOT = Path(__file__).parent / "fixtures" / "cnmc"


@pytest.fixture
def cnmc_root() -> Path:
    """18 real C-NMC fold-1 cells: subjects 16, 23, 30 (ALL) and H10, H14, H22 (HEM)."""
    return FIXTURE_ROOT


@pytest.fixture
def real_cell_png() -> bytes:
    return (FIXTURE_ROOT / "training_data/fold_1/all/UID_16_11_1_all.png").read_bytes()
