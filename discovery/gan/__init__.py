"""The composition WGAN: networks, training, sampling."""
