"""A TF-Hub BERT behind one calling convention: loading either hub signature (`encoder`), the BERT forward pass
in TensorFlow ops (`modeling`), its rebuild in bfloat16/float16 (`reduced_precision`) and its int8 TFLite model
(`int8`), the Hugging Face -> SavedModel converter (`checkpoint`, `convert`, `model_info`), the embedded
all-MiniLM-L6-v2 (`embedded`), and the in-graph tokenizer of the exported model (`graph_tokenizer`).

May import: base.
"""
