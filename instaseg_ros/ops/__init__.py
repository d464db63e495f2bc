"""Torch operations shared by the model families: box transforms, NMS, mask paste, and THE filter."""
