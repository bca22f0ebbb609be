"""The exception types a user sees: a mistake in what they asked for or gave us, and a run that diverged.

`main.py` prints the message as one line and exits with the error's `exit_code`; anything else is a bug and keeps
its traceback.

$ python main.py --train --dataset no_such_folder    # error: no dataset folder data/no_such_folder ...
"""


class UserError(Exception):
  """Bad flags, bad data, a checkpoint that does not fit or cannot be written; one sentence for the user."""
  exit_code = 2


class Diverged(UserError):
  """A loss or a weight became NaN or Inf; nothing of the bad state was saved."""
  exit_code = 3


def first_line(error):
  """The sentence that says what went wrong, without the graph-execution preamble and stack of an OpError."""
  text = getattr(error, 'message', None) or str(error) or type(error).__name__
  noise = ('Graph execution error', 'Detected at node', 'File "', 'Node:', '[[', 'Original stack trace')
  lines = [line.strip() for line in text.splitlines()]
  lines = [line for line in lines if line and not line.startswith(noise)]
  return lines[-1] if lines else type(error).__name__
