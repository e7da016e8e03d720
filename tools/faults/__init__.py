"""A fault tree for predict.py: damaged and surprising CMRxRecon inputs, the outcome each must get, a checker.

    python -m tools.faults OUT          # build the trees under OUT and OUT/expected.json
    python -m tools.faults --run OUT    # build, run predict.py over them, check, print a table

The trees follow the 2024 layout and hold small simulated volumes written with challenge.matio and masks from
challenge.masks. They are grouped in scenarios, one run each:

- main: every kind of bad file beside valid ones (truncated HDF5, non-MAT, empty, MAT v5, missing or extra
  keys, real data, 3-D data, NaN/Inf, all zero, missing, corrupt or wrong-shaped mask, 1x1x1, odd sizes, 4-D,
  symlink loops, symlinked inputs, empty folders, ._ files, a copy mapping to the same output), run with
  ``predict.py --method cgsense`` under a read-only input root;
- resume: the main run's output damaged (truncated, garbage, wrong shape, deleted, temporaries), ``--resume``;
- injected: runner.run in this process with a model that raises mid-volume, returns NaN or hits a CUDA
  out-of-memory once, and a volume that must be read in slabs within a memory bound;
- bad_weights: ``--method genre`` with weights whose sha256 does not match their record;
- permissions: an unreadable file, folder and mask (needs file permissions to bind: not root, or setpriv);
- empty_root, output_is_under_a_file, output_read_only: runs that must stop with a clear message.

expected.json lists every scenario (arguments, exit status, messages) and every case (its input, output,
expected outcome 'model' / 'fallback' / 'failed' / 'resumed' / 'absent' and the substring its reason or note
must hold). The checker compares a run's run_report.json, exit status, output files and input tree with it.

Modules: expected.py (what each scenario and case must end with; expected.json), trees.py (the input trees,
written with tools.sample_data's writer from volumes of the project's simulator), injected.py (the model with
injected faults), running.py (one scenario in its surroundings: predict.py in a child process or runner.run
here), checks.py (a run against its expectations), __main__.py (the command line).
"""
