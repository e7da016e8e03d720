"""Training GENRE-CMR: data, losses, CoV weighting, adversarial loop, DDP."""
