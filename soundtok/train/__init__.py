"""Training code (codec and LLM adapters). Imported only by ``train-codec`` and
``finetune-llm``; ``import soundtok`` never loads it."""
