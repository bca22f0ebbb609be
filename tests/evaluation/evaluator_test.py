"""The digit classifier, the Evaluator, keeping the best checkpoint, and --evaluate / --eval_freq end to end."""

import dataclasses
import glob
import json
import logging
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import ndimage

from app import completion
from config import Config
import datasets
from datasets import digits
import evaluation
from evaluation import classifier
from evaluation import feature_metrics
from evaluation import inception
from training import checkpoints
from training import trainer
from conftest import (TINY_MODEL, assert_error, assert_same_values, dir_flags, main_in_process, shared,
                      write_idx_dataset, write_images)

SESSION = trainer.session_config('/cpu:0')


def _blur(images, sigma):
  blurred = ndimage.gaussian_filter(images.astype(np.float32), (0, sigma, sigma, 0))
  return np.clip(np.round(blurred), 0, 255).astype(np.uint8)


def test_classifier_learns_real_mnist_and_its_features_order_blur_and_noise(tmp_path, monkeypatch):
  images, labels = datasets.load_idx_folder(shared('mnist'))
  images = images[..., np.newaxis]
  digit_classifier, accuracy = classifier.load_or_train(images, labels, 10, str(tmp_path), SESSION)
  try:
    assert accuracy >= 0.97
    _, held_out = classifier.split(len(images))
    predicted = digit_classifier.predict(images[held_out])[0]  # counted here, not by classifier.py
    assert accuracy == pytest.approx(np.count_nonzero(predicted == labels[held_out]) / len(held_out), abs=1e-9)
    order = np.random.default_rng(0).permutation(len(images))
    a, b = images[order[:3000]], images[order[3000:6000]]
    features_a = digit_classifier.predict(a)[1]
    noise = np.random.default_rng(1).integers(0, 256, b.shape, dtype=np.uint8)
    distances = [feature_metrics.frechet_distance_of(features_a, digit_classifier.predict(x)[1])
                 for x in (b, _blur(b, 0.7), _blur(b, 2.0), noise)]
    assert distances == sorted(distances), distances
    assert distances[2] > 20 * distances[0], distances  # heavy blur is far from the real-vs-real figure
    predictions = digit_classifier.predict(b)[0]
  finally:
    digit_classifier.close()

  # Trained once: the same data load the saved classifier, with the same predictions
  monkeypatch.setattr(classifier.Classifier, 'fit', lambda *_: pytest.fail('trained again on the same data'))
  again, again_accuracy = classifier.load_or_train(images, labels, 10, str(tmp_path), SESSION)
  try:
    assert again_accuracy == accuracy
    np.testing.assert_array_equal(again.predict(b)[0], predictions)
  finally:
    again.close()


def test_classifier_is_trained_again_when_the_data_change(tmp_path, monkeypatch):
  images, labels = digits.make_digits(300, seed=4)
  images = images[..., np.newaxis]
  fits = []
  fit = classifier.Classifier.fit
  monkeypatch.setattr(classifier.Classifier, 'fit', lambda self, *args: (fits.append(1), fit(self, *args)))
  for data_labels in (labels, labels, np.roll(labels, 1)):
    digit_classifier, _ = classifier.load_or_train(images, data_labels, 10, str(tmp_path), SESSION)
    digit_classifier.close()
  assert len(fits) == 2  # the first time, and after the labels changed
  info = json.loads((tmp_path / classifier.INFO_FILE).read_text())
  assert info['fingerprint'] == classifier.fingerprint(images, np.roll(labels, 1))


@pytest.fixture(scope='module')
def digit_evaluator(tmp_path_factory):
  """An Evaluator of 300 samples on 1,500 built-in digits, and a second sample of digits to 'generate' from."""
  images, labels = digits.make_digits(2500, seed=5)
  dataset = datasets.PixelSource('digits', images[:1500, ..., np.newaxis], labels[:1500].astype(np.int32))
  cfg = Config(dataset='digits', checkpoint_dir=str(tmp_path_factory.mktemp('ckpt')), output_height=28,
               output_width=28, c_dim=1, y_dim=10, z_dim=8)
  with evaluation.Evaluator(dataset, cfg, 300, SESSION) as evaluator:
    yield evaluator, images[1500:, ..., np.newaxis], labels[1500:]


