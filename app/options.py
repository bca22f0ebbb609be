"""main.py's flags, each defined once: in the --help group it is listed under, with its bounds and its help.

A flag named as a field of config.Config becomes that field (main.config_from_flags, by name); the others say what
to do (--train, --generate N, ...). A value out of a flag's bounds is refused as the flags are parsed; the few
checks that involve several flags are main.py's rules. docs/flags.md is --help as `make docs` writes it.

$ python main.py --help
"""

import re

from absl import flags
from absl import logging  # noqa: F401  (it defines --log_dir, which this program uses too)

from app import cli
from config import (augment_policies, BEST_CHECKPOINT, BEST_METRICS, BUILTIN_DATASETS, CONDITIONINGS, EVALUATE_SAMPLES,
                    LOSS_NAMES, RUN_NAME, TFDS_PREFIX, TRAINING_EVAL_SAMPLES, UPSAMPLINGS, VISUALIZE_OPTIONS,
                    Z_DISTRIBUTIONS)

INTRO = '''\
main.py: train a DCGAN on your images, MNIST, CelebA, LSUN or a TensorFlow Datasets dataset, and use the model.

  python main.py --train --dataset digits            train on the built-in digits (nothing to download)
  python main.py --train --dataset faces --crop      train on data/faces/*.jpg, the centre of each, at 64x64
  python main.py --dataset faces                     a sample grid from the newest checkpoint
  python main.py --dataset faces --generate 100      100 PNG files
  python main.py --dataset faces --evaluate          how good the samples are, in numbers
  tensorboard --logdir logs                          the curves and grids while it trains

Run the same --train command again to resume. A run's files go to checkpoint/, samples/ and logs/, in a folder
named <dataset>_<height>_<width> (-<run_name>). Data: python download.py mnist|celebA|lsun. More: README.md.'''


HELP_GROUPS = cli.HelpGroups()  # what --help shows, group by group, in the order of the definitions

# A TensorFlow device name: [/job:J][/replica:R][/task:T]/[device:]cpu|gpu|tpu[:N]
DEVICE_NAME = re.compile(r'(?:/job:[\w.-]+)?(?:/replica:\d+)?(?:/task:\d+)?/?(?:device:)?(cpu|gpu|tpu)(?::(\d+|\*))?',
                         re.IGNORECASE)


def _is_dataset_name(name):
  """A folder name inside --data_dir (not a path), or tfds:NAME."""
  if name.startswith(TFDS_PREFIX):
    return bool(name[len(TFDS_PREFIX):])
  return bool(name) and '/' not in name and name not in ('.', '..')


def _policy_error(text):
  """What is wrong with an --augment list ('zoom' is not one of ...), or None."""
  try:
    augment_policies(text)
  except ValueError as e:
    return str(e).removeprefix('--augment ')
  return None


with HELP_GROUPS.group('What to do (without --train: use the newest checkpoint)'):
  flags.DEFINE_boolean('train', False, 'Train (resuming from the newest checkpoint). Without it, load the newest '
                       'checkpoint and write a sample grid to <sample_dir>/<key>/test_<step>.png.')
  flags.DEFINE_boolean('check_data', False, 'Check every file of the dataset and report counts, sizes, modes and bad '
                       'files, then exit (non-zero when the data cannot be trained on).')
  flags.DEFINE_boolean('evaluate', False, "Score the generator of --checkpoint (or with --images, a folder of images) "
                       "against --num_samples real images: FID, KID, precision and recall on the FID paper's Inception "
                       "network (python download.py inception), SWD, and for labelled grayscale data a digit "
                       "classifier's numbers. Prints a table and writes <checkpoint_dir>/<key>/eval_<step>_<N>.json, "
                       "TensorBoard scalars to <log_dir>/<key>/evaluate and <sample_dir>/<key>/nearest_<step>.png.")
  flags.DEFINE_string('checkpoint', 'latest', "The checkpoint to load: 'latest', 'best' (the best by --best_metric, "
                      "kept by --eval_freq in <checkpoint_dir>/<key>/best/) or a step number. With --train, 'best' or "
                      'a step rolls the run back to it: newer checkpoints move to <checkpoint_dir>/<key>/rolled_back/.')
  cli.check_flag('checkpoint', lambda value: value in ('latest', BEST_CHECKPOINT) or value.isdigit(),
                 "must be 'latest', 'best' or a step number")

