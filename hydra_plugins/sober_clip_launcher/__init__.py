"""sober-clip's Hydra launcher plugin, ``hydra/launcher=batched`` (batched_launcher.py); Hydra finds it
through the ``hydra_plugins`` namespace package, as it finds hydra-submitit-launcher."""
