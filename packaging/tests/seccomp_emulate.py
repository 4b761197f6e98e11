#!/usr/bin/python3
"""Runs a command under an emulation of the unit's seccomp-based options, for
judging them where systemd does not run (a container): NoNewPrivileges,
MemoryDenyWriteExecute (systemd's rules: mmap W+X, mprotect/pkey_mprotect
adding PROT_EXEC, shmat SHM_EXEC refused with EPERM), RestrictAddressFamilies
(socket() of another family: EAFNOSUPPORT), SystemCallFilter=@system-service
(the set systemd-analyze expands; any other system call is a SIGSYS, so a
missing one shows as a crash, not a quiet EPERM) and
SystemCallArchitectures=native. Needs python3-seccomp (not a test
dependency: a tool for checking the unit by hand, README "Install").

Usage: seccomp_emulate.py COMMAND [ARG...]"""

import errno
import os
import re
import socket
import subprocess
import sys

import seccomp

PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000


def syscall_set(group, seen=None):
    seen = set() if seen is None else seen
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if word.startswith("@"):
            if word not in seen:
                seen.add(word)
                names |= syscall_set(word, seen)
        elif re.fullmatch(r"\w+", word):
            names.add(word)
    return names


def main():
    allowed = syscall_set("@system-service")
    allow = seccomp.SyscallFilter(defaction=seccomp.TRAP)
    for name in sorted(allowed):
        try:
            allow.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError):
            pass  # not a system call of this architecture
    mdwe = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    mdwe.add_rule(seccomp.ERRNO(errno.EPERM), "mmap",
                  seccomp.Arg(2, seccomp.MASKED_EQ, PROT_WRITE | PROT_EXEC, PROT_WRITE | PROT_EXEC))
    for name in ("mprotect", "pkey_mprotect"):
        mdwe.add_rule(seccomp.ERRNO(errno.EPERM), name,
                      seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
    mdwe.add_rule(seccomp.ERRNO(errno.EPERM), "shmat",
                  seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
    families = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for fam in range(0, 46):
        if fam not in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6):
            families.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket",
                              seccomp.Arg(0, seccomp.EQ, fam))
    # The allow-list last: it does not list seccomp() itself. Loading sets
    # no_new_privs.
    for f in (mdwe, families, allow):
        f.load()
    print(f"seccomp_emulate: {len(allowed)} system calls allowed; exec {sys.argv[1:]}",
          file=sys.stderr)
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
