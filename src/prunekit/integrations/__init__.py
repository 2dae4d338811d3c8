"""Training-framework integrations (optional extras; nothing here is imported by ``import prunekit``).

``prunekit.integrations.lightning.PruningCallback`` (``pip install 'prunekit[lightning]'``) and
``prunekit.integrations.trainer.PruningCallback`` (Hugging Face ``transformers.Trainer``,
``pip install 'prunekit[hf]'``) prune on a schedule during training with prunekit's masks held.
"""
