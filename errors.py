"""The one exception type a user sees: a mistake in what they asked for or gave us.

`main.py` prints its message as one line and exits with code 2; anything else is a bug and keeps its traceback.

$ python main.py --train --dataset no_such_folder    # error: no dataset folder data/no_such_folder ...
"""


class UserError(Exception):
  """Bad flags, bad data or a checkpoint that does not fit; the message is one sentence for the user."""
