"""MTCNN face detector (Zhang et al. 2016): P-Net, R-Net, O-Net cascade with 5 landmarks.

The networks are ours; the pretrained weights are the ones shipped as data files inside the
``facenet-pytorch`` wheel (never imported: it pins an old torch and pulls torchvision). The
cascade follows the reference MATLAB/TensorFlow implementation, including zero-padded crops
for boxes that leave the image, so landmarks agree with published MTCNN landmark files.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synface.errors import DataNotFoundError

_NORM_MEAN, _NORM_SCALE = 127.5, 0.0078125


class PNet(nn.Module):
    """Proposal network: fully convolutional, 12x12 receptive field, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement network on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The weights were converted from a (W, H)-major framework: flatten in that order.
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output network on 48x48 crops: score, box regression and 5 landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).flatten(1)))
        return self.dense6_2(x), self.dense6_3(x), F.softmax(self.dense6_1(x), dim=1)


def weights_dir() -> Path:
    """The folder of pnet/rnet/onet.pt inside the installed facenet-pytorch wheel."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError(
            "MTCNN weights not found: install them with "
            "`pip install --no-deps facenet-pytorch==2.6.0` (only its data files are used)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    for name in ("pnet", "rnet", "onet"):
        if not (folder / f"{name}.pt").is_file():
            raise DataNotFoundError(f"MTCNN weight file missing: {folder / name}.pt")
    return folder


@dataclass
class Detection:
    """All faces found in one image, best first by detector score."""

    boxes: np.ndarray  # (n, 4) x1, y1, x2, y2
    scores: np.ndarray  # (n,)
    landmarks: np.ndarray  # (n, 5, 2) x, y

    def __len__(self) -> int:
        return len(self.scores)

    def main_face(self, image_shape: tuple[int, int]) -> int | None:
        """Index of the face a one-face-per-image benchmark means: large and near the centre."""
        if len(self) == 0:
            return None
        h, w = image_shape[:2]
        sizes = (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])
        centres = (self.boxes[:, :2] + self.boxes[:, 2:]) / 2 - np.array([w / 2, h / 2])
        return int(np.argmax(sizes - 2.0 * (centres**2).sum(1)))


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, mode: str = "union") -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices, best score first.

    ``mode="min"`` divides the overlap by the smaller box (MTCNN's last stage), which also
    removes a small box lying inside a big one.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt + 1).clamp(min=0).prod(-1)
    if mode == "min":
        overlap = inter / torch.minimum(area[:, None], area[None, :])
    else:
        overlap = inter / (area[:, None] + area[None, :] - inter)
    suppress = (overlap > threshold).cpu().numpy()
    keep = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1 :] &= ~suppress[i, i + 1 :]
    return order[torch.from_numpy(np.flatnonzero(keep)).to(order.device)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float, mode: str = "union"
) -> torch.Tensor:
    """NMS within each group (image), in one call: boxes of different groups never overlap."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offset = groups.to(boxes.dtype)[:, None] * (boxes.max() - boxes.min() + 2)
    return nms(boxes + offset, scores, threshold, mode)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square around its centre (the reference ``rerec``)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    out = boxes.clone()
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Apply box regression offsets given in units of box size (the reference ``bbreg``)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.clone()
    out[:, 0:4] = boxes[:, 0:4] + reg * torch.stack([w, h, w, h], dim=1)
    return out


