"""synface: train face recognisers on synthetic faces (SynFace, ICCV 2021)."""

__version__ = "0.1.0"
