"""The default caption/generation adapter's recipe (scripts/train_default_adapter.py).

* :mod:`.captions`: the captions and generation prompts of one corpus row, built from
  what the manifest knows (kind, content, text, label, speaker fields, instruments,
  style) and the manifest's own captions where they say nothing more;
* :mod:`.data`: which rows may be trained on (FSDD test split and ESC-10 fold 4 never),
  the per-group quotas that balance the kinds, and the training stream;
* :mod:`.evaluation`: the pure functions of scripts/eval_adapter.py (what a caption
  says is spoken and its word error rate, the kind of sound it names, digits, labels,
  instruments, confusion tables).
"""