with HELP_GROUPS.group('Data'):
  flags.DEFINE_string('dataset', 'digits', 'Dataset folder name under --data_dir (a folder of images, class folders '
                      'of images, MNIST-style IDX files, or an LMDB such as download.py\'s lsun_bedroom), or '
                      'tfds:NAME[/CONFIG] for TensorFlow Datasets; also the first part of the run key <dataset>_'
                      f'<output_height>_<output_width>. Built in: {", ".join(BUILTIN_DATASETS)}.')
  cli.check_flag('dataset', _is_dataset_name, 'must be a folder name inside --data_dir, or tfds:NAME with the '
                 'name of a TensorFlow Datasets dataset, e.g. tfds:cifar10')
  flags.DEFINE_string('data_dir', 'data', 'Folder that holds the dataset folder <data_dir>/<dataset>.')
  flags.DEFINE_boolean('crop', False, 'Cut the centre of each image before resizing it to the output size: '
                       '--input_height x --input_width pixels, or without them the largest centred square (for a '
                       'square output). Without --crop the whole image is resized, whatever its aspect ratio.')
  flags.DEFINE_string('input_fname_pattern', '*.jpg', 'Glob of the image files inside the dataset folder (or its '
                      'class folders), e.g. \'*.png\'. Ignored for IDX, LMDB and TFDS datasets.')
  flags.DEFINE_integer('input_height', None, 'Height of the centre crop in pixels, with --crop (default the largest '
                       'centred square); without --crop it has no effect: each whole image is resized.', lower_bound=1)
  flags.DEFINE_integer('input_width', None, 'Width of the centre crop in pixels; default --input_height.',
                       lower_bound=1)
  flags.DEFINE_integer('train_size', None, 'Images per epoch, drawn afresh from a shuffle of the whole dataset every '
                       'epoch; default all.', lower_bound=1)
  flags.DEFINE_boolean('mirror', None, 'Show D each real image x-flipped half of the time (a fresh draw each epoch, '
                       'from --seed: a resumed run sees the same): twice the data where a flip keeps the meaning. '
                       'Default: off (digits and letters must not be flipped).')
  flags.DEFINE_boolean('cache', False, 'Decode a folder of images or an LMDB once into <checkpoint_dir>/datasets/'
                       '<dataset>/ (output size x channels bytes per image) and train from it, so later epochs and '
                       'runs skip the decode; made again when the data or sizes change. IDX data is in memory '
                       'anyway, and TFDS data is always cached.')
  flags.DEFINE_boolean('strict', False, 'Stop with an error on any unreadable or corrupt image file or LMDB entry '
                       '(before training, or when training reaches it) instead of skipping it with a warning.')
  flags.DEFINE_list('lsun_category', None, 'With --dataset lsun: two or more LSUN categories (each fetched by '
                    'python download.py lsun --lsun_category C into <data_dir>/lsun_C) to train one model on, '
                    'conditioned on the category; the run key is lsun_<the categories, sorted, joined by +>. One '
                    'category is --dataset lsun_C.')
  flags.DEFINE_string('tfds_data_dir', None, 'Where TensorFlow Datasets keeps what it downloads and prepares '
                      '(--dataset tfds:NAME); default its own, ~/tensorflow_datasets.')

