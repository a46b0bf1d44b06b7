"""The one exception type a user can cause; the CLI prints its message and exits with code 2."""


class LosspathError(Exception):
    """A mistake in the user's input (bad flag, missing file, mismatched checkpoints), in one sentence."""


class TrainingDiverged(LosspathError):
    """The training loss became non-finite; the hyperparameters (usually the learning rate) are to blame."""
