"""The user's table in, labelled texts out: reading tables and mapping labels, stratified splits and class
weights (`tables`), the recipes of known data sets (`presets`), and several labels per text: the target's
description, label indicator matrices and their iterative stratification (`targets`).

May import: base.
"""
