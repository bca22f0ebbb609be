"""The built-in `digits` dataset: MNIST-like handwritten digits drawn with Pillow, so nothing is downloaded.

Each digit is a few pen strokes (lines and elliptic arcs in a unit box). Every sample moves the stroke points a
little, draws them with a random pen width, applies a random rotation, shear, scale and shift, blurs, shrinks to
28x28 like MNIST (white on black, the digit in the central 20x20) and adds a little noise. The set is the same
on every machine: it depends only on DIGITS_SEED.

$ python main.py --train --dataset digits    # writes data/digits/*.gz on first use, then trains on it
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DIGITS_SEED = 20161123
DIGITS_COUNT = 20000
SIZE = 28
_CANVAS = 112  # drawn at 4x, then shrunk: smooth strokes like scanned pen
_BOX = 20 / 28  # MNIST fits each digit into the central 20x20 of 28x28


def _arc(cx, cy, rx, ry, start, end, points=24):
  """Points on an ellipse from `start` to `end` degrees; y grows downwards, so angles turn clockwise."""
  angles = np.radians(np.linspace(start, end, points))
  return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# Each glyph is a list of strokes; each stroke is a list of (x, y) points in the unit box.
GLYPHS = {
    0: [_arc(0.5, 0.5, 0.3, 0.45, 0, 360, 40)],
    1: [[(0.35, 0.22), (0.55, 0.05), (0.55, 0.95)]],
    2: [_arc(0.5, 0.3, 0.28, 0.25, 200, 380) + [(0.2, 0.95), (0.82, 0.95)]],
    3: [_arc(0.48, 0.27, 0.25, 0.22, 210, 450), _arc(0.48, 0.7, 0.3, 0.25, 270, 510)],
    4: [[(0.65, 0.95), (0.65, 0.05), (0.15, 0.68), (0.85, 0.68)]],
    5: [[(0.8, 0.05), (0.3, 0.05), (0.25, 0.45)] + _arc(0.48, 0.67, 0.3, 0.28, 225, 495)],
    6: [[(0.75, 0.08)] + _arc(0.8, 0.6, 0.55, 0.52, 240, 180, 12) + _arc(0.5, 0.7, 0.25, 0.25, 180, 540)],
    7: [[(0.15, 0.05), (0.85, 0.05), (0.4, 0.95)], [(0.35, 0.5), (0.75, 0.5)]],
    8: [_arc(0.5, 0.27, 0.22, 0.22, 90, 450), _arc(0.5, 0.72, 0.27, 0.23, -90, 270)],
    9: [_arc(0.48, 0.3, 0.25, 0.25, 0, 360) + _arc(0.2, 0.3, 0.53, 0.65, 0, 80, 12)],
}


def _affine(rng):
  """A random 2x2 matrix and shift that maps the unit box, centred on 0, into canvas pixels."""
  angle = math.radians(rng.uniform(-15, 15))
  shear = rng.uniform(-0.3, 0.3)
  scale_x, scale_y = rng.uniform(0.75, 1.05), rng.uniform(0.85, 1.05)
  rotate = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
  matrix = rotate @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([scale_x, scale_y]) * (_BOX * _CANVAS)
  shift = np.array([_CANVAS / 2, _CANVAS / 2]) + rng.uniform(-0.06, 0.06, size=2) * _CANVAS
  return matrix, shift


def render(label, rng):
  """Draws one digit.

  Args:
    label: the digit, 0-9.
    rng: a numpy Generator; all randomness comes from it.

  Returns:
    uint8 [28, 28], white digit on black.
  """
  matrix, shift = _affine(rng)
  width = int(rng.uniform(0.07, 0.14) * _CANVAS)
  canvas = Image.new('L', (_CANVAS, _CANVAS), 0)
  draw = ImageDraw.Draw(canvas)
  for stroke in GLYPHS[label]:
    points = np.asarray(stroke) - 0.5 + rng.normal(0, 0.025, size=(len(stroke), 2))
    points = points @ matrix.T + shift
    xy = [tuple(p) for p in points]
    draw.line(xy, fill=255, width=width, joint='curve')
    for x, y in (xy[0], xy[-1]):  # round pen ends
      draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=255)
  canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.5)))
  image = np.asarray(canvas.resize((SIZE, SIZE), Image.BILINEAR, reducing_gap=2.0), np.float32)
  image = image * rng.uniform(1.0, 1.4) + rng.normal(0, 4, size=image.shape)
  return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def make_digits(count=DIGITS_COUNT, seed=DIGITS_SEED):
  """Renders `count` digits with balanced labels.

  Returns:
    (images uint8 [count, 28, 28], labels uint8 [count]).
  """
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)
  images = np.stack([render(int(label), rng) for label in labels])
  return images, labels
