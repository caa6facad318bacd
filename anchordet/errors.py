"""Error types shared by the library and the command line.

``UserError`` is an error in the user's input (a file, an option, a value) that the user can fix.
The CLI prints it as one line (``anchordet CMD: error: ...``) and exits 2, never with a traceback.
Raise it, or a subclass, at the boundary where input is checked, with a message that names the
file, the image id, the annotation id (the dataset's own id) and the value. It subclasses
``ValueError`` so that library callers who catch ``ValueError`` keep working.
"""


class UserError(ValueError):
    """An error in the user's input: printed as one line, exit status 2."""


class InputSkipped(UserWarning):
    """A bad annotation or image left out because the user asked to skip them
    (``data.skip_bad_annotations``); the CLI prints each as one line."""
