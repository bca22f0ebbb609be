"""A folder of image files: the ones --input_fname_pattern matches, or those of its class folders (labels, as
torchvision's ImageFolder reads them); and, for --evaluate --images, a folder of images to score as they are.

$ python main.py --train --dataset faces --input_fname_pattern '*.png'
"""

import collections
import glob
import hashlib
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from config import download_command
from errors import UserError, first_line

from .source import (GRAYSCALE_MODES, IMAGE_EXTENSIONS, MAX_CLASSES, EncodedSource, folder_of, missing)


class FolderSource(EncodedSource):
  """The image files of `<data_dir>/<dataset>` that match --input_fname_pattern, or (labelled) those of its class
  folders, `<data_dir>/<dataset>/<class>/`, as torchvision's ImageFolder reads them: classes in sorted order."""
  kind = 'a folder of image files'
  unit = 'files'
  preposition = 'matching'

  def __init__(self, name, paths, channels=3, labels=None, pattern=None, class_names=None):
    super().__init__(name, channels, labels, class_names=class_names)
    self.paths, self.pattern = tuple(paths), pattern

  def __len__(self):
    return len(self.paths)

  @staticmethod
  def recognizes(config):
    return True  # the last resort: any folder, or none (then open() says how to get one)

  @classmethod
  def open(cls, config, cache_dir):
    folder = folder_of(config)
    if not os.path.isdir(folder):
      raise missing(config)
    pattern = os.path.join(folder, config.input_fname_pattern)
    paths = _matching(folder, config.input_fname_pattern)
    classes = _class_folders(folder, config.input_fname_pattern)
    if classes and paths:
      raise UserError(f'{folder} holds images both at its top ({len(paths)} files matching '
                      f'{config.input_fname_pattern}, e.g. {os.path.basename(paths[0])!r}) and in class folders '
                      f'({", ".join(list(classes)[:3])}{", ..." if len(classes) > 3 else ""}): move the top ones '
                      'into a class folder for labels, or the class folders out for one unlabelled set')
    if classes:
      return cls._labelled(config, folder, classes)
    if not paths:
      others = sorted(os.listdir(folder))
      hint = f'; it holds {len(others)} other entries, e.g. {others[0]!r}' if others else '; the folder is empty'
      command = download_command(config.dataset)
      how = f'; to download it: {command}' if command else _pattern_hint(folder)
      raise UserError(f'no file matches {pattern}{hint}{how}')
    return cls(config.dataset, paths, pattern=pattern)

  @classmethod
  def _labelled(cls, config, folder, classes):
    """The source of a folder of class folders ({class name: its matching files}, in sorted order)."""
    where = os.path.join(folder, '<class>', config.input_fname_pattern)
    empty = [name for name, files in classes.items() if not files]
    if empty:
      raise UserError(f'class folder {os.path.join(folder, empty[0])} holds no file matching '
                      f'{config.input_fname_pattern} ({len(empty)} of the {len(classes)} class folders are empty): '
                      'fill it or remove it, since a class with no images cannot be learned')
    if len(classes) < 2:
      raise UserError(f'{folder} has one class folder, {next(iter(classes))!r}: labels need two classes or more '
                      '(train with --noconditional, or add the other classes)')
    if all(len(files) == 1 for files in classes.values()):
      raise UserError(f'each of the {len(classes)} class folders in {folder} holds one image: that is a folder per '
                      'image, not per class; put the images of each class into one folder')
    if len(classes) > MAX_CLASSES:
      raise UserError(f'{folder} has {len(classes)} class folders; at most {MAX_CLASSES} classes are supported')
    paths = [path for files in classes.values() for path in files]
    labels = np.repeat(np.arange(len(classes), dtype=np.int32), [len(files) for files in classes.values()])
    if not config.conditional:
      return cls(config.dataset, paths, pattern=where)
    return cls(config.dataset, paths, labels=labels, pattern=where, class_names=list(classes))

  def describe(self):
    lines = super().describe()
    if self.class_names:
      counts = np.bincount(self.labels, minlength=len(self.class_names))
      shown = ', '.join(f'{name} {count}' for name, count in zip(self.class_names[:10], counts[:10]))
      lines.append(f'{len(self.class_names)} classes from its class folders: {shown}'
                   + (', ...' if len(self.class_names) > 10 else ''))
    return lines

  def fetch(self, indices):
    return np.array([os.fsencode(self.paths[i]) for i in indices], dtype=object)

  def tf_encoded(self, fetched):
    return tf.io.read_file(fetched)

  def open_fetched(self, fetched):
    return open(fetched, 'rb')

  def entry_name(self, index):
    return self.paths[index]

  def fingerprint(self):
    digest = hashlib.sha256()
    for path in self.paths:
      stat = os.stat(path)
      digest.update(f'{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode())
    return digest.hexdigest()

  @property
  def location(self):
    return self.pattern


def _matching(folder, pattern):
  """The files directly in `folder` whose names match the glob `pattern`, sorted."""
  return sorted(p for p in glob.glob(os.path.join(glob.escape(folder), pattern)) if os.path.isfile(p))


def _pattern_hint(folder):
  """What to set --input_fname_pattern to, from the image files at the top of `folder` and in its visible
  subfolders (class folders): '; they are 40 .png files in 3 class folders: set --input_fname_pattern '*.png''."""
  found, places = collections.Counter(), collections.Counter()
  for entry in os.scandir(folder):
    children = [entry] if entry.is_file() else []
    if entry.is_dir() and not entry.name.startswith('.'):
      children = [child for child in os.scandir(entry.path) if child.is_file()]
    for child in children:
      extension = os.path.splitext(child.name)[1]
      if extension.lower() in IMAGE_EXTENSIONS:
        found[extension] += 1
        places[entry.is_dir()] += 1
  if not found:
    return '; none of them is an image file (JPEG, PNG, GIF, BMP or WebP)' if os.listdir(folder) else ''
  extension, count = found.most_common(1)[0]
  where = 'in its class folders' if places[True] >= places[False] else 'at its top'
  more = f' (and {sum(found.values()) - count} other images)' if len(found) > 1 else ''
  return f'; {count} {extension} files are {where}{more}: set --input_fname_pattern \'*{extension}\''


def _class_folders(folder, pattern):
  """{class folder name: its files matching `pattern`} for the visible subfolders of `folder`, sorted by name;
  empty when no subfolder holds a matching file (then they are not class folders)."""
  names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith('.'))
  classes = {name: _matching(os.path.join(folder, name), pattern) for name in names}
  return classes if any(classes.values()) else {}