def _drawing(images, labels, damage=lambda x: x):
  """A stand-in generator that answers each label with an unseen digit of that label."""
  def generate(z, wanted):
    assert len(z) == len(wanted)
    picks = [np.flatnonzero(labels == label)[i % 50] for i, label in enumerate(wanted)]
    return damage(images[picks])
  return generate


def test_evaluator_ranks_real_digits_first_and_reads_the_labels(digit_evaluator):
  evaluator, images, labels = digit_evaluator
  noise = lambda x: np.random.default_rng(0).integers(0, 256, x.shape, dtype=np.uint8)
  ranked = [evaluator(_drawing(images, labels, damage))
            for damage in (lambda x: x, lambda x: _blur(x, 0.7), lambda x: _blur(x, 2.0), noise)]
  for metric in ('swd', 'fd'):
    values = [results[metric] for results in ranked]
    assert values == sorted(values), (metric, values)
  assert ranked[0]['label_accuracy'] > 0.95
  assert ranked[3]['label_accuracy'] < 0.3
  assert ranked[0]['class_entropy'] == pytest.approx(math.log2(10), abs=0.05)
  assert ranked[0]['fd'] < 3 * ranked[0]['fd_real']  # unseen real digits score like real data
  assert {'swd_28x28', 'swd_14x14', 'swd_real', 'classifier_accuracy', 'class_entropy_real'} <= set(ranked[0])
  assert evaluator(_drawing(images, labels)) == ranked[0]  # the same weights give the same numbers


def test_evaluation_is_written_as_json_and_a_table(digit_evaluator, tmp_path):
  evaluator, images, labels = digit_evaluator
  with tf.Graph().as_default():
    writer = tf.compat.v1.summary.FileWriter(str(tmp_path))
    results, path = evaluator.evaluate(_drawing(images, labels), 700, checkpoint='some/DCGAN.model-700',
                                       writer=writer)
    writer.close()
  assert path == os.path.join(evaluator.config.checkpoint_path, 'eval_000700_300.json')
  record = json.loads(open(path).read())
  assert record['step'] == 700 and record['num_samples'] == 300 and record['metrics'] == results
  tags = {value.tag for event in _events(tmp_path) for value in event.summary.value}
  assert {'eval/swd', 'eval/fd', 'eval/label_accuracy', 'eval/swd_28x28'} <= tags
  table = evaluation.table(results)
  assert table.splitlines()[1].split()[:3] == ['swd', f'{results["swd"]:.4g}', 'lower']
  assert 'fd_real' in table and 'for scale' in table


def _events(folder):
  for path in glob.glob(os.path.join(folder, '**', 'events.out.tfevents.*'), recursive=True):
    yield from tf.compat.v1.train.summary_iterator(path)


class _ScriptedEvaluator:
  """Stands in for an Evaluator: returns the swd value scripted for each step."""

  def __init__(self, values):
    self.values, self.num_samples, self.seen = values, 10, []

  def evaluate(self, generate, step, checkpoint, writer=None):
    self.seen.append(step)
    return {'swd': self.values[step]}, f'eval_{step}.json'

  def log_line(self, results):
    return str(results)


