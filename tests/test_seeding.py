"""The seeding scheme: streams depend only on their keys, and keys never collide across uses."""

import numpy as np

from synface.seeding import NAMESPACES, hair_rng, identity_rng, namespace_id, sample_rng


def test_seed_streams_depend_only_on_their_keys():
    a = identity_rng(0, "train", 5).normal(size=4)
    assert np.array_equal(a, identity_rng(0, "train", 5).normal(size=4))
    assert not np.array_equal(a, identity_rng(0, "syn_lfw", 5).normal(size=4))
    assert not np.array_equal(sample_rng(0, "train", 5, 0).random(3), sample_rng(0, "train", 5, 1).random(3))


def test_the_streams_of_one_image_are_distinct_and_namespaces_unique():
    draws = [rng.random(4) for rng in (identity_rng(1, "train", 3), sample_rng(1, "train", 3, 0),
                                       hair_rng(1, "train", 3, 0))]
    assert len({d.tobytes() for d in draws}) == 3  # identity, attributes and haircut never share draws
    assert len(set(NAMESPACES.values())) == len(NAMESPACES) and namespace_id("hair_donor") == 6