# A folder of image files to score (--evaluate --images)

def _listed_files(folder):
  """The image files of `folder` to score: those manifest.json lists when there is one (a --generate folder,
  whose grid.png is not a sample), else every file with an image's extension, in name order."""
  manifest = os.path.join(folder, 'manifest.json')
  if os.path.isfile(manifest):
    try:
      with open(manifest) as f:
        return [os.path.join(folder, entry['file']) for entry in json.load(f)]
    except (OSError, ValueError, KeyError, TypeError):
      logging.warning('%s is not a manifest of --generate: scoring every image file of %s', manifest, folder)
  return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)


def read_folder(folder, limit=None, strict=False):
  """Reads the image files of a folder as they are (see _listed_files), with Pillow.

  Args:
    folder: the folder.
    limit: read at most this many readable images.
    strict: a file that is not a readable image is an error, not a note.

  Returns:
    ([uint8 [height, width, 1 or 3] per image, in name order], [notes for the user: the files skipped]).

  Raises:
    UserError: the folder is missing or holds no readable image file (with strict: any unreadable one).
  """
  if not os.path.isdir(folder):
    raise UserError(f'--images {folder} is not a folder')
  images, bad = [], []
  for path in _listed_files(folder):
    if limit is not None and len(images) >= limit:
      break
    try:
      with Image.open(path) as image:
        grey = image.mode in GRAYSCALE_MODES
        pixels = np.asarray(image.convert('L' if grey else 'RGB'))
      images.append(pixels[:, :, np.newaxis] if grey else pixels)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
      bad.append(f'{os.path.basename(path)} ({first_line(e)})')
  if bad and strict:
    raise UserError(f'{len(bad)} files in {folder} cannot be read as images (--strict): {"; ".join(bad[:3])}')
  if not images:
    found = f'{len(bad)} files that cannot be read as images, e.g. {bad[0]}' if bad else 'no image file'
    raise UserError(f'--images {folder} holds {found} ({", ".join(IMAGE_EXTENSIONS)} files are read)')
  notes = [f'skipping {len(bad)} files in {folder} that cannot be read as images: {"; ".join(bad[:3])}'
           + ('; ...' if len(bad) > 3 else '')] if bad else []
  return images, notes


def fit_images(images, height, width, channels):
  """Images of any sizes and channels -> uint8 [n, height, width, channels]: grey to RGB or RGB to grey, and the
  whole image resized (Pillow's Lanczos) where its size differs.

  Returns:
    (the array, how many images were resized).
  """
  out = np.empty((len(images), height, width, channels), np.uint8)
  resized = 0
  for i, pixels in enumerate(images):
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    image = image.convert('L' if channels == 1 else 'RGB')
    if image.size != (width, height):
      image, resized = image.resize((width, height), Image.LANCZOS), resized + 1
    array = np.asarray(image)
    out[i] = array[:, :, np.newaxis] if channels == 1 else array
  return out, resized
