"""The one exception type sesemi raises for problems a user can fix."""


class SesemiError(Exception):
    """A problem with the user's input (data, config, checkpoint) and how to fix it.

    The CLI prints these as a single ``error: ...`` line instead of a traceback; set
    ``HYDRA_FULL_ERROR=1`` to see the traceback.
    """
