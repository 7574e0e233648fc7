"""The tf.distribute trainer: one loop for CPU, GPUs, many workers and TPU."""
