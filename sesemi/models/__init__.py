"""Models: backbones, classification heads and loss heads."""