with HELP_GROUPS.group('Model'):
  flags.DEFINE_integer('output_height', None, "Height of generated images in pixels; default 28 for MNIST-style "
                       "datasets (mnist, digits, any IDX folder), the images' own for small TFDS ones, else 64.",
                       lower_bound=1)
  flags.DEFINE_integer('output_width', None, 'Width of generated images in pixels; default --output_height.',
                       lower_bound=1)
  flags.DEFINE_boolean('conditional', True, 'Condition G and D on the labels when the dataset has them '
                       '(MNIST-style IDX, class folders, TFDS labels, LSUN categories); --noconditional ignores them.')
  flags.DEFINE_enum('conditioning', CONDITIONINGS[0], CONDITIONINGS,
                    'How a conditional model takes its labels: projection (class-conditional batch norm in G, '
                    'the projection discriminator), concat (the label joins z, and D\'s input as constant maps), '
                    'or mnist (the original code\'s conditional MNIST model, with --gfc_dim and --dfc_dim).')
  flags.DEFINE_integer('z_dim', 100, 'Length of the noise vector z.', lower_bound=1)
  flags.DEFINE_enum('z_dist', 'uniform_signed', Z_DISTRIBUTIONS, 'Distribution of z: uniform_signed '
                    'is U(-1, 1), normal is N(0, 1).')
  flags.DEFINE_integer('gf_dim', 64, 'Filters of the last hidden generator layer (earlier layers have 2x, 4x, 8x).',
                       lower_bound=1)
  flags.DEFINE_integer('df_dim', 64, 'Filters of the first discriminator layer (later layers have 2x, 4x, 8x).',
                       lower_bound=1)
  flags.DEFINE_integer('gfc_dim', 1024, "Units of the generator's fully connected layer (--conditioning mnist).",
                       lower_bound=1)
  flags.DEFINE_integer('dfc_dim', 1024, "Units of the discriminator's fully connected layer (--conditioning mnist).",
                       lower_bound=1)
  flags.DEFINE_boolean('spectral_norm', False, 'Divide each of D\'s weights by its largest singular value (spectral '
                       'normalization, Miyato et al. 2018; one power iteration per D update).')
  flags.DEFINE_boolean('d_batch_norm', True, 'Batch norm in D; --nod_batch_norm drops it, as SN-DCGAN does with '
                       '--spectral_norm.')
  flags.DEFINE_enum('upsample', None, UPSAMPLINGS, 'How G doubles its maps: deconv (a transposed 5x5 '
                    'convolution, as DCGAN) or resize (nearest-neighbour upsampling, then a 3x3 convolution: no '
                    'checkerboard). Default: resize for colour images, deconv for grayscale; a resumed run keeps '
                    'what it was trained with.')

