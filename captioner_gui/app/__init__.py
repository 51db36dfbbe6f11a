"""The desktop app (Qt): the window, the captioning worker thread, speech, settings, history, first-run download.

It hands PIL images and file paths to the engine and gets captions back; it never touches tensors."""
