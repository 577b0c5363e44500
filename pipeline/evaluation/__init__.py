"""How good a model is: metrics (`metrics`), several labels per text: their metrics and
thresholds (`multi_label`), a number: its metrics and the ridge probe (`regression`), the logistic-regression
probe (`probe`), how a target is scored (`scoring`), pictures (`plots`) and what a run writes for TensorBoard beyond Keras's callback
(`tensorboard_logging`).

It sits below training because the head's epoch callback and fine-tuning score with these same metrics.

May import: base, data.
"""
