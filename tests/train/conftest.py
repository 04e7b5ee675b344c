import pytest

from synface.datasets.build import generate_dataset
from synface.datasets.real import import_identity_folder
from synface.datasets.spec import DatasetSpec


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("train-data") / "syn"
    generate_dataset(DatasetSpec(name="tiny", identities=8, samples=4, mixup="syn3", shard_size=16), out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_real(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("train-data") / "real"
    import_identity_folder(data_root / "celeba-299", out, max_identities=4, max_per_identity=4)
    return out