def test_keep_best_keeps_the_step_with_the_best_metric_not_the_last(tmp_path):
  write_idx_dataset(str(tmp_path / 'data' / 'tiny'), 8)
  cfg = Config(dataset='tiny', data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'ckpt'),
               sample_dir=str(tmp_path / 'samples'), log_dir=str(tmp_path / 'logs'), output_height=28,
               output_width=28, gf_dim=4, df_dim=4, gfc_dim=16, dfc_dim=16, z_dim=8, batch_size=8,
               epoch=4, sample_num=4, sample_freq=100, ckpt_freq=1, max_to_keep=10, eval_freq=1,
               best_metric='swd')
  cfg, dataset = completion.prepare(cfg)
  scripted = _ScriptedEvaluator({1: 5.0, 2: 2.0, 3: float('nan'), 4: 3.0})
  trainer.Trainer(cfg, dataset).train(evaluator=scripted)
  assert scripted.seen == [1, 2, 3, 4]
  best = checkpoints.best(cfg.checkpoint_path)
  assert (best['step'], best['metric'], best['value']) == (2, 'swd', 2.0)
  best_dir = checkpoints.best_directory(cfg.checkpoint_path)
  assert checkpoints.steps(best_dir) == [2]  # the earlier best (step 1) was deleted
  assert_same_values(checkpoints.best_path(cfg.checkpoint_path), checkpoints.path_of(cfg.checkpoint_path, 2))

  # A resumed run compares with the best of the run before
  cfg = dataclasses.replace(cfg, epoch=6)
  trainer.Trainer(cfg, dataset).train(evaluator=_ScriptedEvaluator({5: 2.5, 6: 1.5}))
  assert checkpoints.best(cfg.checkpoint_path)['step'] == 6
  assert checkpoints.steps(best_dir) == [6]


def test_eval_freq_keeps_best_and_evaluate_scores_it(tmp_path, tiny_idx_root, capsys, caplog):
  flags = dir_flags(tmp_path, tiny_idx_root)
  result = main_in_process('--train', '--dataset', 'tiny', '--batch_size', '16', '--train_size', '32', '--epoch',
                           '3', '--eval_freq', '2', '--num_samples', '40', *TINY_MODEL, *flags)
  assert result.returncode == 0, result
  key_dir = tmp_path / 'ckpt' / 'tiny_28_28'
  best = checkpoints.best(str(key_dir))
  assert best['metric'] == 'fd' and best['step'] in (2, 4, 6)
  evaluated = {step: json.loads((key_dir / f'eval_{step:06d}_40.json').read_text()) for step in (2, 4, 6)}
  assert best['value'] == min(record['metrics']['fd'] for record in evaluated.values())
  fd_steps = sorted(event.step for event in _events(tmp_path / 'logs' / 'tiny_28_28')
                    for value in event.summary.value if value.tag == 'eval/fd')
  assert fd_steps == [2, 4, 6]  # a TensorBoard curve of the metric

  capsys.readouterr()
  result = main_in_process('--dataset', 'tiny', '--evaluate', '--checkpoint', 'best', '--num_samples', '40', *flags)
  assert result.returncode == 0, result
  printed = capsys.readouterr().out
  assert f'best/DCGAN.model-{best["step"]} (step {best["step"]})' in printed
  fd_row = next(line for line in printed.splitlines() if line.startswith('fd '))
  assert float(fd_row.split()[1]) == pytest.approx(best['value'], rel=1e-3)  # the same z, weights and reals

  out_dir = tmp_path / 'best_images'
  with caplog.at_level(logging.INFO):
    result = main_in_process('--dataset', 'tiny', '--generate', '3', '--checkpoint', 'best', '--out_dir',
                             str(out_dir), *flags)
  assert result.returncode == 0, result
  assert f'(step {best["step"]})' in caplog.text and len(glob.glob(str(out_dir / '0*.png'))) == 3


@pytest.mark.parametrize('args, fragments', [
    (['--train', '--evaluate'], ['use --eval_freq']),
    (['--evaluate', '--generate', '4'], ['--evaluate cannot be combined with --generate']),
    (['--evaluate', '--num_samples', '1'], ['flag --num_samples=1: must be at least 2']),
    (['--checkpoint', 'bestest'], ["flag --checkpoint=bestest: must be 'latest', 'best' or a step number"]),
])
def test_evaluation_flags_are_checked(tmp_path, args, fragments):
  assert_error(main_in_process('--dataset', 'tiny', *args, *dir_flags(tmp_path, tmp_path / 'data')), *fragments)


