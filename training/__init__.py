"""The training runtime: loading TensorFlow, the session and the training loop, checkpoints and restoring them,
the guards of a run (signals, NaNs, a stalled worker), and the cluster of a multi-worker run."""
