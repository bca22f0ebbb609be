"""The exception types a user sees: a mistake in what they asked for or gave us, and a run that diverged.

`main.py` and `download.py` (through cli.run_program) print the message as one line and exit with the error's
`exit_code`; anything else is a bug and keeps its traceback.

$ python main.py --train --dataset no_such_folder    # error: no dataset folder data/no_such_folder ...
"""


class UserError(Exception):
  """Bad flags, bad data, a checkpoint that does not fit or cannot be written; one sentence for the user."""
  exit_code = 2


class Diverged(UserError):
  """A loss or a weight became NaN or Inf; nothing of the bad state was saved."""
  exit_code = 3


_NOISE = ('Graph execution error', 'Detected at node', 'File "', 'Node:', '[[', 'Original stack trace',
          'Additional GRPC error', 'The error could be from a previous operation', ':UNKNOWN:', 'From /job:')


def _message_lines(error):
  """The lines of an error's message, without the graph-execution preamble, stack and gRPC annotations."""
  text = getattr(error, 'message', None) or str(error)
  lines = [line.strip() for line in text.splitlines()]
  return [line for line in lines if line and not line.startswith(_NOISE)]


def first_line(error):
  """The sentence that says what went wrong, without the graph-execution preamble and stack of an OpError."""
  lines = _message_lines(error)
  return lines[-1] if lines else type(error).__name__


def op_error_text(error):
  """'UnavailableError: <the first line of its message>': a gRPC or collective error names its cause first."""
  lines = _message_lines(error)
  return f'{type(error).__name__}: {lines[0] if lines else "no message"}'
