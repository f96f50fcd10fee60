"""The pure IMAP command parser: complete command bytes in, typed command out.

No I/O happens here; the server frames commands (lines and literals, see
:mod:`letterlock.imap.parsing.framing`) and hands the whole buffer to
:func:`parse_command`.
"""

from letterlock.imap.parsing.commands import Command
from letterlock.imap.parsing.parser import parse_command
from letterlock.imap.parsing.primitives import ParseError

__all__ = ["Command", "ParseError", "parse_command"]
