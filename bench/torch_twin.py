"""The DCGAN of model.py written in PyTorch, as a user who picked PyTorch instead would write it: the peer that
bench/throughput.py --compare-torch measures us against.

Same layers and sizes (5x5 stride-2 convolutions, batch norm, the conditional MNIST model's label concatenation),
same losses (sigmoid cross-entropy on D's logits), same optimizers (two Adams, lr 2e-4, beta1 0.5) and the same
step: one D update on a real and a generated batch, then --g_steps G updates on the same z. And each case's recipe
(bench/suite.py CASES), as a PyTorch user would add it: G's upsampling by nn.Upsample then a 3x3 convolution
(--upsample resize), DiffAugment's translation and cutout on every image D sees (the authors' DiffAugment_pytorch.py,
mit-han-lab/data-efficient-gans), and G's moving average (torch.optim.swa_utils.AveragedModel, updated after each
G update, then run in training mode on that update's z so that its batch norms keep statistics of its own, as
gan/average.py's do). Images are random (the input pipeline is measured apart). PyTorch is a benchmark-only
dependency: pip install -r bench/requirements.txt

$ .venv/bin/python bench/torch_twin.py --case rgb64-default --steps 5
"""

import argparse
import json
import os
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F
from torch.optim import swa_utils

from suite import CASES  # noqa: E402  (name: a Case of size and recipe, as our side's)
Z_DIM, GF, DF, GFC, DFC = 100, 64, 64, 1024, 1024


def _conv(cin, cout):
  return nn.Conv2d(cin, cout, 5, stride=2, padding=2)


def _deconv(cin, cout):
  return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


def _resize_conv(cin, cout):
  return nn.Sequential(nn.Upsample(scale_factor=2, mode='nearest'), nn.Conv2d(cin, cout, 3, padding=1))


UPSAMPLINGS = {'deconv': _deconv, 'resize': _resize_conv}


def rand_translation(x, ratio=0.125):
  """DiffAugment's translation (DiffAugment_pytorch.py): each image moved by up to `ratio` of its size, zeros in."""
  shift_x, shift_y = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
  translation_x = torch.randint(-shift_x, shift_x + 1, size=[x.size(0), 1, 1])
  translation_y = torch.randint(-shift_y, shift_y + 1, size=[x.size(0), 1, 1])
  grid_batch, grid_x, grid_y = torch.meshgrid(torch.arange(x.size(0)), torch.arange(x.size(2)),
                                              torch.arange(x.size(3)), indexing='ij')
  grid_x = torch.clamp(grid_x + translation_x + 1, 0, x.size(2) + 1)
  grid_y = torch.clamp(grid_y + translation_y + 1, 0, x.size(3) + 1)
  x_pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
  return x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)


