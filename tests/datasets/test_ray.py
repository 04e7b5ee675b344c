"""Generation on Ray (issue 20): one task per shard on a local 2-CPU cluster, the same bytes as
``--workers 2``, a task killed mid-shard retried."""

import os
import signal
import sys
from pathlib import Path

import pytest

from synface.datasets.build import generate_dataset, ray_shard_task
from synface.datasets.spec import DatasetSpec
from synface.datasets.storage import shard_files
from helpers import tree_bytes

ray = pytest.importorskip("ray", reason="optional: pip install synface[ray]")
# Ray workers cannot import this test module: its fault-injecting task travels by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
SPEC = DatasetSpec(name="ray", identities=6, samples=4, mixup="syn3", shard_size=4)



def dies_once_mid_shard(spec, root, k):
    """Shard 2's first attempt: half a shard on disk, then the worker is SIGKILLed."""
    marker = Path(root) / f".killed-{k}"
    if k == 2 and not marker.exists():
        marker.write_text("once")
        shard_files(Path(root), k)["images"].with_suffix(".npy.tmp").write_bytes(b"half a shard")
        os.kill(os.getpid(), signal.SIGKILL)
    return ray_shard_task(spec, root, k)


@pytest.fixture(scope="module")
def cluster(data_root):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {k: os.environ[k] for k in ("SYNFACE_CACHE", "SYNFACE_DATA") if k in os.environ}})
    yield
    ray.shutdown()


def test_ray_tasks_write_the_bytes_of_two_workers_even_when_one_dies(cluster, tmp_path):
    two = tmp_path / "two"
    generate_dataset(SPEC, two, workers=2, progress=False)
    on_ray = tmp_path / "ray"
    summary = generate_dataset(SPEC, on_ray, progress=False, ray_address="local", ray_task=dies_once_mid_shard)
    assert summary["complete"] and summary["made"] == 6
    assert (on_ray / ".killed-2").is_file()  # the fault happened, and was retried
    (on_ray / ".killed-2").unlink()
    assert tree_bytes(on_ray) == tree_bytes(two)
