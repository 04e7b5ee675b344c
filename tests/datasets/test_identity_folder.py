import numpy as np
import pytest

from synface.datasets.identity_folder import AlignedIdentityDataset, scan_identity_folder
from synface.errors import DataNotFoundError, SynfaceError


def test_celeba_299_scans_and_aligns_from_its_landmark_file(data_root, tmp_path):
    root = data_root / "celeba-299"
    if not root.is_dir():
        pytest.skip("celeba-299 absent")
    folder = scan_identity_folder(root)
    assert len(folder.classes) == 223 and len(folder.images) == 5555
    assert folder.landmarks_file is not None
    # Align a few identities only: a real but small test.
    few = scan_identity_folder(root)
    keep = np.isin(few.labels, [0, 1, 2])
    few.images = [p for p, k in zip(few.images, keep) if k]
    few.labels = few.labels[keep]
    ds = AlignedIdentityDataset(few, (56, 48))
    assert ds.alignment == {"file": len(few.images)}
    crop, label = ds[len(ds) - 1]
    assert crop.shape == (3, 56, 48) and label == 2 and crop.float().std() > 10


def test_identity_folder_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="nowhere"):
        scan_identity_folder(tmp_path / "nowhere")
    (tmp_path / "empty_person").mkdir()
    with pytest.raises(SynfaceError, match="no identity sub-folders"):
        scan_identity_folder(tmp_path)
