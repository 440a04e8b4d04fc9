"""Set one option of an ini file the way DevStack's ``iniset`` does.

Usage: ``iniset.py <file> <section> <option> <value>``

The file is created when missing; a missing section is appended; an
existing ``option = ...`` line of the section is replaced, else the option
is added right after the section header. Comments and other lines are
kept as they are.
"""

import pathlib
import re
import sys


def iniset(text: str, section: str, option: str, value: str) -> str:
    lines = text.splitlines()
    line = '%s = %s' % (option, value)
    header = '[%s]' % section
    try:
        start = next(i for i, s in enumerate(lines) if s.strip() == header)
    except StopIteration:
        return '\n'.join([*lines, '', header, line]) + '\n'
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].lstrip().startswith('[')
        ),
        len(lines),
    )
    existing = re.compile(r'^\s*%s\s*=' % re.escape(option))
    for i in range(start + 1, end):
        if existing.match(lines[i]):
            lines[i] = line
            break
    else:
        lines.insert(start + 1, line)
    return '\n'.join(lines) + '\n'


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    path, section, option, value = argv
    target = pathlib.Path(path)
    text = target.read_text() if target.exists() else ''
    target.write_text(iniset(text, section, option, value))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
