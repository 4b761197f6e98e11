#!/usr/bin/python3
"""man.keys: thumbnailed.conf(5), the shipped etc/thumbnailed.conf and the
daemon's key table (src/common/config.c) list the same keys with the same
defaults; the man page's type matches the table's, and what it says a reload
does matches the keys src/master/reload.c treats as needing a restart.

Usage: man_keys.py SOURCE_DIR"""

import re
import sys
from pathlib import Path

TYPES = {"STR": "string", "INT": "integer", "SIZE": "size", "COUNT": "count",
         "DURATION": "duration", "BOOL": "boolean", "ENUM": "enum"}


def table_keys(src):
    """{(section, key): (type, default)} from the keys[] table of config.c."""
    text = (src / "src/common/config.c").read_text()
    body = text[text.index("static const struct key keys[]"):]
    body = body[:body.index("\n};")]
    entry = re.compile(r'\{\s*"(\w+)",\s*"(\w+)",\s*K_(\w+),\s*OFF\(\w+\),\s*[^,]+,\s*[^,]+,\s*'
                       r'"([^"]*)"', re.S)
    return {(s, k): (TYPES[t], d) for s, k, t, d in entry.findall(body)}


def restart_keys(src):
    """{(section, key)} of the fixed_keys[] table of reload.c."""
    text = (src / "src/master/reload.c").read_text()
    body = text[text.index("fixed_keys[][2]"):]
    body = body[:body.index("};")]
    return set(re.findall(r'\{"(\w+)",\s*"(\w+)"\}', body))


def conf_keys(src):
    """{(section, key): value} of the shipped configuration file."""
    keys, section = {}, None
    for line in (src / "etc/thumbnailed.conf").read_text().splitlines():
        line = line.strip()
        if not line or line[0] in ";#":
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        key, _, value = line.partition("=")
        keys[(section, key.strip())] = value.strip()
    return keys


def unroff(s):
    s = re.sub(r"\\f[BIRP]", "", s)
    return s.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")


def man_keys(src):
    """{(section, key): (type, default, reload|restart)} of thumbnailed.conf(5):
    under .SH "SECTION [name]", each key is '.B key' followed by
    'type[ (range)]; default X|empty; reload|restart.'"""
    keys, section, problems = {}, None, []
    lines = (src / "packaging/man/thumbnailed.conf.5.in").read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.fullmatch(r'\.SH "SECTION \[(\w+)\]"', line)
        if m:
            section = m.group(1)
            continue
        if m := re.fullmatch(r"\.SH .*", line):
            section = None
            continue
        if section is None or line != ".TP":
            continue
        m = re.fullmatch(r"\.B (\w+)", lines[i + 1])
        spec = re.fullmatch(r"(\w+)(?: \([^)]*\))?; default (.*); (reload|restart)\.",
                            lines[i + 2] if i + 2 < len(lines) else "")
        if not m or not spec:
            problems.append(f"thumbnailed.conf.5.in:{i + 2}: in [{section}], expected '.B key' "
                            "then 'type; default X; reload|restart.'")
            continue
        default = unroff(spec.group(2))
        keys[(section, m.group(1))] = (spec.group(1), "" if default == "empty" else default,
                                       spec.group(3))
    return keys, problems


def main():
    src = Path(sys.argv[1])
    table, restart, conf = table_keys(src), restart_keys(src), conf_keys(src)
    man, problems = man_keys(src)
    if len(table) < 40:
        problems.append(f"only {len(table)} keys parsed from config.c: the parser is out of date")
    for name, keys in (("etc/thumbnailed.conf", conf), ("thumbnailed.conf(5)", man)):
        for s, k in sorted(set(table) - set(keys)):
            problems.append(f"{s}.{k}: in the daemon's key table but not in {name}")
        for s, k in sorted(set(keys) - set(table)):
            problems.append(f"{s}.{k}: in {name} but not a key the daemon knows")
    for s, k in sorted(restart - set(table)):
        problems.append(f"{s}.{k}: reload.c lists it as needing a restart but it is no key")
    for key in sorted(set(table) & set(man)):
        name = "%s.%s" % key
        ttype, tdef = table[key]
        mtype, mdef, mreload = man[key]
        if mtype != ttype:
            problems.append(f"{name}: thumbnailed.conf(5) says {mtype}, the daemon reads {ttype}")
        if mdef != tdef:
            problems.append(f"{name}: thumbnailed.conf(5) default '{mdef}', the daemon's '{tdef}'")
        want = "restart" if key in restart else "reload"
        if mreload != want:
            problems.append(f"{name}: thumbnailed.conf(5) says {mreload}, reload.c does {want}")
    for key in sorted(set(table) & set(conf)):
        if conf[key] != table[key][1]:
            problems.append("%s.%s: etc/thumbnailed.conf says '%s', the default is '%s'"
                            % (*key, conf[key], table[key][1]))
    for p in problems:
        print("man.keys: " + p)
    print(f"man.keys: {len(table)} keys in config.c, {len(conf)} in etc/thumbnailed.conf, "
          f"{len(man)} in thumbnailed.conf(5), {len(restart)} need a restart: "
          + ("FAIL" if problems else "all agree"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
