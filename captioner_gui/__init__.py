"""captioner: describes images and the screen, out loud, on your own machine."""

__version__ = "0.1.0"
