"""The user's table in, labelled texts out: reading tables and mapping labels, stratified splits and class
weights (`tables`), and the recipes of known data sets (`presets`).

May import: base.
"""