def test_evaluate_an_rgb_model_by_swd_alone(trained_models, capsys):
  run_dir, name = trained_models['uncond']
  capsys.readouterr()
  assert main_in_process('--dataset', name, '--evaluate', *dir_flags(run_dir, run_dir / 'data')).returncode == 0
  names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]]
  assert names == ['swd', 'swd_16x12', 'swd_real']  # 8 images: all of them, one pyramid level; no classifier
  record = json.loads((run_dir / 'ckpt' / 'rgb_16_12' / 'eval_000002_8.json').read_text())
  assert record['num_samples'] == 8 and record['metrics']['swd'] > 0


def test_best_without_eval_freq_and_fd_without_labels_are_one_sentence(trained_models, tmp_path):
  run_dir, name = trained_models['uncond']
  assert_error(main_in_process('--dataset', name, '--checkpoint', 'best', *dir_flags(run_dir, run_dir / 'data')),
               'no best checkpoint in', 'train with --eval_freq')
  write_images(str(tmp_path / 'data' / 'rgb'), 4)
  assert_error(main_in_process('--train', '--dataset', 'rgb', '--input_fname_pattern', '*.png', '--output_height',
                               '16', '--eval_freq', '1', '--best_metric', 'fd',
                               *dir_flags(tmp_path, tmp_path / 'data')),
               '--best_metric fd needs labelled grayscale data', 'use --best_metric swd')


# The numbers of the GAN literature, on the stand-in of the FID network

def _fid_by_eigenvalues(a, b):
  """FID from two feature sets by the eigenvalues of the product of their covariances (a general eigensolver,
  not ours; scipy's sqrtm, as TTUR's fid.py, gives the same to 1e-5 but takes 15 s at 2048 dimensions)."""
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  root_trace = np.sum(np.sqrt(np.clip(np.linalg.eigvals(cov_a @ cov_b).real, 0, None)))
  return np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2) + np.trace(cov_a + cov_b) - 2 * root_trace


def test_inception_numbers_rank_real_unseen_and_noise_and_the_real_side_is_computed_once(
    tmp_path, stand_in_inception, monkeypatch):
  images, _ = digits.make_digits(400, seed=6)
  images = images[..., np.newaxis]
  dataset = datasets.PixelSource('shapes', images[:240].copy(), None)  # unlabelled: no digit classifier
  cfg = Config(dataset='shapes', checkpoint_dir=str(tmp_path / 'ckpt'), output_height=28, output_width=28,
               c_dim=1, y_dim=0, z_dim=8, inception_dir=str(stand_in_inception))
  computed = []
  features_of = inception.Features.__call__
  monkeypatch.setattr(inception.Features, '__call__', lambda self, x, what='': (computed.append(len(x)),
                                                                                features_of(self, x, what))[1])
  with evaluation.Evaluator(dataset, cfg, 150, SESSION) as evaluator:
    real = evaluator.score(evaluator.real.copy())
    unseen = evaluator.score(images[240:390])
    unseen_features = evaluator.fake_inception
    noise = evaluator.score(np.random.default_rng(0).integers(0, 256, (150, 28, 28, 1), np.uint8))
    real_features = evaluator.real_inception
  assert real['fid'] == pytest.approx(0, abs=1e-3) and (real['precision'], real['recall']) == (1.0, 1.0)
  assert unseen['fid'] < noise['fid'] / 10 and unseen['kid'] < noise['kid'] / 10
  assert unseen['precision'] > 0.5 and noise['precision'] == 0.0
  # the same numbers as formulas written apart from ours, on the same pool_3 features
  # (FID is a difference of traces in the hundreds: two ways of taking the square root agree to about 1e-5)
  assert unseen['fid'] == pytest.approx(_fid_by_eigenvalues(real_features.astype(np.float64),
                                                            unseen_features.astype(np.float64)), rel=1e-6, abs=1e-4)
  assert unseen['kid'] == pytest.approx(_mmd_by_matrices(unseen_features, real_features) * 1e3, rel=1e-6)
  assert computed == [150, 150, 150, 150]  # the real sample once, then each generated set
  cache = tmp_path / 'ckpt' / 'datasets' / 'shapes' / 'inception_28x28_150.npz'
  assert cache.exists()
  computed.clear()
  with evaluation.Evaluator(dataset, cfg, 150, SESSION):
    pass
  assert computed == []  # read back from the dataset's cache
  dataset.images[:] = 255 - dataset.images  # the data changed: computed again
  with evaluation.Evaluator(dataset, cfg, 150, SESSION):
    pass
  assert computed == [150]


