"""The shared base every stage may use: what the user can fix (`errors`), atomic files and hashes (`files`),
the run configuration and its validation (`config`), TensorFlow start-up and the encoder's precision
(`devices`), how often a progress bar redraws (`progress_bars`), a finished command's quick end (`quick_exit`).

May import: nothing of pipeline.
"""
