"""How good the samples are: the Evaluator (evaluator.py) and what it computes with, the FID paper's Inception
network (inception.py), the GAN literature's numbers on two sets of features (feature_metrics.py), the numbers on
pixels and classes (metrics.py), and the digit classifier of labelled grayscale data (classifier.py)."""

from .evaluator import (DEFAULT_SAMPLES, EVAL_SEED, INCEPTION_METRICS, Evaluator, table, uses_classifier,
                        write_record)

__all__ = ['DEFAULT_SAMPLES', 'EVAL_SEED', 'INCEPTION_METRICS', 'Evaluator', 'table', 'uses_classifier',
           'write_record']
