"""dlcli: declarative deep learning for images and speech from the command line."""

__version__ = "0.1.0"
