"""The morphable face model, its latent factors and their samplers."""

from synface.facemodel.model import FaceModel

__all__ = ["FaceModel"]
