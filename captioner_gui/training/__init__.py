"""Training new ClipCap models: synthetic data, CLIP embeddings, the training loop, and the COCO metrics."""
