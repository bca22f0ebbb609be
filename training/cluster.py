"""Several machines (--strategy multi_worker): the cluster in TF_CONFIG, and this process's place in it.

Every worker runs the same command with its own TF_CONFIG, e.g. on the second of two machines:

  TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, "task": {"type": "worker", "index": 1}}'

Worker 0 is the chief: it writes the checkpoints, samples and summaries. Each process starts its own
tf.distribute.Server and runs its Session on that server, and every worker takes part in every training step's
all-reduce, so they must all run with the same flags.

$ TF_CONFIG=... python main.py --train --dataset mnist --strategy multi_worker
"""

import collections
import json
import os

from errors import UserError

Cluster = collections.namedtuple('Cluster', 'workers index')
"""workers: the 'host:port' of every worker, in TF_CONFIG order; index: this process's place in that list."""


def from_environment():
  """The cluster that the TF_CONFIG environment variable describes.

  Raises:
    UserError: TF_CONFIG is missing, is not JSON, or does not name a worker list and this worker's index in it.
  """
  text = os.environ.get('TF_CONFIG')
  example = ('e.g. {"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}')
  if not text:
    raise UserError(f'--strategy multi_worker needs the TF_CONFIG environment variable, {example}')
  try:
    spec = json.loads(text)
    workers, task = spec['cluster']['worker'], spec['task']
    index = task['index']
  except (ValueError, KeyError, TypeError):
    raise UserError(f'TF_CONFIG must hold a cluster with a worker list and this task, {example}; it is {text}') \
        from None
  if task.get('type') != 'worker' or set(spec['cluster']) != {'worker'}:
    raise UserError('TF_CONFIG: this program runs workers only (worker 0 is the chief), not '
                    f'{sorted(set(spec["cluster"]) | {task.get("type")})}')
  if not isinstance(workers, list) or not isinstance(index, int) or not 0 <= index < len(workers):
    raise UserError(f'TF_CONFIG: task index {index!r} is not a place in the worker list {workers!r}')
  return Cluster(workers=tuple(workers), index=index)
