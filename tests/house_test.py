"""The house of docs/development.md held against the code: every import of the product runs down a floor, and no
modules import each other in a circle."""

import ast
import glob
import os

from conftest import ROOT

# The floors of docs/development.md's picture, from the ground up: a unit (a package, or a module at the root)
# imports only from the floors below its own.
FLOORS = [
    ('hardware',),
    ('errors', 'ops'),
    ('common',),
    ('config', 'utils'),
    ('gan', 'downloads'),
    ('datasets',),
    ('model', 'evaluation'),
    ('training',),
    ('app',),
    ('main', 'download'),
]
FLOOR = {unit: level for level, units in enumerate(FLOORS) for unit in units}


def _modules():
  """{dotted module name: path} of the product: the root's modules and the packages' (not tests, bench/,
  experiments/)."""
  paths = glob.glob(os.path.join(ROOT, '*.py')) + glob.glob(os.path.join(ROOT, '*', '*.py'))
  modules = {}
  for path in paths:
    relative = os.path.relpath(path, ROOT)
    if relative.split(os.sep)[0] in ('tests', 'bench', 'experiments', '.venv'):
      continue
    name = relative[:-3].replace(os.sep, '.')
    modules[name.removesuffix('.__init__')] = path
  return modules


def _imports(name, path, modules):
  """The product modules that module `name` imports (relative imports resolved)."""
  package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        base = '.'.join(filter(None, [package.rsplit('.', node.level - 1)[0] if node.level > 1 else package, base]))
      targets = [f'{base}.{alias.name}' for alias in node.names] + [base]
    else:
      continue
    for target in targets:
      while target and target not in modules:
        target = target.rpartition('.')[0]
      if target and target != name:
        found.add(target)
  return found


def test_every_unit_of_the_product_stands_on_a_floor_of_the_picture():
  units = {name.split('.')[0] for name in _modules()}
  assert units == set(FLOOR), f'units not on a floor: {units - set(FLOOR)}; floors of no unit: {set(FLOOR) - units}'


def test_every_import_runs_down_a_floor():
  modules = _modules()
  upward = []
  for name, path in modules.items():
    unit = name.split('.')[0]
    for target in _imports(name, path, modules):
      other = target.split('.')[0]
      if other != unit and FLOOR[other] >= FLOOR[unit]:
        upward.append(f'{name} -> {target}')
  assert not upward, upward


def test_no_modules_import_each_other_in_a_circle():
  modules = _modules()
  graph = {name: _imports(name, path, modules) for name, path in modules.items()}
  state = {}

  def visit(name, trail):
    if state.get(name) == 'done':
      return
    assert state.get(name) != 'open', ' -> '.join(trail + [name])
    state[name] = 'open'
    for target in sorted(graph[name]):
      if not target.startswith(name + '.'):  # (a package's face names its own modules)
        visit(target, trail + [name])
    state[name] = 'done'

  for name in sorted(graph):
    visit(name, [])


def test_at_most_eight_modules_at_the_root_and_none_over_450_lines():
  root = [os.path.basename(path) for path in glob.glob(os.path.join(ROOT, '*.py'))]
  assert len(root) <= 8, root
  long = {name: n for name, path in _modules().items() if (n := len(open(path).read().splitlines())) > 450}
  assert not long, long