def _mmd_by_matrices(x, y):
  """KID of two sets of at most 1000 (one subset, all of each), written out from its definition."""
  x, y = x.astype(np.float64), y.astype(np.float64)
  k = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3
  m = len(x)
  return ((k(x, x).sum() - np.trace(k(x, x))) / (m * (m - 1)) + (k(y, y).sum() - np.trace(k(y, y))) / (m * (m - 1))
          - 2 * k(x, y).mean())


@pytest.mark.parametrize('sizes, size', [
    ([], (16, 16)),  # the size most of them have
    (['--output_height', '12'], (12, 12)),  # one side: a square, as in training
    (['--output_width', '12'], (12, 12)),
    (['--output_height', '12', '--output_width', '8'], (12, 8)),
])
def test_evaluate_images_of_a_folder_dataset_takes_any_of_the_size_flags(tmp_path, sizes, size):
  write_images(str(tmp_path / 'data' / 'real'), 12, size=(16, 16), seed=1)
  write_images(str(tmp_path / 'gen'), 10, size=(16, 16), seed=2)
  assert main_in_process('--evaluate', '--images', str(tmp_path / 'gen'), '--dataset', 'real', '--input_fname_pattern',
                         '*.png', '--num_samples', '8', *sizes, *dir_flags(tmp_path, tmp_path / 'data')) == (0, None)
  (record,) = glob.glob(str(tmp_path / 'samples' / f'real_{size[0]}_{size[1]}' / 'evaluate_gen' / 'eval_8.json'))
  assert json.loads(open(record).read())['size'] == list(size)


