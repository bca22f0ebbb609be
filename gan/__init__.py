"""The GAN's parts: the two networks, the losses, differentiable augmentation, the averaged G, and the
stages of one training step (model.DCGAN builds them into its graph)."""
