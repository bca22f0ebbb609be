"""GAN losses: LOSSES maps a name to fn(real_logits, fake_logits) -> (d_loss, g_loss), and the gradient penalty.

Each function takes D's raw outputs (its logits) on a batch of real images and on a batch of generated ones,
float [batch, 1] of any real value, and returns two scalar tensors, each a mean over the batch: the loss D
minimizes and the loss G minimizes. They follow the paper that introduced each and TF-GAN's `losses_impl.py`,
with no label smoothing. Each is marked with how to read D's outputs:
- `probability`: D's output is the logit of the probability that an image is real, so the log line and
  TensorBoard show sigmoid(D) as D(x) and D(G(z)); otherwise they show D's mean raw score.
- `floor`: the least value D's loss can take; D "has won" when it stays near it (safety.DiscriminatorWinWatch).
  None for a loss with no least value (Wasserstein), where that watch does not apply.

A new loss is one function here and one name in LOSSES.

$ python main.py --train --dataset celebA --crop --loss hinge
$ python main.py --train --dataset celebA --crop --loss wasserstein --gradient_penalty 10 --d_steps 5
"""

import tensorflow as tf

from config import LOSS_NAMES


def _marked(probability, floor):
  def mark(fn):
    fn.probability, fn.floor = probability, floor
    return fn
  return mark


def _mean(x):
  return tf.reduce_mean(x)


@_marked(probability=True, floor=0.0)
def non_saturating(real_logits, fake_logits):
  """The DCGAN paper's loss (Goodfellow et al. 2014, section 3's practical G loss).

  d_loss = -mean(log D(x)) - mean(log(1 - D(G(z)))),  g_loss = -mean(log D(G(z))),  D = sigmoid(logits).
  """
  d_loss = _mean(tf.nn.softplus(-real_logits)) + _mean(tf.nn.softplus(fake_logits))
  return d_loss, _mean(tf.nn.softplus(-fake_logits))


@_marked(probability=True, floor=0.0)
def minimax(real_logits, fake_logits):
  """The original minimax game (Goodfellow et al. 2014, equation 1); its G loss saturates when D is sure.

  d_loss = -mean(log D(x)) - mean(log(1 - D(G(z)))),  g_loss = mean(log(1 - D(G(z)))),  D = sigmoid(logits).
  """
  d_loss = _mean(tf.nn.softplus(-real_logits)) + _mean(tf.nn.softplus(fake_logits))
  return d_loss, -_mean(tf.nn.softplus(fake_logits))


@_marked(probability=False, floor=None)
def wasserstein(real_logits, fake_logits):
  """Wasserstein GAN (Arjovsky et al. 2017): D is a critic whose score difference estimates the W-1 distance.

  d_loss = mean(D(G(z))) - mean(D(x)),  g_loss = -mean(D(G(z))),  D = the raw score. Needs D to be Lipschitz:
  use it with --gradient_penalty (WGAN-GP, Gulrajani et al. 2017).
  """
  return _mean(fake_logits) - _mean(real_logits), -_mean(fake_logits)


@_marked(probability=False, floor=0.0)
def hinge(real_logits, fake_logits):
  """Hinge loss (Lim and Ye 2017; Miyato et al. 2018, SN-GAN).

  d_loss = mean(max(0, 1 - D(x))) + mean(max(0, 1 + D(G(z)))),  g_loss = -mean(D(G(z))),  D = the raw score.
  """
  d_loss = _mean(tf.nn.relu(1.0 - real_logits)) + _mean(tf.nn.relu(1.0 + fake_logits))
  return d_loss, -_mean(fake_logits)


@_marked(probability=False, floor=0.0)
def least_squares(real_logits, fake_logits):
  """Least squares GAN (Mao et al. 2017, equation 9, with a = 0, b = c = 1), with its 1/2 factors.

  d_loss = 1/2 mean((D(x) - 1)^2) + 1/2 mean(D(G(z))^2),  g_loss = 1/2 mean((D(G(z)) - 1)^2),  D = the raw
  score.
  """
  d_loss = 0.5 * _mean(tf.square(real_logits - 1.0)) + 0.5 * _mean(tf.square(fake_logits))
  return d_loss, 0.5 * _mean(tf.square(fake_logits - 1.0))


LOSSES = {
    'non_saturating': non_saturating,
    'minimax': minimax,
    'wasserstein': wasserstein,
    'hinge': hinge,
    'least_squares': least_squares,
}
if tuple(LOSSES) != LOSS_NAMES:  # (main.py's --loss accepts those names before TensorFlow loads)
  raise ImportError(f'losses.LOSSES {tuple(LOSSES)} and config.LOSS_NAMES {LOSS_NAMES} must name the same '
                    'losses in the same order')


def gradient_penalty(mixed, mixed_logits):
  """WGAN-GP's penalty (Gulrajani et al. 2017): mean((||grad D(x_hat)||_2 - 1)^2) over images x_hat that lie
  between real and generated ones, x_hat = u x + (1 - u) G(z) with u ~ U(0, 1) per image.

  Args:
    mixed: float [batch, height, width, channels], the x_hat.
    mixed_logits: D(x_hat), float [batch, 1].

  Returns:
    A scalar tensor, the penalty before its weight (--gradient_penalty).
  """
  gradient, = tf.gradients(mixed_logits, mixed)
  norm = tf.sqrt(tf.reduce_sum(tf.square(gradient), axis=[1, 2, 3]) + 1e-12)
  return tf.reduce_mean(tf.square(norm - 1.0))


def r1_penalty(real, real_logits):
  """R1 (Mescheder et al. 2018): mean ||grad_x D(x)||^2 over the real images as D sees them; --r1 gamma weighs it
  by gamma / 2 in D's loss (every --r1_every steps, times that many: lazy, as StyleGAN2).

  Args:
    real: float [batch, height, width, channels], the real images D is given (augmented, with --augment).
    real_logits: D(real), float [batch, 1].

  Returns:
    A scalar tensor, the penalty before its weight.
  """
  gradient, = tf.gradients(tf.reduce_sum(real_logits), real)
  return tf.reduce_mean(tf.reduce_sum(tf.square(gradient), axis=[1, 2, 3]))
