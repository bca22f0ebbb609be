"""The application: main.py's flags and --help, the config completed from the data, the run modes, and what a
trained generator makes (images, visualizations, exports). Nothing here loads TensorFlow until a mode runs."""