def test_evaluate_images_scores_a_folder_with_a_bad_file_and_other_sizes(tmp_path, stand_in_inception, capsys,
                                                                         caplog):
  write_images(str(tmp_path / 'data' / 'faces'), 30, size=(16, 16), seed=1)
  folder = tmp_path / 'theirs'
  write_images(str(folder), 24, size=(16, 16), seed=2)
  write_images(str(folder / 'big'), 3, size=(20, 20), seed=3)
  for path in (folder / 'big').iterdir():
    path.rename(folder / f'big_{path.name}')
  (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really')
  (folder / 'notes.txt').write_text('not an image, and not named like one')
  flags = ['--evaluate', '--images', str(folder), '--dataset', 'faces', '--input_fname_pattern', '*.png',
           '--inception_dir', str(stand_in_inception), *dir_flags(tmp_path, tmp_path / 'data')]
  capsys.readouterr()
  with caplog.at_level(logging.WARNING):
    assert main_in_process(*flags) == (0, None)
  assert 'skipping 1 files in' in caplog.text and 'broken.png' in caplog.text
  assert '3 of the 27 images in' in caplog.text and 'are not 16x16: resized to it' in caplog.text
  printed = capsys.readouterr().out
  assert f'{folder}: 27 images against 27 real images of' in printed and 'Inception features at 299x299' in printed
  out = tmp_path / 'samples' / 'faces_16_16' / 'evaluate_theirs'
  record = json.loads((out / 'eval_27.json').read_text())
  assert record['images'] == str(folder) and record['size'] == [16, 16] and record['num_samples'] == 27
  with Image.open(out / 'nearest.png') as grid:
    assert grid.size == (4 * 18 + 2, 8 * 18 + 2)  # 8 samples, each beside its 3 nearest real images
  # An independent computation on the same features: the folder's 27 images against the 27 real ones drawn
  chosen = np.random.default_rng(evaluation.EVAL_SEED).choice(30, 27, replace=False)
  cfg = Config(dataset='faces', data_dir=str(tmp_path / 'data'), input_fname_pattern='*.png',
               output_height=16, output_width=16)
  real_images = datasets.read_images(datasets.open_dataset(cfg), cfg, np.sort(chosen))
  mine, _ = datasets.read_folder(str(folder))
  fake, _ = datasets.fit_images(mine, 16, 16, 3)
  with inception.Features(str(stand_in_inception / inception.GRAPH_FILE), SESSION) as features:
    real_features, fake_features = features(real_images), features(fake)
  metrics_ = record['metrics']
  assert metrics_['fid'] == pytest.approx(_fid_by_eigenvalues(real_features.astype(np.float64),
                                                              fake_features.astype(np.float64)), rel=1e-6, abs=1e-4)
  assert metrics_['kid'] == pytest.approx(_mmd_by_matrices(fake_features, real_features) * 1e3, rel=1e-6)
  assert (metrics_['precision'], metrics_['recall']) == feature_metrics.precision_recall(real_features,
                                                                                         fake_features)


def test_evaluate_without_the_network_says_what_it_skips_and_fid_cannot_pick_the_best(trained_models, tmp_path,
                                                                                      caplog, capsys):
  run_dir, name = trained_models['uncond']
  flags = ['--dataset', name, *dir_flags(run_dir, run_dir / 'data'), '--inception_dir', str(tmp_path / 'none')]
  with caplog.at_level(logging.WARNING):
    assert main_in_process('--evaluate', *flags) == (0, None)
  assert (f'fid, kid, precision and recall need the Inception network of the FID paper, {tmp_path / "none"}/'
          'classify_image_graph_def.pb, which is not there: python download.py inception fetches it') in caplog.text
  assert 'fid' not in capsys.readouterr().out
  write_images(str(tmp_path / 'data' / 'rgb'), 4)
  assert_error(main_in_process('--train', '--dataset', 'rgb', '--input_fname_pattern', '*.png', '--output_height',
                               '16', '--eval_freq', '1', '--best_metric', 'fid', '--inception_dir',
                               str(tmp_path / 'none'), *dir_flags(tmp_path, tmp_path / 'data')),
               '--best_metric fid needs the Inception network of the FID paper in', 'python download.py inception')


def test_eval_freq_with_the_network_keeps_the_best_by_fid(tmp_path, stand_in_inception):
  write_images(str(tmp_path / 'data' / 'rgb'), 24, size=(16, 16))
  assert main_in_process('--train', '--dataset', 'rgb', '--input_fname_pattern', '*.png', '--output_height', '16',
                         '--batch_size', '8', '--epoch', '2', '--eval_freq', '3', '--num_samples', '24',
                         '--inception_dir', str(stand_in_inception), *TINY_MODEL,
                         *dir_flags(tmp_path, tmp_path / 'data')) == (0, None)
  key_dir = tmp_path / 'ckpt' / 'rgb_16_16'
  best = checkpoints.best(str(key_dir))
  assert best['metric'] == 'fid'  # the default for RGB data where the network is
  records = [json.loads((key_dir / f'eval_{step:06d}_24.json').read_text()) for step in (3, 6)]
  assert best['value'] == min(record['metrics']['fid'] for record in records)
  assert {'fid', 'kid', 'kid_std', 'precision', 'recall', 'swd'} <= set(records[0]['metrics'])
  tags = {value.tag for event in _events(tmp_path / 'logs' / 'rgb_16_16') for value in event.summary.value}
  assert {'eval/fid', 'eval/kid', 'eval/precision', 'eval/recall'} <= tags
