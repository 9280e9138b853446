"""Run the peer OmniFold (PyPI ``omnifold``, TensorFlow) on arrays from an .npz file.

Called by ``benchmarks/omnifold_gaussian.py`` with the interpreter of ``.venv-peer``
(``make bench-peer`` creates it); not part of simkit. It uses the peer's documented
defaults (``MLP`` 64-128-64 GELU, batch 128, learning rate 1e-4, up to 50 epochs,
early stopping after 10) and writes the final push weights and the wall time.

    .venv-peer/bin/python benchmarks/_peer/run_peer.py IN.npz OUT.npz ITERATIONS
"""

import os
import sys
import tempfile
import time

import numpy as np


def main(source: str, target: str, iterations: int) -> None:
    import keras
    from omnifold import MLP, DataLoader, MultiFold
    from omnifold.net import weighted_binary_crossentropy

    # Keras 3 looks the loss up by name when it clones the model
    keras.saving.get_custom_objects()["weighted_binary_crossentropy"] = weighted_binary_crossentropy
    arrays = np.load(source)
    data = DataLoader(reco=arrays["data_reco"], normalize=True)
    mc = DataLoader(
        reco=arrays["sim_reco"],
        gen=arrays["sim_gen"],
        pass_reco=arrays["pass_reco"],
        pass_gen=arrays["pass_gen"],
        normalize=True,
    )
    n_features = arrays["sim_gen"].shape[1]
    workdir = tempfile.mkdtemp(prefix="peer-omnifold-")
    os.chdir(workdir)  # the peer writes its weights and log into the working folder
    start = time.perf_counter()
    unfold = MultiFold(
        "gaussian", MLP(n_features), MLP(n_features), data, mc, niter=iterations, verbose=False
    )
    unfold.Unfold()
    seconds = time.perf_counter() - start
    np.savez(target, push=np.asarray(unfold.weights_push, np.float64), seconds=seconds)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
