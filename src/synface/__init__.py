"""synface: train face recognisers on synthetic faces (SynFace, ICCV 2021).

Packages by pipeline stage. A module imports only from its own stage or an earlier one, in
this order (``tests/test_layers.py`` checks every import):

1. infrastructure: ``errors``, ``config``, ``paths``, ``seeding``, ``imageio``, ``runtime``, ``locks``
2. ``faces``: detection, landmarks, alignment templates
3. ``render``: the rasteriser
4. ``facemodel``: the morphable model, latents, samplers, the learned appearance
5. ``generate``: the face generator and identity mixup
6. ``datasets``: specs, storage, builders, real-data import, RecordIO
7. ``models``: backbones, margin heads, network input, checkpoints, ONNX
8. ``evaluate``: benchmark pair lists, embeddings and the verification protocol (training's
   validation uses it)
9. ``train``: the training loop
10. ``experiments``: demo, A/B studies
11. ``cli``
"""

__version__ = "0.1.0"

STAGES = ("errors", "config", "paths", "seeding", "imageio", "runtime", "locks", "faces", "render", "facemodel",
          "generate", "datasets", "models", "evaluate", "train", "experiments", "cli")
