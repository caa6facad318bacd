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


def shown(value, limit: int = 200, levels: int = 4) -> str:
    """``repr(value)`` for an error message, bounded: containers nested deeper than ``levels``
    print as ``[...]`` / ``{...}`` and the text stops after about ``limit`` characters with
    ``...``. A parsed JSON value can be nested 1000 levels deep (``repr`` then raises
    RecursionError) or hold millions of items; a message quotes what identifies it. Shallow,
    short values print exactly as ``repr`` prints them."""
    text = _shown(value, limit, levels)
    return text if len(text) <= limit else text[:limit] + "..."


def _shown(value, limit: int, levels: int) -> str:
    if isinstance(value, (list, tuple, dict)):
        opening, closing = {list: "[]", tuple: "()", dict: "{}"}[next(t for t in (list, tuple, dict)
                                                                      if isinstance(value, t))]
        if levels == 0:
            return f"{opening}...{closing}" if value else opening + closing
        parts, length = [], 0
        items = value.items() if isinstance(value, dict) else value
        for item in items:
            if length > limit:
                parts.append("...")
                break
            if isinstance(value, dict):
                part = f"{_shown(item[0], limit, levels - 1)}: {_shown(item[1], limit, levels - 1)}"
            else:
                part = _shown(item, limit, levels - 1)
            parts.append(part)
            length += len(part) + 2
        if isinstance(value, tuple) and len(value) == 1:
            parts[0] += ","
        return opening + ", ".join(parts) + closing
    if isinstance(value, (str, bytes)) and len(value) > limit:
        return repr(value[:limit]) + "..."
    return repr(value)


def torch_load_refusal(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, for a one-line message: torch's
    text without its advice to re-run with ``weights_only=False`` ("will likely succeed"), which
    would run the code a hostile file carries. Keeps what the file held ("Trying to load
    unsupported GLOBAL posix.system ...") or why it is damaged (a truncated zip)."""
    paragraphs = [" ".join(p.split()) for p in str(exc).split("\n\n") if p.strip()]
    kept = [p for p in paragraphs if "weights_only" not in p]
    if not kept:
        return f"{type(exc).__name__}: it holds Python objects that would run code when loaded"
    first = kept[0]
    sentence = first.split(". ")[0].rstrip(".")  # torch's further sentences are advice
    return f"{type(exc).__name__}: {sentence}"
