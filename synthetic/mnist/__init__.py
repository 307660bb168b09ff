"""MultiColoredMNIST (paper appendix D.4): contrastive against supervised training on coloured digits."""