with HELP_GROUPS.group('Training'):
  flags.DEFINE_integer('epoch', 25, 'Epochs to train in all, counting those of a resumed checkpoint.', lower_bound=1)
  flags.DEFINE_integer('batch_size', 64, 'Images per training step (2 or more: batch norm needs a batch; 16 or more '
                       'trains well).', lower_bound=1)
  flags.DEFINE_string('augment', None, 'Differentiable augmentation (DiffAugment) of every image D sees, real and '
                      'generated, in both updates: a comma-separated list of color, translation, cutout, or none. '
                      'Default: translation,cutout for colour images, none for grayscale ones.')
  cli.check_flag('augment', lambda value: _policy_error(value) is None, _policy_error)
  flags.DEFINE_float('learning_rate', 2e-4, 'Adam learning rate of both networks (see --d_learning_rate, '
                     '--g_learning_rate).')
  cli.check_flag('learning_rate', lambda value: value > 0, 'must be above 0')
  flags.DEFINE_float('d_learning_rate', None, "D's Adam learning rate (two time-scales, TTUR); default "
                     "--learning_rate.")
  cli.check_flag('d_learning_rate', lambda value: value > 0, 'must be above 0')
  flags.DEFINE_float('g_learning_rate', None, 'G\'s Adam learning rate; default --learning_rate.')
  cli.check_flag('g_learning_rate', lambda value: value > 0, 'must be above 0')
  flags.DEFINE_integer('lr_decay_epochs', 0, "Both learning rates fall linearly to 0 over the last this many epochs of "
                       "--epoch (pix2pix's linear decay); 0 keeps them constant.", lower_bound=0)
  flags.DEFINE_float('beta1', 0.5, 'Adam beta1 (momentum), in [0, 1).', lower_bound=0)
  cli.check_flag('beta1', lambda value: value < 1, 'must be in [0, 1)')
  flags.DEFINE_float('beta2', 0.999, 'Adam beta2, in [0, 1).', lower_bound=0)
  cli.check_flag('beta2', lambda value: value < 1, 'must be in [0, 1)')
  flags.DEFINE_enum('loss', 'non_saturating', LOSS_NAMES, 'The GAN loss: non_saturating (the DCGAN '
                    'paper\'s), minimax, wasserstein (use with --gradient_penalty), hinge or least_squares.')
  flags.DEFINE_float('gradient_penalty', 0.0, "Weight of the WGAN-GP gradient penalty added to D's loss (10 in the "
                     "paper), with any --loss; 0 for none.", lower_bound=0)
  flags.DEFINE_float('r1', 0.0, "Gamma of the R1 penalty (gamma / 2 times the squared norm of D's gradient on the real "
                     "images) in D's loss; 0 for none.", lower_bound=0)
  flags.DEFINE_integer('r1_every', 16, "Add --r1's penalty every this many steps, that many times heavier (lazy "
                       "regularization, as StyleGAN2).", lower_bound=1)
  flags.DEFINE_integer('d_steps', 1, 'Discriminator updates per step, each on a batch of its own (WGAN-GP uses 5).',
                       lower_bound=1)
  flags.DEFINE_integer('g_steps', 2, "Generator updates per step, after the discriminator's, on the step's z.",
                       lower_bound=1)
  flags.DEFINE_float('ema', 0.999, "Decay of the exponential moving average of G's weights, which sample grids, "
                     "--generate, --evaluate and export use, in [0, 1); 0 samples from G's own weights. With a trained "
                     "model (no --train), --ema 0 uses G's own weights instead of their average.", lower_bound=0)
  cli.check_flag('ema', lambda value: value < 1, 'must be in [0, 1) (0: no moving average)')
  flags.DEFINE_integer('ema_start', 0, "The step from which the average of G's weights averages; before it, it is G's "
                       "weights (BigGAN starts at 1000).", lower_bound=0)
  flags.DEFINE_float('ema_rampup', None, 'The average of G\'s weights spans at most this fraction of the steps so far: '
                     'its decay at step t is min(--ema, r t / (r t + 1)). Default: TensorFlow\'s (1 + t) / (10 + t), '
                     'about 1/9 (StyleGAN2-ADA ramps up likewise).')
  cli.check_flag('ema_rampup', lambda value: value > 0, 'must be above 0')
  flags.DEFINE_integer('seed', 0, 'Seeds the initial weights, the data order and z; with --generate, the z of every '
                       'image.')

with HELP_GROUPS.group('Output', adopted=['log_dir']):
  flags.DEFINE_string('run_name', None, 'A name for this run (letters, digits, ., _, -): its checkpoints, samples '
                      'and TensorBoard events go to folders <key>-<run_name>, apart from every other run on the same '
                      'data and size, so two runs (two losses, say) train side by side and show side by side in '
                      'TensorBoard. Give it again to resume that run or to use its model.')
  cli.check_flag('run_name', lambda value: RUN_NAME.fullmatch(value) is not None,
                 'must be a plain name of up to 100 letters, digits, ".", "_" and "-", starting with a letter or '
                 'digit (it names folders)')
  flags.DEFINE_string('checkpoint_dir', 'checkpoint', 'Checkpoints go to <checkpoint_dir>/<key>/.')
  flags.DEFINE_string('sample_dir', 'samples', 'Sample grids go to <sample_dir>/<key>/.')
  # absl.logging already defines --log_dir (for log files, which it writes only when asked); it is ours too.
  flags.FLAGS.set_default('log_dir', 'logs')
  flags.FLAGS['log_dir'].help = 'TensorBoard event files go to <log_dir>/<key>/.'
  flags.DEFINE_integer('sample_freq', 100, 'Write a sample grid every this many steps.', lower_bound=1)
  flags.DEFINE_integer('sample_num', 64, 'Images in each sample grid (any number; the grid need not be square).',
                       lower_bound=1)
  flags.DEFINE_integer('ckpt_freq', 500, 'Write a checkpoint every this many steps (and at the end).', lower_bound=1)
  flags.DEFINE_integer('log_freq', 50, 'Log a progress line and TensorBoard scalars every this many steps.',
                       lower_bound=1)
  flags.DEFINE_integer('max_to_keep', 5, 'Checkpoints to keep; older ones are deleted.', lower_bound=1)
  flags.DEFINE_float('keep_every_hours', None, 'Also keep one checkpoint every this many hours of training for good, '
                     'beyond --max_to_keep, to roll back to (with --checkpoint STEP) if the run collapses later.')
  cli.check_flag('keep_every_hours', lambda value: value > 0, 'must be above 0')

