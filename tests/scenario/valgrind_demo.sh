#!/usr/bin/env bash
# The CLI demo under valgrind memcheck: exit status 1 (the demo guest's
# "all checks passed") and no memcheck error (status 99).
# usage: valgrind_demo.sh VALGRIND VMXSIM SUPPRESSIONS
set -u
"$1" --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
     --suppressions="$3" "$2" run >/tmp/vmxsim-vg.$$ 2>&1
rc=$?
grep -q "all checks passed" /tmp/vmxsim-vg.$$ || { cat /tmp/vmxsim-vg.$$; rc=98; }
rm -f /tmp/vmxsim-vg.$$
[ "$rc" = 1 ] && exit 0
echo "valgrind/demo: status $rc"
exit 1
