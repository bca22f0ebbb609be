"""The memory a training step will take, estimated from its graph before the session allocates anything, so that an
output size too large for the machine is refused before any work (common/memory.py).

The estimate is RUNTIME_BYTES plus TENSOR_SHARE of the bytes of every floating-point tensor the graph names (its
static shapes: each layer's maps and their gradients, the variables read, the sampler's batch). It was fitted to the
peak resident memory of two steps of the colour and grayscale recipes at 28 to 512 pixels (bench/memory.py): in
float32 it came out 0.97x to 1.18x the peak, in bfloat16 (which peaks lower) 1.5x to 1.7x. On a GPU the step's
tensors live on the GPU, which TensorFlow sizes for itself: the estimate is for a step on the CPU.

$ python main.py --train --dataset faces --output_height 1000   # refused: the step needs ~51 GB
"""

import tensorflow as tf

from common import memory

RUNTIME_BYTES = 0.5e9  # TensorFlow, its kernels' scratch space and the program, at the smallest sizes
TENSOR_SHARE = 0.5  # of the graph's tensor bytes, resident at the peak of a step


def tensor_bytes(graph):
  """The bytes of every floating-point tensor of `graph` with a static shape."""
  total = 0
  for op in graph.get_operations():
    for tensor in op.outputs:
      if tensor.dtype.is_floating and tensor.shape.is_fully_defined():
        total += tensor.shape.num_elements() * tensor.dtype.size
  return total


def step_bytes(graph):
  """The estimated peak memory of a training step of `graph`, in bytes."""
  return int(RUNTIME_BYTES + TENSOR_SHARE * tensor_bytes(graph))


def check_step(graph, config):
  """Refuses (or warns about) a step on the CPU that would not fit in memory (common/memory.py check()).

  Raises:
    UserError: the estimate is more than the machine's memory.
  """
  if config.devices or tf.DeviceSpec.from_string(config.device).device_type != 'CPU':
    return
  memory.check(step_bytes(graph), f'a training step at {config.output_height}x{config.output_width} with '
               f'--batch_size {config.batch_size}',
               'use a smaller --output_height or --batch_size')