def _crops(images: torch.Tensor, image_index: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Cut each box from its image, zero-padding what lies outside, resized to size x size.

    Boxes follow the reference 1-based convention: a box covers 0-based columns
    trunc(x1)-1 ... trunc(x1)-1 + trunc(x2-x1+1) - 1.
    """
    _, _, height, width = images.shape
    x0 = boxes[:, 0].trunc().long() - 1
    y0 = boxes[:, 1].trunc().long() - 1
    bw = (boxes[:, 2] - boxes[:, 0] + 1).trunc().long().clamp(min=1)
    bh = (boxes[:, 3] - boxes[:, 1] + 1).trunc().long().clamp(min=1)
    out = torch.zeros(len(boxes), 3, size, size, dtype=images.dtype, device=images.device)
    for k, (i, x, y, w, h) in enumerate(zip(*(t.tolist() for t in (image_index, x0, y0, bw, bh)))):
        patch = torch.zeros(3, h, w, dtype=images.dtype, device=images.device)
        sx0, sy0 = max(x, 0), max(y, 0)
        sx1, sy1 = min(x + w, width), min(y + h, height)
        if sx1 > sx0 and sy1 > sy0:
            patch[:, sy0 - y : sy1 - y, sx0 - x : sx1 - x] = images[i, :, sy0:sy1, sx0:sx1]
        out[k] = F.interpolate(patch[None], size=(size, size), mode="area")[0]
    return out


def _whole_pixels(boxes: torch.Tensor) -> torch.Tensor:
    """Truncate box corners to integers, as the reference does before cutting crops, so the
    landmarks O-Net reports relative to its crop map back to the pixels it really saw."""
    out = boxes.clone()
    out[:, :4] = out[:, :4].trunc()
    return out


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - _NORM_MEAN) * _NORM_SCALE


class MTCNN(nn.Module):
    """Batched 5-point face detector.

    ``detect`` takes a list of uint8 RGB arrays (H, W, 3); images of the same size are run
    through P-Net together. Works on any device: ``MTCNN().to("cuda")``.
    """

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.factor = factor
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        folder = Path(weights) if weights is not None else weights_dir()
        for name in ("pnet", "rnet", "onet"):
            state = torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
            getattr(self, name).load_state_dict(state)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.pnet.conv1.weight.device

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[Detection]:
        """Faces in each image, in input order."""
        results: list[Detection | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"image {i}: expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
            by_shape.setdefault(image.shape, []).append(i)
        for indices in by_shape.values():
            batch = torch.from_numpy(np.stack([images[i] for i in indices])).to(self.device)
            for i, det in zip(indices, self._detect_batch(batch.permute(0, 3, 1, 2).float())):
                results[i] = det
        return results  # type: ignore[return-value]

    def _detect_batch(self, images: torch.Tensor) -> list[Detection]:
        n, _, height, width = images.shape
        boxes, image_index = self._propose(images)
        boxes, image_index = self._refine(images, boxes, image_index)
        boxes, image_index, points = self._output(images, boxes, image_index)
        detections = []
        for i in range(n):
            sel = (image_index == i).nonzero().flatten()
            b, p = boxes[sel].cpu().numpy(), points[sel].cpu().numpy()
            order = np.argsort(-b[:, 4], kind="stable")
            detections.append(Detection(b[order, :4].copy(), b[order, 4].copy(), p[order].copy()))
        return detections

    def _scales(self, height: int, width: int) -> list[float]:
        scale = 12.0 / self.min_face_size
        side = min(height, width) * scale
        scales = []
        while side >= 12:
            scales.append(scale)
            scale *= self.factor
            side *= self.factor
        return scales

    def _propose(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """P-Net over the image pyramid; returns boxes (m, 5: x1 y1 x2 y2 score) and image index."""
        _, _, height, width = images.shape
        all_boxes, all_index = [], []
        for scale in self._scales(height, width):
            resized = F.interpolate(images, size=(int(height * scale + 1), int(width * scale + 1)), mode="area")
            reg, prob = self.pnet(_normalise(resized))
            mask = prob[:, 1] >= self.thresholds[0]
            idx = mask.nonzero()  # (k, 3): image, row, column
            if len(idx) == 0:
                continue
            score = prob[:, 1][mask]
            offsets = reg.permute(0, 2, 3, 1)[mask]
            cell = idx[:, [2, 1]].to(images.dtype)  # (x, y) of the 12x12 cell at stride 2
            q1 = ((2 * cell + 1) / scale).floor()
            q2 = ((2 * cell + 12) / scale).floor()
            boxes = torch.cat([q1, q2, score[:, None], offsets], dim=1)
            keep = batched_nms(boxes[:, :4], boxes[:, 4], idx[:, 0], 0.5)
            all_boxes.append(boxes[keep])
            all_index.append(idx[keep, 0])
        if not all_boxes:
            return images.new_zeros(0, 5), torch.zeros(0, dtype=torch.long, device=images.device)
        boxes, index = torch.cat(all_boxes), torch.cat(all_index)
        keep = batched_nms(boxes[:, :4], boxes[:, 4], index, 0.7)
        boxes, index = boxes[keep], index[keep]
        # The reference applies P-Net's regression with widths x2-x1 (no +1); kept for fidelity.
        w = (boxes[:, 2] - boxes[:, 0])[:, None]
        h = (boxes[:, 3] - boxes[:, 1])[:, None]
        scale = torch.cat([w, h, w, h], dim=1)
        refined = torch.cat([boxes[:, :4] + boxes[:, 5:9] * scale, boxes[:, 4:5]], dim=1)
        return _square(refined), index

    def _refine(
        self, images: torch.Tensor, boxes: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if len(boxes) == 0:
            return boxes, index
        boxes = _whole_pixels(boxes)
        reg, prob = self.rnet(_normalise(_crops(images, index, boxes, 24)))
        passed = prob[:, 1] > self.thresholds[1]
        boxes = torch.cat([boxes[passed, :4], prob[passed, 1:2]], dim=1)
        reg, index = reg[passed], index[passed]
        keep = batched_nms(boxes[:, :4], boxes[:, 4], index, 0.7)
        return _square(_regress(boxes[keep], reg[keep])), index[keep]

    def _output(
        self, images: torch.Tensor, boxes: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if len(boxes) == 0:
            return boxes, index, images.new_zeros(0, 5, 2)
        boxes = _whole_pixels(boxes)
        reg, marks, prob = self.onet(_normalise(_crops(images, index, boxes, 48)))
        passed = prob[:, 1] > self.thresholds[2]
        boxes = torch.cat([boxes[passed, :4], prob[passed, 1:2]], dim=1)
        reg, marks, index = reg[passed], marks[passed], index[passed]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = torch.stack(
            [w * marks[:, 0:5] + boxes[:, 0:1] - 1, h * marks[:, 5:10] + boxes[:, 1:2] - 1], dim=2
        )
        boxes = _regress(boxes, reg)
        keep = batched_nms(boxes[:, :4], boxes[:, 4], index, 0.7, mode="min")
        return boxes[keep], index[keep], points[keep]
