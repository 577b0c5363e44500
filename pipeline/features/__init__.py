"""Texts -> pooled vectors, computed once: token ids and pooling around one encoder call (`encoder_io`), what is
read of a long text (`long_texts`, and `graph_long_texts` for the exported model), the local extraction runner
(`extraction`), the feature cache's on-disk format (`cache`), and the Apache Beam runner that writes the same
cache (`beam_pipeline`, `beam_storage`).

May import: base, encoders.
"""
