"""The web UI (``ltx-trainer ui``): Dataset, Train, Runs and Sample pages over the library and the CLI.

The top layer of the library: it may import every package below it (config, models, data, sampling, training) and
nothing imports it but ``commands/ui.py``. gradio is imported only inside this package, and only by the page
modules and :func:`app.build_app` / :func:`app.serve`; the plain modules (``roots``, ``form``, ``runs``,
``dataset_ops``, ``tasks``) hold the logic and are tested without a browser.

- ``app.py``: the Blocks, serving (127.0.0.1 by default; another host needs a login), the allowed roots
- ``dataset_page.py`` / ``dataset_ops.py``: split-scenes, caption, preprocess, verify; the caption grid
- ``train_page.py`` / ``form.py``: the config form generated from the pydantic schema; presets; plan tiers; launch
- ``runs_page.py`` / ``runs.py``: run folders and ``ltx-trainer train`` subprocesses (stop, resume, restart-proof)
- ``sample_page.py``: ``sampling.runner.sample_file`` with LoRAs and conditions
"""