def rand_cutout(x, ratio=0.5):
  """DiffAugment's cutout (DiffAugment_pytorch.py): a square of `ratio` of the size zeroed at a random place."""
  cutout_size = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
  offset_x = torch.randint(0, x.size(2) + (1 - cutout_size[0] % 2), size=[x.size(0), 1, 1])
  offset_y = torch.randint(0, x.size(3) + (1 - cutout_size[1] % 2), size=[x.size(0), 1, 1])
  grid_batch, grid_x, grid_y = torch.meshgrid(torch.arange(x.size(0)), torch.arange(cutout_size[0]),
                                              torch.arange(cutout_size[1]), indexing='ij')
  grid_x = torch.clamp(grid_x + offset_x - cutout_size[0] // 2, min=0, max=x.size(2) - 1)
  grid_y = torch.clamp(grid_y + offset_y - cutout_size[1] // 2, min=0, max=x.size(3) - 1)
  mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype)
  mask[grid_batch, grid_x, grid_y] = 0
  return x * mask.unsqueeze(1)


AUGMENTATIONS = {'translation': rand_translation, 'cutout': rand_cutout}


def diff_augment(x, policy):
  """The augmentations of `policy` ('translation,cutout'; 'none': none), in its order, as DiffAugment applies them."""
  for name in policy.split(','):
    if name != 'none':
      x = AUGMENTATIONS[name](x)
  return x


def _init(module):
  if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
    nn.init.normal_(module.weight, 0.0, 0.02)
    nn.init.zeros_(module.bias)


def _with_label_maps(x, y):
  """Appends a one-hot label to every pixel, like ops.conv_cond_concat."""
  return torch.cat([x, y[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], dim=1)


class Generator(nn.Module):

  def __init__(self, height, channels, upsample='deconv'):
    super().__init__()
    self.s16 = height // 16
    self.project = nn.Linear(Z_DIM, GF * 8 * self.s16 * self.s16)
    self.bn0 = nn.BatchNorm2d(GF * 8, momentum=0.1, eps=1e-5)
    up = UPSAMPLINGS[upsample]
    self.body = nn.Sequential(
        up(GF * 8, GF * 4), nn.BatchNorm2d(GF * 4), nn.ReLU(True),
        up(GF * 4, GF * 2), nn.BatchNorm2d(GF * 2), nn.ReLU(True),
        up(GF * 2, GF), nn.BatchNorm2d(GF), nn.ReLU(True),
        up(GF, channels), nn.Tanh())

  def forward(self, z, y=None):
    net = self.project(z).view(-1, GF * 8, self.s16, self.s16)
    return self.body(F.relu(self.bn0(net)))


class Discriminator(nn.Module):

  def __init__(self, height, channels):
    super().__init__()
    self.body = nn.Sequential(
        _conv(channels, DF), nn.LeakyReLU(0.2, True),
        _conv(DF, DF * 2), nn.BatchNorm2d(DF * 2), nn.LeakyReLU(0.2, True),
        _conv(DF * 2, DF * 4), nn.BatchNorm2d(DF * 4), nn.LeakyReLU(0.2, True),
        _conv(DF * 4, DF * 8), nn.BatchNorm2d(DF * 8), nn.LeakyReLU(0.2, True),
        nn.Flatten(), nn.Linear(DF * 8 * (height // 16) ** 2, 1))

  def forward(self, x, y=None):
    return self.body(x)


class ConditionalGenerator(nn.Module):

  def __init__(self, height, channels, classes):
    super().__init__()
    self.s4 = height // 4
    self.fc0 = nn.Sequential(nn.Linear(Z_DIM + classes, GFC), nn.BatchNorm1d(GFC), nn.ReLU(True))
    self.fc1 = nn.Sequential(nn.Linear(GFC + classes, GF * 2 * self.s4 * self.s4),
                             nn.BatchNorm1d(GF * 2 * self.s4 * self.s4), nn.ReLU(True))
    self.up2 = nn.Sequential(_deconv(GF * 2 + classes, GF * 2), nn.BatchNorm2d(GF * 2), nn.ReLU(True))
    self.up1 = _deconv(GF * 2 + classes, channels)

  def forward(self, z, y):
    net = self.fc0(torch.cat([z, y], 1))
    net = self.fc1(torch.cat([net, y], 1)).view(-1, GF * 2, self.s4, self.s4)
    net = self.up2(_with_label_maps(net, y))
    return torch.tanh(self.up1(_with_label_maps(net, y)))


class ConditionalDiscriminator(nn.Module):

  def __init__(self, height, channels, classes):
    super().__init__()
    self.conv0 = _conv(channels + classes, channels + classes)
    self.conv1 = nn.Sequential(_conv(channels + 2 * classes, DF + classes), nn.BatchNorm2d(DF + classes))
    self.fc2 = nn.Sequential(nn.Linear((DF + classes) * (height // 4) ** 2 + classes, DFC), nn.BatchNorm1d(DFC))
    self.fc3 = nn.Linear(DFC + classes, 1)

  def forward(self, x, y):
    net = F.leaky_relu(self.conv0(_with_label_maps(x, y)), 0.2)
    net = F.leaky_relu(self.conv1(_with_label_maps(net, y)), 0.2)
    net = F.leaky_relu(self.fc2(torch.cat([net.flatten(1), y], 1)), 0.2)
    return self.fc3(torch.cat([net, y], 1))


def build(case):
  height, _, channels, classes, upsample = CASES[case][:5]
  if classes:  # (the conditional MNIST model has transposed convolutions only, as networks._mnist_generator)
    nets = ConditionalGenerator(height, channels, classes), ConditionalDiscriminator(height, channels, classes)
  else:
    nets = Generator(height, channels, upsample), Discriminator(height, channels)
  for net in nets:
    net.apply(_init)
  return nets


def trainer(g, d, g_steps=2, autocast=False, augment='none', ema=0.0):
  """The training step of the twin: step(images, z, y) updates D once on the real `images` and on G(z), then G
  `g_steps` times on the same z, and returns (D's loss, G's loss) as floats. D sees every image through
  diff_augment(., `augment`); with `ema` > 0, G's moving average of that decay follows each G update (step.average
  is that AveragedModel)."""
  g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  xent = nn.BCEWithLogitsLoss()
  average = swa_utils.AveragedModel(g, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(ema)) if ema else None

  def step(images, z, y):
    ones, zeros = torch.ones(len(images), 1), torch.zeros(len(images), 1)
    # (1) update D on a real and a generated batch
    d_opt.zero_grad(set_to_none=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
      with torch.no_grad():
        fake = g(z, y)
      d_loss = (xent(d(diff_augment(images, augment), y).float(), ones)
                + xent(d(diff_augment(fake, augment), y).float(), zeros))
    d_loss.backward()
    d_opt.step()
    # (2) update G g_steps times on the same z
    for _ in range(g_steps):
      g_opt.zero_grad(set_to_none=True)
      with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        g_loss = xent(d(diff_augment(g(z, y), augment), y).float(), ones)
      g_loss.backward()
      g_opt.step()
      if average is not None:
        average.update_parameters(g)
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
          average(z, y)  # (in training mode: its batch norms' statistics move)
    return d_loss.item(), g_loss.item()

  step.average = average
  return step


def run(case, batch_size=64, steps=10, warmup=2, g_steps=2, seed=0, autocast=False):
  """Times `steps` training steps after `warmup` untimed ones (with `autocast`, the forward passes under
  torch.autocast('cpu', dtype=torch.bfloat16)). Returns the list of step times in seconds."""
  height, width, channels, classes, _, augment, ema = CASES[case]
  torch.manual_seed(seed)
  g, d = build(case)
  step = trainer(g, d, g_steps, autocast, augment, ema)
  images = torch.rand(batch_size, channels, height, width) * 2 - 1
  labels = F.one_hot(torch.randint(0, max(classes, 1), (batch_size,)), max(classes, 1)).float()
  y = labels if classes else None
  times = []
  for _ in range(warmup + steps):
    start = time.perf_counter()
    step(images, torch.rand(batch_size, Z_DIM) * 2 - 1, y)
    times.append(time.perf_counter() - start)
  return times[warmup:]


def train_on(images, steps, every, score, batch_size=64, seed=0):
  """Trains the rgb64 twin on `images` (uint8 [n, 64, 64, 3]) as the original code does: a fresh shuffle each
  epoch, whole batches, --g_steps 2. Every `every` steps (and at the last) the clock stops while
  score(step, samples) is called with 1,000 samples (uint8, from G in eval mode, z from seed 0).

  Returns:
    [(step, training seconds so far, what score returned)].
  """
  torch.manual_seed(seed)
  g, d = build('rgb64')
  step = trainer(g, d)
  data = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
  fixed_z = torch.rand(1000, Z_DIM, generator=torch.Generator().manual_seed(0)) * 2 - 1
  per_epoch = len(data) // batch_size
  results, seconds, done = [], 0.0, 0
  while done < steps:
    order = torch.randperm(len(data))
    for batch in range(min(per_epoch, steps - done)):
      start = time.perf_counter()
      step(data[order[batch * batch_size:(batch + 1) * batch_size]], torch.rand(batch_size, Z_DIM) * 2 - 1, None)
      seconds += time.perf_counter() - start
      done += 1
      if done % every == 0 or done == steps:
        g.eval()
        with torch.no_grad():
          fake = g(fixed_z)
        g.train()
        pixels = ((fake.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype('uint8')
        results.append((done, seconds, score(done, pixels)))
  return results


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--case', choices=sorted(CASES), default='rgb64')
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  parser.add_argument('--autocast', action='store_true', help="forward passes under torch.autocast('cpu', bfloat16)")
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  times = run(args.case, args.batch_size, args.steps, args.warmup, autocast=args.autocast)
  step_time = statistics.median(times)
  print(json.dumps({'case': args.case, 'framework': 'torch', 'torch': torch.__version__,
                    'autocast': args.autocast, 'batch_size': args.batch_size,
                    'step_times_s': [round(t, 4) for t in times],
                    'step_time_s': round(step_time, 4), 'images_per_s': round(args.batch_size / step_time, 1)}))


if __name__ == '__main__':
  main()