with HELP_GROUPS.group('Evaluation'):
  flags.DEFINE_integer('eval_freq', None, 'With --train: evaluate every this many steps (and at the end), and keep the '
                       'checkpoint with the best --best_metric in <checkpoint_dir>/<key>/best/. Default: never.',
                       lower_bound=1)
  flags.DEFINE_integer('num_samples', None, 'Images generated and real images compared per evaluation (at most the '
                       f'dataset size); default {EVALUATE_SAMPLES} for --evaluate, '
                       f'{TRAINING_EVAL_SAMPLES} for --eval_freq.')
  cli.check_flag('num_samples', lambda value: value >= 2, 'must be at least 2')
  flags.DEFINE_enum('best_metric', None, BEST_METRICS, 'The metric that picks the best checkpoint (lower '
                    'is better): fid or kid, of the Inception network\'s features (python download.py inception); '
                    'swd, sliced Wasserstein distance; fd, Frechet distance of digit-classifier features (labelled '
                    'grayscale data only). Default fd where it applies, else fid where the network is, else swd.')
  flags.DEFINE_string('images', None, 'With --evaluate: score this folder of image files (another tool\'s samples, '
                      'a --generate folder) against --dataset instead of a model, with the same numbers; at '
                      '--output_height x --output_width, or the size most of them have.')
  flags.DEFINE_string('inception_dir', None, "Folder of the FID paper's Inception network, classify_image_graph_def.pb "
                      "(python download.py inception puts it there); default <data_dir>/inception.")

with HELP_GROUPS.group('Using a trained model (without --train)'):
  flags.DEFINE_integer('generate', None, 'Write this many images (any number) as PNG files, with grid.png and '
                       'manifest.json, to --out_dir.', lower_bound=1)
  flags.DEFINE_string('labels', None, "Labels to generate or show for a conditional model: 'all' (every class in "
                      "turn, the default), or a comma-separated list of labels or class names such as 3,3,7, "
                      'repeated as needed.')
  flags.DEFINE_string('out_dir', None, 'Folder for --generate, --visualize and --evaluate --images; default '
                      '<sample_dir>/<key>/generated or <sample_dir>/<key>/visualize.')
  flags.DEFINE_boolean('visualize', False, 'Write the pictures of --option to --out_dir.')
  flags.DEFINE_enum('option', '0', VISUALIZE_OPTIONS, 'With --visualize: 0 a sample grid; 1 a PNG '
                    'sweeping each of the first --num_dims dimensions of z; 2 GIFs sweeping --num_dims random '
                    'dimensions; 3 GIFs sweeping dimensions from z = 0; 4 one GIF sweeping them all at once; interp '
                    'a slerp through --seeds as a strip and a GIF; progress a GIF of the training grids in step order.')
  flags.DEFINE_list('seeds', ['0', '1'], 'With --option interp: the seeds (two or more) whose z to pass through; '
                    "each is image 0 of --generate with that --seed.")
  cli.check_flag('seeds', lambda value: all(re.fullmatch(r'-?\d+', seed) for seed in value), 'must be integers')
  cli.check_flag('seeds', lambda value: len(value) >= 2, 'needs two or more seeds to interpolate between')
  flags.DEFINE_integer('frames', 16, 'Frames of a sweep, and of each step between two --seeds of interp.',
                       lower_bound=1)
  flags.DEFINE_integer('num_dims', 10, 'Dimensions of z that --visualize options 1-4 sweep.', lower_bound=1)
  flags.DEFINE_string('export', None, 'Write a SavedModel of the generator to this new folder (serving_default: '
                      'z [, labels] -> uint8 images).')
  flags.DEFINE_string('freeze', None, 'Write the generator as a frozen GraphDef .pb to this file (inputs '
                      'sample_z:0 [, sample_labels:0], output sample_images:0).')

