import numpy as np
import pytest

from synface.datasets.real import import_identity_folder
from synface.datasets.storage import ShardedDataset
from synface.errors import SynfaceError


@pytest.fixture(scope="module")
def celeba_root(data_root):
    root = data_root / "celeba-299"
    if not root.is_dir():
        pytest.skip("celeba-299 not found")
    return root


def test_real_identities_import_into_the_shared_format(celeba_root, tmp_path):
    out = tmp_path / "real"
    info = import_identity_folder(celeba_root, out, max_identities=5, max_per_identity=4, shard_size=7)
    ds = ShardedDataset(out)
    assert info["kind"] == "real" and ds.num_classes == 5 and len(ds) <= 20 and info["num_shards"] >= 2
    assert np.all(ds.secondary == -1) and np.all(ds.phi == 1.0)
    assert sorted(set(ds.labels.tolist())) == list(range(5))
    batch, labels = ds.__getitems__(list(range(len(ds))))
    assert batch.shape[1:] == (3, 112, 96) and batch.float().std() > 20
    assert ds.info["classes"] == sorted(p.name for p in celeba_root.iterdir() if p.is_dir())[:5]
    with pytest.raises(SynfaceError, match="already holds a dataset"):
        import_identity_folder(celeba_root, out, max_identities=5)
