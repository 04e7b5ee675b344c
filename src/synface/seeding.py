"""The seeding scheme: every random draw of synface comes from one of these streams.

A generated image depends only on (global seed, namespace, identity index, sample index):
never on batch size, worker count, process or machine. Namespaces keep seed spaces of
different uses disjoint (Syn-LFW identities can never equal training identities).
"""

from __future__ import annotations

import numpy as np

NAMESPACES = {"train": 0, "validation": 1, "syn_lfw": 2, "mixup_partner": 3, "preview": 4, "syn_lfw_partner": 5,
              "hair_donor": 6, "refiner": 7}
_IDENTITY_STREAM, _SAMPLE_STREAM, _HAIR_STREAM, _PHOTO_STREAM, _GLASSES_STREAM, _BACKGROUND_PHOTO_STREAM = 0, 1, 2, 3, 4, 5


def namespace_id(namespace: str | int) -> int:
    if isinstance(namespace, int):
        return namespace
    try:
        return NAMESPACES[namespace]
    except KeyError:
        raise ValueError(f"unknown seed namespace {namespace!r}; known: {', '.join(NAMESPACES)}") from None


def identity_rng(seed: int, namespace: str | int, identity: int) -> np.random.Generator:
    """The stream an identity's coefficients (shape, appearance) are drawn from."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, namespace_id(namespace), identity, _IDENTITY_STREAM])))


def sample_rng(seed: int, namespace: str | int, identity: int, sample: int) -> np.random.Generator:
    """The stream one image's attributes (expression, pose, light, background) come from."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, namespace_id(namespace), identity, _SAMPLE_STREAM, sample]))
    )


def hair_rng(seed: int, namespace: str | int, identity: int, sample: int) -> np.random.Generator:
    """The stream that decides whether one image shows another haircut (and whose), apart
    from the attribute stream so that turning haircut changes on moves no other draw."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, namespace_id(namespace), identity, _HAIR_STREAM, sample]))
    )


def photo_variation_rng(seed: int, namespace: str | int, identity: int, sample: int) -> np.random.Generator:
    """The stream of one image's within-person skin variation (the photo residuals), apart
    from the attribute stream so that turning it on moves no other draw."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, namespace_id(namespace), identity, _PHOTO_STREAM, sample]))
    )


def glasses_rng(seed: int, namespace: str | int, identity: int, sample: int) -> np.random.Generator:
    """The stream that decides whether one image shows spectacles, apart from the others."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, namespace_id(namespace), identity, _GLASSES_STREAM, sample]))
    )


def background_photo_rng(seed: int, namespace: str | int, identity: int, sample: int) -> np.random.Generator:
    """The stream that picks the real photo behind one image's head, apart from the others."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, namespace_id(namespace), identity, _BACKGROUND_PHOTO_STREAM, sample]))
    )
