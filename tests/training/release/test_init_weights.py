from importlib import metadata
from pathlib import Path

import timm

from app.core.manifest import file_sha256
from training.release.init_weights import describe_init_weights, without_local_path


def test_a_file_shipped_by_an_installed_package_is_named_by_package_and_version():
    shipped = Path(timm.__file__)
    assert "site-packages" in shipped.parts
    weights = describe_init_weights(shipped)
    assert (weights.package, weights.package_version) == ("timm", metadata.version("timm"))
    assert weights.sha256 == file_sha256(shipped)
    assert weights.portable_name() == f"timm=={metadata.version('timm')}:__init__.py"


def test_a_local_file_keeps_its_name_and_sha256_and_the_card_loses_its_path(tmp_path):
    local = tmp_path / "deep" / "folder" / "lite0.pth"
    local.parent.mkdir(parents=True)
    local.write_bytes(b"weights")
    weights = describe_init_weights(local)
    assert weights.package is None
    assert weights.portable_name() == "lite0.pth"
    config = {"train": {"init_weights": str(local), "epochs": 3, "extra": [str(local)]}}
    command = f"python -m training train --init-weights {local} --epochs 3"
    assert without_local_path(config, local, weights) == {
        "train": {"init_weights": "lite0.pth", "epochs": 3, "extra": ["lite0.pth"]}
    }
    assert without_local_path(command, local, weights) == (
        "python -m training train --init-weights lite0.pth --epochs 3"
    )