with HELP_GROUPS.group('Runtime'):
  flags.DEFINE_string('device', None, 'Device of the model, e.g. /gpu:1 or /cpu:0; default the first GPU when '
                      'one is visible, else the CPU. Ops with no kernel there fall back to the CPU.')
  cli.check_flag('device', lambda value: DEVICE_NAME.fullmatch(value) is not None,
                 'not a device name such as /gpu:0 or /cpu:0')
  flags.DEFINE_enum('precision', 'auto', ['auto', 'float32', 'bfloat16', 'mixed_float16'], "auto: bfloat16 on a CPU "
                    "with bfloat16 units (AMX or AVX512_BF16), mixed_float16 on a GPU of compute capability 7.0 or "
                    "newer, else float32 (and float32 for multi-worker runs on CPUs). bfloat16: Grappler's oneDNN "
                    "rewrite runs the layers in bfloat16. mixed_float16 (GPUs only): float16 with dynamic loss "
                    "scaling; an update whose gradients overflow is skipped and counted. At every precision the "
                    "variables, batch-norm statistics, Adam and the losses stay float32, so a checkpoint resumes at "
                    "any precision.")
  flags.DEFINE_list('devices', None, 'Train one replica on each of these devices (two or more, e.g. /gpu:0,/gpu:1) '
                    'with MirroredStrategy: each takes --batch_size / N images of every batch, and gradients and '
                    'batch-norm statistics are averaged across them. Checkpoints load on any number of devices.')
  cli.check_flag('devices', lambda value: all(DEVICE_NAME.fullmatch(name) for name in value),
                 lambda value: f'{next(n for n in value if not DEVICE_NAME.fullmatch(n))!r} is not a device name '
                 'such as /gpu:0 or /cpu:0')
  cli.check_flag('devices', lambda value: len(set(value)) == len(value), 'names a device twice')
  flags.DEFINE_integer('num_gpus', None, 'Train on the first N GPUs: the same as --devices /gpu:0,...,/gpu:N-1.',
                       lower_bound=1)
  flags.DEFINE_enum('strategy', 'mirrored', ['mirrored', 'multi_worker'], 'mirrored: one process, on --device or '
                    '--devices. multi_worker: one process per machine, each run with the same flags and its own '
                    'TF_CONFIG; the batch is split across all workers\' devices, worker 0 writes the checkpoints.')
  flags.DEFINE_float('worker_timeout', 600, 'With --strategy multi_worker: seconds a worker waits for the others '
                     '(to start, or in a training step) before it stops with an error.')
  cli.check_flag('worker_timeout', lambda value: value > 0, 'must be above 0')
  flags.DEFINE_boolean('deterministic', False, "Use TensorFlow's deterministic kernels, so that a run, stopped and "
                       'resumed or not, ends with the same weights bit for bit (slower on a GPU).')
  flags.DEFINE_boolean('xla', False, 'Compile the training step with XLA JIT; on a CPU it is slower than the oneDNN '
                       'kernels, so try it on a GPU.')

FLAGS = flags.FLAGS
