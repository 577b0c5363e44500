"""The shared base every stage may use: what the user can fix (`errors`), atomic files and hashes (`files`),
the encoder's precision, decided (`precision`), the run configuration: every option declared once, and its
validation (`config`), TensorFlow start-up (`devices`), how often a progress bar redraws (`progress_bars`), a finished command's quick end (`quick_exit`).

May import: nothing of pipeline.
"""
