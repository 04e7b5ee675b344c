"""The controllable face generator and identity mixup."""
