"""labelaudit: find label noise in face-parsing datasets with a DML-CSR self-ensembled teacher.

Public API (imports are lazy so `labelaudit --help` stays fast):
    labelaudit.data.open_source / FaceParsingDataset   read LaPa, CelebAMask-HQ, Helen, folders
    labelaudit.data.synthetic.generate                 generated faces with known label noise
    labelaudit.train.train / load_config               DML-CSR training (CPU presets to multi-GPU)
    labelaudit.metrics                                 the paper's F1 / IoU
"""
__version__ = "0.1.0"
